"""Read result files into tidy rows: an experiment folder (plan.json + evals/ + models/) or a plain
folder of eval results folders (each with results.json), nothing else (no runs/, no data/).

One `Row` per eval job: its axes (family, obs, data, model, seed, agent, planner, budget, goal, suite,
split), the numbers of its results.json, or `ran=False` for a job of plan.json without results.
Every file is strict JSON; a missing folder, a folder without results, a corrupt file or an unknown
schema_version is a one-line `ReportError` naming the file.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from jepa_mpc.errors import UserError

PLAN_FILE, STATUS_FILE, RESULTS_FILE = "plan.json", "status.json", "results.json"
TRAIN_FILE, INSPECT_FILE = "train.json", "inspect.json"
SCHEMA_VERSIONS = (1,)
AXES = ("family", "env_id", "obs", "data", "model", "seed", "agent", "planner", "budget", "goal", "suite", "split")
# env id -> the short family name the experiment files use (others: the id's name, lower case)
FAMILY_NAMES = {"TwoRoom": "tworoom", "TwoRoomLayouts": "tworoom-layouts", "Reacher": "reacher", "PushT": "pusht"}


class ReportError(UserError):
    """A results folder or file the report cannot read: the message names it."""


@dataclasses.dataclass(frozen=True)
class Row:
    """One eval job: its axes, and its results when it ran."""

    job_id: str
    experiment: str
    axes: dict[str, Any]
    model_evaluations: int | None
    ran: bool
    episodes: int = 0
    successes: int = 0
    violation_free: int = 0
    plan_ms_per_episode_p50: float | None = None
    plan_ms_p50: float | None = None
    wall_time_s: float | None = None
    git_commit: str | None = None
    git_dirty: bool | None = None
    train_job: str | None = None
    state: str | None = None  # status.json's state of a job that did not run ("pending", "failed")
    error: str | None = None

    def __getitem__(self, key: str) -> Any:
        return self.axes[key]


@dataclasses.dataclass(frozen=True)
class Experiment:
    """What one input folder holds: rows (ran or not), model files and the header facts."""

    folder: Path
    name: str
    description: str
    source: str | None  # the experiment file (None: a plain results folder)
    source_sha256: str | None
    git_commit: str | None  # the commit the plan was made at
    rows: tuple[Row, ...]
    models: dict[str, dict]  # train job id -> {"axes", "policy", "train", "inspect"}
    order: dict[str, tuple]  # axis -> values in the order the plan lists them (for sorting)
    ignored: tuple[str, ...] = ()  # result folders that plan.json does not list


# ------------------------------------------------------------------------------ reading files


def read_json(path: Path) -> Any:
    """Parsed strict JSON of `path`; ReportError naming the file when missing or corrupt."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ReportError(f"{path}: unreadable ({err.__class__.__name__})") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        raise ReportError(f"{path}: not valid JSON ({err.msg} at line {err.lineno} column {err.colno})") from None
    except ValueError as err:
        raise ReportError(f"{path}: not strict JSON ({err})") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _field(obj: Any, dotted: str, path: Path, types: type | tuple[type, ...], optional: bool = False) -> Any:
    """obj[a][b]... for dotted 'a.b'; ReportError naming the file and field when missing or mistyped."""
    value = obj
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            if optional:
                return None
            raise ReportError(f"{path}: missing field {dotted}")
        value = value[part]
    if value is None and optional:
        return None
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise ReportError(f"{path}: field {dotted} must be {_type_names(types)}, got {value!r}")
    if not isinstance(value, types):
        raise ReportError(f"{path}: field {dotted} must be {_type_names(types)}, got {type(value).__name__}")
    return value


def _type_names(types: type | tuple[type, ...]) -> str:
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join({"dict": "an object", "list": "a list", "str": "a string", "int": "an integer",
                        "float": "a number", "bool": "true/false", "NoneType": "null"}.get(t.__name__, t.__name__)
                       for t in types)


