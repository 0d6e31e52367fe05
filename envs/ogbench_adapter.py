"""OGBench adapter: env ids ``ogbench:<dataset name>`` (``pip install -e '.[ogbench]'``).

``get_family("ogbench:pointmaze-medium-navigate-v0")`` (envs/registry.py) resolves here: a `TaskFamily` whose env wraps
OGBench's own environment (its MJCF, dynamics, five evaluation tasks and success signal) behind the
pipeline's env contract (reset(options={"task": t}), observation_at, info keys success/violation/
distance_to_goal/state/goal). The pipeline then collects our own reward-free data in it, trains on it
and evaluates on OGBench's tasks; OGBench's datasets are never downloaded or used.

Supported: the PointMaze navigate envs (``pointmaze-{umaze,medium,large,giant}-navigate-v0``), and
``cube-single-play-v0`` (envs/ogbench_cube.py: its env, state convention, exploration and tasks).
PointMaze's step writes the action into qpos (``qpos += 0.2 a``, ``qvel = 0``, then 5 physics
steps), so `mujoco.rollout` (which drives ``ctrl``) cannot reproduce it: collection steps the
Gymnasium env itself (`GymCollector`).

State convention (envs/registry.py): ``(x, y, vx, vy)``; OGBench's observation is ``qpos = (x, y)``
and its qvel is reset to zero every step, so the rates are the last step's displacement divided by
the control period (0.1 s), zero after a reset.

Evaluation tasks: a suite episode is (task_id 1..5, seed); ``reset`` seeds OGBench's start/goal
noise (which it draws from the global NumPy generator: saved and restored around the reset), so an
episode is reproducible and the suite file records its exact start and goal. Success is OGBench's
``info["success"]`` (within ``goal_tol`` = 1.0 of the goal); OGBench ends an episode at the goal or
after 1,000 steps.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from typing import Any

import gymnasium as gym
import numpy as np

from .errors import ConfigError, TaskFileError
from .family import TaskFamily
from .geometry import dataclass_from_dict
from .rollout import StateCollector
from .suites import Suite

PREFIX = "ogbench:"
INSTALL_HINT = "pip install -e '.[ogbench]'"
POINTMAZE_DATASETS = tuple(f"pointmaze-{m}-navigate-v0" for m in ("umaze", "medium", "large", "giant"))
CUBE_DATASETS = ("cube-single-play-v0",)  # envs/ogbench_cube.py
SUPPORTED = POINTMAZE_DATASETS + CUBE_DATASETS
STATE_FIELDS = ("x", "y", "vx", "vy")
NUM_EVAL_TASKS = 5  # OGBench's evaluation tasks per env (task_id 1..5)
DEFAULT_MAX_STEPS = 1000  # OGBench's max_episode_steps for PointMaze
DEFAULT_TOLERANCE = 1.0  # PointMaze's goal_tol (success radius, maze units)
START_MARGIN = 0.5  # clearance (maze units) between a collection start and the walls of its cell


# ------------------------------------------------------------------ resolution


def is_ogbench_id(env_id: str) -> bool:
    return isinstance(env_id, str) and env_id.startswith(PREFIX)


def import_ogbench():
    """The `ogbench` module, or a one-line ConfigError naming the install command."""
    try:
        import ogbench
    except ImportError:
        raise ConfigError(f"OGBench env ids need the optional extra: {INSTALL_HINT} (ogbench is not installed)") from None
    return ogbench


def dataset_name(env_id: str) -> str:
    """'ogbench:pointmaze-medium-navigate-v0' -> 'pointmaze-medium-navigate-v0' (one-line ConfigError if unsupported)."""
    name = env_id[len(PREFIX):] if is_ogbench_id(env_id) else env_id
    if name not in SUPPORTED:
        raise ConfigError(f"unknown OGBench env {env_id!r}; supported: {', '.join(PREFIX + s for s in SUPPORTED)}")
    return name


@dataclasses.dataclass(frozen=True)
class OGBenchLayout:
    """The OGBench dataset/env name (the only "layout" an OGBench env has)."""

    dataset: str = "pointmaze-medium-navigate-v0"

    def to_dict(self) -> dict:
        return {"dataset": self.dataset}

    @classmethod
    def from_dict(cls, d: dict) -> "OGBenchLayout":
        layout = dataclass_from_dict(cls, d)
        dataset_name(layout.dataset)
        return layout

    @property
    def arena_half(self) -> float:
        """Half-width of a square around the origin that holds the whole maze (keep-in box; no wall)."""
        return 1e3


def make_ogbench_env(dataset: str):
    """OGBench's own env for `dataset` (env only: no dataset download)."""
    ogbench = import_ogbench()
    return ogbench.make_env_and_datasets(dataset, env_only=True)


