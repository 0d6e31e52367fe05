"""What every task env shares: headless MuJoCo import, the Gymnasium step loop, top-down rendering
(`PixelRenderer`).

Importing this module first sets ``MUJOCO_GL=egl`` on a headless Linux machine (it must be set
before ``mujoco`` is imported), so env modules import ``mujoco`` from here.

``MujocoTaskEnv`` is the common step of TwoRoom, Reacher and Push-T: a checked 2-d action held for
``frame_skip`` physics steps; success terminates, ``max_steps`` truncates; reward 1 on success (the
planners never use it). A subclass provides ``model``, ``data``, ``frame_skip``, ``max_steps``,
``steps``, ``render_mode``, ``state``, ``observation_at(state)`` and ``_info()`` (and a ``renderer_class``
or its own ``renderer``).
"""

from __future__ import annotations

import collections
import os
import sys

import gymnasium as gym
import numpy as np

if sys.platform.startswith("linux") and "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"  # headless default; must be set before mujoco is imported

import mujoco  # noqa: E402

STATE_SPEC = mujoco.mjtState.mjSTATE_FULLPHYSICS  # the spec of state_to_mjstate / mujoco.rollout


def mjcf_number(x: float) -> str:
    """A number as MJCF text (6 significant digits)."""
    return f"{float(x):.6g}"


def mjcf_preamble(name: str, timestep: float, numstacks: int = 6, option: str = "") -> str:
    """The opening every family's MJCF shares: the model's name, radians, no gravity, the implicitfast
    integrator (`option`: more attributes of <option>), cheap visuals and a 256 px offscreen buffer."""
    return f"""<mujoco model="{name}">
  <compiler angle="radian"/>
  <option timestep="{mjcf_number(timestep)}" gravity="0 0 0" integrator="implicitfast"{option}/>
  <visual>
    <quality shadowsize="0" offsamples="0" numslices="16" numstacks="{numstacks}"/>
    <global offwidth="256" offheight="256"/>
    <headlight ambient="0.6 0.6 0.6" diffuse="0.4 0.4 0.4" specular="0 0 0"/>
  </visual>
"""


def cached_model(cache: "collections.OrderedDict", key, build_mjcf, size: int = 8) -> mujoco.MjModel:
    """The compiled model of ``build_mjcf(key)`` from an LRU ``cache`` of ``size`` entries (treat as read-only)."""
    if key not in cache:
        cache[key] = mujoco.MjModel.from_xml_string(build_mjcf(key))
        while len(cache) > size:
            cache.popitem(last=False)
    return cache[key]


