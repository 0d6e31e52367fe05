"""OGBench cube (``ogbench:cube-single-play-v0``) behind the pipeline's env contract.

Resolved through envs/registry.py (``get_family("ogbench:cube-single-play-v0")`` -> `OGBenchCubeFamily`). The env
wraps OGBench's own CubeEnv (UR5e arm + Robotiq gripper, one 4 cm cube; its MJCF, dynamics, five
evaluation tasks and success signal). OGBench's datasets are never downloaded or used: we collect
our own reward-free data in its env.

Actions are OGBench's 5-d relative end-effector commands in [-1, 1] (dx, dy, dz: 5 cm per unit,
dyaw: 0.3 rad per unit, gripper: +1 closes). Every step solves inverse kinematics in Python, so
`mujoco.rollout` cannot reproduce a step: collection steps the Gymnasium env itself
(`CubeCollector`) and there is no `--dynamics oracle`.

State convention (envs/registry.py), 27 numbers (`STATE_FIELDS`): the goal features first, the cube
position (x, y, z in metres, world frame), then its linear velocity, the cube's yaw (cos, sin), the
end effector's position, yaw (cos, sin), gripper opening (0 open .. 1 closed) and contact, and the
six arm joint angles and velocities. The observation the model sees is the whole state.

Evaluation tasks: a suite episode is (task_id 1..5, seed), as for PointMaze; ``reset`` seeds OGBench's
own generator with the episode seed (arm start pose and cube placement noise), so the suite file
records the exact start state. The goal is OGBench's goal observation (the cube at its target, the
arm where OGBench's goal reset left it; that arm pose includes two unseeded random steps, so it is
recorded once when the suite is generated). Success is OGBench's ``info["success"]``: the cube within
0.04 m of its target (3-d); OGBench ends an episode at success or after 200 steps.

Exploration (`CubeCollector`): goal-free and reward-free, but biased toward the cube, since random
end-effector motion rarely touches it: each episode follows a closed-loop script of random intent
("carry": reach the cube, close the gripper, carry it to a random point and let go; "push": come down
beside it and sweep through it in a random direction; "free": exploration noise only), with the
pipeline's exploration noise (OU by default) added at a random per-episode scale. The collector
writes the actions it executed into the action array it was given (and returns them as "action"),
so the dataset holds what was really done.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import numpy as np

from .errors import ConfigError
from .ogbench_adapter import GymCollector as _GymCollector  # close() and the context-manager protocol
from .ogbench_adapter import (OGBenchEpisode, OGBenchLayout, PointMazeFamily, dataset_name, import_ogbench,
                              recorded_suite)

DATASETS = ("cube-single-play-v0",)
STATE_FIELDS = (
    "cube_x", "cube_y", "cube_z", "cube_vx", "cube_vy", "cube_vz", "cube_cos_yaw", "cube_sin_yaw",
    "eff_x", "eff_y", "eff_z", "eff_cos_yaw", "eff_sin_yaw", "gripper", "contact",
    "q1", "q2", "q3", "q4", "q5", "q6", "dq1", "dq2", "dq3", "dq4", "dq5", "dq6",
)
STATE_DIM = len(STATE_FIELDS)
GOAL_DIM = 3  # cube x, y, z
ACTION_DIM = 5
DEFAULT_TOLERANCE = 0.04  # OGBench's cube success radius (m)
DEFAULT_MAX_STEPS = 200  # OGBench's max_episode_steps for cube-single
FRAME_SKIP = 5  # the pipeline's default; OGBench's own control step (25 x 2 ms) is used regardless

# OGBench's state observation of cube-single (28 numbers) and its scaling.
_XYZ_CENTER = np.array([0.425, 0.0, 0.0])
_XYZ_SCALE = 10.0
_GRIPPER_SCALE = 3.0
OGBENCH_OBS_DIM = 28

# Where starts are drawn (OGBench's own sampling bounds for the arm and for objects).
ARM_BOUNDS = np.array([[0.25, -0.35, 0.20], [0.60, 0.35, 0.35]])
CUBE_BOUNDS = np.array([[0.30, -0.30], [0.55, 0.30]])
CUBE_REST_Z = 0.02
WORKSPACE = np.array([[0.25, -0.35, 0.02], [0.60, 0.35, 0.35]])


def is_cube_dataset(name: str) -> bool:
    return name in DATASETS


# ------------------------------------------------------------------ state conversion


def state_from_observation(ob: np.ndarray, cube_vel: np.ndarray | None = None) -> np.ndarray:
    """Our (27,) state from OGBench's (28,) cube-single state observation (+ the cube's linear velocity)."""
    ob = np.asarray(ob, np.float64)
    if ob.shape != (OGBENCH_OBS_DIM,):
        raise ConfigError(f"OGBench cube observation: expected shape ({OGBENCH_OBS_DIM},), got {ob.shape}")
    vel = np.zeros(3) if cube_vel is None else np.asarray(cube_vel, np.float64)
    return np.concatenate([
        ob[19:22] / _XYZ_SCALE + _XYZ_CENTER, vel, ob[26:28],
        ob[12:15] / _XYZ_SCALE + _XYZ_CENTER, ob[15:17], ob[17:18] / _GRIPPER_SCALE, ob[18:19],
        ob[0:6], ob[6:12],
    ]).astype(np.float32)


def nearest_equivalent_yaw(current: np.ndarray, cube_yaw: np.ndarray) -> np.ndarray:
    """The cube's yaw plus a multiple of pi/2 (a square looks the same) closest to `current`."""
    quarter = np.pi / 2
    return cube_yaw + quarter * np.round((current - cube_yaw) / quarter)


