"""Push-T: push a T-shaped block to a target pose with a round pusher on a plane.

Our own MJCF (`build_mjcf`). Sizes follow the usual Push-T proportions (gym-pusht / diffusion
policy: a 120 x 30 px bar over a 30 x 90 px stem and a 15 px pusher radius in a 512 px
workspace), expressed here in metres at 1 px = 1 mm: bar 0.12 x 0.03 m, stem 0.03 x 0.09 m,
pusher radius 0.015 m, arena 0.5 m square (`PushTLayout`).

Physics. timestep 0.01 s, frame_skip 5 => control dt 0.05 s.
* Pusher: a sphere (radius 0.015 m, 0.1 kg) on two slide joints (x, y), driven by two velocity
  servos: force = KV * (PUSHER_SPEED * a - v), |force| <= PUSHER_FORCE. The action
  a in [-1, 1]^2 is the *desired pusher velocity* as a fraction of PUSHER_SPEED (0.25 m/s, i.e.
  1.25 cm per control step, 6 cm per 5-step planning block); the servo reaches it within ~1
  physics step, so the pusher is nearly kinematic while staying a dynamic body (it stops at the
  walls and at the block when the block is jammed).
* T block: body frame at the T's centre of mass, planar joints (slide x, slide y, hinge z), 0.1
  kg. Floor friction is modelled as dry joint friction (frictionloss: 0.5 N on each slide, i.e.
  mu = 0.5 at m g = 1 N; 0.015 N m on the hinge) plus light damping, because a body without a
  vertical degree of freedom gets no normal force from the floor. The block stops within about
  one control step after the pusher leaves it (quasi-static pushing, as in Push-T).
* Contacts: pusher <-> T (friction 0.3), T <-> walls, pusher <-> walls. No gravity effects (the
  motion is planar), no floor contacts.

Physical state (float32, 12 fields, `STATE_FIELDS`):
``(bx, by, th, bvx, bvy, bw, px, py, pvx, pvy, cos th, sin th)``
block centre of mass (m), block angle th (rad, the hinge coordinate: continuous, *not* wrapped, so
a trajectory never jumps by 2 pi; th = 0 is the T upright: bar on top, stem pointing to -y), their
rates, pusher centre and velocity, and cos/sin of th (derived, so an encoder sees the angle without
a seam; `state_to_mjstate` ignores them). Goal features (registry convention): the first three
fields ``(bx, by, th)``, followed by their rates.

*Success*: ``||(bx, by) - goal[:2]|| <= tolerance`` (default 0.02 m) **and** the wrapped angle
difference ``|wrap(th - goal_th)| <= angle_tolerance`` (default pi/9 = 20 deg). The thresholds are
those of the DINO-WM Push-T wrapper's ``eval_state`` (block position within 20 px of a 512 px
workspace, angle within pi/9); 20 px is 0.02 m at our 1 mm per px. The pusher's position is not
part of success.

Goals. A goal's block pose was actually reached: `generate_suite` starts from a start state with
the pusher near the T and runs a scripted pushing controller for `GOAL_PUSH_STEPS` control steps;
the block pose it reaches is the goal's. The goal carries the block pose only: its pusher is placed
neutrally, at the start's pusher position (`neutral_goal`), so the goal observation
(``observation_at(goal)``: for pixels the T at the goal pose and the pusher where it started) says
nothing about where a solution leaves the pusher. The start's position was chosen over a fixed
corner because it adds no information the planner does not already have (it sees the start), and a
pusher near a T is what the collected data show (a corner is rarely visited). Success ignores the
pusher. Suites of the "legacy" stream (``pusht_heldout.json``) keep where the scripted pusher ended,
touching the block, which hints at the solution. Reachability within the budget is by construction
(the scripted sequence takes 30 of the default 100 steps) and is checked again with the oracle
planner on a subset (see the module report).

Observations: "state" (12,) float32, "pixels" (S, S, 3) uint8 top-down orthographic image (image
up = +y, right = +x; T grey-blue, pusher red, walls dark), or "both" (Dict).

*Safety* (optional per task): keep-out circles / boxes (m, arena frame) for the block and the pusher,
and a speed limit (m/s) on both. The family's `safety_geometry` reads the block centre, its velocity,
the pusher and its velocity and cos/sin of the angle (`SAFETY_FIELDS`) and gives the T's centre of
mass and 8 points on its centre lines (bar and stem; `t_points`) plus the pusher centre, and the
block's and the pusher's speed. A step violates when one of those points lies in a hazard or a speed
exceeds the limit (a hazard that only grazes the T's edge is not counted; the planner's 3 cm buffer
keeps the T's 1.5 cm half-width clear as well). Hazards are neither simulated nor drawn. ``--hazards hard``
suites keep the scripted push that made each goal clear of the hazards (a safe solution exists by
construction), with discs placed close beside it, corridors and rings around the goal pose.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from typing import Any

import gymnasium as gym
import numpy as np

from .base import MujocoTaskEnv, PixelRenderer, cached_model, mjcf_preamble, mujoco  # noqa: E402  (sets MUJOCO_GL=egl when headless)
from .base import mjcf_number as _f  # noqa: E402

from .errors import ConfigError  # noqa: E402
from .family import MujocoFamily  # noqa: E402

from .geometry import Circle, dataclass_from_dict, in_hazard  # noqa: E402
from .suites import (DEFAULT_STREAM, LEGACY_STREAM, Ctx, Suite, Task, hazards_field, layout_parser,  # noqa: E402
                     max_steps_field, number, parse_suite_document, seed_label, speed_limit_field, suite_rng,
                     suite_to_dict, task_name, tolerance_field, vector)

__all__ = [
    "ENV_ID",
    "STATE_FIELDS",
    "PushTLayout",
    "PushTTask",
    "PushTEnv",
    "PushTRenderer",
    "build_mjcf",
    "build_model",
    "state_to_mjstate",
    "mjstate_to_state",
    "sample_start_states",
    "block_pose_error",
    "suite_from_dict",
    "generate_suite",
    "neutral_goal",
    "scripted_push",
    "PushTFamily",
]

ENV_ID = "jepa_mpc_envs/PushT-v0"
STATE_SPEC = mujoco.mjtState.mjSTATE_FULLPHYSICS
STATE_FIELDS = ("bx", "by", "th", "bvx", "bvy", "bw", "px", "py", "pvx", "pvy", "cos_th", "sin_th")
STATE_DIM = len(STATE_FIELDS)
TIMESTEP = 0.01
FRAME_SKIP = 5
PUSHER_SPEED = 0.25  # m/s at |a| = 1
PUSHER_KV = 10.0  # N s/m velocity-servo gain (time constant m / kv = 0.01 s)
PUSHER_FORCE = 5.0  # N servo force limit
PUSHER_MASS = 0.1
BLOCK_MASS = 0.1
BLOCK_FRICTION = 0.5  # N on each slide joint (mu = 0.5 at m g ~ 1 N)
BLOCK_SPIN_FRICTION = 0.015  # N m on the hinge
BLOCK_DAMPING = 0.2
WALL_THICKNESS = 0.02
HEIGHT = 0.015  # half-height of the T boxes; the pusher sphere's centre is at this height too
DEFAULT_TOLERANCE = 0.02  # m
DEFAULT_ANGLE_TOLERANCE = math.pi / 9  # rad
DEFAULT_MAX_STEPS = 100
GOAL_PUSH_STEPS = 30
MIN_GOAL_SHIFT = 0.04  # generated goals: block moved >= this (m) or turned >= MIN_GOAL_TURN
MIN_GOAL_TURN = 0.5  # rad
MAX_GOAL_SHIFT = 0.15  # generated goals: block moved <= this (m) and turned <= MAX_GOAL_TURN
MAX_GOAL_TURN = 1.2  # rad (~70 deg)
VEL_BOUND = 5.0  # |velocity| bound of observation spaces and task files (m/s, rad/s)
START_MARGIN = 0.1  # block centre this far inside the walls at sampled starts / goals
TASK_KEYS = ("name", "start", "goal", "tolerance", "angle_tolerance", "max_steps", "hazards", "speed_limit")
SAFETY_FIELDS = (0, 1, 3, 4, 6, 7, 8, 9, 10, 11)  # bx, by, bvx, bvy, px, py, pvx, pvy, cos th, sin th
HAZARD_KINDS = ("none", "hard")
HARD_KINDS = ("beside", "corridor", "goal-ring")  # a "hard" suite's kinds, in equal parts
HAZARD_CLEARANCE = 0.015  # m: hazards keep this far from every safety point of the scripted push (its witness)


@dataclasses.dataclass(frozen=True)
class PushTLayout:
    """Arena and T geometry (metres). `arena_half`: half-width of the square inside the walls."""

    arena_half: float = 0.25
    bar_length: float = 0.12
    bar_width: float = 0.03
    stem_length: float = 0.09
    pusher_radius: float = 0.015

    def __post_init__(self):
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0.005 <= v <= 2.0:
                raise ValueError(f"PushTLayout field '{f.name}': must be a number in [0.005, 2.0] m, got {v!r}")
        if self.bar_length + self.stem_length + 2 * START_MARGIN > 2 * self.arena_half + 0.1:
            raise ValueError("PushTLayout: the T does not fit the arena (arena_half too small)")

    @property
    def view_half(self) -> float:
        return self.arena_half + WALL_THICKNESS

    @property
    def com_offset(self) -> float:
        """y of the T's centre of mass in a frame whose origin is the bar's centre (stem towards -y)."""
        a_bar = self.bar_length * self.bar_width
        a_stem = self.bar_width * self.stem_length
        y_stem = -(self.bar_width + self.stem_length) / 2
        return a_stem * y_stem / (a_bar + a_stem)

    def rectangles(self) -> tuple[tuple[float, float, float, float], ...]:
        """The T as two rectangles (cx, cy, half_x, half_y) in the block frame (origin = centre of mass)."""
        c = self.com_offset
        return (
            (0.0, -c, self.bar_length / 2, self.bar_width / 2),
            (0.0, -(self.bar_width + self.stem_length) / 2 - c, self.bar_width / 2, self.stem_length / 2),
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PushTLayout":
        return dataclass_from_dict(cls, d)


@dataclasses.dataclass(frozen=True)
class PushTTask(Task):
    """A Task with an angle tolerance (rad) besides the position tolerance (m), and Push-T defaults."""

    tolerance: float = DEFAULT_TOLERANCE
    max_steps: int = DEFAULT_MAX_STEPS
    angle_tolerance: float = DEFAULT_ANGLE_TOLERANCE

    def to_dict(self) -> dict:
        d = super().to_dict()
        d["angle_tolerance"] = float(self.angle_tolerance)
        return d


def build_mjcf(layout: PushTLayout = PushTLayout()) -> str:
    """MJCF XML string of the Push-T arena (our own model; see the module docstring)."""
    a, w, v, h = layout.arena_half, WALL_THICKNESS, layout.view_half, HEIGHT
    bar, stem = layout.rectangles()
    gain = PUSHER_KV * PUSHER_SPEED
    walls = "\n".join(
        f'    <geom name="wall_{n}" type="box" pos="{_f(x)} {_f(y)} {_f(h)}" size="{_f(sx)} {_f(sy)} {_f(2 * h)}" '
        f'class="wall"/>'
        for n, x, y, sx, sy in (
            ("e", a + w / 2, 0, w / 2, a + w), ("w", -a - w / 2, 0, w / 2, a + w),
            ("n", 0, a + w / 2, a + w, w / 2), ("s", 0, -a - w / 2, a + w, w / 2),
        )
    )
    return mjcf_preamble("pusht", TIMESTEP, numstacks=4, option=' cone="pyramidal"') + f"""  <default>
    <geom contype="0" conaffinity="0" friction="0.3 0.005 0.0001" solref="0.01 1" solimp="0.95 0.99 0.001"/>
    <default class="wall"><geom contype="1" conaffinity="1" rgba="0.25 0.25 0.3 1"/></default>
    <default class="block"><geom type="box" contype="2" conaffinity="1" rgba="0.35 0.45 0.65 1"/></default>
  </default>
  <worldbody>
    <camera name="top" pos="0 0 1" xyaxes="1 0 0 0 1 0" projection="orthographic" fovy="{_f(2 * v)}"/>
    <geom name="floor" type="plane" size="{_f(v)} {_f(v)} 0.1" rgba="0.9 0.9 0.88 1"/>
{walls}
    <body name="block" pos="0 0 {_f(h)}">
      <joint name="block_x" type="slide" axis="1 0 0" frictionloss="{_f(BLOCK_FRICTION)}" damping="{_f(BLOCK_DAMPING)}"/>
      <joint name="block_y" type="slide" axis="0 1 0" frictionloss="{_f(BLOCK_FRICTION)}" damping="{_f(BLOCK_DAMPING)}"/>
      <joint name="block_th" type="hinge" axis="0 0 1" frictionloss="{_f(BLOCK_SPIN_FRICTION)}" damping="0.002"/>
      <geom name="bar" class="block" pos="{_f(bar[0])} {_f(bar[1])} 0" size="{_f(bar[2])} {_f(bar[3])} {_f(h)}"/>
      <geom name="stem" class="block" pos="{_f(stem[0])} {_f(stem[1])} 0" size="{_f(stem[2])} {_f(stem[3])} {_f(h)}"/>
      <inertial pos="0 0 0" mass="{_f(BLOCK_MASS)}" diaginertia="{_f(_t_inertia(layout))} {_f(_t_inertia(layout))} {_f(_t_inertia(layout))}"/>
    </body>
    <body name="pusher" pos="0 0 {_f(h)}">
      <joint name="pusher_x" type="slide" axis="1 0 0"/>
      <joint name="pusher_y" type="slide" axis="0 1 0"/>
      <geom name="pusher" type="sphere" size="{_f(layout.pusher_radius)}" mass="{_f(PUSHER_MASS)}" contype="1"
            conaffinity="2" condim="3" rgba="0.85 0.15 0.15 1"/>
    </body>
  </worldbody>
  <actuator>
    <general name="vx" joint="pusher_x" ctrlrange="-1 1" ctrllimited="true" gainprm="{_f(gain)}"
             biastype="affine" biasprm="0 0 {_f(-PUSHER_KV)}" forcerange="{_f(-PUSHER_FORCE)} {_f(PUSHER_FORCE)}" forcelimited="true"/>
    <general name="vy" joint="pusher_y" ctrlrange="-1 1" ctrllimited="true" gainprm="{_f(gain)}"
             biastype="affine" biasprm="0 0 {_f(-PUSHER_KV)}" forcerange="{_f(-PUSHER_FORCE)} {_f(PUSHER_FORCE)}" forcelimited="true"/>
  </actuator>