def checked_action(action, dim: int = 2) -> np.ndarray:
    """The action as a float64 vector of length ``dim``; ValueError if its shape is wrong or it is not finite."""
    a = np.asarray(action, dtype=np.float64).reshape(-1)
    if a.shape != (dim,):
        raise ValueError(f"action must have shape ({dim},), got {np.shape(action)}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"action must be finite, got {a.tolist()}")
    return a


def state_offsets(model: mujoco.MjModel) -> tuple[int, int, int]:
    """(size of FULLPHYSICS state, offset of qpos, offset of qvel) in an mjSTATE_FULLPHYSICS vector."""
    size = mujoco.mj_stateSize(model, STATE_SPEC)
    qpos_off = mujoco.mj_stateSize(model, mujoco.mjtState.mjSTATE_TIME)
    qvel_off = mujoco.mj_stateSize(model, mujoco.mjtState.mjSTATE_TIME | mujoco.mjtState.mjSTATE_QPOS)
    return size, qpos_off, qvel_off


def state_to_mjstate(model: mujoco.MjModel, states) -> np.ndarray:
    """Physical states (N, 4) = (qpos[0:2], qvel[0:2]) -> (N, nstate) float64 mjSTATE_FULLPHYSICS arrays
    (TwoRoom's (x, y, vx, vy), Reacher's (q1, q2, dq1, dq2)).

    Time is 0 and everything else is the model default, so the rows can be passed as
    `initial_state` to ``mujoco.rollout.rollout(model, data, initial_state, control)``.
    A single (4,) state gives a (nstate,) vector.
    """
    s = np.asarray(states, dtype=np.float64)
    single = s.ndim == 1
    s = s.reshape(-1, 4)
    data = mujoco.MjData(model)
    template = np.empty(mujoco.mj_stateSize(model, STATE_SPEC))
    mujoco.mj_getState(model, data, template, STATE_SPEC)
    _, qp, qv = state_offsets(model)
    out = np.repeat(template[None], len(s), axis=0)
    out[:, qp : qp + 2] = s[:, 0:2]
    out[:, qv : qv + 2] = s[:, 2:4]
    return out[0] if single else out


def mjstate_to_state(model: mujoco.MjModel, mjstates) -> np.ndarray:
    """mjSTATE_FULLPHYSICS arrays (..., nstate) -> physical states (..., 4) float32 (qpos[0:2], qvel[0:2]).

    Works on the (N, T, nstate) `state` output of ``mujoco.rollout.rollout`` too.
    """
    m = np.asarray(mjstates)
    _, qp, qv = state_offsets(model)
    return np.concatenate([m[..., qp : qp + 2], m[..., qv : qv + 2]], axis=-1).astype(np.float32)


class PixelRenderer:
    """Fast top-down renderer of a model's "top" camera: `render_states(states (N, D)) -> (N, S, S, 3) uint8`.

    One mujoco.Renderer is reused; shadows, reflections, skybox, fog and haze are off. A state is drawn
    by writing `qpos(state)` into the model's first joints and running kinematics (velocities are
    ignored); the default reads the first two fields (TwoRoom's (x, y), Reacher's joint angles), a
    family's renderer overrides `qpos` (Push-T: block pose and pusher).
    """

    def __init__(self, model: mujoco.MjModel, size: int = 64):
        self.model = model
        self.size = int(size)
        self._data = mujoco.MjData(model)
        self._renderer = mujoco.Renderer(model, self.size, self.size)
        scene = self._renderer.scene
        for flag in (
            mujoco.mjtRndFlag.mjRND_SHADOW,
            mujoco.mjtRndFlag.mjRND_REFLECTION,
            mujoco.mjtRndFlag.mjRND_SKYBOX,
            mujoco.mjtRndFlag.mjRND_FOG,
            mujoco.mjtRndFlag.mjRND_HAZE,
        ):
            scene.flags[flag] = 0
        self._opt = mujoco.MjvOption()
        self._cam = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, "top")

    def qpos(self, state: np.ndarray) -> np.ndarray:
        """The leading qpos entries that place a (D,) float64 state in the scene."""
        return state[0:2]

    def _render_into(self, state: np.ndarray, out: np.ndarray) -> None:
        q = self.qpos(state)
        self._data.qpos[: len(q)] = q
        mujoco.mj_kinematics(self.model, self._data)
        mujoco.mj_camlight(self.model, self._data)
        self._renderer.update_scene(self._data, camera=self._cam, scene_option=self._opt)
        self._renderer.render(out=out)

    def render_state(self, state) -> np.ndarray:
        """One (S, S, 3) uint8 frame of a physical state."""
        out = np.empty((self.size, self.size, 3), dtype=np.uint8)
        self._render_into(np.asarray(state, dtype=np.float64).reshape(-1), out)
        return out

    def render_states(self, states) -> np.ndarray:
        """(N, S, S, 3) uint8 frames of physical states (N, D)."""
        s = np.asarray(states, dtype=np.float64).reshape(-1, np.shape(states)[-1])
        out = np.empty((len(s), self.size, self.size, 3), dtype=np.uint8)
        for i in range(len(s)):
            self._render_into(s[i], out[i])
        return out

    def close(self) -> None:
        if getattr(self, "_renderer", None) is not None:
            self._renderer.close()
            self._renderer = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def padded_state(state, dim: int = 4) -> np.ndarray:
    """The first `dim` numbers of a state as a (dim,) float32 vector, zero-filled when it has fewer
    (a task's (x, y) is a state at rest)."""
    v = np.asarray(state, dtype=np.float32).reshape(-1)[:dim]
    out = np.zeros(dim, np.float32)
    out[: v.size] = v
    return out


OBS_TYPES = ("state", "pixels", "both")