# ------------------------------------------------------------------ env


def make_cube_env(dataset: str, **kwargs):
    return import_ogbench().make_env_and_datasets(dataset, env_only=True, **kwargs)


@functools.lru_cache(maxsize=4)
def cube_info(dataset: str) -> dict:
    """Control period and episode limit of `dataset` (cached)."""
    env = make_cube_env(dataset)
    u = env.unwrapped
    env.reset(seed=0)
    info = {"control_dt": float(u._model.opt.timestep) * int(u._n_steps),
            "max_episode_steps": int(env.spec.max_episode_steps or DEFAULT_MAX_STEPS)}
    env.close()
    return info


@functools.lru_cache(maxsize=4)
def cube_model(dataset: str):
    """OGBench's MuJoCo model of `dataset` (cached; read-only: dataset metadata only)."""
    env = make_cube_env(dataset)
    env.reset(seed=0)
    model = env.unwrapped._model
    env.close()
    return model


class OGBenchCubeEnv(OGBenchEpisode):
    """OGBench cube behind the pipeline's env contract (see the module docstring).

    ``reset(options={"task": OGBenchTask})`` runs OGBench's evaluation task ``task_id`` with the
    task's seed; without a task, a random OGBench task. ``info["success"]`` is OGBench's.
    """

    goal_dim = GOAL_DIM

    def __init__(self, layout=None, obs_type: str = "state", frame_skip: int = FRAME_SKIP):
        self.layout = layout or OGBenchLayout(DATASETS[0])
        if not is_cube_dataset(dataset_name(self.layout.dataset)):
            raise ConfigError(f"ogbench:{self.layout.dataset}: not an OGBench cube env ({', '.join(DATASETS)})")
        if obs_type != "state":
            raise ConfigError(f"ogbench:{self.layout.dataset}: obs_type {obs_type!r} is not supported (state only)")
        if int(frame_skip) != FRAME_SKIP:
            raise ConfigError(f"ogbench:{self.layout.dataset}: frame_skip {frame_skip} cannot change OGBench's own "
                              f"control step (0.05 s); leave it at {FRAME_SKIP}")
        self._env = make_cube_env(self.layout.dataset)
        self._env.reset(seed=0)  # builds the MuJoCo model
        u = self._env.unwrapped
        self.obs_type = obs_type
        self.control_dt = float(u._model.opt.timestep) * int(u._n_steps)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32)
        self._goal = np.zeros(STATE_DIM, np.float32)
        self._steps = 0
        self._max_steps = DEFAULT_MAX_STEPS

    def observation_at(self, state) -> np.ndarray:
        state = np.asarray(state, np.float32)
        if state.shape[-1:] != (STATE_DIM,):
            raise ConfigError(f"ogbench:{self.layout.dataset}: a state has {STATE_DIM} numbers {STATE_FIELDS[:3]}..., "
                              f"got shape {state.shape}")
        return state.copy()

    def current_state(self) -> np.ndarray:
        u = self.unwrapped_ogbench
        return state_from_observation(u.compute_observation(), u._data.joint("object_joint_0").qvel[:3])

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        info = self._reset_episode((options or {}).get("task"), seed, DEFAULT_MAX_STEPS)
        self._goal = state_from_observation(info["goal"])
        state = self.current_state()
        return state.copy(), self._info(state, False)

    def step(self, action):
        action = np.asarray(action, np.float32)
        if action.shape != (ACTION_DIM,) or not np.all(np.isfinite(action)):
            raise ConfigError(f"ogbench:{self.layout.dataset}: an action is {ACTION_DIM} finite numbers, got {action!r}")
        _, _, terminated, truncated, info = self._env.step(np.clip(action, -1.0, 1.0))
        return self._step_result(self.current_state(), terminated, truncated, info)

    def set_start(self, start: np.ndarray) -> np.ndarray:
        """Put the scene at a collection start: cube pose and end-effector pose (by OGBench's IK) from
        `start`'s fields, gripper open, at rest. Returns the state actually reached."""
        from ogbench.manipspace import lie

        import mujoco

        start = np.asarray(start, np.float64)
        u = self.unwrapped_ogbench
        data, model = u._data, u._model
        data.qvel[:] = 0.0
        eff_yaw = np.arctan2(start[12], start[11])
        rot = lie.SO3.from_z_radians(eff_yaw) @ u._effector_down_rotation
        attach = lie.SE3.from_rotation_and_translation(rot, start[8:11]) @ u._T_pa
        data.qpos[u._arm_joint_ids] = u._ik.solve(pos=attach.translation(), quat=attach.rotation().wxyz,
                                                  curr_qpos=u._home_qpos)
        cube = data.joint("object_joint_0")
        cube.qpos[:3] = start[0:3]
        cube.qpos[3:] = lie.SO3.from_z_radians(np.arctan2(start[7], start[6])).wxyz
        u.pre_step()
        mujoco.mj_forward(model, data)
        u.post_step()
        return self.current_state()


