"""Task suites: the framework every family shares (data, not code).

A suite file is JSON: ``{"schema_version": 1, "env_id": ..., "layout": {...}, "tasks": [...]}``; the
family named by ``env_id`` parses its layout and tasks (envs/registry.py `load_suite` reads a file and
dispatches on its ``env_id``). This module holds what every family's parser uses:

* `Task` / `Suite`: the parsed records (a family may subclass `Task`, e.g. Push-T's angle tolerance);
* `Ctx`, `number`, `vector`, `check_keys`, `task_name`, `tolerance_field`, `max_steps_field`,
  `hazards_field`, `hazard_field`, `box_field`, `speed_limit_field`, `layout_parser`: checks that raise a one-line `TaskFileError`
  naming the file, the task index and the field;
* `parse_suite_document`: the skeleton (root keys, schema version, env id, layout, task list, unique
  names) around a family's `parse_layout` / `parse_task`;
* `suite_to_dict` / `save_suite` (atomic) / `shipped_suite_path` (the suites shipped in envs/tasks/);
* `suite_rng`: the task RNG of every family's generator, one seed stream per purpose (`STREAMS`).

Seed streams. Collection draws chunk i of a dataset from ``np.random.default_rng([seed, i])``. A
``SeedSequence`` reads a short entropy list as if padded with zeros to four words, so the plain
``default_rng(seed)`` that suites used before is ``default_rng([seed, 0])``: chunk 0 of the
collection with the same seed (``tworoom_layouts_train.json``, seed 0, holds the rooms of training
episodes 0-19 at collect seed 0). Suites are therefore drawn from their own streams:
``SeedSequence(seed, spawn_key=(STREAM_TAGS[stream],))``, whose assembled entropy is five words
``[seed, 0, 0, 0, tag]`` (seed < 2**32) with a tag >= 2**31, which no collection entropy
``[seed, chunk]`` (nor any other list of at most four words the project seeds with) can equal.
"validation" suites are for tuning, "test" suites for reported figures; "legacy" is the plain
``default_rng(seed)`` of the suites shipped before (kept to regenerate them; it shares collection's
stream).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from typing import Any, Sequence

import numpy as np

from .errors import ConfigError, TaskFileError
from .geometry import Box, Circle, Hazard, needs_door_crossing

__all__ = [
    "SCHEMA_VERSION",
    "SHIPPED_DIR",
    "Task",
    "Suite",
    "Ctx",
    "number",
    "vector",
    "check_keys",
    "task_name",
    "tolerance_field",
    "max_steps_field",
    "hazards_field",
    "hazard_field",
    "box_field",
    "speed_limit_field",
    "layout_parser",
    "parse_suite_document",
    "read_suite_document",
    "suite_to_dict",
    "save_suite",
    "shipped_suite_path",
    "round4",
    "STREAMS",
    "STREAM_TAGS",
    "DEFAULT_STREAM",
    "LEGACY_STREAM",
    "check_stream",
    "suite_rng",
    "seed_label",
]

SCHEMA_VERSION = 1
SHIPPED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tasks")

STREAM_TAGS = {"validation": 0x56414C49, "test": 0x54455354}  # ASCII "VALI", "TEST": spawn-key words >= 2**31
LEGACY_STREAM = "legacy"
STREAMS = (*STREAM_TAGS, LEGACY_STREAM)
DEFAULT_STREAM = "validation"


def check_stream(stream: str) -> None:
    """ConfigError unless `stream` is one of `STREAMS`."""
    if stream not in STREAMS:
        raise ConfigError(f"--stream {stream}: expected one of {', '.join(STREAMS)}")


def suite_rng(seed: int, stream: str = DEFAULT_STREAM) -> np.random.Generator:
    """The task RNG of a suite generator: `seed` in the suite stream `stream` (module docstring), never
    a collection chunk's generator; "legacy": the plain ``default_rng(seed)`` of the pre-stream suites."""
    check_stream(stream)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ConfigError(f"--seed {seed}: a suite seed is an integer in [0, 2**32)")
    if stream == LEGACY_STREAM:
        return np.random.default_rng(seed)
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(STREAM_TAGS[stream],)))


def seed_label(seed: int, stream: str) -> str:
    """The seed part of generated task names: "s<seed>" (legacy, as before) or "<stream>-s<seed>"."""
    return f"s{seed}" if stream == LEGACY_STREAM else f"{stream}-s{seed}"


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
    layout: Any
    tasks: tuple[Task, ...]
    path: str | None = None
    generator: dict | None = dataclasses.field(default=None, compare=False)
    """How `jepa-mpc tasks` made the file (its ``generator`` object: env, seed, n, stream, split,
    hazards, tolerance, max_steps), so it can be regenerated; None for a hand-written suite."""

    def __len__(self) -> int:
        return len(self.tasks)

    def door_crossing_fraction(self) -> float:
        """Fraction of tasks whose goal is in the other room (TwoRoom layouts)."""
        if not self.tasks:
            return 0.0
        return float(np.mean([needs_door_crossing(self.layout, t.start, t.goal) for t in self.tasks]))


