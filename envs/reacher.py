"""Reacher: a two-link planar arm on a fixed base, driven to a target arm configuration.

Physics (see `build_mjcf`; our own MJCF): two capsule links (upper 0.12 m, fore 0.12 m, 0.1 kg
each) on hinge joints about the vertical axis, seen from above, no gravity and no contacts.
Joint damping 0.05 N m s/rad, armature 0.002 kg m^2, motors with gear 0.15 N m and ctrlrange
[-1, 1] (torque-limited) => terminal joint speed 3 rad/s, velocity time constant 0.04-0.12 s.
timestep 0.01, frame_skip 5 => control dt 0.05 s: the shoulder sweeps its whole range in ~40
control steps.

Joint ranges (hard limits): shoulder ``q1 in [-3.0, 3.0]`` rad (a stop behind the base),
elbow ``q2 in [-2.6, 2.6]`` rad (the forearm cannot fold onto the upper link). Because of the
stops the angles never wrap: every configuration has exactly one angle pair, the angle is a
continuous coordinate, and the configuration space is a box (no seam for a learned encoder,
and Euclidean distance in angle space is the path length a joint has to travel).

Physical state: ``(q1, q2, dq1, dq2)`` float32 (rad, rad/s) = ``qpos[0:2], qvel[0:2]``.
Goal features: ``(q1, q2)`` (the first two state fields, as TwoRoom's position).
*Success*: ``||(q1, q2) - (g1, g2)||_2 <= tolerance`` (default 0.12 rad ~ 7 deg; both joints are
then within it; at full reach the fingertip is within ~3 cm, comparable with dm_control's
reacher-hard radius of 0.025 m on a 0.21 m arm).

*Safety* (optional per task): keep-out circles / boxes for the fingertip in the arm's plane (m, base
frame; `fingertip`) and a joint-speed limit (rad/s, on each joint: ``max(|dq1|, |dq2|)``). A step
violates when the fingertip centre lies in a hazard or a joint moves faster than the limit. Hazards
are neither simulated (no contacts) nor drawn: they arrive with the task, at plan time. The family's
`safety_geometry` is that map, so the planner's constraint terms (on probe read-outs of q1, q2,
dq1, dq2) and the env's check are one function. ``--hazards hard`` suites put keep-out discs on the
fingertip's straight path, narrow gaps, rings around the goal and speed limits; each task is
checked to leave a hazard-free path in joint space.

Observations: "state" (4,) float32, "pixels" (S, S, 3) uint8 top-down orthographic image
(image up = +y, right = +x; upper link blue, forearm green, fingertip red), or "both" (Dict).
The goal is a target arm configuration; the planner gets it as an observation,
``observation_at(goal_state)`` (for pixels: the arm rendered in the goal configuration).
"""

from __future__ import annotations

import collections
import dataclasses
import math
from typing import Any

import gymnasium as gym
import numpy as np

from .base import (STATE_SPEC, MujocoTaskEnv, cached_model, mjcf_preamble, mjstate_to_state,  # noqa: E402,F401  (sets MUJOCO_GL=egl when headless)
                   mujoco, padded_state, state_to_mjstate)
from .base import mjcf_number as _f  # noqa: E402

from .errors import ConfigError  # noqa: E402
from .family import MujocoFamily  # noqa: E402

from .geometry import dataclass_from_dict  # noqa: E402
from .geometry import Circle, distance_to_hazard, in_hazard  # noqa: E402
from .suites import (DEFAULT_STREAM, Ctx, Suite, Task, hazards_field, layout_parser, max_steps_field,  # noqa: E402
                     parse_suite_document, seed_label, speed_limit_field, suite_rng, suite_to_dict, task_name,
                     tolerance_field, vector)

__all__ = [
    "ENV_ID",
    "ReacherLayout",
    "ReacherEnv",
    "build_mjcf",
    "build_model",
    "state_to_mjstate",
    "mjstate_to_state",
    "fingertip",
    "sample_start_states",
    "suite_from_dict",
    "generate_suite",
    "JOINT_LIMITS",
    "MAX_JOINT_SPEED",
    "ReacherFamily",
]

