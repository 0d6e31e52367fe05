"""Task suites for TwoRoom: data, not code.

A task is a start state, a goal state, a success tolerance, hazards and an episode
length. Suites are JSON files, so new held-out tasks need no code changes.

File schema (``schema_version`` 1)::

    {
      "schema_version": 1,                       # optional; if present must be 1
      "env_id": "jepa_mpc_envs/TwoRoom-v0",      # required
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

Validation (`load_suite`) raises `jepa_mpc.errors.TaskFileError` with one line naming
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
import inspect
import json
import math
import os
import re
import tempfile
from typing import Literal, Sequence

import numpy as np

from jepa_mpc.errors import ConfigError, TaskFileError

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
    is_free,
    needs_door_crossing,
    outside_arena,
    path_exists,
    room_of,
)

__all__ = [
    "SCHEMA_VERSION",
    "ENV_IDS",
    "Circle",
    "Box",
    "Hazard",
    "Task",
    "Suite",
    "load_suite",
    "save_suite",
    "suite_to_dict",
    "generate_suite",
    "TasksArgs",
    "tasks_main",
    "shipped_suite_path",
    "any_suite_from_dict",
]

SCHEMA_VERSION = 1
ENV_IDS = ("jepa_mpc_envs/TwoRoom-v0",)
TASK_KEYS = ("name", "start", "goal", "tolerance", "max_steps", "hazards", "speed_limit", "keep_in")
HAZARD_KINDS = ("none", "line", "door", "mixed")
SHIPPED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tasks")


@dataclasses.dataclass(frozen=True)
class Task:
    """One navigation task. start/goal are physical states (x, y, vx, vy)."""

    name: str
    start: tuple[float, float, float, float]
    goal: tuple[float, float, float, float]
    tolerance: float = 0.1
    hazards: tuple[Hazard, ...] = ()
    max_steps: int = 200
    speed_limit: float | None = None
    """m/s; every step above it is a violation (None: no limit)."""
    keep_in: Box | None = None
    """The agent centre must stay in this box (None: the whole arena)."""

    def to_dict(self) -> dict:
        d = {
            "name": self.name,
            "start": [float(v) for v in self.start],
            "goal": [float(v) for v in self.goal],
            "tolerance": float(self.tolerance),
            "max_steps": int(self.max_steps),
            "hazards": [h.to_dict() for h in self.hazards],
        }
        if self.speed_limit is not None:
            d["speed_limit"] = float(self.speed_limit)
        if self.keep_in is not None:
            d["keep_in"] = {"lo": [float(v) for v in self.keep_in.lo], "hi": [float(v) for v in self.keep_in.hi]}
        return d


@dataclasses.dataclass(frozen=True)
class Suite:
    """A list of tasks for one environment and layout; `path` is where it was loaded from."""

    env_id: str
    layout: Layout
    tasks: tuple[Task, ...]
    path: str | None = None

    def __len__(self) -> int:
        return len(self.tasks)

    def door_crossing_fraction(self) -> float:
        if not self.tasks:
            return 0.0
        return float(np.mean([needs_door_crossing(self.layout, t.start, t.goal) for t in self.tasks]))


def shipped_suite_path(name: str) -> str:
    """Path of a suite shipped with the package, e.g. "tworoom_heldout" or "tworoom_hazards"."""
    base = name if name.endswith(".json") else name + ".json"
    return os.path.join(SHIPPED_DIR, base)


# ------------------------------------------------------------------ loading / validation


class _Ctx:
    """Builds one-line TaskFileError messages: '<file>: task <i> field '<f>': <msg>'."""

    def __init__(self, path: str, task: int | None = None):
        self.path, self.task = path, task

    def err(self, field: str, msg: str) -> TaskFileError:
        where = f"{self.path}: " + (f"task {self.task} " if self.task is not None else "")
        return TaskFileError(f"{where}field '{field}': {msg}".replace("\n", " "))


def _number(ctx: _Ctx, field: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ctx.err(field, f"expected a number, got {json.dumps(v)}")
    if not math.isfinite(v):
        raise ctx.err(field, f"must be finite, got {v}")
    return float(v)


def _vector(ctx: _Ctx, field: str, v, lengths: Sequence[int]) -> tuple[float, ...]:
    if not isinstance(v, list):
        raise ctx.err(field, f"expected a list of {' or '.join(map(str, lengths))} numbers, got {json.dumps(v)}")
    if len(v) not in lengths:
        raise ctx.err(field, f"expected {' or '.join(map(str, lengths))} numbers, got {len(v)}")
    return tuple(_number(ctx, f"{field}[{k}]", x) for k, x in enumerate(v))


def _parse_hazard(ctx: _Ctx, field: str, h) -> Hazard:
    if not isinstance(h, dict):
        raise ctx.err(field, f"expected an object, got {json.dumps(h)}")
    kind = h.get("type")
    if kind == "circle":
        _check_keys(ctx, field, h, required=("type", "center", "radius"), allowed=("type", "center", "radius"))
        center = _vector(ctx, f"{field}.center", h["center"], (2,))
        radius = _number(ctx, f"{field}.radius", h["radius"])
        if radius <= 0:
            raise ctx.err(f"{field}.radius", f"must be > 0, got {radius}")
        return Circle(center=center, radius=radius)
    if kind == "box":
        _check_keys(ctx, field, h, required=("type", "lo", "hi"), allowed=("type", "lo", "hi"))
        return _box(ctx, field, h)
    raise ctx.err(f"{field}.type", f"expected 'circle' or 'box', got {json.dumps(kind)}")


def _box(ctx: _Ctx, field: str, h: dict) -> Box:
    lo = _vector(ctx, f"{field}.lo", h["lo"], (2,))
    hi = _vector(ctx, f"{field}.hi", h["hi"], (2,))
    if not (lo[0] < hi[0] and lo[1] < hi[1]):
        raise ctx.err(f"{field}.lo", f"must be < hi in both coordinates, got lo={list(lo)} hi={list(hi)}")
    return Box(lo=lo, hi=hi)


def _keep_in(ctx: _Ctx, v) -> Box | None:
    if v is None:
        return None
    if not isinstance(v, dict):
        raise ctx.err("keep_in", f"expected an object {{lo, hi}}, got {json.dumps(v)}")
    _check_keys(ctx, "keep_in", v, required=("lo", "hi"), allowed=("lo", "hi"))
    return _box(ctx, "keep_in", v)


def _check_keys(ctx: _Ctx, field: str, d: dict, required: Sequence[str], allowed: Sequence[str]) -> None:
    prefix = f"{field}." if field else ""
    for k in required:
        if k not in d:
            raise ctx.err(prefix + k, "missing key")
    for k in d:
        if k not in allowed:
            raise ctx.err(prefix + str(k), f"unknown key (allowed: {', '.join(allowed)})")


def _state(ctx: _Ctx, field: str, v) -> tuple[float, float, float, float]:
    s = _vector(ctx, field, v, (2, 4))
    if any(abs(x) > MAX_SPEED for x in s[2:]):
        raise ctx.err(field, f"velocity {list(s[2:])} exceeds the speed bound {MAX_SPEED}")
    return (s + (0.0, 0.0))[:4] if len(s) == 2 else s


def _check_position(ctx: _Ctx, field: str, layout: Layout, xy, hazards: Sequence[Hazard],
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


def task_name(ctx: _Ctx, d, allowed: Sequence[str]) -> str:
    """Common checks of one task object (an object, start/goal present, known keys); its name."""
    if not isinstance(d, dict):
        raise ctx.err("tasks", f"expected an object, got {json.dumps(d)[:60]}")
    _check_keys(ctx, "", d, required=("start", "goal"), allowed=allowed)
    name = d.get("name", f"task-{ctx.task}")
    if not isinstance(name, str) or not name:
        raise ctx.err("name", f"expected a non-empty string, got {json.dumps(name)}")
    return name


def _parse_task(ctx: _Ctx, d, layout: Layout) -> Task:
    name = task_name(ctx, d, TASK_KEYS)
    start = _state(ctx, "start", d["start"])
    goal = _state(ctx, "goal", d["goal"])
    tolerance = _number(ctx, "tolerance", d.get("tolerance", 0.1))
    if tolerance <= 0:
        raise ctx.err("tolerance", f"must be > 0, got {tolerance}")
    max_steps = d.get("max_steps", 200)
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ctx.err("max_steps", f"expected an integer >= 1, got {json.dumps(max_steps)}")
    raw_h = d.get("hazards", [])
    if not isinstance(raw_h, list):
        raise ctx.err("hazards", f"expected a list, got {json.dumps(raw_h)}")
    hazards = tuple(_parse_hazard(ctx, f"hazards[{j}]", h) for j, h in enumerate(raw_h))
    speed_limit = d.get("speed_limit")
    if speed_limit is not None:
        speed_limit = _number(ctx, "speed_limit", speed_limit)
        if speed_limit <= 0:
            raise ctx.err("speed_limit", f"must be > 0 m/s, got {speed_limit}")
        if math.hypot(*start[2:]) > speed_limit:
            raise ctx.err("start", f"start speed {math.hypot(*start[2:]):.3f} m/s exceeds speed_limit {speed_limit}")
    keep_in = _keep_in(ctx, d.get("keep_in"))
    _check_position(ctx, "start", layout, start[:2], hazards, keep_in)
    _check_position(ctx, "goal", layout, goal[:2], hazards, keep_in)
    if door_blocked_by(hazards, layout):
        raise ctx.err("hazards", "the hazards close the door (no safe way between the rooms)")
    if (hazards or keep_in is not None) and not path_exists(layout, hazards, start[:2], goal[:2], keep_in=keep_in):
        raise ctx.err("hazards", "no hazard-free path from start to goal" + (" inside keep_in" if keep_in else ""))
    return Task(name=name, start=start, goal=goal, tolerance=tolerance, hazards=hazards, max_steps=max_steps,
                speed_limit=speed_limit, keep_in=keep_in)


def parse_suite_document(d, path: str, env_ids: Sequence[str], parse_layout, parse_task) -> Suite:
    """The suite-file skeleton every env shares: root keys, schema version, env id, layout, task list
    and unique names. ``parse_layout(ctx, raw_dict)`` and ``parse_task(ctx, raw_task, layout)`` do the
    env's own part and raise ``ctx.err(field, msg)`` (one-line TaskFileError)."""
    ctx = _Ctx(path)
    if not isinstance(d, dict):
        raise ctx.err("<root>", "expected a JSON object")
    _check_keys(ctx, "", d, required=("env_id", "tasks"), allowed=("schema_version", "env_id", "layout", "tasks"))
    if d.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
        raise ctx.err("schema_version", f"unsupported version {json.dumps(d['schema_version'])} (expected {SCHEMA_VERSION})")
    if d["env_id"] not in env_ids:
        from .registry import ENV_IDS as KNOWN

        raise ctx.err("env_id", f"unknown env id {json.dumps(d['env_id'])} here (this parser reads "
                                f"{', '.join(env_ids)}; known: {', '.join(KNOWN)})")
    raw_layout = d.get("layout", {})
    if not isinstance(raw_layout, dict):
        raise ctx.err("layout", "expected an object")
    layout = parse_layout(ctx, raw_layout)
    tasks = d["tasks"]
    if not isinstance(tasks, list) or not tasks:
        raise ctx.err("tasks", "expected a non-empty list of tasks")
    parsed, names = [], set()
    for i, t in enumerate(tasks):
        task = parse_task(_Ctx(path, i), t, layout)
        if task.name in names:
            raise _Ctx(path, i).err("name", f"duplicate task name {json.dumps(task.name)}")
        names.add(task.name)
        parsed.append(task)
    return Suite(env_id=d["env_id"], layout=layout, tasks=tuple(parsed), path=path)