@functools.lru_cache(maxsize=8)
def _maze_info(dataset: str) -> dict:
    """Maze map, cell size and free-cell centres of `dataset` (cached; read-only)."""
    env = make_ogbench_env(dataset)
    u = env.unwrapped
    free = np.argwhere(np.asarray(u.maze_map) == 0)
    centres = np.array([u.ij_to_xy(tuple(ij)) for ij in free], dtype=np.float64)
    info = {"maze_map": np.asarray(u.maze_map), "unit": float(u._maze_unit), "centres": centres,
            "frame_skip": int(u.frame_skip), "timestep": float(u.model.opt.timestep),
            "goal_tol": float(u._goal_tol), "max_episode_steps": int(env.spec.max_episode_steps or DEFAULT_MAX_STEPS)}
    env.close()
    return info


# ------------------------------------------------------------------ tasks


@dataclasses.dataclass(frozen=True)
class OGBenchTask:
    """One evaluation episode: OGBench task `task_id` (1..5) reset with `seed`; start/goal are the
    states that reset produces (recorded when the suite was generated)."""

    name: str
    task_id: int
    seed: int
    start: tuple[float, ...]
    goal: tuple[float, ...]
    tolerance: float = DEFAULT_TOLERANCE
    max_steps: int = DEFAULT_MAX_STEPS
    hazards: tuple = ()
    speed_limit: float | None = None
    keep_in: Any = None

    def to_dict(self) -> dict:
        return {"name": self.name, "task_id": int(self.task_id), "seed": int(self.seed),
                "start": [float(v) for v in self.start], "goal": [float(v) for v in self.goal],
                "tolerance": float(self.tolerance), "max_steps": int(self.max_steps)}


TASK_KEYS = ("name", "task_id", "seed", "start", "goal", "tolerance", "max_steps")


def _task_from_dict(d: Any, path: str, i: int, fields: tuple[str, ...] = STATE_FIELDS,
                    tolerance: float = DEFAULT_TOLERANCE, max_steps: int = DEFAULT_MAX_STEPS) -> OGBenchTask:
    """One task of a suite whose states have `fields` (defaults: PointMaze's)."""
    where = f"{path}: task {i}"
    if not isinstance(d, dict):
        raise TaskFileError(f"{where}: expected an object")
    missing = [k for k in ("task_id", "seed", "start", "goal") if k not in d]
    extra = [k for k in d if k not in TASK_KEYS]
    if missing or extra:
        raise TaskFileError(f"{where}: " + (f"missing field {missing[0]!r}" if missing else f"unknown field {extra[0]!r}"))
    if not isinstance(d["task_id"], int) or not 1 <= d["task_id"] <= NUM_EVAL_TASKS:
        raise TaskFileError(f"{where}, field task_id: expected an integer in 1..{NUM_EVAL_TASKS}")
    for k in ("start", "goal"):
        v = d[k]
        if not (isinstance(v, list) and len(v) == len(fields) and all(isinstance(x, (int, float)) for x in v)):
            shown = fields if len(fields) <= 4 else fields[:3] + ("...",)
            raise TaskFileError(f"{where}, field {k}: expected {len(fields)} numbers {shown}")
    for k in ("tolerance", "max_steps"):
        if k in d and (not isinstance(d[k], (int, float)) or isinstance(d[k], bool) or d[k] <= 0):
            raise TaskFileError(f"{where}, field {k}: expected a positive number")
    return OGBenchTask(name=str(d.get("name", f"task{d['task_id']}-seed{d['seed']}")), task_id=d["task_id"],
                       seed=int(d["seed"]), start=tuple(map(float, d["start"])), goal=tuple(map(float, d["goal"])),
                       tolerance=float(d.get("tolerance", tolerance)), max_steps=int(d.get("max_steps", max_steps)))