def shipped_suite_path(name: str) -> str:
    """Path of a suite shipped with the package, e.g. "tworoom_test" or "tworoom_hazards_val"."""
    base = name if name.endswith(".json") else name + ".json"
    return os.path.join(SHIPPED_DIR, base)


# ------------------------------------------------------------------ parsing helpers (one-line errors)


class Ctx:
    """Builds one-line TaskFileError messages: '<file>: task <i> field '<f>': <msg>'."""

    def __init__(self, path: str, task: int | None = None):
        self.path, self.task = path, task

    def err(self, field: str, msg: str) -> TaskFileError:
        where = f"{self.path}: " + (f"task {self.task} " if self.task is not None else "")
        return TaskFileError(f"{where}field '{field}': {msg}".replace("\n", " "))


def number(ctx: Ctx, field: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ctx.err(field, f"expected a number, got {json.dumps(v)}")
    if not math.isfinite(v):
        raise ctx.err(field, f"must be finite, got {v}")
    return float(v)


def vector(ctx: Ctx, field: str, v, lengths: Sequence[int]) -> tuple[float, ...]:
    if not isinstance(v, list):
        raise ctx.err(field, f"expected a list of {' or '.join(map(str, lengths))} numbers, got {json.dumps(v)}")
    if len(v) not in lengths:
        raise ctx.err(field, f"expected {' or '.join(map(str, lengths))} numbers, got {len(v)}")
    return tuple(number(ctx, f"{field}[{k}]", x) for k, x in enumerate(v))


def check_keys(ctx: Ctx, field: str, d: dict, required: Sequence[str], allowed: Sequence[str]) -> None:
    prefix = f"{field}." if field else ""
    for k in required:
        if k not in d:
            raise ctx.err(prefix + k, "missing key")
    for k in d:
        if k not in allowed:
            raise ctx.err(prefix + str(k), f"unknown key (allowed: {', '.join(allowed)})")


def task_name(ctx: Ctx, d, allowed: Sequence[str]) -> str:
    """Common checks of one task object (an object, start/goal present, known keys); its name."""
    if not isinstance(d, dict):
        raise ctx.err("tasks", f"expected an object, got {json.dumps(d)[:60]}")
    check_keys(ctx, "", d, required=("start", "goal"), allowed=allowed)
    name = d.get("name", f"task-{ctx.task}")
    if not isinstance(name, str) or not name:
        raise ctx.err("name", f"expected a non-empty string, got {json.dumps(name)}")
    return name


def tolerance_field(ctx: Ctx, d: dict, default: float, unit: str = "") -> float:
    """A task's ``tolerance`` (``default`` when absent): a number > 0 (`unit` names it in the error)."""
    tolerance = number(ctx, "tolerance", d.get("tolerance", default))
    if tolerance <= 0:
        raise ctx.err("tolerance", f"must be > 0{unit}, got {tolerance}")
    return tolerance


def max_steps_field(ctx: Ctx, d: dict, default: int) -> int:
    """A task's ``max_steps`` (``default`` when absent): an integer >= 1."""
    max_steps = d.get("max_steps", default)
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ctx.err("max_steps", f"expected an integer >= 1, got {json.dumps(max_steps)}")
    return max_steps


def hazard_field(ctx: Ctx, field: str, h) -> Hazard:
    if not isinstance(h, dict):
        raise ctx.err(field, f"expected an object, got {json.dumps(h)}")
    kind = h.get("type")
    if kind == "circle":
        check_keys(ctx, field, h, required=("type", "center", "radius"), allowed=("type", "center", "radius"))
        center = vector(ctx, f"{field}.center", h["center"], (2,))
        radius = number(ctx, f"{field}.radius", h["radius"])
        if radius <= 0:
            raise ctx.err(f"{field}.radius", f"must be > 0, got {radius}")
        return Circle(center=center, radius=radius)
    if kind == "box":
        check_keys(ctx, field, h, required=("type", "lo", "hi"), allowed=("type", "lo", "hi"))
        return box_field(ctx, field, h)
    raise ctx.err(f"{field}.type", f"expected 'circle' or 'box', got {json.dumps(kind)}")


def box_field(ctx: Ctx, field: str, h: dict) -> Box:
    lo = vector(ctx, f"{field}.lo", h["lo"], (2,))
    hi = vector(ctx, f"{field}.hi", h["hi"], (2,))
    if not (lo[0] < hi[0] and lo[1] < hi[1]):
        raise ctx.err(f"{field}.lo", f"must be < hi in both coordinates, got lo={list(lo)} hi={list(hi)}")
    return Box(lo=lo, hi=hi)


def hazards_field(ctx: Ctx, d: dict) -> tuple[Hazard, ...]:
    """A task's optional ``"hazards"`` list (default []) of keep-out circles and boxes."""
    raw = d.get("hazards", [])
    if not isinstance(raw, list):
        raise ctx.err("hazards", f"expected a list, got {json.dumps(raw)}")
    return tuple(hazard_field(ctx, f"hazards[{j}]", h) for j, h in enumerate(raw))


def speed_limit_field(ctx: Ctx, d: dict, start_speed: float, unit: str) -> float | None:
    """A task's optional ``"speed_limit"`` (> 0, in `unit`; None: no limit), which the start's speed
    (`start_speed`, as the family measures it) must respect."""
    limit = d.get("speed_limit")
    if limit is None:
        return None
    limit = number(ctx, "speed_limit", limit)
    if limit <= 0:
        raise ctx.err("speed_limit", f"must be > 0 {unit}, got {limit}")
    if start_speed > limit:
        raise ctx.err("start", f"start speed {start_speed:.3f} {unit} exceeds speed_limit {limit}")
    return limit


def layout_parser(layout_class):
    """The ``parse_layout`` of `parse_suite_document` for a layout dataclass: ``layout_class.from_dict``,
    its ValueError / TypeError as a one-line error on field 'layout'."""

    def parse_layout(ctx: Ctx, raw: dict):
        try:
            return layout_class.from_dict(raw)
        except (ValueError, TypeError) as e:
            raise ctx.err("layout", " ".join(str(e).split())) from None

    return parse_layout


def parse_suite_document(d, path: str, env_ids: Sequence[str], parse_layout, parse_task) -> Suite:
    """The suite-file skeleton every env shares: root keys, schema version, env id, layout, task list
    and unique names. ``parse_layout(ctx, raw_dict)`` and ``parse_task(ctx, raw_task, layout)`` do the
    env's own part and raise ``ctx.err(field, msg)`` (one-line TaskFileError)."""
    ctx = Ctx(path)
    if not isinstance(d, dict):
        raise ctx.err("<root>", "expected a JSON object")
    check_keys(ctx, "", d, required=("env_id", "tasks"),
               allowed=("schema_version", "env_id", "generator", "layout", "tasks"))
    if d.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
        raise ctx.err("schema_version", f"unsupported version {json.dumps(d['schema_version'])} (expected {SCHEMA_VERSION})")
    if d["env_id"] not in env_ids:
        raise ctx.err("env_id", f"unknown env id {json.dumps(d['env_id'])} here (this parser reads {', '.join(env_ids)})")
    raw_layout = d.get("layout", {})
    if not isinstance(raw_layout, dict):
        raise ctx.err("layout", "expected an object")
    layout = parse_layout(ctx, raw_layout)
    generator = d.get("generator")
    if generator is not None and not isinstance(generator, dict):
        raise ctx.err("generator", "expected an object (the `jepa-mpc tasks` options that made the file)")
    tasks = d["tasks"]
    if not isinstance(tasks, list) or not tasks:
        raise ctx.err("tasks", "expected a non-empty list of tasks")
    parsed, names = [], set()
    for i, t in enumerate(tasks):
        task = parse_task(Ctx(path, i), t, layout)
        if task.name in names:
            raise Ctx(path, i).err("name", f"duplicate task name {json.dumps(task.name)}")
        names.add(task.name)
        parsed.append(task)
    return Suite(env_id=d["env_id"], layout=layout, tasks=tuple(parsed), path=path, generator=generator)


# ------------------------------------------------------------------ files


def read_suite_document(path: str | os.PathLike) -> Any:
    """The parsed JSON of a suite file; one-line TaskFileError naming the file when it cannot be read,
    is not UTF-8, is not JSON or nests too deeply to parse."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise TaskFileError(f"{path}: cannot read task file: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TaskFileError(f"{path}: not a UTF-8 text file (byte {e.start}: {raw[e.start:e.start + 1]!r})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise TaskFileError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    except RecursionError:
        raise TaskFileError(f"{path}: invalid JSON: nested too deeply to parse") from None


def suite_to_dict(suite: Suite) -> dict:
    generator = {"generator": dict(suite.generator)} if suite.generator is not None else {}
    return {
        "schema_version": SCHEMA_VERSION,
        "env_id": suite.env_id,
        **generator,
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


def round4(x: float) -> float:
    """Round generated numbers to 4 decimals (readable files; margins are >> 1e-4)."""
    return round(float(x), 4)