def _check_schema(obj: Any, path: Path) -> None:
    if not isinstance(obj, dict):
        raise ReportError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    version = obj.get("schema_version")
    if version not in SCHEMA_VERSIONS:
        raise ReportError(f"{path}: unknown schema_version {version!r} (this report reads "
                          f"{', '.join(map(str, SCHEMA_VERSIONS))})")


def read_results(path: Path) -> dict:
    """A results.json (schema of jepa_mpc.evaluate), checked for the fields the report uses."""
    result = read_json(path)
    _check_schema(result, path)
    for name in ("episodes", "successes"):
        value = _field(result, f"summary.{name}", path, int)
        if value < 0:
            raise ReportError(f"{path}: field summary.{name} must be >= 0, got {value}")
    if result["summary"]["successes"] > result["summary"]["episodes"]:
        raise ReportError(f"{path}: summary.successes exceeds summary.episodes")
    _field(result, "summary.violation_free_rate", path, (int, float), optional=True)
    _field(result, "summary.plan_latency_ms", path, dict, optional=True)
    _field(result, "provenance", path, dict, optional=True)
    return result


def _numbers(result: dict) -> dict:
    """The fields of a Row that come from results.json."""
    s = result["summary"]
    lat = s.get("plan_latency_ms") or {}
    prov = result.get("provenance") or {}
    free = s.get("violation_free_rate")
    dirty = prov.get("git_dirty")
    return {
        "episodes": s["episodes"],
        "successes": s["successes"],
        "violation_free": round(free * s["episodes"]) if isinstance(free, (int, float)) else 0,
        "plan_ms_per_episode_p50": _num(lat.get("per_episode_p50")),
        "plan_ms_p50": _num(lat.get("p50")),
        "wall_time_s": _num(s.get("wall_time_s")),
        "git_commit": prov.get("git_commit") or result.get("git_commit"),
        "git_dirty": dirty if isinstance(dirty, bool) else None,
    }


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


# --------------------------------------------------------------------------- experiment folders