</mujoco>
"""


def _t_inertia(layout: PushTLayout) -> float:
    """Moment of inertia (kg m^2) of the T about its centre of mass (vertical axis), uniform density."""
    rects = layout.rectangles()
    areas = [4 * hx * hy for _, _, hx, hy in rects]
    total = 0.0
    for (cx, cy, hx, hy), area in zip(rects, areas):
        m = BLOCK_MASS * area / sum(areas)
        total += m * ((2 * hx) ** 2 + (2 * hy) ** 2) / 12 + m * (cx * cx + cy * cy)
    return total


_MODEL_CACHE: "collections.OrderedDict[PushTLayout, mujoco.MjModel]" = collections.OrderedDict()


def build_model(layout: PushTLayout = PushTLayout(), hazards=()) -> mujoco.MjModel:
    """Compiled MjModel (cached; treat as read-only). `hazards` are not part of it (keep-out regions checked
    from the state, neither simulated nor drawn)."""
    return cached_model(_MODEL_CACHE, layout, build_mjcf)


# ------------------------------------------------------------------ state helpers (batched)


def _offsets(model: mujoco.MjModel) -> tuple[int, int]:
    qp = mujoco.mj_stateSize(model, mujoco.mjtState.mjSTATE_TIME)
    return qp, qp + model.nq


def full_state(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(..., 5) qpos + (..., 5) qvel (block x, y, th, pusher x, y) -> (..., 12) float32 physical states."""
    q, v = np.asarray(q, np.float64), np.asarray(v, np.float64)
    th = q[..., 2:3]
    return np.concatenate([q[..., 0:3], v[..., 0:3], q[..., 3:5], v[..., 3:5], np.cos(th), np.sin(th)],
                          axis=-1).astype(np.float32)