# ------------------------------------------------------------------ tasks


def generate_suite_for(dataset: str, seed: int, n: int, tolerance: float = DEFAULT_TOLERANCE,
                       max_steps: int = DEFAULT_MAX_STEPS, hazards: str = "none"):
    """n episodes of OGBench's five cube evaluation tasks (round-robin over task_id 1..5), each with its
    own reset seed; start and goal states recorded by resetting."""
    if hazards != "none":
        raise ConfigError("OGBench suites have no hazards (use --hazards none)")
    if abs(tolerance - DEFAULT_TOLERANCE) > 1e-9:
        raise ConfigError(f"OGBench's success signal uses its own goal tolerance ({DEFAULT_TOLERANCE}); "
                          f"--tolerance {tolerance} cannot change it")
    if n < 1:
        raise ConfigError(f"--n must be >= 1 (got {n})")
    if max_steps < 1:
        raise ConfigError(f"--max-steps must be >= 1 (got {max_steps})")
    return recorded_suite(OGBenchCubeEnv(layout=OGBenchLayout(dataset)), seed, n, tolerance, max_steps)


# ------------------------------------------------------------------ collection


def sample_start_states(layout, rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 27) collection starts: cube uniform over OGBench's object bounds at rest with a random yaw,
    end effector uniform over OGBench's arm bounds with a random yaw; other fields zero (set by IK)."""
    out = np.zeros((n, STATE_DIM))
    out[:, 0:2] = rng.uniform(*CUBE_BOUNDS, size=(n, 2))
    out[:, 2] = CUBE_REST_Z
    cube_yaw = rng.uniform(0, 2 * np.pi, n)
    out[:, 6], out[:, 7] = np.cos(cube_yaw), np.sin(cube_yaw)
    out[:, 8:11] = rng.uniform(*ARM_BOUNDS, size=(n, 3))
    eff_yaw = rng.uniform(-np.pi, np.pi, n)
    out[:, 11], out[:, 12] = np.cos(eff_yaw), np.sin(eff_yaw)
    return out


EXPLORE_MODES = ("carry", "push", "free")
EXPLORE_PROBS = (0.5, 0.3, 0.2)
NOISE_SCALE = (0.1, 0.5)  # per-episode scale of the exploration noise added to the scripted actions
POS_GAIN = 10.0  # action per metre of end-effector error (a 10 cm error saturates)
YAW_GAIN = 3.0
PHASE_LIMIT = 30  # steps before a phase gives up and the next one starts