def load_folder(folder: Path) -> Experiment:
    """An experiment folder (with plan.json) or a plain folder of eval results folders."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ReportError(f"{folder}: no such folder" if not folder.exists() else f"{folder}: not a folder")
    if (folder / PLAN_FILE).exists():
        return load_experiment(folder)
    return load_plain(folder)


def load_experiment(folder: Path) -> Experiment:
    plan_path = folder / PLAN_FILE
    plan = read_json(plan_path)
    _check_schema(plan, plan_path)
    jobs = _field(plan, "jobs", plan_path, list)
    status = _read_status(folder / STATUS_FILE)
    by_id: dict[str, dict] = {}
    for i, job in enumerate(jobs):
        if not isinstance(job, dict) or not isinstance(job.get("id"), str) or not isinstance(job.get("kind"), str):
            raise ReportError(f"{plan_path}: jobs[{i}] must be an object with string fields id and kind")
        by_id[job["id"]] = job
    rows, order = [], {axis: [] for axis in AXES}
    for i, job in enumerate(jobs):
        if job["kind"] != "eval":
            continue
        axes = _field(job, "axes", plan_path, dict)
        missing = [a for a in AXES if a not in axes]
        if missing:
            raise ReportError(f"{plan_path}: jobs[{i}] ({job['id']}) axes lack {', '.join(missing)}")
        for axis in AXES:
            if axes[axis] not in order[axis]:
                order[axis].append(axes[axis])
        evals = _job_evals(job, plan_path, i)
        train = next((d for d in job.get("deps") or [] if by_id.get(d, {}).get("kind") == "train"), None)
        path = folder / "evals" / job["id"] / RESULTS_FILE
        base = dict(job_id=job["id"], experiment=plan.get("name") or folder.name, axes=dict(axes),
                    model_evaluations=evals, train_job=train)
        if path.exists() and _recorded_digest(folder, job["id"]) not in (None, job.get("digest")):
            rows.append(Row(ran=False, state="stale", error="its results.json is of other inputs (the runner's "
                            f"record jobs/{job['id']}.json has another digest): rerun the experiment", **base))
        elif path.exists():
            result = read_results(path)
            if evals is None and axes.get("agent") in ("model", "oracle"):
                base["model_evaluations"] = planner_evaluations(result.get("planner_config"))
            rows.append(Row(ran=True, **base, **_numbers(result)))
        else:
            st = status.get(job["id"], {})
            rows.append(Row(ran=False, state=st.get("state") or "pending", error=st.get("error"), **base))
    listed = {r.job_id for r in rows}
    evals_dir = folder / "evals"
    ignored = tuple(sorted(p.name for p in evals_dir.iterdir() if p.is_dir() and p.name not in listed)) \
        if evals_dir.is_dir() else ()
    return Experiment(
        folder=folder, name=str(plan.get("name") or folder.name), description=str(plan.get("description") or ""),
        source=plan.get("source"), source_sha256=plan.get("source_sha256"), git_commit=plan.get("git_commit"),
        rows=tuple(rows), models=_read_models(folder, by_id), order={k: tuple(v) for k, v in order.items()},
        ignored=ignored,
    )


def _recorded_digest(folder: Path, job_id: str) -> str | None:
    """The digest of the inputs the eval folder's results were made from, per the runner's record
    (jobs/<id>.json); None without a readable record (e.g. a folder assembled by hand)."""
    try:
        record = json.loads((folder / "jobs" / f"{job_id}.json").read_text())
    except (OSError, ValueError):
        return None
    return record.get("digest") if isinstance(record, dict) else None


def _job_evals(job: dict, plan_path: Path, i: int) -> int | None:
    value = job.get("model_evaluations")
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise ReportError(f"{plan_path}: jobs[{i}].model_evaluations must be a non-negative integer or null")
    return value


def _read_status(path: Path) -> dict[str, dict]:
    if not path.exists():
        return {}
    status = read_json(path)
    jobs = _field(status, "jobs", path, dict)
    return {k: v for k, v in jobs.items() if isinstance(v, dict)}


def _read_models(folder: Path, jobs: dict[str, dict]) -> dict[str, dict]:
    """models/<train job>/{train,inspect}.json, with the train job's axes (else its evals'); "policy": only
    GCBC evals use it (a policy, not a world model)."""
    models = {}
    root = folder / "models"
    if not root.is_dir():
        return models
    eval_axes, agents = {}, {}
    for job in jobs.values():
        if job["kind"] == "eval":
            for dep in job.get("deps") or []:
                eval_axes.setdefault(dep, job.get("axes") or {})
                agents.setdefault(dep, set()).add((job.get("axes") or {}).get("agent"))
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        files = {name: sub / f"{name}.json" for name in ("train", "inspect")}
        entry = {name: read_json(p) for name, p in files.items() if p.exists()}
        for name, value in entry.items():
            if not isinstance(value, dict):
                raise ReportError(f"{files[name]}: expected a JSON object, got {type(value).__name__}")
        if entry:
            own = jobs.get(sub.name, {}).get("axes") or {}
            entry["axes"] = {**eval_axes.get(sub.name, {}), **{k: v for k, v in own.items() if v is not None}}
            entry["policy"] = agents.get(sub.name) == {"gcbc"}  # a GCBC policy, not a world model
            models[sub.name] = entry
    return models


# ------------------------------------------------------------------------ plain results folders


def load_plain(folder: Path) -> Experiment:
    """A folder whose subfolders are `jepa-mpc eval` results folders: axes derived from each results.json."""
    paths = sorted(p / RESULTS_FILE for p in folder.iterdir() if (p / RESULTS_FILE).is_file())
    if (folder / RESULTS_FILE).is_file():
        paths.insert(0, folder / RESULTS_FILE)
    if not paths:
        raise ReportError(f"{folder}: no results (neither {PLAN_FILE} nor any <folder>/{RESULTS_FILE})")
    rows, order = [], {axis: [] for axis in AXES}
    for path in paths:
        result = read_results(path)
        axes = axes_from_results(result, path)
        for axis in AXES:
            if axes[axis] not in order[axis]:
                order[axis].append(axes[axis])
        job_id = path.parent.name
        rows.append(Row(job_id=job_id, experiment=folder.name, axes=axes, ran=True,
                        model_evaluations=planner_evaluations(result.get("planner_config")), **_numbers(result)))
    commits = sorted({r.git_commit for r in rows if r.git_commit})
    return Experiment(folder=folder, name=folder.name, description="", source=None, source_sha256=None,
                      git_commit=commits[0] if len(commits) == 1 else None, rows=tuple(rows), models={},
                      order={k: tuple(v) for k, v in order.items()})


def axes_from_results(result: dict, path: Path) -> dict[str, Any]:
    """The experiment axes of an eval made by hand, from its results.json (null where it does not say)."""
    args = result.get("args") if isinstance(result.get("args"), dict) else {}
    planner = result.get("planner_config") if isinstance(result.get("planner_config"), dict) else None
    goal = result.get("goal_config") if isinstance(result.get("goal_config"), dict) else None
    suite = _field(result, "suite", path, dict)
    env_id = suite.get("env_id")
    kind = ((args.get("control") or {}).get("planner") or {}).get("kind") if isinstance(args.get("control"), dict) else None
    if kind == "gcbc":
        agent = "gcbc"
    elif planner is None:
        agent = "random"
    else:
        agent = "oracle" if args.get("dynamics") == "oracle" else "model"
    prov = result.get("provenance") if isinstance(result.get("provenance"), dict) else {}
    ckpt = prov.get("checkpoint") if isinstance(prov.get("checkpoint"), dict) else {}
    config = ckpt.get("train_config") if isinstance(ckpt.get("train_config"), dict) else {}  # evaluate.provenance_record
    model_cfg = config.get("model") if isinstance(config.get("model"), dict) else {}
    reg = config.get("reg") if isinstance(config.get("reg"), dict) else {}
    run = (result.get("checkpoint") or {}).get("run") if isinstance(result.get("checkpoint"), dict) else None
    obs_key = model_cfg.get("obs_key")
    return {
        "family": family_name(env_id),
        "env_id": env_id,
        "obs": obs_key if agent in ("model", "gcbc") else None,
        "data": None,
        "model": (Path(run).name if run else reg.get("kind")) if agent in ("model", "gcbc") else None,
        "seed": args.get("seed"),
        "agent": agent,
        "planner": planner.get("kind") if planner else None,
        "budget": budget_label(planner),
        "goal": goal_label(goal) if planner else None,
        "suite": suite.get("path"),
        "split": split_of(suite.get("path")),
    }


def family_name(env_id: str | None) -> str | None:
    if not env_id:
        return None
    name = re.sub(r"-v\d+$", "", env_id.split("/")[-1])
    return FAMILY_NAMES.get(name, name.lower())


def budget_label(planner: dict | None) -> str | None:
    """"<samples>x<iterations>" of a planner config (as the experiment files write budgets)."""
    if not planner or "samples" not in planner or "iterations" not in planner:
        return None
    return f"{planner['samples']}x{planner['iterations']}"


def goal_label(goal: dict | None) -> str | None:
    if not goal:
        return None
    if goal.get("kind") == "graph":
        source = "" if goal.get("source") in (None, "data") else f"-{goal['source']}"
        return f"graph{source}-{goal.get('mode')}"
    return str(goal.get("kind"))


def split_of(suite_path: str | None) -> str | None:
    stem = Path(suite_path).stem if suite_path else ""
    if re.search(r"(^|_)(val|validation)($|_)", stem):
        return "validation"
    if re.search(r"(^|_)test($|_)", stem):
        return "test"
    return None


def planner_evaluations(planner: dict | None) -> int | None:
    """Model evaluations per plan of a results.json planner_config (`jepa_mpc.planning.model_evaluations`;
    samples x iterations for a planner this version does not know)."""
    if not isinstance(planner, dict):
        return None
    from jepa_mpc import planning

    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in planner.items() if k != "kind"}
    try:
        config = planning.get_planner(str(planner.get("kind"))).config_cls(**fields)
        return int(planning.model_evaluations(config))
    except (UserError, TypeError, ValueError):
        samples, iterations = planner.get("samples"), planner.get("iterations")
        return samples * iterations if isinstance(samples, int) and isinstance(iterations, int) else None