def as_full_state(state) -> np.ndarray:
    """A 5-field pose (bx, by, th, px, py; at rest), 10-field (no cos/sin) or 12-field state as the
    full (12,) float32 physical state (cos/sin recomputed from th)."""
    v = np.asarray(state, dtype=np.float64).reshape(-1)
    if v.size == 5:
        return full_state(v, np.zeros(5))
    if v.size in (10, 12):
        return full_state(np.concatenate([v[0:3], v[6:8]]), np.concatenate([v[3:6], v[8:10]]))
    raise ValueError(f"Push-T states have 5, 10 or 12 fields, got {v.size}")


def state_to_mjstate(model: mujoco.MjModel, states) -> np.ndarray:
    """(N, 12) states -> (N, nstate) mjSTATE_FULLPHYSICS rows (time 0); (12,) -> (nstate,).

    Accepts (N, 5) poses (bx, by, th, px, py) too (zero velocities); cos/sin fields are ignored."""
    s = np.asarray(states, dtype=np.float64)
    single = s.ndim == 1
    s = s.reshape(-1, s.shape[-1])
    if s.shape[-1] == 5:
        s = np.concatenate([s[:, :3], np.zeros((len(s), 3)), s[:, 3:5], np.zeros((len(s), 2))], axis=1)
    if s.shape[-1] < 10:
        raise ValueError(f"Push-T states need 5, 10 or 12 fields, got {s.shape[-1]}")
    template = np.empty(mujoco.mj_stateSize(model, STATE_SPEC))
    mujoco.mj_getState(model, mujoco.MjData(model), template, STATE_SPEC)
    qp, qv = _offsets(model)
    out = np.repeat(template[None], len(s), axis=0)
    out[:, qp : qp + 3], out[:, qp + 3 : qp + 5] = s[:, 0:3], s[:, 6:8]
    out[:, qv : qv + 3], out[:, qv + 3 : qv + 5] = s[:, 3:6], s[:, 8:10]
    return out[0] if single else out