def _parse_layout(ctx: _Ctx, raw: dict) -> Layout:
    try:
        return Layout.from_dict(raw)
    except (ValueError, TypeError) as e:  # "Layout field 'name': msg"
        m = re.match(r"Layout field '([^']*)': (.*)", str(e))
        raise (ctx.err(f"layout.{m.group(1)}", m.group(2)) if m else ctx.err("layout", str(e))) from None


def suite_from_dict(d, path: str = "<dict>") -> Suite:
    """Validate a parsed TwoRoom suite document (see module docstring) and build a Suite."""
    return parse_suite_document(d, path, ENV_IDS, _parse_layout, _parse_task)


def load_suite(path: str | os.PathLike) -> Suite:
    """Load and validate a suite file; raises TaskFileError (one line: file, task index, field)."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise TaskFileError(f"{path}: cannot read task file: {e.strerror or e}") from None
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise TaskFileError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    return any_suite_from_dict(d, path)


def any_suite_from_dict(d, path: str = "<dict>") -> Suite:
    """Validate a suite document of any registered env (dispatched on its `env_id`)."""
    from .ogbench_adapter import is_ogbench_id
    from .registry import REGISTRY, get_env_spec

    env_id = d.get("env_id") if isinstance(d, dict) else None
    if isinstance(env_id, str) and env_id not in ENV_IDS and (env_id in REGISTRY or is_ogbench_id(env_id)):
        return get_env_spec(env_id).suite_from_dict(d, path)
    return suite_from_dict(d, path)


def suite_to_dict(suite: Suite) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "env_id": suite.env_id,
        "layout": suite.layout.to_dict(),
        "tasks": [t.to_dict() for t in suite.tasks],
    }


def save_suite(suite: Suite, path: str | os.PathLike) -> str:
    """Write `suite` as JSON atomically (temp file in the same folder + os.replace); returns the path."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=folder)
    try:
        d = suite_to_dict(suite)
        tasks = ",\n  ".join(json.dumps(t) for t in d.pop("tasks"))  # one task per line
        head = json.dumps(d, indent=1)[:-2]
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(f'{head},\n "tasks": [\n  {tasks}\n ]\n}}\n')
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