def suite_from_dict(d: Any, path: str = "<dict>", fields: tuple[str, ...] = STATE_FIELDS,
                    tolerance: float = DEFAULT_TOLERANCE, max_steps: int = DEFAULT_MAX_STEPS):
    """Validate an OGBench suite document whose task states have `fields` (defaults: PointMaze's);
    one-line TaskFileError on a bad one."""
    if not isinstance(d, dict) or not is_ogbench_id(d.get("env_id", "")):
        raise TaskFileError(f"{path}: field env_id: expected an 'ogbench:...' env id")
    try:
        layout = OGBenchLayout.from_dict(d.get("layout", {"dataset": dataset_name(d["env_id"])}))
    except (ValueError, TypeError, ConfigError) as err:
        raise TaskFileError(f"{path}: field layout: {err}") from None
    if PREFIX + layout.dataset != d["env_id"]:
        raise TaskFileError(f"{path}: field layout.dataset: {layout.dataset!r} does not match env_id {d['env_id']!r}")
    tasks = d.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise TaskFileError(f"{path}: field tasks: expected a non-empty list")
    return Suite(env_id=d["env_id"], layout=layout, tasks=tuple(
        _task_from_dict(t, path, i, fields=fields, tolerance=tolerance, max_steps=max_steps) for i, t in enumerate(tasks)),
        path=path)