def mjstate_to_state(model: mujoco.MjModel, mjstates) -> np.ndarray:
    """(..., nstate) mjSTATE_FULLPHYSICS arrays -> (..., 12) float32 physical states."""
    m = np.asarray(mjstates)
    qp, qv = _offsets(model)
    return full_state(m[..., qp : qp + 5], m[..., qv : qv + 5])


def wrap_angle(a):
    """Angles wrapped to [-pi, pi)."""
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi


def block_pose_error(states, goal) -> tuple[np.ndarray, np.ndarray]:
    """(position error (m), |wrapped angle error| (rad)) of the block in `states` (..., >=3) vs `goal`."""
    s, g = np.asarray(states, np.float64), np.asarray(goal, np.float64)
    return np.linalg.norm(s[..., :2] - g[..., :2], axis=-1), np.abs(wrap_angle(s[..., 2] - g[..., 2]))


# ------------------------------------------------------------------ geometry (numpy, for sampling)


def _to_block_frame(points, pose) -> np.ndarray:
    """(..., 2) world points -> the block frame of pose (bx, by, th) (broadcast)."""
    p, pose = np.asarray(points, np.float64), np.asarray(pose, np.float64)
    d = p - pose[..., :2]
    c, s = np.cos(pose[..., 2]), np.sin(pose[..., 2])
    return np.stack([c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1]], axis=-1)


def distance_to_t(layout: PushTLayout, points, pose) -> np.ndarray:
    """Distance (m) from world points to the T at `pose` (0 inside)."""
    local = _to_block_frame(points, pose)
    d = []
    for cx, cy, hx, hy in layout.rectangles():
        q = np.abs(local - np.array([cx, cy])) - np.array([hx, hy])
        d.append(np.linalg.norm(np.maximum(q, 0.0), axis=-1))
    return np.minimum(*d)


def t_corners(layout: PushTLayout, pose) -> np.ndarray:
    """(..., 8, 2) world corners of the T's two rectangles at `pose` (..., 3)."""
    pose = np.asarray(pose, np.float64)
    pts = np.array([[cx + sx * hx, cy + sy * hy] for cx, cy, hx, hy in layout.rectangles()
                    for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))])
    c, s = np.cos(pose[..., 2])[..., None], np.sin(pose[..., 2])[..., None]
    x = c * pts[:, 0] - s * pts[:, 1] + pose[..., 0:1]
    y = s * pts[:, 0] + c * pts[:, 1] + pose[..., 1:2]
    return np.stack([x, y], axis=-1)


def t_points(layout: PushTLayout) -> np.ndarray:
    """(9, 2) points in the block frame: its centre of mass, 5 along the bar's centre line (ends included), 3
    down the stem's to its tip: what keep-out terms check of the block (with the pusher centre)."""
    (bx, by, bhx, _), (sx, sy, _, shy) = layout.rectangles()
    bar = [(bx + f * bhx, by) for f in (-1.0, -0.5, 0.0, 0.5, 1.0)]
    stem = [(sx, sy + f * shy) for f in (1.0 / 3.0, -1.0 / 3.0, -1.0)]
    return np.array([(0.0, 0.0)] + bar + stem)


def safety_geometry(readout, layout: PushTLayout = PushTLayout(), xp: Any = np):
    """(..., 10) read-outs (`SAFETY_FIELDS`) -> (points (..., 10, 2): the T's `t_points` and the pusher,
    speeds (..., 2): the block's and the pusher's). cos/sin are normalised (a probe's need not be)."""
    local = t_points(layout)
    c, s = readout[..., 8], readout[..., 9]
    norm = xp.sqrt(c * c + s * s) + 1e-6
    c, s = (c / norm)[..., None], (s / norm)[..., None]
    x = readout[..., 0:1] + c * local[:, 0] - s * local[:, 1]
    y = readout[..., 1:2] + s * local[:, 0] + c * local[:, 1]
    points = xp.concatenate([xp.stack([x, y], axis=-1), readout[..., None, 4:6]], axis=-2)
    speeds = xp.stack([xp.sqrt(xp.sum(xp.square(readout[..., 2:4]), axis=-1) + 1e-12),
                       xp.sqrt(xp.sum(xp.square(readout[..., 6:8]), axis=-1) + 1e-12)], axis=-1)
    return points, speeds


def t_inside_arena(layout: PushTLayout, pose, clearance: float = 0.0) -> np.ndarray:
    """True where every corner of the T is at least `clearance` inside the walls."""
    return np.all(np.abs(t_corners(layout, pose)) <= layout.arena_half - clearance, axis=(-1, -2))


def sample_block_poses(layout: PushTLayout, rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 3) block poses: centre uniform START_MARGIN inside the walls, angle uniform in [-pi, pi)."""
    lim = layout.arena_half - START_MARGIN
    out = np.empty((0, 3))
    while len(out) < n:
        m = 2 * (n - len(out)) + 8
        p = np.column_stack([rng.uniform(-lim, lim, (m, 2)), rng.uniform(-np.pi, np.pi, m)])
        out = np.concatenate([out, p[t_inside_arena(layout, p, 0.01)]])
    return out[:n]


def sample_pushers_near(layout: PushTLayout, rng: np.random.Generator, poses: np.ndarray,
                        gap: tuple[float, float] = (0.002, 0.03)) -> np.ndarray:
    """(n, 2) pusher centres `gap` (m) off the T's boundary at each pose, inside the arena.

    A random boundary direction: a point on a circle around the block centre is pulled in until
    the pusher would touch the T, then pushed out by a random gap."""
    n = len(poses)
    out = np.zeros((n, 2))
    todo = np.arange(n)
    r = layout.pusher_radius
    lim = layout.arena_half - r - 0.002
    while len(todo):
        phi = rng.uniform(-np.pi, np.pi, len(todo))
        g = rng.uniform(*gap, len(todo))
        direction = np.column_stack([np.cos(phi), np.sin(phi)])
        center = poses[todo, :2]
        lo, hi = np.zeros(len(todo)), np.full(len(todo), 0.2)
        for _ in range(30):  # bisection on the ray: distance to the T == r + gap
            mid = (lo + hi) / 2
            d = distance_to_t(layout, center + mid[:, None] * direction, poses[todo])
            inside = d < r + g
            lo, hi = np.where(inside, mid, lo), np.where(inside, hi, mid)
        p = center + hi[:, None] * direction
        ok = np.all(np.abs(p) <= lim, axis=1)
        out[todo[ok]] = p[ok]
        todo = todo[~ok]
    return out


def sample_start_states(layout: PushTLayout, rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 12) collection/task start states: block pose uniform (`sample_block_poses`), pusher
    0.2-3 cm off the T's boundary in a random direction (so exploration touches the block often),
    everything at rest."""
    poses = sample_block_poses(layout, rng, n)
    pushers = sample_pushers_near(layout, rng, poses)
    return full_state(np.concatenate([poses, pushers], axis=1), np.zeros((n, 5)))