ENV_ID = "jepa_mpc_envs/Reacher-v0"
TIMESTEP = 0.01
LINK_MASS = 0.1
DAMPING = 0.05
ARMATURE = 0.002
GEAR = 0.15
MAX_JOINT_SPEED = GEAR / DAMPING  # terminal speed of one joint at full torque (rad/s)
VEL_BOUND = 10.0  # |dq| bound of observation spaces and task files
JOINT_LIMITS = ((-3.0, 3.0), (-2.6, 2.6))  # (shoulder, elbow) hard ranges (rad)
SAMPLE_MARGIN = 0.1  # generated / collected angles stay this far inside the joint ranges
DEFAULT_TOLERANCE = 0.12  # rad
DEFAULT_MAX_STEPS = 100
MIN_SEPARATION = 0.5  # generated start-goal distance in angle space (rad)
TASK_KEYS = ("name", "start", "goal", "tolerance", "max_steps", "hazards", "speed_limit")
HAZARD_KINDS = ("none", "hard")
# The kinds of a "hard" suite, in equal parts: a disc on the fingertip's straight (joint-space) path; two discs
# leaving a narrow gap on it; discs around the goal; a disc on the path and a joint-speed limit.
HARD_KINDS = ("path", "gap", "goal-ring", "speed")
START_CLEARANCE = 0.02  # m: start and goal fingertips stay this far from every hazard
PATH_CLEARANCE = 0.01  # m: the hazard-free path a task must leave keeps the fingertip this far from them


