"""The task-family protocol: what the pipeline needs from an environment, declared in one class.

A family is one object (`TaskFamily`): its env id, the names of its physical-state fields, and which
of them are the *position*, *velocity* and *goal* features, plus methods that build the simulator,
make the Gymnasium env, convert states, sample starts, parse and generate suites and render pixels.
Probes, safety terms, the oracle and videos read the declared slices (`positions(states)`,
`velocities(states)`, `goal_features(states)`), never fixed indices.

`MujocoFamily` implements the protocol from what a MuJoCo family declares (its env, layout and
renderer classes and its module's functions) with the defaults such families share (batched
`mujoco.rollout` collection, the (qpos[0:2], qvel[0:2]) state conversion, no rooms, unshaped
exploration); a family overrides only what differs. Families are registered with one line in envs/registry.py (`FAMILIES`).

Success is ``||goal_features(s) - goal_features(goal)|| <= tolerance`` (a family's env may add to it,
e.g. Push-T's angle tolerance).
"""

from __future__ import annotations

import abc
from typing import Any, Callable, ClassVar

import numpy as np

from . import base, suites
from .errors import ConfigError
from .rollout import DEFAULT_SIM_BACKEND, SIM_BACKENDS, StateCollector


def plane_geometry(readout, layout: Any = None, xp: Any = np):
    """The default safety geometry of (x, y, vx, vy) read-outs: the position is the one point (..., 1, 2),
    the norm of the velocity the one speed (..., 1)."""
    speed = xp.sqrt(xp.sum(xp.square(readout[..., 2:4]), axis=-1, keepdims=True) + 1e-12)
    return readout[..., None, 0:2], speed