# ------------------------------------------------------------------ rendering


class PushTRenderer(PixelRenderer):
    """Top-down renderer: `render_states(states (N, >=8 or 5)) -> (N, S, S, 3) uint8`.

    Sets the block pose (bx, by, th) and the pusher (px, py) from a 12-field state (or a 5-field
    pose vector); velocities are ignored."""

    def qpos(self, state: np.ndarray) -> np.ndarray:
        return state[:5] if state.shape[-1] == 5 else np.concatenate([state[0:3], state[6:8]])


# ------------------------------------------------------------------ environment


class PushTEnv(MujocoTaskEnv):
    """Push a T-shaped block to a target pose (reward-free; success is the physical predicate).

    reset(seed, options={"task": PushTTask}) sets start and goal from the task; without a task a
    random start is drawn and the goal is the block pose a scripted push reaches from it (with the
    start's pusher, `neutral_goal`).
    info: success, violation (the task's hazards / speed limit, this step: `PushTFamily.step_violation`), position_error (block centre, m), angle_error (rad,
    wrapped), distance_to_goal = hypot(position_error, angle_error) (the goal-feature distance
    (bx, by, th) of the registry convention, angle wrapped; mixes m and rad), state, goal. reward = 1.0 on success else 0.0; terminated on
    success, truncated after max_steps.
    """

    renderer_class = PushTRenderer

    def __init__(self, layout: PushTLayout | dict = PushTLayout(), obs_type: str = "state",
                 frame_skip: int = FRAME_SKIP, max_steps: int = DEFAULT_MAX_STEPS, render_size: int = 64,
                 render_mode: str | None = None, tolerance: float = DEFAULT_TOLERANCE,
                 angle_tolerance: float = DEFAULT_ANGLE_TOLERANCE):
        if isinstance(layout, dict):
            layout = PushTLayout.from_dict(layout)
        self._store_args(layout, obs_type, frame_skip, max_steps, render_size, render_mode, tolerance)
        self.hazards: tuple = ()
        self.default_angle_tolerance = float(angle_tolerance)
        a = layout.arena_half
        big = np.float32(1e3)  # the block angle is continuous (not wrapped): bounded only loosely
        lo = np.array([-a, -a, -big, -VEL_BOUND, -VEL_BOUND, -4 * VEL_BOUND, -a, -a, -VEL_BOUND, -VEL_BOUND, -1, -1],
                      np.float32)
        state_space = gym.spaces.Box(low=lo, high=-lo, dtype=np.float32)
        self._set_spaces(state_space)
        self.model = build_model(layout)
        self.data = mujoco.MjData(self.model)
        self._clear_task(STATE_DIM)
        self.angle_tolerance = self.default_angle_tolerance

    @property
    def state(self) -> np.ndarray:
        return full_state(self.data.qpos[0:5], self.data.qvel[0:5])

    def _clip_state(self, s: np.ndarray) -> np.ndarray:
        """The observation-space view of a state (positions inside the arena, speeds bounded)."""
        space = self.observation_space if self.obs_type == "state" else None
        if space is None and self.obs_type == "both":
            space = self.observation_space["state"]
        return s if space is None else np.clip(s, space.low, space.high).astype(np.float32)

    def observation_at(self, state) -> Any:
        """The observation (of this env's obs_type) of a physical state (12 fields, or 10 / 5 without
        the derived cos/sin or velocities)."""
        s = as_full_state(state)
        return self._pack(s, self._clip_state(s))

    def _random_start_goal(self):
        start = sample_start_states(self.layout, self.np_random, 1)[0]
        reached = scripted_push(self.model, start[None], self.np_random, GOAL_PUSH_STEPS, self.frame_skip)[0]
        return start, neutral_goal(start, reached)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        task, start, goal = self._begin_episode(seed, options)
        self.angle_tolerance = float(getattr(task, "angle_tolerance", self.default_angle_tolerance))
        self.goal = as_full_state(goal)
        mujoco.mj_resetData(self.model, self.data)
        mujoco.mj_setState(self.model, self.data, state_to_mjstate(self.model, as_full_state(start)),
                           STATE_SPEC)
        mujoco.mj_forward(self.model, self.data)
        self.steps = 0
        return self.observation_at(self.state), self._info()

    def _info(self) -> dict:
        s = self.state
        dist, ang = block_pose_error(s, self.goal)
        return {
            "success": bool(dist <= self.tolerance and ang <= self.angle_tolerance),
            "violation": self.task is not None and FAMILY_SAFETY.step_violation(s, self.task, self.layout),
            "distance_to_goal": float(math.hypot(dist, ang)),  # goal-feature distance (registry convention)
            "position_error": float(dist),
            "angle_error": float(ang),
            "state": s,
            "goal": self.goal.copy(),
        }



# ------------------------------------------------------------------ scripted pushing (goal generation)


