"""Experiment files: TOML -> frozen dataclasses, every key checked (one-line errors naming the key).

An experiment is a grid: families x observation types x data sizes x world-model variants x planners x
budgets x goal costs x seeds (see experiments/*.toml and `load_experiment`). Every override table
(collect, train, planner, goal, control) is checked field by field against the config dataclass it
overrides, so a typo or a wrong type is an error at load time, naming the file and the key path::

    experiments/x.toml: planners[2].budgets[0].samples: expected an int >= 1, got "a"

Schema (keys not listed are errors)::

    name = "planners"                  # results/<name>/ (letters, digits, - _ .)
    description = "..."
    seeds = [0, 1, 2]                  # training seed and eval seed of every model row
    episodes = 200                     # first N tasks of each suite (0: all)
    split = "validation"               # or "test": which suite of each family (or a list of both)
    video = 0                          # eval --video N: the first N episodes of every eval to episodes.mp4
    control = {safety = "none"}        # ControlConfig overrides for every eval (not planner/goal/budget)

    [[families]]                       # one per task family
    name = "tworoom"                   # tworoom | reacher | pusht | tworoom-layouts | tworoom-hazards | any
    env = "jepa_mpc_envs/TwoRoom-v0"   # default for the known names above
    obs = ["state"]                    # "state" and/or "pixels"
    preset = "tworoom-state"           # or {state = "...", pixels = "..."}; default "<base>-<obs>"
    data = [50000]                     # reward-free transitions (episodes = data / collect.episode_len)
    collect = {episode_len = 100}      # CollectConfig overrides
    train = {steps = 3000}             # TrainConfig overrides ("reg.kind" or reg = {kind = ...})
    control = {}                       # ControlConfig overrides for this family's evals
    probe = false                      # fit the probe as its own job (automatic with safety/probe goals)
    inspect = false                    # collapse diagnostics -> models/<train job>/inspect.json
    suite_validation = "envs/tasks/tworoom_val.json"   # defaults: envs/tasks/<name>_val.json, _test.json
    suite_test = "envs/tasks/tworoom_test.json"
    goals = ["graph-mixed"]            # the [[goals]] this family is evaluated with (default: all)

    [[models]]                         # world-model variants (default: one, "default")
    name = "sigreg"
    train = {"reg.kind" = "sigreg"}

    [[planners]]                       # default: CEM at its default budget
    name = "cem"                       # label (default: kind)
    kind = "cem"                       # any key of jepa_mpc.planning.PLANNERS
    planner = {elites = 30}            # the planner config's fields
    budgets = ["300x30", {samples = 100, iterations = 10, horizon = 5, label = "small"}]
    control = {}                       # ControlConfig overrides for this planner's evals
    video = 2                          # this planner's evals record N episodes (default: the top-level video)

    [[goals]]                          # default: graph, mixed
    name = "graph-mixed"
    kind = "graph"                     # graph | latent, then its fields: source, mode, nodes, ...
    mode = "mixed"

    [baselines]
    random = true                      # random actions, per family x obs x split x seed
    oracle = {samples = 64, iterations = 4}   # the planner on true dynamics; or true / false
    gcbc = false                       # goal-conditioned behaviour cloning (train --objective gcbc)
"""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal

from jepa_mpc.errors import ConfigError, UserError

OBS_TYPES = ("state", "pixels")
SPLITS = ("validation", "test")
SUITE_SUFFIX = {"validation": "val", "test": "test"}

# name -> (env id, preset base): the families whose env and presets need not be spelled out.
KNOWN_FAMILIES: dict[str, tuple[str, str]] = {
    "tworoom": ("jepa_mpc_envs/TwoRoom-v0", "tworoom"),
    "tworoom-hazards": ("jepa_mpc_envs/TwoRoom-v0", "tworoom"),
    "reacher": ("jepa_mpc_envs/Reacher-v0", "reacher"),
    "pusht": ("jepa_mpc_envs/PushT-v0", "pusht"),
    "tworoom-layouts": ("jepa_mpc_envs/TwoRoomLayouts-v0", "tworoom-layouts"),
}
# Fields set by the experiment's own axes, not by override tables.
COLLECT_AXES = ("out", "env_id", "num_episodes", "pixels")
CONTROL_AXES = ("planner", "goal", "horizon", "samples", "iterations", "seed")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class SpecError(ConfigError):
    """A bad experiment file: one line naming the file and the key path."""


# ----------------------------------------------------------------------------- the spec


