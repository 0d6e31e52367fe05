"""TwoRoom: a MuJoCo point mass in a square arena split by a wall with one door.

Physics (see `build_mjcf`): a sphere (radius 0.05, mass 1) on two slide joints
x, y (no gravity, no floor contact), joint damping 10, two motors with gear 8 and
ctrlrange [-1, 1] => terminal speed 0.8 m/s, velocity time constant 0.1 s.
timestep 0.01, frame_skip 5 => control dt 0.05 s; at full thrust the agent crosses
the 2 m arena in ~50 control steps and stops within ~3 control steps. The dividing
wall (0.04 thick) and the arena boundary are colliding boxes; at 0.8 m/s the ball
moves 8 mm per physics step, so it cannot tunnel through the wall.

Physical state: ``(x, y, vx, vy)`` float32 = ``qpos[0:2], qvel[0:2]``.
Observations: "state" (4,) float32, "pixels" (S, S, 3) uint8 top-down orthographic
image of the whole arena (image up = +y, right = +x), or "both" (Dict).
Hazards are not obstacles and are not part of the observations: like the goal and the constraints,
they arrive with a task at planning time, and the reward-free data never shows them, so a pixel
model sees the same frames with or without them. `render()` (for people) and the videos draw them
on the floor (non-colliding, orange).
The agent is drawn as a red disc of radius 0.07 (visual only; the colliding sphere
has radius 0.05) so that it covers a few pixels at 64x64.
A step is a *violation* when the agent centre lies in a hazard, outside the task's keep-in box, or
moves faster than the task's speed limit (`geometry.violates`);
*success* when ``||pos - goal_pos|| <= task.tolerance``.

Batched helpers for data collection with ``mujoco.rollout``:
``state_to_mjstate(model, states)`` and ``mjstate_to_state(model, mjstates)``
convert between (N, 4) physical states and (N, nstate) mjSTATE_FULLPHYSICS arrays;
``PixelRenderer(model).render_states(states)`` renders (N, S, S, 3) uint8 frames.
"""

from __future__ import annotations

import collections
from typing import Any, Sequence

import gymnasium as gym
import numpy as np

from .base import (STATE_SPEC, MujocoTaskEnv, PixelRenderer, mjcf_preamble, mjstate_to_state, mujoco,  # noqa: E402,F401  (sets MUJOCO_GL=egl when headless)
                   padded_state, state_to_mjstate)
from .base import mjcf_number as _f  # noqa: E402

from .family import MujocoFamily  # noqa: E402
from .geometry import (AGENT_RADIUS, MAX_SPEED, Box, Circle, Hazard, Layout, crossed_door, sample_free_position,  # noqa: E402
                       sample_free_positions, violates)
from . import tworoom_tasks  # noqa: E402
from .tworoom_tasks import ENV_ID  # noqa: E402

__all__ = [
    "Layout",
    "Circle",
    "Box",
    "build_mjcf",
    "build_model",
    "TwoRoomEnv",
    "PixelRenderer",
    "state_to_mjstate",
    "mjstate_to_state",
    "STATE_SPEC",
    "ENV_ID",
    "sample_start_states",
    "view_half",
    "TwoRoomFamily",
]

TIMESTEP = 0.01
MASS = 1.0
DAMPING = 10.0
GEAR = 8.0
WALL_HEIGHT = 0.1
HAZARD_RGBA = "1.0 0.55 0.0 1"
MARKER_RADIUS = 0.07  # visual-only disc on top of the agent (radius 0.05) so it spans ~4-5 px at 64x64