class ExplorationScript:
    """Closed-loop, goal-free exploration around the cube for one episode (see the module docstring).

    `act(state, noise)` -> one action in [-1, 1]: the script's action for the current phase plus
    `noise` (the pipeline's exploration noise for this step) times the episode's noise scale.
    """

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.mode = EXPLORE_MODES[rng.choice(len(EXPLORE_MODES), p=EXPLORE_PROBS)]
        self.noise_scale = 1.0 if self.mode == "free" else rng.uniform(*NOISE_SCALE)
        self.phases: list[tuple[str, Any]] = []
        self.steps_in_phase = 0

    def _plan(self, state: np.ndarray) -> None:
        """The next cycle of phases, from the cube where it lies now."""
        cube = state[0:3].astype(np.float64)
        if self.mode == "carry":
            dest = np.append(self.rng.uniform(*CUBE_BOUNDS), self.rng.uniform(CUBE_REST_Z, 0.2))
            self.phases = [("above", cube + [0, 0, 0.08]), ("down", cube), ("close", 5),
                           ("carry", cube + [0, 0, 0.1]), ("carry", dest), ("open", 3)]
        elif self.mode == "push":
            angle = self.rng.uniform(-np.pi, np.pi)
            way = np.array([np.cos(angle), np.sin(angle), 0.0])
            behind = cube - 0.07 * way
            length = self.rng.uniform(0.05, 0.25)
            self.phases = [("above_closed", behind + [0, 0, 0.08]), ("sweep", behind + [0, 0, 0.005]),
                           ("sweep", cube + length * way + [0, 0, 0.005]), ("sweep", cube + length * way + [0, 0, 0.1])]
        self.steps_in_phase = 0

    def _scripted(self, state: np.ndarray) -> np.ndarray:
        if self.mode == "free":
            return np.zeros(ACTION_DIM)
        if not self.phases:
            self._plan(state)
        kind, arg = self.phases[0]
        eff, eff_yaw = state[8:11].astype(np.float64), np.arctan2(state[12], state[11])
        cube_yaw = nearest_equivalent_yaw(eff_yaw, np.arctan2(state[7], state[6]))
        action = np.zeros(ACTION_DIM)
        if kind in ("close", "open"):
            action[4] = 1.0 if kind == "close" else -1.0
            done = self.steps_in_phase + 1 >= arg
        else:
            target = np.clip(arg, *WORKSPACE)
            action[:3] = POS_GAIN * (target - eff)
            action[3] = YAW_GAIN * (cube_yaw - eff_yaw) if kind in ("above", "down") else 0.0
            action[4] = -1.0 if kind in ("above", "down") else 1.0
            done = np.linalg.norm(target - eff) < (0.01 if kind == "down" else 0.02)
        self.steps_in_phase += 1
        if done or self.steps_in_phase >= PHASE_LIMIT:
            self.phases.pop(0)
            self.steps_in_phase = 0
        return action

    def act(self, state: np.ndarray, noise: np.ndarray) -> np.ndarray:
        action = self._scripted(state) + self.noise_scale * np.asarray(noise, np.float64)
        return np.clip(action, -1.0, 1.0).astype(np.float32)


def episode_rng(noise: np.ndarray) -> np.random.Generator:
    """The script's generator of one episode, a function of its exploration noise (so a chunk stays a
    pure function of its seed)."""
    words = np.frombuffer(np.ascontiguousarray(noise, np.float32).tobytes(), np.uint32)
    return np.random.default_rng(words[:64].tolist())


