"""Registry of the task families: everything the pipeline needs from an environment, per env id.

A new environment is one new module (MJCF + Gymnasium env + suite loader) plus one `EnvSpec`
entry in `REGISTRY`; collect, eval (learned model, oracle, random), video and the `tasks` verb
look the env up here (`get_env_spec(env_id)`) instead of importing a module by name.

State convention (what the oracle cost, the success predicate, the probe and the safety terms
read): a physical state is a flat float vector of `state_dim` numbers whose first `goal_dim`
fields are the *goal features* (TwoRoom: position x, y; Reacher: joint angles q1, q2) and whose
next `goal_dim` fields are their rates. Success is ``||goal_features(s) - goal_features(goal)||
<= tolerance``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

from jepa_mpc.errors import ConfigError

from . import pusht, reacher, tasks, tworoom, tworoom_layouts
from .geometry import Layout


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """What the pipeline needs from one environment (see the module docstring)."""

    env_id: str
    entry_point: str
    """Gymnasium entry point ("module:Class") registered under `env_id`."""
    make_env: Callable[..., Any]
    """make_env(layout=..., obs_type=..., frame_skip=...) -> a gym.Env with reset(options={"task": t}),
    observation_at(state), a `layout` attribute and info keys success/violation/distance_to_goal/state/goal."""
    build_model: Callable[..., Any]
    """build_model(layout, hazards=()) -> mujoco.MjModel (cached, read-only)."""
    state_to_mjstate: Callable[[Any, np.ndarray], np.ndarray]
    mjstate_to_state: Callable[[Any, np.ndarray], np.ndarray]
    sample_start_states: Callable[[Any, np.random.Generator, int], np.ndarray]
    """sample_start_states(layout, rng, n) -> (n, state_dim) start states for reward-free collection."""
    state_dim: int
    action_dim: int
    state_fields: tuple[str, ...]
    default_layout: Callable[[], Any]
    layout_from_dict: Callable[[dict], Any]
    suite_from_dict: Callable[[dict, str], Any]
    """suite_from_dict(document, path) -> envs.tasks.Suite; raises TaskFileError (one line)."""
    generate_suite: Callable[..., Any]
    """generate_suite(seed, n, tolerance=..., max_steps=..., hazards=...) -> Suite."""
    pixel_renderer: Callable[[Any, int], Any]
    """pixel_renderer(model, size) -> an object with render_state(s), render_states(S), close(), size."""
    feature_to_world: Callable[[np.ndarray, Any], np.ndarray]
    """(..., goal_dim) goal features -> (..., 2) points in the top camera's plane (m), for videos."""
    view_half: Callable[[Any], float]
    """Half-width (m) of the square the top camera sees, for a layout."""
    default_tolerance: float
    default_max_steps: int
    goal_dim: int = 2
    episode_crossings: Callable[[Any, np.ndarray], np.ndarray] | None = None
    """Optional: (layout, states (E, T, state_dim)) -> (E,) bool "episode changed room" (TwoRoom)."""
    exploration_actions: Callable[[Any, np.random.Generator, np.ndarray, np.ndarray], np.ndarray] | None = None
    """Optional: (layout, rng, start states (E, S), policy actions (E, T, A)) -> actions to collect with,
    still open loop (Push-T: drift the pusher toward the block so exploration touches it often)."""
    make_collector: Callable[..., Any] | None = None
    """Optional: (model, frame_skip, env=spec) -> a collector like jepa_mpc.data.collect.StateCollector
    (run(init_states, actions) -> state/qpos/qvel, close()), for envs mujoco.rollout cannot step (OGBench)
    or whose rows each need their own model (TwoRoomLayouts)."""
    room_of: Callable[[np.ndarray], np.ndarray] | None = None
    """Optional: state -> the numbers naming its room, for envs whose room changes per task (TwoRoomLayouts);
    `sample_start_states(layout, rng, n, room=...)` then starts in that room. None: the suite's layout is the room."""
    oracle_collector: Callable[..., Any] | None = None
    """Optional: the same kind of collector for the oracle's batched rollouts (default StateCollector;
    OGBench's one-env-at-a-time Gymnasium collector is too slow for it)."""

    def goal_features(self, states) -> np.ndarray:
        """(..., state_dim) -> (..., goal_dim): the quantities the success predicate compares."""
        return np.asarray(states)[..., : self.goal_dim]


def _tworoom_starts(layout: Layout, rng: np.random.Generator, n: int) -> np.ndarray:
    from jepa_mpc.data.collect import sample_free_positions

    pos = sample_free_positions(layout, rng, n)
    return np.concatenate([pos, np.zeros_like(pos)], axis=1)


def _tworoom_crossings(layout: Layout, states: np.ndarray) -> np.ndarray:
    from .geometry import room_of

    side = np.asarray(room_of(layout, states[..., :2]))
    return (side != side[:, :1]).any(axis=1)


TWOROOM = EnvSpec(
    env_id=tworoom.ENV_ID,
    entry_point="jepa_mpc_envs.tworoom:TwoRoomEnv",
    make_env=tworoom.TwoRoomEnv,
    build_model=tworoom.build_model,
    state_to_mjstate=tworoom.state_to_mjstate,
    mjstate_to_state=tworoom.mjstate_to_state,
    sample_start_states=_tworoom_starts,
    state_dim=4,
    action_dim=2,
    state_fields=("x", "y", "vx", "vy"),
    default_layout=Layout,
    layout_from_dict=Layout.from_dict,
    suite_from_dict=tasks.suite_from_dict,
    generate_suite=tasks.generate_suite,
    pixel_renderer=tworoom.PixelRenderer,
    feature_to_world=lambda xy, layout: np.asarray(xy)[..., :2],
    view_half=lambda layout: layout.arena_half + 2 * 0.05,  # arena plus its boundary walls (build_mjcf)
    default_tolerance=0.1,
    default_max_steps=200,
    episode_crossings=_tworoom_crossings,
)