def build_mjcf(layout: Layout = Layout(), hazards: Sequence[Hazard] = ()) -> str:
    """MJCF XML string of the TwoRoom arena for `layout`, with `hazards` drawn on the floor."""
    a = layout.arena_half
    h = WALL_HEIGHT / 2
    t = 0.05  # boundary wall half-thickness (outside the arena)
    walls = []
    # arena boundary, just outside [-a, a]^2
    for name, pos, size in (
        ("bound_xp", (a + t, 0), (t, a + 2 * t)),
        ("bound_xn", (-a - t, 0), (t, a + 2 * t)),
        ("bound_yp", (0, a + t), (a + 2 * t, t)),
        ("bound_yn", (0, -a - t), (a + 2 * t, t)),
    ):
        walls.append(
            f'<geom name="{name}" type="box" pos="{_f(pos[0])} {_f(pos[1])} {_f(h)}" '
            f'size="{_f(size[0])} {_f(size[1])} {_f(h)}" material="wall"/>'
        )
    for i, (lo, hi) in enumerate(layout.wall_boxes()):
        c, s = (lo + hi) / 2, (hi - lo) / 2
        walls.append(
            f'<geom name="wall{i}" type="box" pos="{_f(c[0])} {_f(c[1])} {_f(h)}" '
            f'size="{_f(s[0])} {_f(s[1])} {_f(h)}" material="divider"/>'
        )
    haz = []
    for i, hz in enumerate(hazards):
        if isinstance(hz, Circle):
            haz.append(
                f'<geom name="hazard{i}" type="cylinder" pos="{_f(hz.center[0])} {_f(hz.center[1])} 0.002" '
                f'size="{_f(hz.radius)} 0.001" rgba="{HAZARD_RGBA}" contype="0" conaffinity="0" group="1"/>'
            )
        elif isinstance(hz, Box):
            c = [(hz.lo[k] + hz.hi[k]) / 2 for k in range(2)]
            s = [(hz.hi[k] - hz.lo[k]) / 2 for k in range(2)]
            haz.append(
                f'<geom name="hazard{i}" type="box" pos="{_f(c[0])} {_f(c[1])} 0.002" '
                f'size="{_f(s[0])} {_f(s[1])} 0.001" rgba="{HAZARD_RGBA}" contype="0" conaffinity="0" group="1"/>'
            )
        else:
            raise TypeError(f"hazard {i} is not a Circle or Box: {hz!r}")
    extent = 2 * (a + 2 * t)
    walls_xml = "\n    ".join(walls)
    haz_xml = "\n    ".join(haz)
    return mjcf_preamble("tworoom", TIMESTEP) + f"""  <asset>
    <material name="floor" rgba="0.85 0.85 0.85 1" reflectance="0"/>
    <material name="wall" rgba="0.25 0.25 0.3 1"/>
    <material name="divider" rgba="0.15 0.2 0.45 1"/>
  </asset>
  <default>
    <geom contype="1" conaffinity="1" friction="0.0 0.005 0.0001" solref="0.005 1"/>
  </default>
  <worldbody>
    <camera name="top" pos="0 0 2" xyaxes="1 0 0 0 1 0" projection="orthographic" fovy="{_f(extent)}"/>
    <geom name="floor" type="plane" size="{_f(a + 2 * t)} {_f(a + 2 * t)} {_f(2 * a)}" material="floor"
          contype="0" conaffinity="0"/>
    {walls_xml}
    {haz_xml}
    <body name="agent" pos="0 0 {_f(AGENT_RADIUS)}">
      <joint name="x" type="slide" axis="1 0 0" damping="{_f(DAMPING)}"/>
      <joint name="y" type="slide" axis="0 1 0" damping="{_f(DAMPING)}"/>
      <geom name="agent" type="sphere" size="{_f(AGENT_RADIUS)}" mass="{_f(MASS)}" rgba="0.85 0.1 0.1 1"/>
      <geom name="agent_marker" type="cylinder" size="{_f(MARKER_RADIUS)} 0.001" pos="0 0 {_f(AGENT_RADIUS)}"
            mass="0" contype="0" conaffinity="0" rgba="0.85 0.1 0.1 1" group="2"/>
    </body>
  </worldbody>
  <actuator>
    <motor name="fx" joint="x" gear="{_f(GEAR)}" ctrlrange="-1 1" ctrllimited="true"/>
    <motor name="fy" joint="y" gear="{_f(GEAR)}" ctrlrange="-1 1" ctrllimited="true"/>
  </actuator>
</mujoco>
"""


_MODEL_CACHE: "collections.OrderedDict[tuple, mujoco.MjModel]" = collections.OrderedDict()


def build_model(layout: Layout = Layout(), hazards: Sequence[Hazard] = ()) -> mujoco.MjModel:
    """Compiled MjModel for (layout, hazards); cached (LRU, 32 entries) - treat it as read-only."""
    key = (layout, tuple(hazards))
    if key in _MODEL_CACHE:
        _MODEL_CACHE.move_to_end(key)
        return _MODEL_CACHE[key]
    model = mujoco.MjModel.from_xml_string(build_mjcf(layout, hazards))
    _MODEL_CACHE[key] = model
    while len(_MODEL_CACHE) > 32:
        _MODEL_CACHE.popitem(last=False)
    return model


# ------------------------------------------------------------------ batched state helpers


def set_state(model: mujoco.MjModel, data: mujoco.MjData, state) -> None:
    """Write a physical state (x, y, vx, vy) into `data` and recompute derived quantities."""
    s = np.asarray(state, dtype=np.float64)
    data.qpos[0:2] = s[0:2]
    data.qvel[0:2] = s[2:4]
    mujoco.mj_forward(model, data)


def get_state(data: mujoco.MjData) -> np.ndarray:
    """Physical state (x, y, vx, vy) float32 of `data`."""
    return np.concatenate([data.qpos[0:2], data.qvel[0:2]]).astype(np.float32)