def cube_moved(states: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    """(E,) bool: the cube moved more than `threshold` metres from its start at some step
    (states (E, T+1, 27))."""
    states = np.asarray(states)
    return (np.linalg.norm(states[..., :GOAL_DIM] - states[:, :1, :GOAL_DIM], axis=-1) > threshold).any(axis=1)


class CubeCollector(_GymCollector):
    """Reward-free rollouts through OGBench's own step with the closed-loop exploration script (the
    collector interface of jepa_mpc_envs.rollout.StateCollector: run(init_states, actions) -> arrays).

    `actions` (E, T, 5) is the pipeline's exploration noise; the actions executed (script + scaled
    noise) are written back into it and returned as "action"."""

    def __init__(self, dataset: str, frame_skip: int, env: Any = None, script: bool = True):
        self.env = env  # the TaskFamily (what collect_chunk reads: start states, action_dim)
        self.script = script
        self.gym_env = OGBenchCubeEnv(layout=OGBenchLayout(dataset), frame_skip=frame_skip)

    def run(self, init_states: np.ndarray, actions: np.ndarray) -> dict[str, np.ndarray]:
        n, t, a = actions.shape
        if n == 0 or t == 0 or a != ACTION_DIM:
            raise ValueError(f"CubeCollector.run needs (E>0, T>0, {ACTION_DIM}) actions, got {actions.shape}")
        u = self.gym_env.unwrapped_ogbench
        states = np.empty((n, t + 1, STATE_DIM), np.float32)
        qpos = np.empty((n, t + 1, u._model.nq))
        qvel = np.empty((n, t + 1, u._model.nv))
        for e in range(n):
            self.gym_env._env.reset(seed=0, options={"task_id": 1})  # a fixed task: no global-RNG draw
            states[e, 0] = self.gym_env.set_start(init_states[e])
            qpos[e, 0], qvel[e, 0] = u._data.qpos, u._data.qvel
            script = ExplorationScript(episode_rng(actions[e])) if self.script else None
            for k in range(t):
                if script is not None:
                    actions[e, k] = script.act(states[e, k], actions[e, k])
                states[e, k + 1] = self.gym_env.step(actions[e, k])[0]
                qpos[e, k + 1], qvel[e, k + 1] = u._data.qpos, u._data.qvel
        return {"state": states, "qpos": qpos, "qvel": qvel, "action": actions}


# ------------------------------------------------------------------ family


def _no_mjstate(*_args):
    raise ConfigError("OGBench cube steps through inverse kinematics in Python; "
                      "mujoco.rollout (collector, --dynamics oracle) cannot reproduce it")




class OGBenchCubeFamily(PointMazeFamily):
    """OGBench's cube-single as a task family: the goal is the cube position (x, y, z); the probe and the
    safety terms read the cube's (x, y) and (vx, vy); collected with the exploration script (`CubeCollector`)."""

    entry_point = "jepa_mpc_envs.ogbench_cube:OGBenchCubeEnv"
    state_fields = STATE_FIELDS
    action_dim = ACTION_DIM
    position, velocity, goal = slice(0, 2), slice(3, 5), slice(0, GOAL_DIM)
    default_frame_skip = FRAME_SKIP

    def _defaults(self) -> tuple[float, int]:
        return DEFAULT_TOLERANCE, cube_info(self.dataset)["max_episode_steps"]

    def make_env(self, layout=None, obs_type="state", frame_skip=None, **kwargs):
        frame_skip = self.default_frame_skip if frame_skip is None else frame_skip
        return OGBenchCubeEnv(layout=layout or self.default_layout(), obs_type=obs_type, frame_skip=frame_skip,
                              **kwargs)

    def build_model(self, layout, hazards=()):
        return cube_model(layout.dataset)

    def state_to_mjstate(self, model, states):
        return _no_mjstate()

    def mjstate_to_state(self, model, mjstates):
        return _no_mjstate()

    def sample_start_states(self, layout, rng, n, room=None):
        return sample_start_states(layout, rng, n)

    def generate_suite(self, seed, n, *, tolerance=None, max_steps=None, hazards="none", split="", layout=None,
                       stream=""):
        self.check_split(split)
        self.check_stream(stream)
        return generate_suite_for(self.dataset, seed, n, tolerance=tolerance or self.default_tolerance,
                                  max_steps=max_steps or self.default_max_steps, hazards=hazards)

    def view_half(self, layout):
        return 0.4

    def make_collector(self, model, frame_skip, backend="mujoco"):
        self.check_sim_backend(backend)
        return CubeCollector(self.dataset, frame_skip, self)


__all__ = ["DATASETS", "STATE_FIELDS", "STATE_DIM", "GOAL_DIM", "ACTION_DIM", "OGBenchCubeEnv", "CubeCollector",
           "ExplorationScript", "state_from_observation", "sample_start_states", "generate_suite_for", "cube_moved",
           "OGBenchCubeFamily"]