@dataclasses.dataclass(frozen=True)
class Budget:
    label: str
    samples: int | None = None
    iterations: int | None = None
    horizon: int | None = None


@dataclasses.dataclass(frozen=True)
class FamilySpec:
    name: str
    env: str
    obs: tuple[str, ...]
    presets: tuple[tuple[str, str], ...]  # (obs, train preset name)
    data: tuple[int, ...]
    collect: tuple[tuple[str, Any], ...]  # CollectConfig overrides (field, value)
    train: tuple[tuple[str, Any], ...]  # TrainConfig overrides (dotted field, value)
    control: tuple[tuple[str, Any], ...]
    probe: bool
    inspect: bool
    suites: tuple[tuple[str, str], ...]  # (split, suite path)
    goals: tuple[str, ...] = ()  # goal names this family is evaluated with (empty: every goal)

    def preset(self, obs: str) -> str:
        return dict(self.presets)[obs]

    def suite(self, split: str) -> str:
        return dict(self.suites)[split]


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    train: tuple[tuple[str, Any], ...] = ()


@dataclasses.dataclass(frozen=True)
class PlannerSpec:
    name: str
    kind: str
    planner: tuple[tuple[str, Any], ...]
    budgets: tuple[Budget, ...]
    control: tuple[tuple[str, Any], ...] = ()
    video: int | None = None  # None: the experiment's


@dataclasses.dataclass(frozen=True)
class GoalSpec:
    name: str
    kind: str
    fields: tuple[tuple[str, Any], ...] = ()


@dataclasses.dataclass(frozen=True)
class OracleSpec:
    planner: str = "cem"
    goal: str = ""  # a goal name from [[goals]] ("": the first)
    budget: Budget = Budget("64x4", 64, 4)


@dataclasses.dataclass(frozen=True)
class Baselines:
    random: bool = True
    oracle: OracleSpec | None = OracleSpec()
    gcbc: bool = False
    gcbc_train: tuple[tuple[str, Any], ...] = ()  # flags for `train --objective gcbc`


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    source: str
    seeds: tuple[int, ...]
    episodes: int
    splits: tuple[str, ...]
    video: int
    control: tuple[tuple[str, Any], ...]
    families: tuple[FamilySpec, ...]
    models: tuple[ModelSpec, ...]
    planners: tuple[PlannerSpec, ...]
    goals: tuple[GoalSpec, ...]
    baselines: Baselines


# ----------------------------------------------------------------------------- value checks