# ------------------------------------------------------------------ generation

CROSSING_FRACTION = 0.6  # exact fraction (rounded up) of generated tasks whose goal is in the other room
MIN_SEPARATION = 0.4  # start-goal distance for same-room tasks
POS_MARGIN = 0.03  # extra clearance from walls for generated start/goal positions


def _r(x: float) -> float:
    """Round generated numbers to 4 decimals (readable files; margins are >> 1e-4)."""
    return round(float(x), 4)


def _sample_position(rng: np.random.Generator, layout: Layout, room: int | None = None) -> np.ndarray:
    a = layout.arena_half
    while True:
        p = rng.uniform(-a, a, size=2)
        if is_free(layout, p, AGENT_RADIUS + POS_MARGIN) and (room is None or room_of(layout, p) == room):
            return p


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


def _line_hazard(rng, layout: Layout, start, goal) -> Circle | None:
    for _ in range(30):
        u = rng.uniform(0.3, 0.7)
        c = start + u * (goal - start)
        h = Circle(center=(_r(c[0]), _r(c[1])), radius=_r(rng.uniform(0.08, 0.15)))
        if _hazard_ok(layout, h, start, goal, clearance=0.1):
            return h
    return None


def _door_hazard(rng, layout: Layout, start, goal) -> Circle | None:
    for _ in range(30):
        side = rng.choice([-1.0, 1.0])
        across = layout.wall_pos + side * rng.uniform(0.15, 0.3)
        along = layout.door_center + rng.uniform(-0.12, 0.12)
        c = _along_across(layout, across, along)
        h = Circle(center=(_r(c[0]), _r(c[1])), radius=_r(rng.uniform(0.06, 0.12)))
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
) -> Suite:
    """Generate `n` tasks from their own RNG (numpy, `seed`), independent of any data.

    ceil(60 %) of the tasks need a door crossing (goal in the other room); the rest have
    the goal in the start room, at least 0.4 m away. Start and goal velocities are zero.
    hazards: "none"; "line" (one circle on the straight start-goal segment, covering
    neither, door open, a safe path exists); "door" (one circle in front of the door,
    not closing it, a safe path exists); "mixed" (first half "line", second half "door").
    """
    if hazards not in HAZARD_KINDS:
        raise ConfigError(f"hazards must be one of {', '.join(HAZARD_KINDS)}, got {hazards!r}")
    if n < 1:
        raise ConfigError(f"n must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    if hazards == "mixed":
        groups = [("line", n // 2), ("door", n - n // 2)]
    else:
        groups = [(hazards, n)]
    prefix = name_prefix or f"tworoom-s{seed}"
    tasks = []
    for kind, count in groups:
        if count == 0:
            continue
        n_cross = math.ceil(CROSSING_FRACTION * count)
        crossing = rng.permutation(np.arange(count) < n_cross)
        for cross in crossing:
            while True:
                start = _sample_position(rng, layout)
                room = room_of(layout, start)
                goal = _sample_position(rng, layout, room=-room if cross else room)
                if np.linalg.norm(goal - start) < max(MIN_SEPARATION, 2 * tolerance):
                    continue
                task_hazards: tuple[Hazard, ...] = ()
                if kind in ("line", "door"):
                    h = (_line_hazard if kind == "line" else _door_hazard)(rng, layout, start, goal)
                    if h is None:
                        continue
                    task_hazards = (h,)
                break
            idx = len(tasks)
            tasks.append(
                Task(
                    name=f"{prefix}-{kind}-{idx:04d}",
                    start=(_r(start[0]), _r(start[1]), 0.0, 0.0),
                    goal=(_r(goal[0]), _r(goal[1]), 0.0, 0.0),
                    tolerance=float(tolerance),
                    hazards=task_hazards,
                    max_steps=int(max_steps),
                )
            )
    suite = Suite(env_id=ENV_IDS[0], layout=layout, tasks=tuple(tasks))
    # generated tasks must pass the same validation as files
    return dataclasses.replace(suite_from_dict(suite_to_dict(suite), path="<generated>"), path=None)


# ------------------------------------------------------------------ CLI verb


@dataclasses.dataclass(frozen=True)
class TasksArgs:
    """Generate a task suite file for an env (or validate one with --check)."""

    env: str = ENV_IDS[0]  # env id (jepa_mpc_envs/TwoRoom-v0 | jepa_mpc_envs/Reacher-v0)

    seed: int = 0  # seed of the task RNG (independent of any collected data)
    n: int = 100  # number of tasks
    hazards: Literal["none", "line", "door", "mixed"] = "none"  # hazard placement ("mixed": half line, half door)
    out: str = "tasks.json"  # output suite file (written atomically)
    tolerance: float = 0.0  # success radius around the goal features; 0: the env's default (TwoRoom 0.1 m, Reacher 0.12 rad)
    max_steps: int = 0  # episode length (control steps); 0: the env's default (TwoRoom 200, Reacher 100)
    check: str = ""  # if set: only load and validate this suite file, print its summary
    split: str = ""  # env-specific task split (TwoRoomLayouts: "heldout" rooms, the default, or "train" rooms)


def _summary(suite: Suite, where: str) -> str:
    n_h = sum(len(t.hazards) for t in suite.tasks)
    crossing = f"{suite.door_crossing_fraction():.0%} need a door crossing, " if suite.env_id in ENV_IDS else ""
    return f"{where}: {len(suite)} tasks, {crossing}{n_h} hazards, env {suite.env_id}"


def tasks_main(args: TasksArgs) -> None:
    """CLI `jepa-mpc tasks`: generate + save a suite (or validate --check FILE) and print a summary."""
    if args.check:
        suite = load_suite(args.check)
        print(_summary(suite, f"ok {args.check}"))
        return
    from jepa_mpc.paths import output_file  # the check every verb's output path gets
    from .registry import get_env_spec

    output_file(args.out, "--out")
    spec = get_env_spec(args.env)
    split = {"split": args.split} if args.split else {}
    if split and "split" not in inspect.signature(spec.generate_suite).parameters:
        raise ConfigError(f"--split {args.split}: {args.env} has no task splits")
    suite = spec.generate_suite(args.seed, args.n, hazards=args.hazards,
                                tolerance=args.tolerance or spec.default_tolerance,
                                max_steps=args.max_steps or spec.default_max_steps, **split)
    save_suite(suite, args.out)
    print(_summary(suite, f"wrote {args.out}"))