class MujocoTaskEnv(gym.Env):
    """Shared Gymnasium plumbing of the task envs (see the module docstring)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}
    renderer_class: type = PixelRenderer
    """The renderer of `renderer` (``renderer_class(model, render_size)``, made on first use)."""
    _renderer = None

    def _store_args(self, layout, obs_type: str, frame_skip: int, max_steps: int, render_size: int,
                    render_mode: str | None, tolerance: float) -> None:
        """Check and keep the constructor arguments every task env takes (ValueError on bad ones)."""
        if obs_type not in OBS_TYPES:
            raise ValueError(f"obs_type must be 'state', 'pixels' or 'both', got {obs_type!r}")
        if frame_skip < 1:
            raise ValueError(f"frame_skip must be >= 1, got {frame_skip}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.layout = layout
        self.obs_type = obs_type
        self.frame_skip = int(frame_skip)
        self.default_max_steps = int(max_steps)
        self.render_size = int(render_size)
        self.render_mode = render_mode
        self.default_tolerance = float(tolerance)

    def _clear_task(self, state_dim: int) -> None:
        """The episode state before the first reset: no task, a zero goal, the default tolerance and
        episode length, step 0."""
        self.task = None
        self.goal = np.zeros(state_dim, np.float32)
        self.tolerance = self.default_tolerance
        self.max_steps = self.default_max_steps
        self.steps = 0

    def _begin_episode(self, seed: int | None, options: dict | None):
        """Seed the env's generator (Gymnasium's reset) and take the episode's (task, start, goal): the
        task of ``options`` with its tolerance and length, or none with `_random_start_goal()` and the
        defaults. start and goal are float64 arrays."""
        super().reset(seed=seed)
        task = (options or {}).get("task")
        if task is not None:
            start, goal = np.asarray(task.start, np.float64), np.asarray(task.goal, np.float64)
            self.tolerance, self.max_steps = float(task.tolerance), int(task.max_steps)
        else:
            start, goal = self._random_start_goal()
            self.tolerance, self.max_steps = self.default_tolerance, self.default_max_steps
        self.task = task
        return task, start, goal

    def _random_start_goal(self) -> tuple[np.ndarray, np.ndarray]:
        """A start and a goal state drawn from ``self.np_random`` for a reset without a task."""
        raise NotImplementedError

    def _set_spaces(self, state_space: gym.spaces.Box, action_dim: int = 2) -> None:
        """Observation space for ``obs_type`` (state, 64 px RGB, or both) and the [-1, 1] action box."""
        pixel_space = gym.spaces.Box(0, 255, (self.render_size, self.render_size, 3), np.uint8)
        self.observation_space = {
            "state": state_space,
            "pixels": pixel_space,
            "both": gym.spaces.Dict({"state": state_space, "pixels": pixel_space}),
        }[self.obs_type]
        self.action_space = gym.spaces.Box(-1.0, 1.0, (action_dim,), np.float32)

    def _pack(self, state, state_obs=None):
        """The observation of ``obs_type`` for a full physical state: the state vector (``state_obs``,
        default the state itself), its rendered frame, or both."""
        state_obs = state if state_obs is None else state_obs
        if self.obs_type == "state":
            return state_obs
        pix = self.renderer.render_state(state)
        return pix if self.obs_type == "pixels" else {"state": state_obs, "pixels": pix}

    def _distance_info(self, state: np.ndarray, violation) -> dict:
        """``info`` of an env whose success is its first two state fields within ``tolerance`` of the
        goal's (TwoRoom, TwoRoomLayouts, Reacher)."""
        dist = float(np.linalg.norm(state[:2] - self.goal[:2]))
        return {"success": bool(dist <= self.tolerance), "violation": violation, "distance_to_goal": dist,
                "state": state, "goal": self.goal.copy()}

    @property
    def renderer(self):
        """The env's top-down renderer (a `renderer_class` of its model, made on first use)."""
        if self._renderer is None:
            self._renderer = self.renderer_class(self.model, self.render_size)
        return self._renderer

    def goal_observation(self):
        """Observation of the current goal state."""
        return self.observation_at(self.goal)

    def step(self, action):
        self.data.ctrl[:] = np.clip(checked_action(action, self.model.nu), -1.0, 1.0)
        for _ in range(self.frame_skip):
            mujoco.mj_step(self.model, self.data)
        self.steps += 1
        info = self._info()
        terminated = info["success"]
        truncated = (not terminated) and self.steps >= self.max_steps
        return self.observation_at(info["state"]), float(terminated), terminated, truncated, info

    def render(self):
        if self.render_mode == "rgb_array":
            return self.renderer.render_state(self.state)
        return None

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
