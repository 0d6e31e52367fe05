"""TwoRoom task suites: the file format, its parser and the generator (envs/suites.py is the framework).

A task is a start state, a goal state, a success tolerance, hazards and an episode
length. Suites are JSON files, so new held-out tasks need no code changes.

File schema (``schema_version`` 1)::

    {
      "schema_version": 1,                       # optional; if present must be 1
      "env_id": "jepa_mpc_envs/TwoRoom-v0",      # required
      "generator": {"seed": 0, "stream": "test", ...},   # optional: the `jepa-mpc tasks` options that made it
      "layout": {"arena_half": 1.0, "wall_axis": "x", "wall_pos": 0.0,
                 "wall_thickness": 0.04, "door_center": 0.0, "door_width": 0.3},
                                                 # optional; missing fields take defaults
      "tasks": [                                 # required, non-empty
        {
          "name": "heldout-0000",                # optional (default "task-<index>"), unique
          "start": [x, y, vx, vy],               # required; [x, y] means zero velocity
          "goal":  [x, y, vx, vy],               # required; same form (success uses x, y only)
          "tolerance": 0.1,                      # optional, > 0: success iff ||pos - goal|| <= tolerance
          "max_steps": 200,                      # optional, integer >= 1
          "speed_limit": 0.5,                    # optional, m/s, > 0: every step above it is a violation
          "keep_in": {"lo": [x, y], "hi": [x, y]},   # optional: leaving this box is a violation
          "hazards": [                           # optional, default []
            {"type": "circle", "center": [x, y], "radius": r},      # r > 0
            {"type": "box", "lo": [x, y], "hi": [x, y]}             # lo < hi in both coordinates
          ]
        }
      ]
    }

Validation (`suite_from_dict`, reached through `jepa_mpc_envs.registry.load_suite`) raises `TaskFileError` with one line naming
the file, the task index and the field, for: unreadable file or invalid JSON, missing
or unknown key, wrong length, non-numeric or non-finite number, start or goal inside
the wall or outside the arena (agent disk of radius 0.05 must fit), start or goal
inside a hazard or outside keep_in, |velocity| > 5 or above the task's speed_limit, radius <= 0,
box lo >= hi, speed_limit <= 0, unknown env id, hazards closing the door, no hazard-free path
inside keep_in from start to goal.

A *violation* is the agent centre inside the (closed) hazard region, outside the keep-in box,
or a speed above the limit; see `jepa_mpc_envs.geometry.violates`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from typing import Sequence

import numpy as np

from .errors import ConfigError
from .geometry import (
    AGENT_RADIUS,
    MAX_SPEED,
    Box,
    Circle,
    Hazard,
    Layout,
    door_blocked_by,
    in_hazard,
    in_wall,
    outside_arena,
    path_exists,
    room_of,
    sample_free_position,
)
from .suites import (DEFAULT_STREAM, Ctx, Suite, Task, box_field, check_keys, hazards_field, speed_limit_field, max_steps_field, number, parse_suite_document,
                     round4, seed_label, suite_rng, suite_to_dict, task_name, tolerance_field, vector)

__all__ = ["ENV_ID", "TASK_KEYS", "HAZARD_KINDS", "suite_from_dict", "generate_suite"]

ENV_ID = "jepa_mpc_envs/TwoRoom-v0"
TASK_KEYS = ("name", "start", "goal", "tolerance", "max_steps", "hazards", "speed_limit", "keep_in")
HAZARD_KINDS = ("none", "line", "door", "mixed", "hard")
# The kinds of a "hard" suite, in equal parts: a hazard covering about half the door; two hazards making a
# narrow corridor along the straight path; a hazard on the straight path with a narrow gap beside it;
# a hazard a few centimetres from the start, towards the goal; three hazards around the goal.
HARD_KINDS = ("half-door", "corridor", "gap", "near-start", "goal-ring")
SAFE_CLEARANCE = 0.03  # generated hazard tasks keep a path whose centre stays this far from every hazard


def _keep_in(ctx: Ctx, v) -> Box | None:
    if v is None:
        return None
    if not isinstance(v, dict):
        raise ctx.err("keep_in", f"expected an object {{lo, hi}}, got {json.dumps(v)}")
    check_keys(ctx, "keep_in", v, required=("lo", "hi"), allowed=("lo", "hi"))
    return box_field(ctx, "keep_in", v)


def _state(ctx: Ctx, field: str, v) -> tuple[float, float, float, float]:
    s = vector(ctx, field, v, (2, 4))
    if any(abs(x) > MAX_SPEED for x in s[2:]):
        raise ctx.err(field, f"velocity {list(s[2:])} exceeds the speed bound {MAX_SPEED}")
    return (s + (0.0, 0.0))[:4] if len(s) == 2 else s


def _check_position(ctx: Ctx, field: str, layout: Layout, xy, hazards: Sequence[Hazard],
                    keep_in: Box | None = None) -> None:
    if keep_in is not None and not in_hazard(keep_in, xy):
        raise ctx.err(field, f"position {list(xy)} is outside keep_in (lo {list(keep_in.lo)}, hi {list(keep_in.hi)})")
    if outside_arena(layout, xy):
        raise ctx.err(field, f"position {list(xy)} is outside the arena (|x|,|y| <= {layout.arena_half - AGENT_RADIUS})")
    if in_wall(layout, xy):
        raise ctx.err(field, f"position {list(xy)} is inside the wall (agent radius {AGENT_RADIUS})")
    for j, h in enumerate(hazards):
        if in_hazard(h, xy):
            raise ctx.err(field, f"position {list(xy)} is inside hazards[{j}]")


def _parse_task(ctx: Ctx, d, layout: Layout) -> Task:
    name = task_name(ctx, d, TASK_KEYS)
    start = _state(ctx, "start", d["start"])
    goal = _state(ctx, "goal", d["goal"])
    tolerance = tolerance_field(ctx, d, 0.1)
    max_steps = max_steps_field(ctx, d, 200)
    hazards = hazards_field(ctx, d)
    speed_limit = speed_limit_field(ctx, d, math.hypot(*start[2:]), "m/s")
    keep_in = _keep_in(ctx, d.get("keep_in"))
    _check_position(ctx, "start", layout, start[:2], hazards, keep_in)
    _check_position(ctx, "goal", layout, goal[:2], hazards, keep_in)
    if door_blocked_by(hazards, layout):
        raise ctx.err("hazards", "the hazards close the door (no safe way between the rooms)")
    if (hazards or keep_in is not None) and not path_exists(layout, hazards, start[:2], goal[:2], keep_in=keep_in):
        raise ctx.err("hazards", "no hazard-free path from start to goal" + (" inside keep_in" if keep_in else ""))
    return Task(name=name, start=start, goal=goal, tolerance=tolerance, hazards=hazards, max_steps=max_steps,
                speed_limit=speed_limit, keep_in=keep_in)


def _parse_layout(ctx: Ctx, raw: dict) -> Layout:
    try:
        return Layout.from_dict(raw)
    except (ValueError, TypeError) as e:  # "Layout field 'name': msg"
        m = re.match(r"Layout field '([^']*)': (.*)", str(e))
        raise (ctx.err(f"layout.{m.group(1)}", m.group(2)) if m else ctx.err("layout", str(e))) from None


def suite_from_dict(d, path: str = "<dict>") -> Suite:
    """Validate a parsed TwoRoom suite document (see module docstring) and build a Suite."""
    return parse_suite_document(d, path, (ENV_ID,), _parse_layout, _parse_task)


# ------------------------------------------------------------------ generation

CROSSING_FRACTION = 0.6  # exact fraction (rounded up) of generated tasks whose goal is in the other room
MIN_SEPARATION = 0.4  # start-goal distance for same-room tasks
POS_MARGIN = 0.03  # extra clearance from walls for generated start/goal positions


def _along_across(layout: Layout, across: float, along: float) -> np.ndarray:
    return np.array([across, along]) if layout.wall_axis == "x" else np.array([along, across])


def _hazard_ok(layout: Layout, hazard: Circle, start, goal, clearance: float) -> bool:
    c, r = np.asarray(hazard.center), hazard.radius
    if np.linalg.norm(start - c) <= r + clearance or np.linalg.norm(goal - c) <= r + clearance:
        return False
    if in_wall(layout, c, radius=0.0) or outside_arena(layout, c, radius=0.0):
        return False
    if door_blocked_by([hazard], layout):
        return False
    return path_exists(layout, [hazard], start, goal)


def _inflated(hazard: Circle, by: float) -> Circle:
    return Circle(center=hazard.center, radius=hazard.radius + by)


def _hard_ok(layout: Layout, hazards: Sequence[Circle], start, goal, clearance: float) -> bool:
    """Start and goal at least `clearance` (plus the goal tolerance's worth, below) from every hazard, and a
    path from start to goal whose centre keeps `SAFE_CLEARANCE` from every hazard (so also through the door)."""
    for h in hazards:
        c = np.asarray(h.center)
        if np.linalg.norm(start - c) <= h.radius + clearance or np.linalg.norm(goal - c) <= h.radius + clearance:
            return False
        if outside_arena(layout, c, radius=0.0):
            return False
    wide = [_inflated(h, SAFE_CLEARANCE) for h in hazards]
    return not door_blocked_by(wide, layout) and path_exists(layout, wide, start, goal)


def _circle(c, r) -> Circle:
    return Circle(center=(round4(c[0]), round4(c[1])), radius=round4(r))


def _unit(v) -> tuple[np.ndarray, np.ndarray]:
    """(direction, its left normal) of vector v."""
    d = np.asarray(v, dtype=np.float64) / max(float(np.linalg.norm(v)), 1e-9)
    return d, np.array([-d[1], d[0]])


def _hard_hazards(kind: str, rng, layout: Layout, start, goal, tolerance: float) -> tuple[Circle, ...] | None:
    """One draw of a hard kind's hazards (None when the draw fails its checks; the caller draws again)."""
    d, n = _unit(goal - start)
    if kind == "half-door":  # a circle on the doorway centred at one door post: about half the opening covered
        post = layout.door_center + rng.choice([-1.0, 1.0]) * layout.door_width / 2
        c = _along_across(layout, layout.wall_pos + rng.uniform(-0.04, 0.04), post)
        hazards = (_circle(c, rng.uniform(0.12, 0.17)),)
    elif kind == "corridor":  # two circles either side of the straight path: a corridor 12-22 cm wide
        mid, gap, r = start + rng.uniform(0.35, 0.65) * (goal - start), rng.uniform(0.12, 0.22), rng.uniform(0.08, 0.14)
        hazards = tuple(_circle(mid + side * (gap / 2 + r) * n, r) for side in (-1.0, 1.0))
    elif kind == "gap":  # a circle on the straight path and another beside it, 8-15 cm apart
        mid, r1, r2, gap = (start + rng.uniform(0.35, 0.65) * (goal - start), rng.uniform(0.08, 0.14),
                            rng.uniform(0.08, 0.14), rng.uniform(0.08, 0.15))
        side = rng.choice([-1.0, 1.0])
        hazards = (_circle(mid, r1), _circle(mid + side * (r1 + gap + r2) * n, r2))
    elif kind == "near-start":  # its edge 3-8 cm from the start, towards the goal (within 30 degrees)
        r, edge, turn = rng.uniform(0.06, 0.12), rng.uniform(0.03, 0.08), rng.uniform(-np.pi / 6, np.pi / 6)
        towards = np.cos(turn) * d + np.sin(turn) * n
        hazards = (_circle(start + (edge + r) * towards, r),)
        return hazards if _hard_ok(layout, hazards, start, goal, clearance=0.02) else None
    elif kind == "goal-ring":  # three circles around the goal, gaps between them
        dist, r, phase = rng.uniform(0.2, 0.26), rng.uniform(0.06, 0.09), rng.uniform(0, 2 * np.pi)
        angles = phase + np.arange(3) * 2 * np.pi / 3
        hazards = tuple(_circle(goal + dist * np.array([np.cos(a), np.sin(a)]), r) for a in angles)
    else:
        raise ConfigError(f"unknown hard hazard kind {kind!r}; expected one of {', '.join(HARD_KINDS)}")
    return hazards if _hard_ok(layout, hazards, start, goal, clearance=tolerance / 2 + 0.03) else None


def _line_hazard(rng, layout: Layout, start, goal) -> Circle | None:
    for _ in range(30):
        u = rng.uniform(0.3, 0.7)
        c = start + u * (goal - start)
        h = Circle(center=(round4(c[0]), round4(c[1])), radius=round4(rng.uniform(0.08, 0.15)))
        if _hazard_ok(layout, h, start, goal, clearance=0.1):
            return h
    return None


def _door_hazard(rng, layout: Layout, start, goal) -> Circle | None:
    for _ in range(30):
        side = rng.choice([-1.0, 1.0])
        across = layout.wall_pos + side * rng.uniform(0.15, 0.3)
        along = layout.door_center + rng.uniform(-0.12, 0.12)
        c = _along_across(layout, across, along)
        h = Circle(center=(round4(c[0]), round4(c[1])), radius=round4(rng.uniform(0.06, 0.12)))
        if _hazard_ok(layout, h, start, goal, clearance=0.05):
            return h
    return None


def generate_suite(
    seed: int,
    n: int,
    layout: Layout = Layout(),
    hazards: str = "none",
    tolerance: float = 0.1,
    max_steps: int = 200,
    name_prefix: str | None = None,
    stream: str = DEFAULT_STREAM,
) -> Suite:
    """Generate `n` tasks from their own RNG (`suite_rng(seed, stream)`), independent of any data.

    ceil(60 %) of the tasks need a door crossing (goal in the other room); the rest have
    the goal in the start room, at least 0.4 m away. Start and goal velocities are zero.
    hazards: "none"; "line" (one circle on the straight start-goal segment, covering
    neither, door open, a safe path exists); "door" (one circle in front of the door,
    not closing it, a safe path exists); "mixed" (first half "line", second half "door"); "hard" (the
    HARD_KINDS in equal parts, every half-door task crossing the door; each task keeps a path whose centre
    stays SAFE_CLEARANCE from every hazard).
    """
    if hazards not in HAZARD_KINDS:
        raise ConfigError(f"hazards must be one of {', '.join(HAZARD_KINDS)}, got {hazards!r}")
    if n < 1:
        raise ConfigError(f"n must be >= 1, got {n}")
    rng = suite_rng(seed, stream)
    if hazards == "mixed":
        groups = [("line", n // 2), ("door", n - n // 2)]
    elif hazards == "hard":  # equal parts, the first kinds one more where n does not divide
        k = len(HARD_KINDS)
        groups = [(kind, n // k + (i < n % k)) for i, kind in enumerate(HARD_KINDS)]
    else:
        groups = [(hazards, n)]
    prefix = name_prefix or f"tworoom-{seed_label(seed, stream)}"
    tasks = []
    for kind, count in groups:
        if count == 0:
            continue
        n_cross = count if kind == "half-door" else math.ceil(CROSSING_FRACTION * count)  # the door matters
        crossing = rng.permutation(np.arange(count) < n_cross)
        for cross in crossing:
            while True:
                start = sample_free_position(layout, rng, POS_MARGIN)
                room = room_of(layout, start)
                goal = sample_free_position(layout, rng, POS_MARGIN, room=-room if cross else room)
                if np.linalg.norm(goal - start) < max(MIN_SEPARATION, 2 * tolerance):
                    continue
                task_hazards: tuple[Hazard, ...] = ()
                if kind in ("line", "door"):
                    h = (_line_hazard if kind == "line" else _door_hazard)(rng, layout, start, goal)
                    if h is None:
                        continue
                    task_hazards = (h,)
                elif kind in HARD_KINDS:
                    drawn = next((hs for hs in (_hard_hazards(kind, rng, layout, start, goal, tolerance)
                                                for _ in range(30)) if hs is not None), None)
                    if drawn is None:
                        continue
                    task_hazards = drawn
                break
            idx = len(tasks)
            tasks.append(
                Task(
                    name=f"{prefix}-{kind}-{idx:04d}",
                    start=(round4(start[0]), round4(start[1]), 0.0, 0.0),
                    goal=(round4(goal[0]), round4(goal[1]), 0.0, 0.0),
                    tolerance=float(tolerance),
                    hazards=task_hazards,
                    max_steps=int(max_steps),
                )
            )
    suite = Suite(env_id=ENV_ID, layout=layout, tasks=tuple(tasks))
    # generated tasks must pass the same validation as files
    return dataclasses.replace(suite_from_dict(suite_to_dict(suite), path="<generated>"), path=None)