REACHER = EnvSpec(
    env_id=reacher.ENV_ID,
    entry_point="jepa_mpc_envs.reacher:ReacherEnv",
    make_env=reacher.ReacherEnv,
    build_model=reacher.build_model,
    state_to_mjstate=reacher.state_to_mjstate,
    mjstate_to_state=reacher.mjstate_to_state,
    sample_start_states=reacher.sample_start_states,
    state_dim=4,
    action_dim=2,
    state_fields=("q1", "q2", "dq1", "dq2"),
    default_layout=reacher.ReacherLayout,
    layout_from_dict=reacher.ReacherLayout.from_dict,
    suite_from_dict=reacher.suite_from_dict,
    generate_suite=reacher.generate_suite,
    pixel_renderer=tworoom.PixelRenderer,  # generic: sets qpos[0:2] and renders camera "top"
    feature_to_world=lambda q, layout: reacher.fingertip(q, layout),
    view_half=lambda layout: layout.view_half,
    default_tolerance=reacher.DEFAULT_TOLERANCE,
    default_max_steps=reacher.DEFAULT_MAX_STEPS,
)

PUSHT = EnvSpec(
    env_id=pusht.ENV_ID,
    entry_point="jepa_mpc_envs.pusht:PushTEnv",
    make_env=pusht.PushTEnv,
    build_model=pusht.build_model,
    state_to_mjstate=pusht.state_to_mjstate,
    mjstate_to_state=pusht.mjstate_to_state,
    sample_start_states=pusht.sample_start_states,
    state_dim=pusht.STATE_DIM,
    action_dim=2,
    state_fields=pusht.STATE_FIELDS,
    default_layout=pusht.PushTLayout,
    layout_from_dict=pusht.PushTLayout.from_dict,
    suite_from_dict=pusht.suite_from_dict,
    generate_suite=pusht.generate_suite,
    pixel_renderer=pusht.PushTRenderer,
    feature_to_world=lambda f, layout: np.asarray(f)[..., :2],  # block centre (x, y)
    view_half=lambda layout: layout.view_half,
    default_tolerance=pusht.DEFAULT_TOLERANCE,  # block position (m); the angle tolerance is per task
    default_max_steps=pusht.DEFAULT_MAX_STEPS,
    goal_dim=3,  # (bx, by, th)
    exploration_actions=pusht.toward_block_actions,
)

TWOROOM_LAYOUTS = EnvSpec(
    env_id=tworoom_layouts.ENV_ID,
    entry_point="jepa_mpc_envs.tworoom_layouts:TwoRoomLayoutsEnv",
    make_env=tworoom_layouts.TwoRoomLayoutsEnv,
    build_model=tworoom_layouts.build_model,
    state_to_mjstate=tworoom_layouts.state_to_mjstate,
    mjstate_to_state=tworoom_layouts.mjstate_to_state,
    sample_start_states=tworoom_layouts.sample_start_states,
    state_dim=tworoom_layouts.STATE_DIM,
    action_dim=2,
    state_fields=tworoom_layouts.STATE_FIELDS,
    default_layout=tworoom_layouts.LayoutFamily,
    layout_from_dict=tworoom_layouts.LayoutFamily.from_dict,
    suite_from_dict=tworoom_layouts.suite_from_dict,
    generate_suite=tworoom_layouts.generate_suite,
    pixel_renderer=tworoom_layouts.RoomRenderer,
    feature_to_world=lambda xy, layout: np.asarray(xy)[..., :2],
    view_half=lambda layout: layout.arena_half + 2 * 0.05,
    default_tolerance=tworoom_layouts.DEFAULT_TOLERANCE,
    default_max_steps=tworoom_layouts.DEFAULT_MAX_STEPS,
    episode_crossings=tworoom_layouts.episode_crossings,
    make_collector=tworoom_layouts.RoomCollector,
    oracle_collector=tworoom_layouts.RoomCollector,
    room_of=tworoom_layouts.room_params,
)

REGISTRY: dict[str, EnvSpec] = {spec.env_id: spec for spec in (TWOROOM, REACHER, PUSHT, TWOROOM_LAYOUTS)}
ENV_IDS: tuple[str, ...] = tuple(REGISTRY)


def get_env_spec(env_id: str) -> EnvSpec:
    """The EnvSpec of `env_id`; an unknown id is a one-line ConfigError listing the known ids.

    Ids "ogbench:<dataset>" resolve through envs/ogbench_adapter.py (optional extra `ogbench`)."""
    from . import ogbench_adapter

    if ogbench_adapter.is_ogbench_id(env_id):
        return ogbench_adapter.env_spec(env_id)
    spec = REGISTRY.get(env_id)
    if spec is None:
        raise ConfigError(f"unknown env id {env_id!r}; known: {', '.join(ENV_IDS)}")
    return spec


__all__ = ["EnvSpec", "REGISTRY", "ENV_IDS", "get_env_spec", "TWOROOM", "REACHER", "PUSHT", "TWOROOM_LAYOUTS"]