def sample_start_states(layout: Layout, rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 4) collection start states: free positions (`sample_free_positions`), at rest."""
    pos = sample_free_positions(layout, rng, n)
    return np.concatenate([pos, np.zeros_like(pos)], axis=1)


def view_half(layout: Layout) -> float:
    """Half-width (m) of the square the top camera sees: the arena plus its boundary walls (`build_mjcf`)."""
    return layout.arena_half + 2 * 0.05


# ------------------------------------------------------------------ environment


class TwoRoomEnv(MujocoTaskEnv):
    """Point mass in a two-room arena; reward-free navigation tasks with hazards.

    reset(seed, options={"task": Task}) sets start state, goal and hazards from the task;
    without a task, a random free start and goal are drawn (no hazards).
    info: success (bool), violation (bool, this step), distance_to_goal (float),
    state (physical state), goal (goal physical state).
    reward = 1.0 on success else 0.0 (the planners do not use it).
    terminated on success; truncated after max_steps (task.max_steps when a task is given).
    """


    def __init__(
        self,
        layout: Layout | dict = Layout(),
        obs_type: str = "state",
        frame_skip: int = 5,
        max_steps: int = 200,
        render_size: int = 64,
        render_mode: str | None = None,
        tolerance: float = 0.1,
    ):
        if isinstance(layout, dict):
            layout = Layout.from_dict(layout)
        self._store_args(layout, obs_type, frame_skip, max_steps, render_size, render_mode, tolerance)

        a = layout.arena_half
        state_space = gym.spaces.Box(
            low=np.array([-a, -a, -MAX_SPEED, -MAX_SPEED], np.float32),
            high=np.array([a, a, MAX_SPEED, MAX_SPEED], np.float32),
            dtype=np.float32,
        )
        self._set_spaces(state_space)

        self.hazards: tuple[Hazard, ...] = ()
        self._views: "collections.OrderedDict[tuple, PixelRenderer]" = collections.OrderedDict()
        self.model = build_model(self.layout)
        self.data = mujoco.MjData(self.model)
        self._clear_task(4)

    # --- rendering
    def _view(self) -> PixelRenderer:
        """A renderer of the arena with the current hazards drawn (`render()`; cached for 8 hazard sets)."""
        key = self.hazards
        r = self._views.get(key)
        if r is None:
            r = PixelRenderer(build_model(self.layout, key), self.render_size)
            self._views[key] = r
            while len(self._views) > 8:
                self._views.popitem(last=False)[1].close()
        else:
            self._views.move_to_end(key)
        return r

    def observation_at(self, state) -> Any:
        """The observation (of this env's obs_type; hazards are never drawn in it) for a physical state."""
        return self._pack(padded_state(state))

    @property
    def state(self) -> np.ndarray:
        return get_state(self.data)

    def _obs(self) -> Any:
        return self.observation_at(self.state)

    # --- gym API
    def _random_start_goal(self):
        start = np.concatenate([sample_free_position(self.layout, self.np_random), np.zeros(2)])
        return start, np.concatenate([sample_free_position(self.layout, self.np_random), np.zeros(2)])

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        task, start, goal = self._begin_episode(seed, options)
        self.hazards = tuple(task.hazards) if task is not None else ()
        self.goal = padded_state(goal)
        mujoco.mj_resetData(self.model, self.data)
        st = np.zeros(4)
        st[: len(start)] = start[:4]
        set_state(self.model, self.data, st)
        self.steps = 0
        return self._obs(), self._info()

    def _info(self) -> dict:
        s = self.state
        task = self.task
        return self._distance_info(s, violates(self.hazards, s, getattr(task, "speed_limit", None),
                                               getattr(task, "keep_in", None)))

    def render(self):
        if self.render_mode == "rgb_array":
            return self._view().render_state(self.state)
        return None

    def close(self):
        for r in self._views.values():
            r.close()
        self._views.clear()
        super().close()


# ------------------------------------------------------------------ family


class TwoRoomFamily(MujocoFamily):
    """TwoRoom as a task family: state (x, y, vx, vy); the position is the goal."""

    env_id = ENV_ID
    entry_point = "jepa_mpc_envs.tworoom:TwoRoomEnv"
    state_fields = ("x", "y", "vx", "vy")
    position, velocity, goal = slice(0, 2), slice(2, 4), slice(0, 2)
    default_tolerance = 0.1
    default_max_steps = 200

    env_class, layout_class = TwoRoomEnv, Layout
    model_builder = staticmethod(build_model)
    start_sampler = staticmethod(sample_start_states)
    suite_parser = staticmethod(tworoom_tasks.suite_from_dict)
    suite_generator = staticmethod(tworoom_tasks.generate_suite)

    def view_half(self, layout):
        return view_half(layout)

    def episode_crossings(self, layout, states):
        return crossed_door(layout, states)