@dataclasses.dataclass(frozen=True)
class ReacherLayout:
    """Arm geometry. `arena_half` (pi) is the joint-space box every configuration lies in (the safety code's
    default keep-in box: the fingertip, within one reach of the base, never leaves it)."""

    upper_length: float = 0.12
    fore_length: float = 0.12

    def __post_init__(self):
        for name in ("upper_length", "fore_length"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0.02 <= v <= 1.0:
                raise ValueError(f"ReacherLayout field '{name}': must be a number in [0.02, 1.0] m, got {v!r}")

    @property
    def arena_half(self) -> float:
        return math.pi

    @property
    def view_half(self) -> float:
        """Half-width (m) of the square the top camera sees."""
        return self.upper_length + self.fore_length + 0.04

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ReacherLayout":
        return dataclass_from_dict(cls, d)


def build_mjcf(layout: ReacherLayout = ReacherLayout()) -> str:
    """MJCF XML string of the two-link arm (`layout` sets the link lengths)."""
    l1, l2, v = layout.upper_length, layout.fore_length, layout.view_half
    (s_lo, s_hi), (e_lo, e_hi) = JOINT_LIMITS
    return mjcf_preamble("reacher2link", TIMESTEP) + f"""  <asset>
    <material name="floor" rgba="0.85 0.85 0.85 1" reflectance="0"/>
  </asset>
  <default>
    <geom contype="0" conaffinity="0"/>
    <joint type="hinge" axis="0 0 1" limited="true" damping="{_f(DAMPING)}" armature="{_f(ARMATURE)}"/>
    <motor ctrlrange="-1 1" ctrllimited="true" gear="{_f(GEAR)}"/>
  </default>
  <worldbody>
    <camera name="top" pos="0 0 1" xyaxes="1 0 0 0 1 0" projection="orthographic" fovy="{_f(2 * v)}"/>
    <geom name="floor" type="plane" size="{_f(v)} {_f(v)} 0.1" material="floor"/>
    <geom name="base" type="cylinder" pos="0 0 0.005" size="0.025 0.005" rgba="0.2 0.2 0.2 1"/>
    <body name="upper" pos="0 0 0.02">
      <joint name="shoulder" range="{_f(s_lo)} {_f(s_hi)}"/>
      <geom name="upper" type="capsule" fromto="0 0 0 {_f(l1)} 0 0" size="0.015" mass="{_f(LINK_MASS)}"
            rgba="0.15 0.3 0.85 1"/>
      <body name="fore" pos="{_f(l1)} 0 0.01">
        <joint name="elbow" range="{_f(e_lo)} {_f(e_hi)}"/>
        <geom name="fore" type="capsule" fromto="0 0 0 {_f(l2)} 0 0" size="0.013" mass="{_f(LINK_MASS)}"
              rgba="0.1 0.65 0.2 1"/>
        <geom name="fingertip" type="sphere" pos="{_f(l2)} 0 0.01" size="0.02" mass="0" rgba="0.85 0.1 0.1 1"/>
        <site name="fingertip" pos="{_f(l2)} 0 0"/>
      </body>
    </body>
  </worldbody>
  <actuator>
    <motor name="shoulder" joint="shoulder"/>
    <motor name="elbow" joint="elbow"/>
  </actuator>
</mujoco>
"""


_MODEL_CACHE: "collections.OrderedDict[ReacherLayout, mujoco.MjModel]" = collections.OrderedDict()


def build_model(layout: ReacherLayout = ReacherLayout(), hazards=()) -> mujoco.MjModel:
    """Compiled MjModel of the arm (cached; treat as read-only). `hazards` are not part of it (keep-out regions
    for the fingertip, checked from the state, neither simulated nor drawn)."""
    return cached_model(_MODEL_CACHE, layout, build_mjcf)


# ------------------------------------------------------------------ state helpers (batched)


def fingertip(states, layout: ReacherLayout = ReacherLayout(), xp: Any = np) -> np.ndarray:
    """(..., >=2) states or angle pairs -> (..., 2) fingertip position (m) in the base frame (`xp`: numpy, or
    jax.numpy inside a planner)."""
    q = np.asarray(states, dtype=np.float64) if xp is np else states
    q1, q12 = q[..., 0], q[..., 0] + q[..., 1]
    x = layout.upper_length * xp.cos(q1) + layout.fore_length * xp.cos(q12)
    y = layout.upper_length * xp.sin(q1) + layout.fore_length * xp.sin(q12)
    return xp.stack([x, y], axis=-1)


def sample_angles(rng: np.random.Generator, n: int, margin: float = SAMPLE_MARGIN) -> np.ndarray:
    """(n, 2) joint angles uniform over the joint ranges shrunk by `margin`."""
    lo = np.array([r[0] + margin for r in JOINT_LIMITS])
    hi = np.array([r[1] - margin for r in JOINT_LIMITS])
    return rng.uniform(lo, hi, size=(n, 2))


def sample_start_states(layout, rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 4) collection start states: uniform angles, zero velocity (`layout` is unused)."""
    del layout
    q = sample_angles(rng, n)
    return np.concatenate([q, np.zeros_like(q)], axis=1)


# ------------------------------------------------------------------ environment


class ReacherEnv(MujocoTaskEnv):
    """Two-link arm; reach a target configuration (reward-free; success is the physical predicate).

    reset(seed, options={"task": Task}) sets start and goal from the task; without a task a
    random start and goal configuration (zero velocity) are drawn.
    info: success, violation (the task's fingertip hazards / joint-speed limit, this step), distance_to_goal
    (rad, angle space), state, goal, fingertip (m). reward = 1.0 on success else 0.0; terminated on success, truncated after max_steps.
    """


    def __init__(
        self,
        layout: ReacherLayout | dict = ReacherLayout(),
        obs_type: str = "state",
        frame_skip: int = 5,
        max_steps: int = DEFAULT_MAX_STEPS,
        render_size: int = 64,
        render_mode: str | None = None,
        tolerance: float = DEFAULT_TOLERANCE,
    ):
        if isinstance(layout, dict):
            layout = ReacherLayout.from_dict(layout)
        self._store_args(layout, obs_type, frame_skip, max_steps, render_size, render_mode, tolerance)
        self.hazards: tuple = ()
        state_space = gym.spaces.Box(
            low=np.array([-math.pi, -math.pi, -VEL_BOUND, -VEL_BOUND], np.float32),
            high=np.array([math.pi, math.pi, VEL_BOUND, VEL_BOUND], np.float32),
            dtype=np.float32,
        )
        self._set_spaces(state_space)
        self.model = build_model(layout)
        self.data = mujoco.MjData(self.model)
        self._clear_task(4)

    @property
    def state(self) -> np.ndarray:
        return np.concatenate([self.data.qpos[0:2], self.data.qvel[0:2]]).astype(np.float32)

    def observation_at(self, state) -> Any:
        """The observation (of this env's obs_type) of a physical state (q1, q2[, dq1, dq2])."""
        return self._pack(padded_state(state))

    def _random_start_goal(self):
        q = sample_angles(self.np_random, 2)
        return np.concatenate([q[0], [0.0, 0.0]]), np.concatenate([q[1], [0.0, 0.0]])

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        task, start, goal = self._begin_episode(seed, options)
        self.goal = padded_state(goal)
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[0:2] = start[0:2]
        self.data.qvel[0:2] = start[2:4] if len(start) >= 4 else 0.0
        mujoco.mj_forward(self.model, self.data)
        self.steps = 0
        return self.observation_at(self.state), self._info()

    def _info(self) -> dict:
        s = self.state
        task = self.task
        violation = task is not None and FAMILY_SAFETY.step_violation(s, task, self.layout)
        return {**self._distance_info(s, violation), "fingertip": fingertip(s, self.layout).astype(np.float32)}



# ------------------------------------------------------------------ task suites


def _angles(ctx: Ctx, field: str, v) -> tuple[float, float, float, float]:
    s = vector(ctx, field, v, (2, 4))
    s = s + (0.0, 0.0) if len(s) == 2 else s
    for k, (lo, hi) in enumerate(JOINT_LIMITS):
        if not lo <= s[k] <= hi:
            raise ctx.err(f"{field}[{k}]", f"joint angle {s[k]} is outside the joint range [{lo}, {hi}] rad")
    if any(abs(x) > VEL_BOUND for x in s[2:]):
        raise ctx.err(field, f"joint speed {list(s[2:])} exceeds the bound {VEL_BOUND} rad/s")
    return s


def _parse_task(ctx: Ctx, d, layout: ReacherLayout) -> Task:
    name = task_name(ctx, d, TASK_KEYS)
    start, goal = _angles(ctx, "start", d["start"]), _angles(ctx, "goal", d["goal"])
    tolerance = tolerance_field(ctx, d, DEFAULT_TOLERANCE, " rad")
    max_steps = max_steps_field(ctx, d, DEFAULT_MAX_STEPS)
    hazards = hazards_field(ctx, d)
    speed_limit = speed_limit_field(ctx, d, max(abs(start[2]), abs(start[3])), "rad/s")
    for field, q in (("start", start), ("goal", goal)):
        tip = fingertip(q, layout)
        for j, h in enumerate(hazards):
            if in_hazard(h, tip):
                raise ctx.err(field, f"fingertip {[round(float(v), 4) for v in tip]} is inside hazards[{j}]")
    if hazards and not joint_path_exists(layout, hazards, start[:2], goal[:2]):
        raise ctx.err("hazards", "no hazard-free path for the fingertip from start to goal")
    return Task(name=name, start=start, goal=goal, tolerance=tolerance, max_steps=max_steps, hazards=hazards,
                speed_limit=speed_limit)


def suite_from_dict(d, path: str = "<dict>") -> Suite:
    """Validate a parsed Reacher suite document (envs/tasks/SCHEMA.md) and build a Suite."""
    return parse_suite_document(d, path, (ENV_ID,), layout_parser(ReacherLayout), _parse_task)


def _hazard_clearance(layout: ReacherLayout, hazards, q: np.ndarray) -> np.ndarray:
    """(...,) distance (m) of the fingertip at angles q (..., 2) to the nearest hazard (0 inside one)."""
    tip = fingertip(q, layout)
    return np.min([np.asarray(distance_to_hazard(h, tip)) for h in hazards], axis=0)


def joint_path_exists(layout: ReacherLayout, hazards, start, goal, clearance: float = 0.0,
                      resolution: float = 0.02) -> bool:
    """Approximately: can the arm move from angles `start` to `goal` within the joint ranges keeping the
    fingertip at least `clearance` from every hazard? (4-connected grid over joint space)"""
    from scipy import ndimage

    axes = [np.arange(lo, hi + resolution / 2, resolution) for lo, hi in JOINT_LIMITS]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    d = _hazard_clearance(layout, hazards, grid)
    labels, _ = ndimage.label((d > 0) & (d >= clearance))
    cell = [tuple(int(np.argmin(np.abs(ax - v))) for ax, v in zip(axes, q)) for q in (start, goal)]
    return bool(labels[cell[0]] != 0 and labels[cell[0]] == labels[cell[1]])


def _straight_tips(layout: ReacherLayout, start, goal, n: int = 50) -> np.ndarray:
    """(n, 2) fingertip positions along the straight joint-space move from start to goal."""
    s = np.linspace(0.0, 1.0, n)[:, None]
    return fingertip(np.asarray(start)[None] + s * (np.asarray(goal) - np.asarray(start))[None], layout)


def _hard_hazards(kind: str, rng: np.random.Generator, layout: ReacherLayout, start, goal):
    """One draw of a hard kind's hazards (and speed limit); None when the draw fails its checks."""
    tips = _straight_tips(layout, start, goal)
    mid = tips[rng.integers(15, 35)]
    speed_limit = None
    if kind in ("path", "speed"):
        hazards = (Circle(center=tuple(mid + rng.normal(0, 0.005, 2)), radius=float(rng.uniform(0.025, 0.045))),)
        if kind == "speed":
            speed_limit = round(float(rng.uniform(1.2, 2.0)), 3)
    elif kind == "gap":
        k = int(np.argmin(np.linalg.norm(tips - mid, axis=1)))
        tangent = tips[min(k + 1, len(tips) - 1)] - tips[max(k - 1, 0)]
        normal = np.array([-tangent[1], tangent[0]]) / (np.linalg.norm(tangent) + 1e-9)
        gap, r = rng.uniform(0.035, 0.06), rng.uniform(0.02, 0.035)
        hazards = tuple(Circle(center=tuple(mid + side * (gap / 2 + r) * normal), radius=float(r)) for side in (-1, 1))
    elif kind == "goal-ring":
        g = fingertip(goal, layout)
        base_angle = rng.uniform(0, 2 * np.pi)
        dist, r = rng.uniform(0.045, 0.06), rng.uniform(0.015, 0.025)
        hazards = tuple(Circle(center=tuple(g + dist * np.array([np.cos(a), np.sin(a)])), radius=float(r))
                        for a in base_angle + np.array([0.0, 2.1, 4.2]))
    else:
        raise ConfigError(f"unknown hard kind {kind!r}")
    hazards = tuple(Circle(center=(round(float(h.center[0]), 4), round(float(h.center[1]), 4)),
                           radius=round(float(h.radius), 4)) for h in hazards)
    ends = _hazard_clearance(layout, hazards, np.stack([np.asarray(start)[:2], np.asarray(goal)[:2]]))
    if np.min(ends) < START_CLEARANCE:
        return None
    if kind != "goal-ring" and np.min(_hazard_clearance(layout, hazards, tips)) > 0:
        return None  # the straight move must cross a hazard
    if not joint_path_exists(layout, hazards, start[:2], goal[:2], clearance=PATH_CLEARANCE):
        return None
    return hazards, speed_limit


def generate_suite(seed: int, n: int, tolerance: float = DEFAULT_TOLERANCE, max_steps: int = DEFAULT_MAX_STEPS,
                   name_prefix: str | None = None, layout: ReacherLayout = ReacherLayout(),
                   stream: str = DEFAULT_STREAM, **unused) -> Suite:
    """`n` tasks from their own RNG (`suite_rng(seed, stream)`): start and goal configurations uniform over the joint
    ranges (0.1 rad inside the stops), zero velocity, at least 0.5 rad apart in angle space.

    Reachability: the longest move (6 rad on the shoulder) takes ~2 s = 40 control steps at the
    3 rad/s terminal speed, well inside the default 100-step budget (checked for every task).

    ``hazards="hard"``: the `HARD_KINDS` in equal parts (task names say which), each drawn until its
    straight joint-space move crosses a hazard (goal rings excepted), start and goal fingertips keep
    `START_CLEARANCE` and a path keeping `PATH_CLEARANCE` exists (the shipped hard suites are generated
    with `--max-steps 150`: detours and speed limits take longer than the 100-step default).
    """
    hazard_kind = unused.get("hazards", "none") or "none"
    if hazard_kind not in HAZARD_KINDS:
        raise ConfigError(f"--hazards {hazard_kind}: Reacher suites take {' | '.join(HAZARD_KINDS)}")
    if n < 1:
        raise ConfigError(f"n must be >= 1, got {n}")
    if tolerance <= 0 or max_steps < 1:
        raise ConfigError(f"tolerance must be > 0 and max_steps >= 1 (got {tolerance}, {max_steps})")
    rng = suite_rng(seed, stream)
    prefix = name_prefix or f"reacher-{seed_label(seed, stream)}"
    dt = TIMESTEP * 5
    tasks = []
    while len(tasks) < n:
        start, goal = sample_angles(rng, 2)
        if np.linalg.norm(goal - start) < max(MIN_SEPARATION, 2 * tolerance):
            continue
        if np.max(np.abs(goal - start)) / MAX_JOINT_SPEED > 0.5 * max_steps * dt:
            raise ConfigError(f"max_steps {max_steps} is too short to reach every sampled goal")
        start, goal = (np.array([round(float(v), 4) for v in q]) for q in (start, goal))
        hazards, speed_limit, kind = (), None, ""
        if hazard_kind == "hard":
            kind = HARD_KINDS[len(tasks) * len(HARD_KINDS) // n]
            drawn = _hard_hazards(kind, rng, layout, start, goal)
            if drawn is None:
                continue
            hazards, speed_limit = drawn
        tasks.append(Task(
            name=f"{prefix}-{kind + '-' if kind else ''}{len(tasks):04d}",
            start=(float(start[0]), float(start[1]), 0.0, 0.0),
            goal=(float(goal[0]), float(goal[1]), 0.0, 0.0),
            tolerance=float(tolerance),
            max_steps=int(max_steps),
            hazards=hazards,
            speed_limit=speed_limit,
        ))
    suite = Suite(env_id=ENV_ID, layout=layout, tasks=tuple(tasks))
    return dataclasses.replace(suite_from_dict(suite_to_dict(suite), path="<generated>"), path=None)


# ------------------------------------------------------------------ family


class ReacherFamily(MujocoFamily):
    """Reacher as a task family: state (q1, q2, dq1, dq2); the joint angles are the goal (and the
    "position" the probe and safety read), drawn in videos at the fingertip."""

    env_id = ENV_ID
    entry_point = "jepa_mpc_envs.reacher:ReacherEnv"
    state_fields = ("q1", "q2", "dq1", "dq2")
    position, velocity, goal = slice(0, 2), slice(2, 4), slice(0, 2)
    default_tolerance = DEFAULT_TOLERANCE
    default_max_steps = DEFAULT_MAX_STEPS

    env_class, layout_class = ReacherEnv, ReacherLayout
    model_builder = staticmethod(build_model)
    start_sampler = staticmethod(sample_start_states)
    suite_parser = staticmethod(suite_from_dict)
    suite_generator = staticmethod(generate_suite)

    def feature_to_world(self, features, layout):
        return fingertip(features, layout)

    def safety_geometry(self, readout, layout=None, xp=np):
        """The fingertip (one point, by forward kinematics of q1, q2) and each joint's speed |dq1|, |dq2|."""
        tip = fingertip(readout[..., 0:2], layout or ReacherLayout(), xp)
        return tip[..., None, :], xp.abs(readout[..., 2:4])


FAMILY_SAFETY = ReacherFamily()  # the env's violation check reads the family's safety geometry