def scripted_push(model: mujoco.MjModel, starts: np.ndarray, rng: np.random.Generator, steps: int = GOAL_PUSH_STEPS,
                  frame_skip: int = FRAME_SKIP, return_actions: bool = False, return_states: bool = False):
    """Closed-loop scripted pushes from `starts` (N, 12): a random contact target on the T (a point
    of one of its rectangles, in the block frame) is chased by the pusher at a random speed fraction
    (0.4-1.0) with a small heading noise; halfway a new target is drawn. Returns the (N, 12) reached
    states (and the (N, steps, 2) actions when `return_actions`, then the (N, steps + 1, 12) states of every
    control step when `return_states`).

    Used to generate reachable goals: the reached state is the goal, so the task can be solved in
    `steps` control steps by construction."""
    data = mujoco.MjData(model)
    layout_rects = _rects_of_model(model)
    n = len(starts)
    finals = np.zeros((n, STATE_DIM), np.float32)
    actions = np.zeros((n, steps, 2), np.float32)
    states = np.zeros((n, steps + 1, STATE_DIM), np.float32)
    for i in range(n):
        mujoco.mj_resetData(model, data)
        mujoco.mj_setState(model, data, state_to_mjstate(model, starts[i]), STATE_SPEC)
        mujoco.mj_forward(model, data)
        speed = rng.uniform(0.4, 1.0)
        target = None
        states[i, 0] = full_state(data.qpos[0:5], data.qvel[0:5])
        for t in range(steps):
            if t % max(1, steps // 2) == 0:
                cx, cy, hx, hy = layout_rects[rng.integers(len(layout_rects))]
                target = np.array([cx + rng.uniform(-hx, hx), cy + rng.uniform(-hy, hy)])
            q = data.qpos
            c, s = math.cos(q[2]), math.sin(q[2])
            world = q[0:2] + np.array([c * target[0] - s * target[1], s * target[0] + c * target[1]])
            d = world - q[3:5]
            a = speed * d / max(np.linalg.norm(d), 1e-6) + rng.normal(0.0, 0.15, 2)
            a = np.clip(a, -1.0, 1.0)
            actions[i, t] = a
            data.ctrl[:] = a
            for _ in range(frame_skip):
                mujoco.mj_step(model, data)
            states[i, t + 1] = full_state(data.qpos[0:5], data.qvel[0:5])
        finals[i] = states[i, -1]
    out = (finals,) + ((actions,) if return_actions else ()) + ((states,) if return_states else ())
    return out if len(out) > 1 else finals


def _rects_of_model(model: mujoco.MjModel) -> list[tuple[float, float, float, float]]:
    out = []
    for name in ("bar", "stem"):
        g = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, name)
        out.append((float(model.geom_pos[g][0]), float(model.geom_pos[g][1]),
                    float(model.geom_size[g][0]), float(model.geom_size[g][1])))
    return out


# ------------------------------------------------------------------ task suites


def _state(ctx: Ctx, field: str, v, layout: PushTLayout) -> tuple[float, ...]:
    """A task state: [bx, by, th, px, py] (at rest) or the 12 physical fields."""
    s = vector(ctx, field, v, (5, 12))
    full = full_state(np.array([*s[0:3], *s[3:5]]), np.zeros(5)) if len(s) == 5 else \
        full_state(np.array([*s[0:3], *s[6:8]]), np.array([*s[3:6], *s[8:10]]))
    pose, pusher = full[:3].astype(np.float64), full[6:8].astype(np.float64)
    if abs(pose[2]) > 100:
        raise ctx.err(f"{field}[2]", f"block angle {pose[2]} rad is implausibly large (|th| <= 100)")
    if not t_inside_arena(layout, pose):
        raise ctx.err(field, f"the T at ({pose[0]}, {pose[1]}, {pose[2]}) sticks out of the arena "
                             f"(half-width {layout.arena_half} m)")
    if np.any(np.abs(pusher) > layout.arena_half - layout.pusher_radius + 1e-3):
        raise ctx.err(field, f"pusher ({pusher[0]}, {pusher[1]}) is outside the arena")
    if distance_to_t(layout, pusher, pose) < layout.pusher_radius - 2e-3:
        raise ctx.err(field, f"pusher ({pusher[0]}, {pusher[1]}) overlaps the T")
    if np.any(np.abs(full[[3, 4, 5, 8, 9]]) > VEL_BOUND):
        raise ctx.err(field, f"a velocity exceeds the bound {VEL_BOUND}")
    return tuple(round(float(x), 6) for x in full)


def _parse_task(ctx: Ctx, d, layout: PushTLayout) -> PushTTask:
    name = task_name(ctx, d, TASK_KEYS)
    start, goal = _state(ctx, "start", d["start"], layout), _state(ctx, "goal", d["goal"], layout)
    tolerance = tolerance_field(ctx, d, DEFAULT_TOLERANCE, " m")
    angle_tolerance = number(ctx, "angle_tolerance", d.get("angle_tolerance", DEFAULT_ANGLE_TOLERANCE))
    if not 0 < angle_tolerance <= math.pi:
        raise ctx.err("angle_tolerance", f"must be in (0, pi] rad, got {angle_tolerance}")
    max_steps = max_steps_field(ctx, d, DEFAULT_MAX_STEPS)
    hazards = hazards_field(ctx, d)
    speed_limit = speed_limit_field(ctx, d, max(math.hypot(*start[3:5]), math.hypot(*start[8:10])), "m/s")
    for field, state in (("start", start), ("goal", goal)):
        points = FAMILY_SAFETY.safety_points(state, layout)
        if field == "goal":
            points = points[:-1]  # a goal says nothing of the pusher (success reads the block pose)
        for j, h in enumerate(hazards):
            if np.any(in_hazard(h, points)):
                raise ctx.err(field, f"the {'block' if np.any(in_hazard(h, points[:len(t_points(layout))])) else 'pusher'} "
                                     f"is inside hazards[{j}]")
    return PushTTask(name=name, start=start, goal=goal, tolerance=tolerance, max_steps=max_steps,
                     angle_tolerance=angle_tolerance, hazards=hazards, speed_limit=speed_limit)


def suite_from_dict(d, path: str = "<dict>") -> Suite:
    """Validate a parsed Push-T suite document (envs/tasks/SCHEMA.md) and build a Suite."""
    return parse_suite_document(d, path, (ENV_ID,), layout_parser(PushTLayout), _parse_task)