class TaskFamily(abc.ABC):
    """One task family (see the module docstring). Subclasses set the class attributes below."""

    env_id: str
    entry_point: ClassVar[str]
    """Gymnasium entry point ("module:Class") of the env registered under `env_id`."""
    state_fields: ClassVar[tuple[str, ...]]
    action_dim: ClassVar[int] = 2
    position: ClassVar[slice] = slice(0, 2)
    """The two state fields the probe and the safety terms read as a position (x, y) in the plane."""
    velocity: ClassVar[slice] = slice(2, 4)
    """The two state fields that are the rates of `position`."""
    goal: ClassVar[slice] = slice(0, 2)
    """The state fields the success predicate compares (the goal features)."""
    safety_fields: ClassVar[tuple[int, ...] | None] = None
    """The state fields of the *safety read-out* (what a probe reads from latents for the safety terms and
    `safety_geometry` maps to points and speeds); None: `position` then `velocity`."""
    default_tolerance: float
    default_max_steps: int
    default_frame_skip: ClassVar[int] = 5
    """Physics steps per env step when nothing else says (make_env's default; eval's without a run's data)."""
    default_action_block: ClassVar[int] = 5
    """Env steps per plan block when nothing else says (eval's without a run)."""
    splits: ClassVar[tuple[str, ...]] = ()
    """Task splits `generate_suite(split=...)` accepts (TwoRoomLayouts: "heldout", "train"); () if none."""
    streams: ClassVar[tuple[str, ...]] = suites.STREAMS
    """Suite seed streams `generate_suite(stream=...)` accepts (envs/suites.py); () if the family's
    suites are drawn otherwise (OGBench: its own evaluation tasks)."""
    sim_backends: ClassVar[tuple[str, ...]] = (DEFAULT_SIM_BACKEND,)
    """The simulators its collectors run on (`make_collector(..., backend=)`; envs/rollout.py SIM_BACKENDS)."""
    renders: ClassVar[bool] = True
    """Whether `pixel_renderer` draws its states (pixel observations, videos); OGBench's adapter does not."""

    # ---------------------------------------------------------------- declared state layout

    @property
    def state_dim(self) -> int:
        return len(self.state_fields)

    @property
    def goal_dim(self) -> int:
        return len(range(self.state_dim)[self.goal])

    def goal_features(self, states) -> np.ndarray:
        """(..., state_dim) -> (..., goal_dim): the quantities the success predicate compares."""
        return np.asarray(states)[..., self.goal]

    def positions(self, states) -> np.ndarray:
        """(..., state_dim) -> (..., 2) the declared position fields."""
        return np.asarray(states)[..., self.position]

    def velocities(self, states) -> np.ndarray:
        """(..., state_dim) -> (..., 2) the declared velocity fields."""
        return np.asarray(states)[..., self.velocity]

    @property
    def safety_indices(self) -> tuple[int, ...]:
        """The state-field indices of the safety read-out (see `safety_fields`)."""
        if self.safety_fields is not None:
            return tuple(self.safety_fields)
        fields = range(self.state_dim)
        return tuple(fields[self.position]) + tuple(fields[self.velocity])

    def safety_readout(self, states) -> np.ndarray:
        """(..., state_dim) -> (..., R) the safety read-out fields."""
        return np.asarray(states)[..., list(self.safety_indices)]

    def safety_geometry(self, readout, layout: Any = None, xp: Any = np):
        """(..., R) safety read-outs -> (points (..., P, 2) in the plane hazards are stated in (m), speeds
        (..., S)) that keep-out / keep-in terms and speed limits apply to. Written with `xp` (numpy, or
        jax.numpy inside a planner) so the env's violation check and the planner's terms are one function.
        Default: `plane_geometry` (TwoRoom)."""
        return plane_geometry(readout, layout, xp)

    def safety_points(self, states, layout: Any = None) -> np.ndarray:
        """(..., state_dim) states -> (..., P, 2) their safety points (numpy)."""
        return np.asarray(self.safety_geometry(self.safety_readout(np.asarray(states, np.float64)), layout, np)[0])

    def goal_safety_points(self, features, layout: Any = None) -> np.ndarray:
        """(N, k) goal features (or positions, k = 2) -> (N, P, 2) the safety points they fix, for hazard-aware
        goal graphs on states (the oracle's) or positions (a probe graph's). Default: the safety points of a
        state at rest at that position (its position fields are the features' first two)."""
        features = np.asarray(features, np.float64)
        readout = np.zeros((len(features), len(self.safety_indices)))
        readout[:, :2] = features[:, :2]
        return np.asarray(self.safety_geometry(readout, layout, np)[0])

    def step_violation(self, state, task: Any, layout: Any = None) -> bool:
        """One step's violation of a task's constraints: a safety point inside a hazard or outside the task's
        keep-in box, or a speed above its limit (the same geometry the planner's terms read)."""
        from .geometry import in_hazard

        hazards = getattr(task, "hazards", ())
        keep_in, limit = getattr(task, "keep_in", None), getattr(task, "speed_limit", None)
        if not hazards and keep_in is None and limit is None:
            return False  # nothing to check (every step of a task without constraints)
        points, speeds = self.safety_geometry(self.safety_readout(np.asarray(state, np.float64)), layout, np)
        if any(np.any(in_hazard(h, points)) for h in hazards):
            return True
        if keep_in is not None and not np.all(in_hazard(keep_in, points)):
            return True
        return bool(limit is not None and np.max(speeds) > limit)

    def field_names(self, which: slice) -> list[str]:
        """Names of the state fields of a declared slice (e.g. `family.field_names(family.position)`)."""
        return list(self.state_fields[which])

    # ---------------------------------------------------------------- required

    @abc.abstractmethod
    def make_env(self, layout: Any = None, obs_type: str = "state", frame_skip: int | None = None, **kwargs):
        """A gym.Env with reset(options={"task": t}), observation_at(state), a `layout` attribute and info
        keys success/violation/distance_to_goal/state/goal; frame_skip None: `default_frame_skip`."""

    @abc.abstractmethod
    def build_model(self, layout: Any, hazards=()):
        """The mujoco.MjModel of a layout (cached, read-only)."""

    @abc.abstractmethod
    def sample_start_states(self, layout: Any, rng: np.random.Generator, n: int, room=None) -> np.ndarray:
        """(n, state_dim) start states for reward-free collection (in `room`, `room_of`'s value, if given)."""

    @abc.abstractmethod
    def default_layout(self) -> Any:
        """The family's default layout (a frozen dataclass with to_dict / from_dict)."""

    @abc.abstractmethod
    def layout_from_dict(self, d: dict) -> Any:
        """The layout of its dict form; ValueError/TypeError naming the field on a bad one."""

    @abc.abstractmethod
    def suite_from_dict(self, d: Any, path: str = "<dict>"):
        """A validated `suites.Suite` of a parsed suite document; one-line TaskFileError on a bad one."""

    @abc.abstractmethod
    def generate_suite(self, seed: int, n: int, *, tolerance: float | None = None, max_steps: int | None = None,
                       hazards: str = "none", split: str = "", stream: str = ""):
        """`n` tasks from their own RNG (`seed` in the suite stream `stream`, envs/suites.py `suite_rng`;
        "": `suites.DEFAULT_STREAM`); None tolerance / max_steps: the family's defaults."""

    @abc.abstractmethod
    def pixel_renderer(self, model: Any, size: int = 64):
        """An object with render_state(s), render_states(S) -> uint8 frames, close() and `size`."""

    @abc.abstractmethod
    def view_half(self, layout: Any) -> float:
        """Half-width (m) of the square the top camera sees, for a layout (videos)."""

    @abc.abstractmethod
    def state_to_mjstate(self, model: Any, states) -> np.ndarray:
        """(N, state_dim) physical states -> (N, nstate) mjSTATE_FULLPHYSICS rows."""

    @abc.abstractmethod
    def mjstate_to_state(self, model: Any, mjstates) -> np.ndarray:
        """(..., nstate) mjSTATE_FULLPHYSICS rows -> (..., state_dim) physical states."""

    @abc.abstractmethod
    def make_collector(self, model: Any, frame_skip: int, backend: str = DEFAULT_SIM_BACKEND):
        """The reward-free data collector: run(init_states, actions) -> state/qpos/qvel arrays, close();
        on the simulator `backend` (one of `sim_backends`, else `check_sim_backend`'s ConfigError)."""

    # ---------------------------------------------------------------- optional hooks (defaults)

    def oracle_collector(self, model: Any, frame_skip: int, backend: str = DEFAULT_SIM_BACKEND):
        """The collector of the oracle's batched rollouts (default: the batched `mujoco.rollout` one)."""
        self.check_sim_backend(backend)
        return StateCollector(model, frame_skip, env=self)

    def check_sim_backend(self, backend: str) -> None:
        """ConfigError unless the family's collectors run on `backend` (and, for "mjx", MJX is installed)."""
        if backend not in SIM_BACKENDS:
            raise ConfigError(f"--sim-backend {backend}: expected one of {', '.join(SIM_BACKENDS)}")
        if backend not in self.sim_backends:
            raise ConfigError(f"--sim-backend {backend}: {self.env_id} is simulated with {', '.join(self.sim_backends)} "
                              f"only (no {backend} collector)")
        if backend == "mjx":
            from .mjx_rollout import import_mjx

            import_mjx()

    def feature_to_world(self, features, layout: Any) -> np.ndarray:
        """(..., goal_dim) goal features -> (..., 2) points in the top camera's plane (m), for videos."""
        return np.asarray(features)[..., :2]

    def episode_crossings(self, layout: Any, states: np.ndarray) -> np.ndarray | None:
        """(E,) bool "the episode changed room" of (E, T, state_dim) states; None: the family has no rooms."""
        return None

    def exploration_actions(self, layout: Any, rng: np.random.Generator, starts: np.ndarray,
                            actions: np.ndarray) -> np.ndarray:
        """The open-loop actions to collect with, from the exploration policy's (default: unchanged)."""
        return actions

    def room_of(self, state) -> np.ndarray | None:
        """The numbers naming the room of a state, for families whose room changes per task; None: the
        suite's layout is the room."""
        return None

    def check_split(self, split: str) -> None:
        """ConfigError unless `split` is "" or one of `splits`."""
        if split and split not in self.splits:
            raise ConfigError(f"--split {split}: {self.env_id} has no task splits"
                              if not self.splits else f"--split {split}: {self.env_id} splits are {', '.join(self.splits)}")

    def check_stream(self, stream: str) -> None:
        """ConfigError unless `stream` is "" or one of `streams`."""
        if stream and not self.streams:
            raise ConfigError(f"--stream {stream}: {self.env_id} suites have no seed streams")
        if stream and stream not in self.streams:
            raise ConfigError(f"--stream {stream}: expected one of {', '.join(self.streams)}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.env_id!r})"


class MujocoFamily(TaskFamily):
    """A MuJoCo family whose protocol methods are driven by what the subclass declares: its env, layout
    and renderer classes and its module's functions (set with ``staticmethod``). Defaults: the
    (qpos[0:2], qvel[0:2]) state conversion, `base.PixelRenderer`, and the batched `mujoco.rollout`
    `StateCollector` for collection and the oracle. A family overrides only what differs."""

    env_class: ClassVar[type]
    """The Gymnasium env: ``env_class(layout=..., obs_type=..., frame_skip=..., **kwargs)``."""
    layout_class: ClassVar[type]
    """The layout dataclass: ``layout_class()`` is the default layout, ``layout_class.from_dict(d)`` parses one."""
    renderer_class: ClassVar[type] = base.PixelRenderer
    """The top-down renderer: ``renderer_class(model, size)``."""
    collector_class: ClassVar[type] = StateCollector
    """The rollouts of collection and of the oracle: ``collector_class(model, frame_skip, env=family)``;
    on the "mjx" backend `MJXCollector` (envs/mjx_rollout.py) instead."""
    sim_backends = SIM_BACKENDS
    model_builder: ClassVar[Callable[..., Any]]
    """The module's ``build_model(layout, hazards)``."""
    start_sampler: ClassVar[Callable[..., np.ndarray]]
    """The module's ``sample_start_states(layout, rng, n)``."""
    suite_parser: ClassVar[Callable[..., Any]]
    """The module's ``suite_from_dict(d, path)``."""
    suite_generator: ClassVar[Callable[..., Any]]
    """The module's ``generate_suite(seed, n, *, layout, tolerance, max_steps, hazards, stream[, split])``
    (``split`` is passed only to a family with `splits`; "" means the first of them)."""
    to_mjstate: ClassVar[Callable[..., np.ndarray]] = staticmethod(base.state_to_mjstate)
    """``state_to_mjstate(model, states)``."""
    from_mjstate: ClassVar[Callable[..., np.ndarray]] = staticmethod(base.mjstate_to_state)
    """``mjstate_to_state(model, mjstates)``."""

    def make_env(self, layout: Any = None, obs_type: str = "state", frame_skip: int | None = None, **kwargs):
        return self.env_class(layout=layout if layout is not None else self.default_layout(), obs_type=obs_type,
                              frame_skip=self.default_frame_skip if frame_skip is None else frame_skip, **kwargs)

    def build_model(self, layout: Any, hazards=()):
        return self.model_builder(layout, hazards)

    def sample_start_states(self, layout: Any, rng: np.random.Generator, n: int, room=None) -> np.ndarray:
        return self.start_sampler(layout, rng, n)

    def default_layout(self) -> Any:
        return self.layout_class()

    def layout_from_dict(self, d: dict) -> Any:
        return self.layout_class.from_dict(d)

    def suite_from_dict(self, d: Any, path: str = "<dict>"):
        return self.suite_parser(d, path)

    def generate_suite(self, seed: int, n: int, *, tolerance: float | None = None, max_steps: int | None = None,
                       hazards: str = "none", split: str = "", layout: Any = None, stream: str = ""):
        self.check_split(split)
        self.check_stream(stream)
        options = {"split": split or self.splits[0]} if self.splits else {}
        return self.suite_generator(seed, n, layout=layout or self.default_layout(), hazards=hazards,
                                    tolerance=tolerance or self.default_tolerance,
                                    max_steps=max_steps or self.default_max_steps,
                                    stream=stream or suites.DEFAULT_STREAM, **options)

    def pixel_renderer(self, model: Any, size: int = 64):
        return self.renderer_class(model, size)

    def view_half(self, layout: Any) -> float:
        return layout.view_half

    def state_to_mjstate(self, model: Any, states) -> np.ndarray:
        return self.to_mjstate(model, states)

    def mjstate_to_state(self, model: Any, mjstates) -> np.ndarray:
        return self.from_mjstate(model, mjstates)

    def make_collector(self, model: Any, frame_skip: int, backend: str = DEFAULT_SIM_BACKEND):
        self.check_sim_backend(backend)
        if backend == "mjx":
            from .mjx_rollout import MJXCollector

            return MJXCollector(model, frame_skip, env=self)
        return self.collector_class(model, frame_skip, env=self)

    def oracle_collector(self, model: Any, frame_skip: int, backend: str = DEFAULT_SIM_BACKEND):
        return self.make_collector(model, frame_skip, backend)


__all__ = ["TaskFamily", "MujocoFamily"]