def show(value: Any) -> str:
    """A TOML value as the error message shows it (strings quoted)."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


class Reader:
    """Checks values of one file; every error names the file and the key path."""

    def __init__(self, source: str):
        self.source = source

    def error(self, where: str, message: str) -> SpecError:
        return SpecError(f"{self.source}: {where}: {message}")

    def check(self, where: str, fn: Any, *args: Any) -> Any:
        """fn(*args), a ConfigError from it re-raised naming the file and `where`."""
        try:
            return fn(*args)
        except SpecError:
            raise
        except UserError as err:
            raise self.error(where, str(err)) from None

    def table(self, value: Any, where: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict:
        if not isinstance(value, dict):
            raise self.error(where, f"expected a table, got {show(value)}")
        for key in value:
            if key not in allowed:
                raise self.error(_join(where, key), f"unknown key; expected one of: {', '.join(allowed)}")
        for key in required:
            if key not in value:
                raise self.error(_join(where, key), "missing key")
        return value

    def int_(self, value: Any, where: str, minimum: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.error(where, f"expected an int >= {minimum}, got {show(value)}")
        return value

    def str_(self, value: Any, where: str, choices: tuple[str, ...] | None = None) -> str:
        if not isinstance(value, str) or not value:
            raise self.error(where, f"expected a non-empty string, got {show(value)}")
        if choices is not None and value not in choices:
            raise self.error(where, f"expected one of {', '.join(choices)}, got {show(value)}")
        return value

    def name(self, value: Any, where: str) -> str:
        value = self.str_(value, where)
        if not NAME_RE.match(value):
            raise self.error(where, f"expected a name of letters, digits, '-', '_' or '.', got {show(value)}")
        return value

    def bool_(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(where, f"expected true or false, got {show(value)}")
        return value

    def list_(self, value: Any, where: str, nonempty: bool = True) -> list:
        if not isinstance(value, list) or (nonempty and not value):
            raise self.error(where, f"expected a {'non-empty ' if nonempty else ''}list, got {show(value)}")
        return value

    def unique(self, names: list[str], where: str, what: str = "name", key: bool = True) -> None:
        """No two equal entries (`key`: the entries are tables and `what` is their key)."""
        seen = set()
        for i, n in enumerate(names):
            if n in seen:
                raise self.error(f"{where}[{i}]" + (f".{what}" if key else ""), f"duplicate {what} {show(n)}")
            seen.add(n)

    def overrides(self, value: Any, where: str, cls: type, exclude: tuple[str, ...] = ()) -> tuple[tuple[str, Any], ...]:
        """Field overrides of dataclass `cls` (nested tables or dotted keys for nested configs), checked
        against the field types; returns sorted (dotted field, value) pairs, lists made tuples."""
        if not isinstance(value, dict):
            raise self.error(where, f"expected a table of {cls.__name__} fields, got {show(value)}")
        out: dict[str, Any] = {}
        for key, v in value.items():
            self._field(cls, key.split("."), v, _join(where, key), exclude, out, prefix="")
        return tuple(sorted(out.items()))

    def _field(self, cls: type, parts: list[str], value: Any, where: str, exclude: tuple[str, ...], out: dict,
               prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        names = [f.name for f in dataclasses.fields(cls) if f.name not in exclude]
        name = parts[0]
        if name not in names:
            raise self.error(where, f"unknown field of {cls.__name__}; expected one of: {', '.join(names)}")
        hint = hints[name]
        dotted = prefix + name
        if _is_dataclass_type(hint):
            if len(parts) > 1:
                self._field(hint, parts[1:], value, where, (), out, dotted + ".")
                return
            if not isinstance(value, dict):
                raise self.error(where, f"expected a table of {hint.__name__} fields, got {show(value)}")
            for key, v in value.items():
                self._field(hint, key.split("."), v, _join(where, key), (), out, dotted + ".")
            return
        if len(parts) > 1:
            raise self.error(where, f"{dotted} is not a table of fields")
        out[dotted] = self.typed(value, hint, where)

    def typed(self, value: Any, hint: Any, where: str) -> Any:
        """`value` checked against a type annotation (int, float, bool, str, Literal, X | None, tuples)."""
        ok, converted = _convert(value, hint)
        if not ok:
            raise self.error(where, f"expected {_describe(hint)}, got {show(value)}")
        return converted


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _is_dataclass_type(hint: Any) -> bool:
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def _union_args(hint: Any) -> tuple | None:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return None


def _convert(value: Any, hint: Any) -> tuple[bool, Any]:
    if typing.get_origin(hint) is typing.Annotated:
        return _convert(value, typing.get_args(hint)[0])
    args = _union_args(hint)
    if args is not None:
        for arg in args:
            ok, v = _convert(value, arg)
            if ok:
                return True, v
        return False, None
    if hint is type(None):
        return value is None, None  # TOML has no null: never matches
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else None
    if hint is str:
        return isinstance(value, str), value
    if typing.get_origin(hint) is Literal:
        return value in typing.get_args(hint) and isinstance(value, str), value
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, list):
            return False, None
        targs = typing.get_args(hint)
        items = targs[:1] * len(value) if len(targs) == 2 and targs[1] is Ellipsis else targs
        if len(items) != len(value):
            return False, None
        converted = [_convert(v, t) for v, t in zip(value, items)]
        return all(ok for ok, _ in converted), tuple(v for _, v in converted)
    return False, None


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) is typing.Annotated:
        return _describe(typing.get_args(hint)[0])
    args = _union_args(hint)
    if args is not None:
        return " or ".join(_describe(a) for a in args if a is not type(None))
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(hint)))
    if typing.get_origin(hint) is tuple:
        targs = typing.get_args(hint)
        plural = {int: "ints", float: "numbers", str: "strings", bool: "true/false values"}
        return f"a list of {plural.get(targs[0], _describe(targs[0]))}" if targs else "a list"
    return {bool: "true or false", int: "an int", float: "a number", str: "a string"}.get(hint, str(hint))


# ----------------------------------------------------------------------------- sections


TOP_KEYS = ("name", "description", "seeds", "episodes", "split", "video", "control", "families", "models",
            "planners", "goals", "baselines")
FAMILY_KEYS = ("name", "env", "obs", "preset", "data", "collect", "train", "control", "probe", "inspect",
               "suite_validation", "suite_test", "goals")
BUDGET_RE = re.compile(r"^(\d+)x(\d+)(?:x(\d+))?$")


def _control_cls() -> type:
    from jepa_mpc.control import ControlConfig

    return ControlConfig


def read_family(r: Reader, d: Any, where: str) -> FamilySpec:
    from jepa_mpc.config import CollectConfig, TrainConfig, TRAIN_PRESETS

    d = r.table(d, where, FAMILY_KEYS, required=("name",))
    name = r.name(d["name"], f"{where}.name")
    env_default, preset_base = KNOWN_FAMILIES.get(name, (None, name))
    if "env" not in d and env_default is None:
        raise r.error(f"{where}.env", f"missing key (family {name!r} is not one of {', '.join(KNOWN_FAMILIES)})")
    env = r.str_(d.get("env", env_default), f"{where}.env")
    from jepa_mpc_envs.registry import is_known_env_id

    if not is_known_env_id(env):
        raise r.error(f"{where}.env", f"unknown env id {show(env)}")
    obs = tuple(r.str_(o, f"{where}.obs[{i}]", OBS_TYPES) for i, o in enumerate(r.list_(d.get("obs", ["state"]), f"{where}.obs")))
    r.unique(list(obs), f"{where}.obs", "obs type", key=False)
    preset = d.get("preset", {})
    if isinstance(preset, str):
        if len(obs) != 1:
            raise r.error(f"{where}.preset", "a single preset name needs a single obs type; give {state = ..., pixels = ...}")
        preset = {obs[0]: preset}
    r.table(preset, f"{where}.preset", obs)
    presets = []
    for o in obs:
        p = r.str_(preset.get(o, f"{preset_base}-{o}"), f"{where}.preset.{o}")
        if p not in TRAIN_PRESETS:
            raise r.error(f"{where}.preset.{o}", f"unknown train preset {show(p)}; expected one of: {', '.join(TRAIN_PRESETS)}")
        if TRAIN_PRESETS[p].model.obs_key != o:
            raise r.error(f"{where}.preset.{o}", f"preset {p!r} trains on {TRAIN_PRESETS[p].model.obs_key}, not {o}")
        presets.append((o, p))
    data = tuple(r.int_(v, f"{where}.data[{i}]", 1) for i, v in enumerate(r.list_(d.get("data", [50000]), f"{where}.data")))
    r.unique(list(data), f"{where}.data", "data size", key=False)
    collect = r.overrides(d.get("collect", {}), f"{where}.collect", CollectConfig, exclude=COLLECT_AXES)
    episode_len = dict(collect).get("episode_len", CollectConfig.episode_len)
    for i, v in enumerate(data):
        if v % episode_len:
            raise r.error(f"{where}.data[{i}]", f"{v} transitions is not a whole number of episodes of {episode_len} steps (collect.episode_len)")
    from jepa_mpc.data.collect import validate_config

    r.check(f"{where}.collect", validate_config,
            dataclasses.replace(CollectConfig(), env_id=env, num_episodes=max(data) // episode_len, **dict(collect)))
    train = r.overrides(d.get("train", {}), f"{where}.train", TrainConfig)
    control = read_control(r, d.get("control", {}), f"{where}.control")
    suite_base = name.replace("-", "_")
    suites = tuple((s, r.str_(d.get(f"suite_{s}", f"envs/tasks/{suite_base}_{SUITE_SUFFIX[s]}.json"), f"{where}.suite_{s}"))
                   for s in SPLITS)
    goals = tuple(r.str_(g, f"{where}.goals[{i}]") for i, g in enumerate(r.list_(d.get("goals", []), f"{where}.goals", False)))
    return FamilySpec(name=name, env=env, obs=obs, presets=tuple(presets), data=data, collect=collect, train=train,
                      control=control, probe=r.bool_(d.get("probe", False), f"{where}.probe"),
                      inspect=r.bool_(d.get("inspect", False), f"{where}.inspect"), suites=suites, goals=goals)


def read_control(r: Reader, d: Any, where: str) -> tuple[tuple[str, Any], ...]:
    """ControlConfig overrides (not the planner, goal, budget or seed: the grid sets those), validated."""
    from jepa_mpc.control import validate_control

    control = r.overrides(d, where, _control_cls(), exclude=CONTROL_AXES)
    r.check(where, validate_control, _control_cls()(**dict(control)))
    return control


def check_training(r: Reader, families: tuple[FamilySpec, ...], models: tuple[ModelSpec, ...]) -> None:
    """Every family x obs x model trains with a valid config (as `jepa-mpc train` resolves it)."""
    from jepa_mpc.experiment.resolve import flags, resolve_train

    for fi, fam in enumerate(families):
        for _, preset in fam.presets:
            for mi, model in enumerate(models):
                where = f"models[{mi}].train" if model.train else f"families[{fi}].train"
                r.check(where, resolve_train, preset, tuple(flags((dict(fam.train) | dict(model.train)).items())))


def read_budget(r: Reader, b: Any, where: str) -> Budget:
    if isinstance(b, str):
        m = BUDGET_RE.match(b)
        if not m:
            raise r.error(where, f"expected a budget label SAMPLESxITERATIONS[xHORIZON] (e.g. \"300x30\") or a table, got {show(b)}")
        s, it, h = (int(g) if g else None for g in m.groups())
        for key, v in (("samples", s), ("iterations", it), ("horizon", h)):
            if v is not None and v < 1:
                raise r.error(where, f"{key} must be >= 1, got {show(b)}")
        return Budget(b, s, it, h)
    b = r.table(b, where, ("samples", "iterations", "horizon", "label"))
    values = {k: r.int_(b[k], f"{where}.{k}", 1) for k in ("samples", "iterations", "horizon") if k in b}
    label = b.get("label")
    if label is None:
        label = "x".join(str(values[k]) for k in ("samples", "iterations", "horizon") if k in values) or "default"
    return Budget(r.name(label, f"{where}.label"), **values)


def read_planner(r: Reader, d: Any, where: str) -> PlannerSpec:
    from jepa_mpc.planning import PLANNERS, make_config

    d = r.table(d, where, ("name", "kind", "planner", "budgets", "control", "video"), required=("kind",))
    kind = r.str_(d["kind"], f"{where}.kind", tuple(PLANNERS))
    name = r.name(d.get("name", kind), f"{where}.name")
    planner = r.overrides(d.get("planner", {}), f"{where}.planner", PLANNERS[kind].config_cls, exclude=("kind",))
    try:
        make_config(kind, **dict(planner))
    except ConfigError as err:
        raise r.error(f"{where}.planner", str(err)) from None
    budgets = tuple(read_budget(r, b, f"{where}.budgets[{i}]")
                    for i, b in enumerate(r.list_(d.get("budgets", [{}]), f"{where}.budgets")))
    r.unique([b.label for b in budgets], f"{where}.budgets", "label")
    for i, b in enumerate(budgets):
        overrides = {k: v for k, v in (("samples", b.samples), ("iterations", b.iterations), ("horizon", b.horizon)) if v}
        try:
            from jepa_mpc.planning import with_budget

            with_budget(make_config(kind, **dict(planner)), **overrides)
        except ConfigError as err:
            raise r.error(f"{where}.budgets[{i}]", str(err)) from None
    control = read_control(r, d.get("control", {}), f"{where}.control")
    video = r.int_(d["video"], f"{where}.video", 0) if "video" in d else None
    return PlannerSpec(name=name, kind=kind, planner=planner, budgets=budgets, control=control, video=video)


def read_goal(r: Reader, d: Any, where: str) -> GoalSpec:
    from jepa_mpc.goals import GOALS

    if not isinstance(d, dict):
        raise r.error(where, f"expected a table, got {show(d)}")
    if "kind" not in d:
        raise r.error(f"{where}.kind", "missing key")
    kind = r.str_(d["kind"], f"{where}.kind", tuple(GOALS))
    cls = GOALS[kind]
    rest = {k: v for k, v in d.items() if k not in ("name", "kind")}
    fields = r.overrides(rest, where, cls)
    try:
        cls(**dict(fields)).validate()
    except ConfigError as err:
        raise r.error(where, str(err)) from None
    default_name = kind + "".join(f"-{v}" for k, v in fields if k in ("source", "mode"))
    return GoalSpec(name=r.name(d.get("name", default_name), f"{where}.name"), kind=kind, fields=fields)


def read_baselines(r: Reader, d: Any, goals: tuple[GoalSpec, ...]) -> Baselines:
    from jepa_mpc.planning import PLANNERS

    d = r.table(d, "baselines", ("random", "oracle", "gcbc"))
    random = r.bool_(d.get("random", True), "baselines.random")
    oracle_d = d.get("oracle", True)
    oracle: OracleSpec | None = OracleSpec() if oracle_d is True else None
    if isinstance(oracle_d, dict):
        o = r.table(oracle_d, "baselines.oracle", ("planner", "goal", "samples", "iterations", "horizon"))
        planner = r.str_(o.get("planner", "cem"), "baselines.oracle.planner", tuple(PLANNERS))
        goal = r.str_(o.get("goal", goals[0].name), "baselines.oracle.goal", tuple(g.name for g in goals))
        budget = read_budget(r, {k: o[k] for k in ("samples", "iterations", "horizon") if k in o} or {"samples": 64, "iterations": 4},
                             "baselines.oracle")
        oracle = OracleSpec(planner=planner, goal=goal, budget=budget)
    elif not isinstance(oracle_d, bool):
        raise r.error("baselines.oracle", f"expected true, false or a table, got {show(oracle_d)}")
    gcbc_d = d.get("gcbc", False)
    gcbc_train: tuple = ()
    if isinstance(gcbc_d, dict):
        for k, v in gcbc_d.items():  # train --objective gcbc flags (resolved when the job graph is built)
            if k == "objective":
                raise r.error("baselines.gcbc.objective", "is gcbc by definition; leave it out")
            if not isinstance(v, (bool, int, float, str)):
                raise r.error(f"baselines.gcbc.{k}", f"expected a number, string or bool, got {show(v)}")
        gcbc_train, gcbc = tuple(sorted(gcbc_d.items())), True
    else:
        gcbc = r.bool_(gcbc_d, "baselines.gcbc")
    return Baselines(random=random, oracle=oracle, gcbc=gcbc, gcbc_train=gcbc_train)


def read_experiment(d: dict, source: str) -> Experiment:
    r = Reader(source)
    r.table(d, "", TOP_KEYS, required=("name", "families"))
    name = r.name(d["name"], "name")
    description = d.get("description", "")
    if not isinstance(description, str):
        raise r.error("description", f"expected a string, got {show(description)}")
    seeds = tuple(r.int_(s, f"seeds[{i}]", 0) for i, s in enumerate(r.list_(d.get("seeds", [0]), "seeds")))
    r.unique(list(seeds), "seeds", "seed", key=False)
    split = d.get("split", "validation")
    splits = (split,) if isinstance(split, str) else tuple(r.list_(split, "split"))
    splits = tuple(r.str_(s, "split", SPLITS) for s in splits)
    families = tuple(read_family(r, f, f"families[{i}]") for i, f in enumerate(r.list_(d["families"], "families")))
    r.unique([f.name for f in families], "families")
    models = tuple(
        ModelSpec(r.name(r.table(m, f"models[{i}]", ("name", "train"), ("name",))["name"], f"models[{i}].name"),
                  r.overrides(m.get("train", {}), f"models[{i}].train", _train_cls()))
        for i, m in enumerate(r.list_(d.get("models", [{"name": "default"}]), "models")))
    r.unique([m.name for m in models], "models")
    check_training(r, families, models)
    planners = tuple(read_planner(r, p, f"planners[{i}]")
                     for i, p in enumerate(r.list_(d.get("planners", [{"kind": "cem"}]), "planners")))
    r.unique([p.name for p in planners], "planners")
    goals = tuple(read_goal(r, g, f"goals[{i}]") for i, g in enumerate(r.list_(d.get("goals", [{"kind": "graph"}]), "goals")))
    r.unique([g.name for g in goals], "goals")
    for fi, fam in enumerate(families):
        for i, g in enumerate(fam.goals):
            if g not in [goal.name for goal in goals]:
                raise r.error(f"families[{fi}].goals[{i}]", f"no goal named {show(g)}; [[goals]] names: "
                              + ", ".join(goal.name for goal in goals))
    return Experiment(
        name=name, description=description, source=source, seeds=seeds,
        episodes=r.int_(d.get("episodes", 200), "episodes", 0), splits=splits,
        video=r.int_(d.get("video", 0), "video", 0),
        control=read_control(r, d.get("control", {}), "control"),
        families=families, models=models, planners=planners, goals=goals,
        baselines=read_baselines(r, d.get("baselines", {}), goals),
    )


def _train_cls() -> type:
    from jepa_mpc.config import TrainConfig

    return TrainConfig


def load_experiment(path: str | Path) -> Experiment:
    """Read and check an experiment file (SpecError, one line, for anything wrong)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: no such experiment file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(f"{path}: unreadable ({' '.join(str(err).split())})") from None
    try:
        d = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{path}: invalid TOML ({' '.join(str(err).split())})") from None
    return read_experiment(d, str(path))


__all__ = ["Budget", "Baselines", "Experiment", "FamilySpec", "GoalSpec", "ModelSpec", "OracleSpec", "PlannerSpec",
           "SpecError", "load_experiment", "read_experiment", "KNOWN_FAMILIES"]