def neutral_goal(start: np.ndarray, reached: np.ndarray) -> np.ndarray:
    """The goal state of a task: the block pose the scripted push `reached`, at rest, with the pusher
    where it was at the `start` (the goal carries the block pose only; see the module docstring)."""
    goal = np.asarray(reached, np.float32).copy()
    goal[[3, 4, 5, 8, 9]] = 0.0
    goal[6:8] = np.asarray(start, np.float32)[6:8]
    return goal


def _clear_disc(layout: PushTLayout, witness: np.ndarray, centre: np.ndarray, radius: float) -> Circle | None:
    """The disc, rounded, if it keeps `HAZARD_CLEARANCE` from every witness point (K, 2) and its centre lies
    in the arena; else None."""
    disc = Circle(center=(round(float(centre[0]), 4), round(float(centre[1]), 4)), radius=round(float(radius), 4))
    if np.any(np.abs(disc.center) > layout.arena_half):
        return None
    if np.min(np.linalg.norm(witness - np.asarray(disc.center), axis=1)) < disc.radius + HAZARD_CLEARANCE:
        return None
    return disc


def _beside(layout, rng, witness, points, normal=None, sides=(1.0,)):
    """Discs whose edge is 1.5-3 cm (beyond the clearance) from one of `points` (2,), on the given sides of a
    random direction (or of `normal`); None when a draw fails."""
    for _ in range(20):
        p = points[rng.integers(len(points))]
        d = normal if normal is not None else np.array([np.cos(a := rng.uniform(-np.pi, np.pi)), np.sin(a)])
        r, gap = rng.uniform(0.02, 0.035), rng.uniform(HAZARD_CLEARANCE, 0.03)
        discs = [_clear_disc(layout, witness, p + side * (r + gap) * d, r) for side in sides]
        if all(x is not None for x in discs):
            return tuple(discs)
    return None