def eval_task_plan(n: int) -> list[tuple[int, int]]:
    """(task_id, episode index within that task) of n episodes spread round-robin over the 5 tasks."""
    return [(1 + i % NUM_EVAL_TASKS, i // NUM_EVAL_TASKS) for i in range(n)]


def generate_suite_for(dataset: str, seed: int, n: int, tolerance: float = DEFAULT_TOLERANCE,
                       max_steps: int = DEFAULT_MAX_STEPS, hazards: str = "none"):
    """n episodes of OGBench's evaluation tasks (round-robin over task_id 1..5; n = 250 is OGBench's
    5 tasks x 50 episodes), each with its own reset seed; start and goal recorded by resetting."""
    if hazards != "none":
        raise ConfigError("OGBench suites have no hazards (use --hazards none)")
    if abs(tolerance - _maze_info(dataset)["goal_tol"]) > 1e-9:
        raise ConfigError(f"OGBench's success signal uses its own goal tolerance ({_maze_info(dataset)['goal_tol']}); "
                          f"--tolerance {tolerance} cannot change it")
    if n < 1:
        raise ConfigError(f"--n must be >= 1 (got {n})")
    return recorded_suite(OGBenchEnv(layout=OGBenchLayout(dataset)), seed, n, tolerance, max_steps)


def recorded_suite(env, seed: int, n: int, tolerance: float, max_steps: int) -> Suite:
    """The suite of `eval_task_plan(n)` in an OGBench env (closed after): each episode's reset seed is
    drawn from (`seed`, task_id, index) and its start and goal states are recorded by resetting."""
    dim = env.observation_space.shape[0]
    tasks = []
    for task_id, k in eval_task_plan(n):
        ep_seed = int(np.random.default_rng([seed, task_id, k]).integers(2**31 - 1))
        probe = OGBenchTask(name=f"task{task_id}-ep{k:03d}", task_id=task_id, seed=ep_seed, start=(0.0,) * dim,
                            goal=(0.0,) * dim, tolerance=tolerance, max_steps=max_steps)
        _, info = env.reset(options={"task": probe})
        tasks.append(dataclasses.replace(probe, start=tuple(map(float, info["state"])),
                                         goal=tuple(map(float, info["goal"]))))
    env.close()
    return Suite(env_id=PREFIX + env.layout.dataset, layout=env.layout, tasks=tuple(tasks))


# ------------------------------------------------------------------ env


def _seeded_global_numpy(seed: int):
    """Context manager: np.random seeded with `seed` inside, its previous state restored after."""

    @contextlib.contextmanager
    def ctx():
        saved = np.random.get_state()
        np.random.seed(seed % (2**32))
        try:
            yield
        finally:
            np.random.set_state(saved)

    return ctx()


class OGBenchEpisode:
    """Episode bookkeeping every OGBench env here shares (a subclass has ``_env``, OGBench's env, a
    ``_goal`` state and its `goal_dim`): reset to a task with its seed, count steps, end on OGBench's
    success, the info dict."""

    metadata = {"render_modes": []}
    goal_dim = 2
    """The leading state fields that `distance_to_goal` compares."""

    @property
    def unwrapped_ogbench(self):
        return self._env.unwrapped

    def _info(self, state: np.ndarray, success: bool) -> dict:
        return {"success": bool(success), "violation": False, "state": state, "goal": self._goal.astype(np.float32),
                "distance_to_goal": float(np.linalg.norm(state[:self.goal_dim] - self._goal[:self.goal_dim]))}

    def close(self) -> None:
        self._env.close()

    def _reset_episode(self, task: Any, seed: int | None, default_max_steps: int) -> dict:
        """Reset OGBench's env (to ``task``'s evaluation task and seed, or a random one); its reset info."""
        if task is None:
            self._max_steps = default_max_steps
            _, info = self._env.reset(seed=seed)
        else:
            self._max_steps = int(task.max_steps)
            with _seeded_global_numpy(int(task.seed)):
                _, info = self._env.reset(seed=int(task.seed), options={"task_id": int(task.task_id)})
        self._steps = 0
        return info

    def _step_result(self, state: np.ndarray, terminated, truncated, info: dict):
        """The Gymnasium step tuple after one OGBench step reached ``state``."""
        self._steps += 1
        success = bool(info["success"])
        truncated = bool(truncated) or self._steps >= self._max_steps
        return state.copy(), 0.0, bool(terminated) or success, truncated and not success, self._info(state, success)


class OGBenchEnv(OGBenchEpisode):
    """OGBench PointMaze behind the pipeline's env contract (see the module docstring).

    ``reset(options={"task": OGBenchTask})`` runs OGBench's evaluation task ``task_id`` with the
    task's seed; without a task, a random OGBench task. ``step`` is OGBench's step; ``info["success"]``
    is OGBench's. ``frame_skip`` must be OGBench's own (5); pixels are not supported.
    """

    def __init__(self, layout: OGBenchLayout | None = None, obs_type: str = "state", frame_skip: int = 5):
        self.layout = layout or OGBenchLayout()
        dataset_name(self.layout.dataset)
        if obs_type != "state":
            raise ConfigError(f"ogbench:{self.layout.dataset}: obs_type {obs_type!r} is not supported (state only)")
        self._env = make_ogbench_env(self.layout.dataset)
        u = self._env.unwrapped
        if int(frame_skip) != int(u.frame_skip):
            raise ConfigError(f"ogbench:{self.layout.dataset}: frame_skip {frame_skip} differs from OGBench's own ({u.frame_skip})")
        self.obs_type = obs_type
        self.control_dt = float(u.model.opt.timestep) * int(u.frame_skip)
        self.action_space = u.action_space
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (len(STATE_FIELDS),), np.float32)
        self._xy = np.zeros(2)
        self._goal = np.zeros(len(STATE_FIELDS))
        self._steps = 0
        self._max_steps = DEFAULT_MAX_STEPS

    def observation_at(self, state) -> np.ndarray:
        return np.asarray(state, np.float32)[: len(STATE_FIELDS)].copy()

    def _state(self, xy: np.ndarray, prev_xy: np.ndarray | None) -> np.ndarray:
        vel = np.zeros(2) if prev_xy is None else (xy - prev_xy) / self.control_dt
        return np.concatenate([xy, vel]).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        info = self._reset_episode((options or {}).get("task"), seed, DEFAULT_MAX_STEPS)
        self._xy = np.asarray(self.unwrapped_ogbench.get_xy(), np.float64)
        self._goal = np.concatenate([np.asarray(info["goal"], np.float64)[:2], np.zeros(2)])
        state = self._state(self._xy, None)
        return state.copy(), self._info(state, self.unwrapped_ogbench.compute_success())

    def step(self, action):
        _, _, terminated, truncated, info = self._env.step(np.asarray(action, np.float32))
        xy = np.asarray(self.unwrapped_ogbench.get_xy(), np.float64)
        state = self._state(xy, self._xy)
        self._xy = xy
        return self._step_result(state, terminated, truncated, info)


# ------------------------------------------------------------------ collection


def sample_start_states_for(dataset: str, rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 4) start states uniform over the maze's free cells (START_MARGIN from each cell's border), at rest."""
    info = _maze_info(dataset)
    half = info["unit"] / 2 - START_MARGIN
    cells = info["centres"][rng.integers(0, len(info["centres"]), n)]
    xy = cells + rng.uniform(-half, half, size=(n, 2))
    return np.concatenate([xy, np.zeros((n, 2))], axis=1)


class GymCollector:
    """Reward-free rollouts through OGBench's own Gymnasium step (the collector interface of
    jepa_mpc_envs.rollout.StateCollector: run(init_states, actions) -> state/qpos/qvel arrays)."""

    def __init__(self, dataset: str, frame_skip: int, env: Any = None):
        self.env = env  # the TaskFamily (what collect_chunk reads: start states, action_dim)
        self.gym_env = OGBenchEnv(layout=OGBenchLayout(dataset), frame_skip=frame_skip)

    def run(self, init_states: np.ndarray, actions: np.ndarray) -> dict[str, np.ndarray]:
        n, t, _ = actions.shape
        if n == 0 or t == 0:
            raise ValueError(f"GymCollector.run needs at least one episode and one step (got actions {actions.shape})")
        u = self.gym_env.unwrapped_ogbench
        states = np.empty((n, t + 1, len(STATE_FIELDS)), np.float32)
        qpos = np.empty((n, t + 1, u.model.nq))
        qvel = np.empty((n, t + 1, u.model.nv))
        for e in range(n):
            self.gym_env.reset(seed=0)
            u.set_state(np.asarray(init_states[e, :2], np.float64), np.zeros(u.model.nv))
            self.gym_env._xy = np.asarray(u.get_xy(), np.float64)
            states[e, 0], qpos[e, 0], qvel[e, 0] = self.gym_env._state(self.gym_env._xy, None), u.data.qpos, u.data.qvel
            for k in range(t):
                states[e, k + 1] = self.gym_env.step(actions[e, k])[0]
                qpos[e, k + 1], qvel[e, k + 1] = u.data.qpos, u.data.qvel
        return {"state": states, "qpos": qpos, "qvel": qvel}

    def close(self) -> None:
        self.gym_env.close()

    def __enter__(self) -> "GymCollector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ------------------------------------------------------------------ family


def _no_mjstate(*_args):
    raise ConfigError("OGBench PointMaze moves the agent in its own step (qpos += 0.2 a); "
                      "mujoco.rollout (collector, --dynamics oracle) cannot reproduce it")


def _no_pixels(*_args):
    raise ConfigError("OGBench envs: pixel observations are not supported by the adapter (state only)")


class PointMazeFamily(TaskFamily):
    """An OGBench PointMaze env as a task family (`ogbench:pointmaze-*-navigate-v0`): state (x, y, vx, vy),
    collected through OGBench's own step (`GymCollector`); no pixels, no `mujoco.rollout` oracle."""

    entry_point = "jepa_mpc_envs.ogbench_adapter:OGBenchEnv"
    state_fields = STATE_FIELDS
    position, velocity, goal = slice(0, 2), slice(2, 4), slice(0, 2)
    streams = ()  # suites are OGBench's evaluation tasks (reset seeds drawn from --seed), not suite streams

    def __init__(self, env_id: str):
        import_ogbench()
        self.env_id = env_id
        self.dataset = dataset_name(env_id)
        self.default_tolerance, self.default_max_steps = self._defaults()

    def _defaults(self) -> tuple[float, int]:
        info = _maze_info(self.dataset)
        return info["goal_tol"], info["max_episode_steps"]

    def make_env(self, layout=None, obs_type="state", frame_skip=None, **kwargs):
        frame_skip = self.default_frame_skip if frame_skip is None else frame_skip
        return OGBenchEnv(layout=layout or self.default_layout(), obs_type=obs_type, frame_skip=frame_skip, **kwargs)

    def build_model(self, layout, hazards=()):
        return make_ogbench_env(layout.dataset).unwrapped.model

    def state_to_mjstate(self, model, states):
        return _no_mjstate()

    def mjstate_to_state(self, model, mjstates):
        return _no_mjstate()

    def sample_start_states(self, layout, rng, n, room=None):
        return sample_start_states_for(layout.dataset, rng, n)

    def default_layout(self):
        return OGBenchLayout(self.dataset)

    def layout_from_dict(self, d):
        return OGBenchLayout.from_dict(d)

    def suite_from_dict(self, d, path="<dict>"):
        return suite_from_dict(d, path, fields=self.state_fields, tolerance=self.default_tolerance,
                               max_steps=self.default_max_steps)

    def generate_suite(self, seed, n, *, tolerance=None, max_steps=None, hazards="none", split="", layout=None,
                       stream=""):
        self.check_split(split)
        self.check_stream(stream)
        return generate_suite_for(self.dataset, seed, n, tolerance=tolerance or self.default_tolerance,
                                  max_steps=max_steps or self.default_max_steps, hazards=hazards)

    renders = False

    def pixel_renderer(self, model, size=64):
        return _no_pixels()

    def view_half(self, layout):
        info = _maze_info(layout.dataset)
        return float(np.abs(info["centres"]).max() + info["unit"])

    def make_collector(self, model, frame_skip, backend="mujoco"):
        self.check_sim_backend(backend)
        return GymCollector(self.dataset, frame_skip, self)

    def oracle_collector(self, model, frame_skip, backend="mujoco"):
        self.check_sim_backend(backend)
        return StateCollector(model, frame_skip, env=self)  # its conversion raises the one-line ConfigError


__all__ = ["PREFIX", "INSTALL_HINT", "SUPPORTED", "OGBenchEnv", "OGBenchLayout", "OGBenchTask", "GymCollector",
           "PointMazeFamily", "is_ogbench_id", "dataset_name", "generate_suite_for", "eval_task_plan"]