def _hard_hazards(kind: str, rng: np.random.Generator, layout: PushTLayout, trajectory: np.ndarray):
    """One draw of a hard kind's discs around a scripted push's (T + 1, 12) states, which they keep clear
    (its witness points: every step's T points and pusher); None when the draw fails."""
    pts = FAMILY_SAFETY.safety_points(trajectory, layout)  # (T + 1, 10, 2)
    witness = pts.reshape(-1, 2)
    t = int(rng.integers(len(trajectory) // 4, 3 * len(trajectory) // 4))
    block_pts = pts[t, :-1]
    if kind == "beside":
        return _beside(layout, rng, witness, block_pts)
    if kind == "corridor":
        motion = trajectory[min(t + 2, len(trajectory) - 1), :2] - trajectory[max(t - 2, 0), :2]
        if np.linalg.norm(motion) < 1e-4:
            return None
        normal = np.array([-motion[1], motion[0]]) / np.linalg.norm(motion)
        return _beside(layout, rng, witness, block_pts, normal, sides=(-1.0, 1.0))
    if kind == "goal-ring":
        goal = trajectory[-1, :2]
        base, discs = rng.uniform(-np.pi, np.pi), []
        for a in base + np.array([0.0, 2.1, 4.2]):
            d, r = np.array([np.cos(a), np.sin(a)]), rng.uniform(0.015, 0.025)
            disc = next((x for dist in np.arange(0.05, 0.16, 0.005)
                         if (x := _clear_disc(layout, witness, goal + dist * d, r)) is not None), None)
            if disc is None:
                return None
            discs.append(disc)
        return tuple(discs)
    raise ConfigError(f"unknown hard kind {kind!r}")


def generate_suite(seed: int, n: int, tolerance: float = DEFAULT_TOLERANCE, max_steps: int = DEFAULT_MAX_STEPS,
                   name_prefix: str | None = None, layout: PushTLayout = PushTLayout(),
                   angle_tolerance: float = DEFAULT_ANGLE_TOLERANCE, push_steps: int = GOAL_PUSH_STEPS,
                   stream: str = DEFAULT_STREAM, **unused) -> Suite:
    """`n` tasks from their own RNG (`suite_rng(seed, stream)`): a start state as for collection
    (block anywhere, pusher next to it, at rest), and as goal the block pose a `scripted_push` of
    `push_steps` control steps reaches from it, kept only when the block moved >= MIN_GOAL_SHIFT or
    turned >= MIN_GOAL_TURN (and at most MAX_GOAL_SHIFT / MAX_GOAL_TURN), stays START_MARGIN / 2
    clear of the walls and the start is not already a success. The goal is at rest (the block stops
    a step after the pusher leaves it; success reads only the pose) and its pusher is the start's
    (`neutral_goal`; a candidate whose goal T would cover it is skipped, ~0.5 %). The "legacy"
    stream is the generator of the pre-stream suites: its goal keeps the pusher where the scripted
    push ended (a hint at the solution).

    ``hazards="hard"``: the `HARD_KINDS` in equal parts (task names say which), discs that keep
    `HAZARD_CLEARANCE` from every T point and pusher position of the scripted push that made the goal
    (so that push is a safe solution) while passing within a few centimetres of it: **beside** (one disc
    1.5-3 cm beyond the clearance from the T mid-push), **corridor** (two, either side of the block's
    motion), **goal-ring** (three around the goal pose, as close as the push allows)."""
    hazard_kind = unused.get("hazards", "none") or "none"
    if hazard_kind not in HAZARD_KINDS:
        raise ConfigError(f"--hazards {hazard_kind}: Push-T suites take {' | '.join(HAZARD_KINDS)}")
    if n < 1:
        raise ConfigError(f"n must be >= 1, got {n}")
    if tolerance <= 0 or max_steps < 1 or not 0 < angle_tolerance <= math.pi:
        raise ConfigError(f"tolerance must be > 0, angle_tolerance in (0, pi], max_steps >= 1 "
                          f"(got {tolerance}, {angle_tolerance}, {max_steps})")
    if max_steps < push_steps:
        raise ConfigError(f"max_steps {max_steps} is shorter than the scripted push ({push_steps} steps) that defines a goal")
    rng = suite_rng(seed, stream)
    model = build_model(layout)
    prefix = name_prefix or f"pusht-{seed_label(seed, stream)}"
    neutral = stream != LEGACY_STREAM
    tasks: list[PushTTask] = []
    while len(tasks) < n:
        starts = sample_start_states(layout, rng, 16)  # fixed batches: the first k tasks do not depend on n
        goals, pushes = scripted_push(model, starts, rng, push_steps, return_states=True)
        for start, goal, push in zip(starts, goals, pushes):
            shift, turn = block_pose_error(goal, start)
            if not (shift >= MIN_GOAL_SHIFT or turn >= MIN_GOAL_TURN) or shift > MAX_GOAL_SHIFT or turn > MAX_GOAL_TURN:
                continue
            if shift <= tolerance and turn <= angle_tolerance:
                continue
            if not t_inside_arena(layout, goal[:3], START_MARGIN / 2):
                continue
            goal = neutral_goal(start, goal) if neutral else goal.copy()
            if distance_to_t(layout, goal[6:8], goal[:3]) < layout.pusher_radius - (0.0 if neutral else 1e-3):
                continue
            goal[[3, 4, 5, 8, 9]] = 0.0
            hazards, kind = (), ""
            if hazard_kind == "hard":
                kind = HARD_KINDS[len(tasks) * len(HARD_KINDS) // n]
                hazards = _hard_hazards(kind, rng, layout, push)
                if hazards is None:
                    continue
            tasks.append(PushTTask(
                name=f"{prefix}-{kind + '-' if kind else ''}{len(tasks):04d}",
                start=tuple(round(float(x), 5) for x in start),
                goal=tuple(round(float(x), 5) for x in goal),
                tolerance=float(tolerance), max_steps=int(max_steps), angle_tolerance=float(angle_tolerance),
                hazards=hazards,
            ))
            if len(tasks) == n:
                break
    suite = Suite(env_id=ENV_ID, layout=layout, tasks=tuple(tasks))
    return dataclasses.replace(suite_from_dict(suite_to_dict(suite), path="<generated>"), path=None)


# ------------------------------------------------------------------ exploration


def toward_block_actions(layout: PushTLayout, rng: np.random.Generator, starts: np.ndarray, actions: np.ndarray,
                         biased_fraction: float = 0.85, bias: tuple[float, float] = (0.6, 1.0),
                         noise_scale: float = 0.4) -> np.ndarray:
    """Reward-free exploration that touches the T often: each episode's exploration-noise actions
    (N, T, 2) are scaled by `noise_scale` and, in a `biased_fraction` of the episodes, a constant
    drift of random strength `bias` toward a random point of the T (seen from the start state) is
    added, re-aimed at a fresh point every 10 control steps from where the open-loop drift would
    have taken the pusher. Open loop (a function of the start states and the noise only), so
    collection stays one batched `mujoco.rollout`. Output in [-1, 1], float32."""
    n, t, _ = actions.shape
    out = np.asarray(actions, np.float64) * noise_scale
    biased = rng.uniform(size=n) < biased_fraction
    strength = rng.uniform(*bias, n) * biased
    poses = np.asarray(starts, np.float64)[:, :3]
    pusher = np.asarray(starts, np.float64)[:, 6:8].copy()
    rects = layout.rectangles()
    step = PUSHER_SPEED * TIMESTEP * FRAME_SKIP
    for k0 in range(0, t, 10):
        which = rng.integers(len(rects), size=n)
        local = np.array([[rects[w][0] + rng.uniform(-rects[w][2], rects[w][2]),
                           rects[w][1] + rng.uniform(-rects[w][3], rects[w][3])] for w in which])
        c, s = np.cos(poses[:, 2]), np.sin(poses[:, 2])
        target = poses[:, :2] + np.stack([c * local[:, 0] - s * local[:, 1], s * local[:, 0] + c * local[:, 1]], 1)
        d = target - pusher
        direction = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-6)
        k1 = min(t, k0 + 10)
        out[:, k0:k1] += (strength[:, None] * direction)[:, None, :]
        pusher = np.clip(pusher + step * (k1 - k0) * strength[:, None] * direction,
                         -layout.arena_half, layout.arena_half)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


# ------------------------------------------------------------------ family


class PushTFamily(MujocoFamily):
    """Push-T as a task family: the goal is the block pose (bx, by, th); the probe reads the block centre and
    velocity, the pusher's and cos/sin of the angle (`SAFETY_FIELDS`), the safety terms the T's centre-line
    points and the pusher (`safety_geometry`)."""

    env_id = ENV_ID
    entry_point = "jepa_mpc_envs.pusht:PushTEnv"
    state_fields = STATE_FIELDS
    position, velocity, goal = slice(0, 2), slice(3, 5), slice(0, 3)
    safety_fields = SAFETY_FIELDS
    default_tolerance = DEFAULT_TOLERANCE  # block position (m); the angle tolerance is per task
    default_max_steps = DEFAULT_MAX_STEPS

    env_class, layout_class, renderer_class = PushTEnv, PushTLayout, PushTRenderer
    model_builder = staticmethod(build_model)
    start_sampler = staticmethod(sample_start_states)
    suite_parser = staticmethod(suite_from_dict)
    suite_generator = staticmethod(generate_suite)
    to_mjstate, from_mjstate = staticmethod(state_to_mjstate), staticmethod(mjstate_to_state)

    def exploration_actions(self, layout, rng, starts, actions):
        return toward_block_actions(layout, rng, starts, actions)

    def safety_geometry(self, readout, layout=None, xp=np):
        return safety_geometry(readout, layout or PushTLayout(), xp)

    def goal_safety_points(self, features, layout=None):
        """Block poses (N, 3) -> the T's points at each (no pusher: a goal does not fix it); positions
        (N, 2) -> the block centre."""
        features = np.asarray(features, np.float64)
        if features.shape[-1] < 3:
            return features[:, None, :2]
        state = full_state(np.concatenate([features[:, :3], np.zeros((len(features), 2))], axis=1), np.zeros((len(features), 5)))
        return self.safety_points(state, layout)[:, :-1]


FAMILY_SAFETY = PushTFamily()  # the env's violation check reads the family's safety geometry
