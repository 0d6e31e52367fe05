"""`jepa-mpc eval`: MPC on a task suite, with results a paper can cite.

    jepa-mpc eval --checkpoint runs/tworoom-state --suite envs/tasks/tworoom_test.json   # CEM, graph goal
    jepa-mpc eval --checkpoint runs/tworoom-state planner:random-actions        # floor
    jepa-mpc eval --checkpoint runs/tworoom-gcbc planner:gcbc                   # GCBC baseline (train --objective gcbc)
    jepa-mpc eval --checkpoint runs/tworoom-state --dynamics oracle             # planner on true dynamics
    jepa-mpc eval --checkpoint runs/tworoom-state planner:mppi --planner.temperature 0.2 goal:latent

Writes a results folder (success is the environment's physical predicate):

    identity.json   {"digest", "identity": {"args" (every flag but out, overwrite, suite, checkpoint),
                    "suite_sha256", "checkpoint": {"step", "config_sha256", "norm_stats_sha256"} | null,
                    "run_settings": {"frame_skip", "action_block", "run_env_id"}}}: the eval the folder
                    belongs to, written before the first episode (run_settings: what was taken from
                    --checkpoint's run, so random actions of runs with other frame skips differ too)
    batches.jsonl   one strict-JSON line per finished batch of episodes, appended and flushed as it ends:
                    {"batch": i, "episodes": [results.json episode entries (+ "path", "states",
                    "planned_paths" for the first --video episodes)], "plan_calls": [[latency_s, live], ...],
                    "wall_s", "time_s": {"reset", "start", "act", "simulate"} (seconds per part of
                    `run_mpc`), "exploration_env_steps"}
    results.json    (schema below) and summary.md: written atomically when the eval completes
    episodes.mp4    with --video N: the first N episodes

Resuming: a rerun into a folder whose identity.json matches continues at the first batch that
batches.jsonl lacks (a torn last line from a kill is dropped). Batch i's PRNG key depends only on
(--seed, i) (`batch_key`), so the results equal an uninterrupted run's. results.json, summary.md and
episodes.mp4 are deleted at the start and rewritten at the end, so none is ever stale. A folder of
another eval (a different identity, or results without identity.json) is refused in one line unless
--overwrite, which deletes these files and starts from the first episode. The run's probe.npz is not
part of the identity (it may be fitted during the first run, deterministically); with
--control.graph-source explore, exploration_env_steps sums each batch's own exploration, so a
resumed eval that explores a room again counts it again.

results.json (schema_version 1)::

    {"schema_version": 1, "created": ISO time, "git_commit": str|null, "versions": {...},
     "args": {...every flag...}, "identity": digest of identity.json,
     "suite": {"path", "sha256", "env_id", "tasks"},
     "checkpoint": {"run", "step"} | null, "dataset": path,
     "provenance": {"git_commit", "git_dirty" (tracked files differ from the commit; null outside git),
                    "dataset": {"path", "digest" (content SHA-256 the run recorded)} | null,
                    "checkpoint": {"run", "step", "digest" (SHA-256 over the files of checkpoints/<step>,
                                   jepa_mpc.provenance.directory_sha256), "config_sha256" (of config.json),
                                   "train_config", "train_commit", "train_dirty" (the last training
                                   session's; null for runs that predate the record), "trained_by"} | null,
                    "probe": {"path", "sha256"} | null (when the planner read latents through a probe),
                    "suite_sha256"}: the inputs by content, taken before the first episode (random
                    actions: dataset, checkpoint and probe null; oracle dynamics: checkpoint null),
     "frame_skip": physics steps per env step (the run's data's, else the family's default),
     "action_block": env steps per plan block (the run's, else --control.action-block or the family's),
     "planner_config": {"kind": planner, ...every field, budget overrides applied} | null,
     "goal_config": {"kind": "graph"|"latent", ...every field} | null,
     "summary": {"episodes", "successes", "success_rate", "success_ci95": [lo, hi],
                 "violation_free_rate", "violation_free_ci95", "infeasible_plans",
                 "episodes_with_infeasible_plans", "mean_steps_success",
                 "plan_latency_ms": {"calls", "p50", "p95", "per_episode_p50"},
                 "wall_time_s", "time_breakdown_s": {"plan", "act_other", "simulate", "reset", "start",
                 "other", "episodes_per_s"} (see `time_breakdown`; null for an eval resumed from
                 records that predate it)},
     "episodes": [{"task", "success", "steps", "violation_steps", "violation_free",
                   "final_distance" (null when undefined), "plans", "infeasible_plans",
                   "subgoals" (--control.hierarchy graph: [step, node (-1: the goal itself), the node's
                   mean data position or null] at every change of subgoal)}]}

Every results file is strict JSON (no NaN/inf); float flags must be finite.

An "infeasible" plan is one the planner acted on although no plan it found satisfied every
predicted constraint (see jepa_mpc.safety); with hazards in the suite a latent planner loads the
run's probe (<run>/probe.npz), fitting it on the fly when missing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
import time
from pathlib import Path
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from jepa_mpc import goals, provenance
from jepa_mpc.atomic import append_json_line, write_json_atomic, write_text_atomic
from jepa_mpc.config import check_finite, first_difference, to_dict, without_defaults
from jepa_mpc.control import (
    ControlConfig,
    GCBC,
    EpisodeRecord,
    GCBCPolicy,
    LatentPlannerPolicy,
    OraclePlannerPolicy,
    RandomActions,
    RandomActionsPolicy,
    TIME_PARTS,
    family_geometry,
    mujoco_block_simulator,
    run_mpc,
    validate_control,
)
from jepa_mpc.data.collect import SimBackend
from jepa_mpc.errors import ConfigError
from jepa_mpc.paths import output_dir, output_file
from jepa_mpc_envs.registry import get_family
from jepa_mpc_envs.rollout import DEFAULT_SIM_BACKEND
from jepa_mpc_envs.suites import shipped_suite_path

DEFAULT_SUITE = shipped_suite_path("tworoom_test")  # installed with the package (envs/tasks/)


@dataclasses.dataclass(frozen=True)
class EvalArgs:
    """Evaluate MPC on a task suite and write a results folder."""

    checkpoint: str = "runs/tworoom-state"
    """Training run directory (from `jepa-mpc train`). Its dataset is used for the goal graph."""
    suite: str = DEFAULT_SUITE
    """Task-suite JSON file (see envs/tasks/SCHEMA.md)."""
    dynamics: Literal["model", "oracle"] = "model"
    """model: plan through the learned world model; oracle: the same planner on true MuJoCo dynamics."""
    sim_backend: SimBackend = DEFAULT_SIM_BACKEND
    """Simulator of the oracle's batched rollouts (--dynamics oracle): mujoco (mujoco.rollout threads) | mjx
    (MJX on JAX's devices, e.g. a GPU; the optional extra `mjx`). The episodes themselves always step MuJoCo."""
    out: str = ""
    """Results folder (default: results/<suite>-<planner>-<dynamics>). A folder holding this eval's records
    resumes it; one holding another eval's results is refused unless --overwrite."""
    overwrite: bool = False
    """Discard the results folder's earlier files (of any eval) and start from the first episode."""
    episodes: int = 0
    """Evaluate the first N tasks of the suite (0: all)."""
    batch: int = 100
    """Episodes run in lockstep and planned in one call."""
    plan_chunk: int = 0
    """Episodes vmapped together inside a plan call, slices run one after another (0: auto, 8 at 300 samples
    on CPU so activations stay in cache, the whole batch on GPU). Speed only: not part of the eval's identity."""
    devices: int = 0
    """Split each plan call's episodes over the first N local devices (0: all; on CPU there is one unless
    XLA_FLAGS=--xla_force_host_platform_device_count=N). Model planning only. Speed only, like --plan-chunk."""
    control: ControlConfig = ControlConfig()
    """The planner (`planner:NAME --planner.FIELD ...`), the goal cost (`goal:KIND --goal.FIELD ...`) and
    the rest of the MPC settings (`--control.FIELD`)."""
    video: int = 0
    """Record the first N episodes to episodes.mp4 (0: none)."""
    seed: int = 0

    @property
    def planner(self) -> str:
        """The planner's name (or random-actions), for labels and folder names."""
        return self.control.planner.kind


# ------------------------------------------------------------------------------ statistics


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval for a binomial proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def summarize(records: list[EpisodeRecord], latencies: list[float], batch_sizes: list[int], wall: float) -> dict:
    n = len(records)
    wins = sum(r.success for r in records)
    free = sum(r.violation_free for r in records)
    lat = np.asarray(latencies) * 1e3
    per_ep = lat / np.maximum(np.asarray(batch_sizes, float), 1) if len(lat) else lat
    steps_ok = [r.steps for r in records if r.success]
    return {
        "episodes": n,
        "successes": wins,
        "success_rate": wins / n if n else 0.0,
        "success_ci95": list(wilson_interval(wins, n)),
        "violation_free_rate": free / n if n else 0.0,
        "violation_free_ci95": list(wilson_interval(free, n)),
        "infeasible_plans": int(sum(r.infeasible_plans for r in records)),
        "episodes_with_infeasible_plans": int(sum(r.infeasible_plans > 0 for r in records)),
        "mean_steps_success": float(np.mean(steps_ok)) if steps_ok else None,
        "plan_latency_ms": {
            "calls": int(len(lat)),
            "p50": float(np.percentile(lat, 50)) if len(lat) else None,
            "p95": float(np.percentile(lat, 95)) if len(lat) else None,
            "per_episode_p50": float(np.percentile(per_ep, 50)) if len(lat) else None,
        },
        "wall_time_s": wall,
    }


def time_breakdown(batches: list[dict]) -> dict | None:
    """Where an eval's wall time went, summed over its batches (None when a batch predates the record):
    {"plan" (the jitted plan calls), "act_other" (encoding, transfers, warm starts: the rest of
    policy.act), "simulate" (MuJoCo steps and bookkeeping), "reset" (env resets, goal renders),
    "start" (goal encoding, goal-graph set-up), "other" (env construction, the rest), "episodes_per_s"}."""
    if not batches or any("time_s" not in b for b in batches):
        return None
    total = {part: sum(b["time_s"].get(part, 0.0) for b in batches) for part in TIME_PARTS}
    plan = sum(c[0] for b in batches for c in b["plan_calls"])
    wall = sum(b["wall_s"] for b in batches)
    episodes = sum(len(b["episodes"]) for b in batches)
    out = {"plan": plan, "act_other": max(0.0, total["act"] - plan), "simulate": total["simulate"],
           "reset": total["reset"], "start": total["start"], "other": max(0.0, wall - sum(total.values()))}
    return {**out, "episodes_per_s": episodes / wall if wall > 0 else None}


def summary_markdown(label: str, s: dict) -> str:
    lo, hi = s["success_ci95"]
    vlo, vhi = s["violation_free_ci95"]
    lat = s["plan_latency_ms"]
    fmt = lambda v: "–" if v is None else f"{v:.1f}"  # noqa: E731
    return (
        "| run | episodes | success | 95 % CI | violation-free | plan p50 (ms) | plan p95 (ms) | per-episode p50 (ms) |\n"
        "|---|---|---|---|---|---|---|---|\n"
        f"| {label} | {s['episodes']} | {100 * s['success_rate']:.1f} % | [{100 * lo:.1f}, {100 * hi:.1f}] "
        f"| {100 * s['violation_free_rate']:.1f} % [{100 * vlo:.1f}, {100 * vhi:.1f}] "
        f"| {fmt(lat['p50'])} | {fmt(lat['p95'])} | {fmt(lat['per_episode_p50'])} |\n"
    ) + time_markdown(s.get("time_breakdown_s"))


def time_markdown(t: dict | None) -> str:
    """One line: where the wall time went (see `time_breakdown`), '' when not recorded."""
    if not t:
        return ""
    parts = ("plan", "act_other", "simulate", "reset", "start", "other")
    wall = sum(t[p] for p in parts)
    shares = ", ".join(f"{p.replace('_', ' ')} {t[p]:.1f} s ({100 * t[p] / wall:.0f} %)" for p in parts if wall > 0)
    rate = t.get("episodes_per_s")
    return f"\nTime: {shares}; {rate:.2f} episodes/s.\n" if rate else f"\nTime: {shares}.\n"


# ---------------------------------------------------------------------------- provenance


def package_versions() -> dict[str, str]:
    import flax
    import optax

    from jepa_mpc import provenance

    return {**provenance.package_versions(), "jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__}


# ------------------------------------------------------------------------------- set-up


def _load_suite(path: str):
    from jepa_mpc_envs.registry import load_suite  # the one loader: dispatches on the file's env_id

    return load_suite(path)


def _check_suite_matches(suite, meta: dict, where: str, cfg: ControlConfig | None = None) -> None:
    """The suite's env is the one the run's data was collected in, and so is its layout when the goal graph
    is built from that data (`--goal.source explore` builds it in the suite's own room instead)."""
    env_id = meta.get("env_id")
    if env_id and env_id != suite.env_id:
        raise ConfigError(f"{suite.path}: suite is for {suite.env_id!r}, but {where} was trained on {env_id!r}")
    data_graph = cfg is not None and isinstance(cfg.goal, goals.GraphGoal) and cfg.goal.source != "explore"
    if not data_graph or not isinstance(meta.get("layout"), dict):
        return
    if not hasattr(suite.layout, "to_dict"):
        return
    try:
        trained = get_family(suite.env_id).layout_from_dict(meta["layout"]).to_dict()
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{where}: the layout its dataset's meta.json records is invalid ({err})") from None
    wanted = suite.layout.to_dict()
    for name in sorted(set(trained) | set(wanted)):
        if trained.get(name) != wanted.get(name):
            raise ConfigError(
                f"{suite.path}: suite layout has {name}={wanted.get(name)!r}, but {where} was collected with "
                f"{trained.get(name)!r} (a goal graph of its data would be of another room; use --goal.source "
                "explore or goal:latent)"
            )


def with_run_settings(args: EvalArgs, suite) -> tuple[EvalArgs, dict]:
    """(args with the action block resolved, the settings taken: {"frame_skip", "action_block", "run_env_id"}):
    eval steps the env as the model was trained. The frame skip is the run's data's (the family's default
    without a run of the suite's env, run_env_id then None), the action block `--control.action-block` if
    given, else the run's (else the family's default). A flag that disagrees with a learned model's is an error."""
    from jepa_mpc.run import Run

    family = get_family(suite.env_id)
    run = Run.open(args.checkpoint) if Run.exists(args.checkpoint) else None  # none: random actions (others
    if run is not None and run.env_id and run.env_id != suite.env_id:        # fail in build_policy)
        if args.planner != "random-actions":
            _check_suite_matches(suite, run.dataset_meta, str(run.path))  # refuses: the run is of another env
        run = None  # random actions in another env than the run's: nothing to take from it
    flag = args.control.action_block
    if run is not None and flag is not None and flag != run.action_block and args.dynamics == "model" \
            and args.planner != "random-actions":
        raise ConfigError(f"--control.action-block {flag}: run {run.path} predicts blocks of {run.action_block} "
                          "env steps; leave the flag out (eval reads it from the run)")
    block = flag if flag is not None else run.action_block if run is not None else family.default_action_block
    args = dataclasses.replace(args, control=dataclasses.replace(args.control, action_block=block))
    frame_skip = (run.frame_skip if run is not None else None) or family.default_frame_skip
    return args, {"frame_skip": frame_skip, "action_block": block, "run_env_id": run.env_id if run else None}


def build_policy(args: EvalArgs, suite, frame_skip: int):
    """(policy, env obs_type, planner config or None, checkpoint info)."""
    cfg = args.control
    env = get_family(suite.env_id)
    if isinstance(cfg.planner, RandomActions):
        return RandomActionsPolicy(cfg.action_block, env.action_dim), "state", None, None
    from jepa_mpc.run import Run

    run = Run.open(args.checkpoint)
    check_run_objective(run, args)
    if isinstance(cfg.planner, GCBC):
        from jepa_mpc.gcbc import load_gcbc_policy

        policy = load_gcbc_policy(run.path)
        return GCBCPolicy(policy, cfg.action_block), policy.obs_key, cfg.planner, {"run": args.checkpoint,
                                                                                    "step": policy.step}
    ds, data_path = run.dataset(), run.data_path  # refused if its content changed since training
    _check_suite_matches(suite, run.dataset_meta, f"{args.checkpoint} (dataset {data_path})", cfg)
    if args.dynamics == "oracle":
        goal = cfg.goal.build(goals.StateSpace(env, ds, suite.layout), cfg.seed)
        sim = mujoco_block_simulator(env.build_model(suite.layout), frame_skip, cfg.action_block, env=env,
                                     backend=args.sim_backend)
        policy = OraclePlannerPolicy(sim, cfg, goal, action_dim=env.action_dim, goal_dim=env.goal_dim,
                                     features=env.goal_features,
                                     geometry=family_geometry(env, suite.layout))
        return policy, "state", policy.planner_cfg, None
    model = run.load_world_model()
    probe = None
    if cfg.safety != "none" or any(t.hazards for t in suite.tasks):
        from jepa_mpc.probe import load_or_train_probe

        probe = load_or_train_probe(model, ds)  # constraints are read from the latents through it
    encode_p = jax.jit(model.encode_p)

    def encode(obs):
        return encode_p(model.state, obs)

    to_points = None
    if probe is not None:  # goal-graph nodes' safety points, for detours around hazards
        from jepa_mpc.probe import apply_probe

        arrays = probe.arrays()

        def to_points(nodes):
            readout = np.asarray(jax.jit(apply_probe)(arrays, jnp.asarray(nodes)), np.float64)
            return np.asarray(env.safety_geometry(readout, suite.layout, np)[0])
    goal = cfg.goal.build(goals.LatentSpace(encode, model.obs_key, ds, env, suite.layout, to_points), cfg.seed)
    policy = LatentPlannerPolicy(model, cfg, goal, probe, chunk=args.plan_chunk, devices=args.devices,
                                 geometry=family_geometry(env, suite.layout))
    return policy, model.obs_key, policy.planner_cfg, {"run": args.checkpoint, "step": model.step}


def check_run_objective(run, args: EvalArgs) -> None:
    """ConfigError (one line, naming the run and the fix) when the run's training objective does not fit the
    planner: planner:gcbc needs a `--objective gcbc` run; a GCBC run has no world model to plan with."""
    objective = run.config.objective
    if isinstance(args.control.planner, GCBC):
        if objective != "gcbc":
            raise ConfigError(f"--checkpoint {run.path}: run was trained with --objective {objective} (a world "
                              "model), planner:gcbc needs a run trained with --objective gcbc (or choose a planner)")
        if args.dynamics != "model":
            raise ConfigError(f"--dynamics {args.dynamics}: planner:gcbc acts without dynamics; leave the flag out")
    elif objective == "gcbc" and args.dynamics == "model":
        raise ConfigError(f"--checkpoint {run.path}: run is a GCBC policy (--objective gcbc), it has no world model "
                          f"for planner:{args.planner}; evaluate it with planner:gcbc")


# ------------------------------------------------------------------- results folder

RESULTS_FILE, SUMMARY_FILE, VIDEO_FILE = "results.json", "summary.md", "episodes.mp4"
RECORDS_FILE, IDENTITY_FILE = "batches.jsonl", "identity.json"
# Flags left out of the eval's identity: where and how to write, how to slice the work, and the two inputs
# that enter by content.
NOT_IDENTITY_FLAGS = ("out", "overwrite", "suite", "checkpoint", "plan_chunk", "devices")
# Flags added after evals were recorded (dotted paths into the flags): in the identity only when not at these
# defaults, so those evals keep theirs.
IDENTITY_UNLESS_DEFAULT = {"sim_backend": DEFAULT_SIM_BACKEND, "control.safety_min_margin": None,
                           "control.goal.hazard_widen": 1.0, "control.goal.hazard_weight": 0.0,
                           "control.goal.split_cells": 0.0, "control.within_block": "line",
                           "control.speed_margin": 0.0, "control.hierarchy": "none", "control.subgoal_steps": 0,
                           "control.safety_rollout": 0.0}
EPISODE_FIELDS = ("task", "success", "steps", "violation_steps", "violation_free", "final_distance", "plans",
                  "infeasible_plans")
OPTIONAL_EPISODE_FIELDS = ("subgoals",)  # --control.hierarchy graph


def results_folder(args: EvalArgs) -> Path:
    """The results folder (default results/<suite>-<planner>-<dynamics>), checked writable with its files."""
    out = output_dir(args.out or f"results/{Path(args.suite).stem}-{args.planner}-{args.dynamics}", "--out")
    for name in (RESULTS_FILE, SUMMARY_FILE, RECORDS_FILE, IDENTITY_FILE):
        output_file(out / name, "--out")
    if args.video:
        output_file(out / VIDEO_FILE, "--video")
    return out


def checkpoint_identity(run_dir: str) -> dict:
    """A training run by content: its latest checkpoint step and the digests of its config (which names
    its dataset) and normalisation stats. Missing parts are None (build_policy then names them)."""
    run = Path(run_dir)
    ckpts = run / "checkpoints"
    steps = [int(p.name) for p in ckpts.iterdir() if p.name.isdigit()] if ckpts.is_dir() else []
    return {"step": max(steps, default=None), "config_sha256": provenance.file_sha256(run / "config.json"),
            "norm_stats_sha256": provenance.file_sha256(run / "norm_stats.json")}


def provenance_record(args: EvalArgs, suite_sha256: str, policy) -> dict:
    """results.json's "provenance": the code (git commit, dirty tree) and, by content, every input the
    eval read: the run's dataset, the checkpoint the policy loaded (its files, config, training config
    and the code that trained it) and the probe it planned with. Parts an eval does not use are None
    (random actions use no run; oracle dynamics use the run's dataset only). Taken before the first
    episode, so it names the files as the policy read them. Not part of the eval's identity."""
    from jepa_mpc.run import Run

    record = {**provenance.git_state(), "dataset": None, "checkpoint": None, "probe": None,
              "suite_sha256": suite_sha256}
    if args.planner == "random-actions":
        return record
    run = Run.open(args.checkpoint)
    record["dataset"] = {"path": run.data_path or None, "digest": run.dataset_digest}
    model = getattr(policy, "model", None) or getattr(policy, "policy", None)  # world model or GCBC policy
    if model is not None:  # a learned model: the checkpoint step it restored
        trained_by = run.trained_by
        record["checkpoint"] = {
            "run": str(args.checkpoint), "step": int(model.step),
            "digest": provenance.directory_sha256(run.path / "checkpoints" / str(model.step)),
            "config_sha256": provenance.file_sha256(run.path / "config.json"),
            "train_config": run.record.get("train"),
            "train_commit": trained_by[-1].get("git_commit") if trained_by else None,
            "train_dirty": trained_by[-1].get("git_dirty") if trained_by else None,
            "trained_by": trained_by,
        }
    if getattr(policy, "probe", None) is not None:
        record["probe"] = {"path": str(run.probe_path), "sha256": provenance.file_sha256(run.probe_path)}
    return json.loads(json.dumps(record, allow_nan=False))


def eval_identity(args: EvalArgs, suite_sha256: str, run_settings: dict) -> dict:
    """What decides an eval's results: every flag but NOT_IDENTITY_FLAGS, the suite's and the run's content,
    and the settings taken from the run (`with_run_settings`: its data's frame skip even for random actions)."""
    flags = identity_flags(args)
    ckpt = None if args.planner == "random-actions" else checkpoint_identity(args.checkpoint)
    identity = {"args": flags, "suite_sha256": suite_sha256, "checkpoint": ckpt, "run_settings": run_settings}
    return json.loads(json.dumps(identity, sort_keys=True, allow_nan=False))  # as read back from identity.json


def identity_flags(args: EvalArgs) -> dict:
    """The flags in an eval's identity: all but NOT_IDENTITY_FLAGS, those of IDENTITY_UNLESS_DEFAULT only when set."""
    flags = {k: v for k, v in to_dict(args).items() if k not in NOT_IDENTITY_FLAGS}
    return without_defaults(flags, IDENTITY_UNLESS_DEFAULT)


def identity_digest(identity: dict) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def _describe(diff: tuple[str, object, object]) -> str:
    """`field: old -> new` of a first_difference, long values cut short."""
    where, old, new = diff
    old, new = (r if len(r) <= 24 else r[:21] + "..." for r in (repr(old), repr(new)))
    return f"{where}: {old} -> {new}"


def check_results_folder(out: Path, identity: dict, overwrite: bool) -> None:
    """Refuse (one line) a folder that holds another eval's results, unless `overwrite`."""
    if overwrite or not out.is_dir():
        return
    hint = "pass --overwrite to replace them or choose another --out"
    path = out / IDENTITY_FILE
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))["identity"]
        except (ValueError, UnicodeDecodeError, KeyError, TypeError):
            raise ConfigError(f"--out {out}: {IDENTITY_FILE} is unreadable; {hint}") from None
        diff = first_difference(old, identity)
        if diff:
            raise ConfigError(f"--out {out}: holds results of another eval ({_describe(diff)}); {hint}")
        return
    found = [name for name in (RESULTS_FILE, RECORDS_FILE) if (out / name).exists()]
    if found:
        raise ConfigError(f"--out {out}: holds a {found[0]} without {IDENTITY_FILE} (another eval); {hint}")


def start_results_folder(out: Path, identity: dict, overwrite: bool) -> None:
    """`out` holds this eval only: the final files are gone until it completes (none can be stale), with
    `overwrite` the earlier records too, and identity.json names the eval the records belong to."""
    out.mkdir(parents=True, exist_ok=True)
    for name in (RESULTS_FILE, SUMMARY_FILE, VIDEO_FILE) + ((RECORDS_FILE, IDENTITY_FILE) if overwrite else ()):
        (out / name).unlink(missing_ok=True)
    if not (out / IDENTITY_FILE).is_file():
        write_json_atomic(out / IDENTITY_FILE, {"digest": identity_digest(identity), "identity": identity})


def _is_batch_record(rec, index: int, names: list[str] | None) -> bool:
    if not (isinstance(rec, dict) and rec.get("batch") == index and names is not None):
        return False
    eps, calls = rec.get("episodes"), rec.get("plan_calls")
    return (isinstance(eps, list) and all(isinstance(e, dict) and set(EPISODE_FIELDS) <= set(e) for e in eps)
            and [e["task"] for e in eps] == names and isinstance(calls, list)
            and isinstance(rec.get("wall_s"), (int, float)))


def read_batch_records(path: Path, batch_tasks: list[list[str]]) -> list[dict]:
    """The finished batches recorded in `path`, in order (batch i ran the tasks named batch_tasks[i]).

    A torn last line (the eval was killed while writing it) is cut off the file; any other line that
    is not the next batch of this eval is a one-line ConfigError."""
    if not path.is_file():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")  # the last item is the torn tail, b"" when the file ends with a newline
    records, end = [], 0
    for i, line in enumerate(lines[:-1]):
        try:
            rec = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            rec = None
        if not _is_batch_record(rec, i, batch_tasks[i] if i < len(batch_tasks) else None):
            raise ConfigError(f"{path}: line {i + 1} is not batch {i} of this eval; pass --overwrite to start over")
        records.append(rec)
        end += len(line) + 1
    if end < len(data):
        with open(path, "r+b") as f:
            f.truncate(end)
    return records


def batch_key(seed: int, index: int) -> jax.Array:
    """PRNG key of episode batch `index`: a pure function of (seed, index), so a resumed eval draws the
    keys an uninterrupted one does. It is the index-th key split off key(seed), the order earlier
    versions drew them in, so their published figures are reproduced."""
    key = jax.random.key(seed)
    for _ in range(index + 1):
        key, sub = jax.random.split(key)
    return sub


def episode_record(r: EpisodeRecord, trajectory: bool = False) -> dict:
    """One episode as results.json lists it (final_distance None when undefined: the JSON stays strict);
    with `trajectory` also the positions, states and planned paths its video is drawn from."""
    finite = math.isfinite(float(r.final_distance))
    rec = {"task": r.task, "success": bool(r.success), "steps": int(r.steps), "violation_steps": int(r.violation_steps),
           "violation_free": bool(r.violation_free), "final_distance": float(r.final_distance) if finite else None,
           "plans": int(r.plans), "infeasible_plans": int(r.infeasible_plans)}
    if r.subgoals:  # hierarchy: [step, node (-1: the goal itself), its data position or None] at each change
        rec["subgoals"] = [[int(step), int(node), at] for step, node, at in r.subgoals]
    if trajectory:
        rec.update(path=[[float(v) for v in p] for p in r.path],
                   states=[np.asarray(s, np.float64).tolist() for s in r.states],
                   planned_paths=[[int(step), np.asarray(pts).tolist(), bool(bad)] for step, pts, bad in r.planned_paths])
    return rec


def episode_from_record(d: dict) -> EpisodeRecord:
    """The EpisodeRecord of one recorded episode (trajectory lists empty when not recorded)."""
    return EpisodeRecord(
        task=d["task"], success=d["success"], steps=d["steps"], violation_steps=d["violation_steps"],
        final_distance=float("nan") if d["final_distance"] is None else d["final_distance"], plans=d["plans"],
        infeasible_plans=d["infeasible_plans"], path=d.get("path", []),
        states=[np.asarray(s, np.float32) for s in d.get("states", [])], planned_paths=d.get("planned_paths", []),
        subgoals=[tuple(s) for s in d.get("subgoals", [])],
    )


def run_batch(index: int, tasks, make_env, policy, args: EvalArgs, family, bar=None) -> dict:
    """Run episode batch `index` (its `tasks` in lockstep, key `batch_key(args.seed, index)`) in the
    envs of task family `family`; returns its batches.jsonl record."""
    t0 = time.perf_counter()
    room_graphs = getattr(policy, "room_graphs", None)
    explored = room_graphs.explored_steps if room_graphs is not None else 0
    envs = [make_env() for _ in tasks]
    plan_calls = []

    def on_plan(info):
        if info["latency_s"]:
            plan_calls.append([info["latency_s"], info["live"]])  # live: episodes planned in this call
        if bar is not None:
            bar.set_postfix(live=info["live"], plan_ms=f"{1e3 * info['latency_s']:.0f}")

    time_s: dict[str, float] = {}
    recs = run_mpc(envs, tasks, policy, batch_key(args.seed, index), on_plan=on_plan, family=family, time_s=time_s)
    for env in envs:
        env.close()
    first = index * args.batch
    return {
        "batch": index,
        "episodes": [episode_record(r, trajectory=first + j < args.video) for j, r in enumerate(recs)],
        "plan_calls": plan_calls,
        "wall_s": time.perf_counter() - t0,
        "time_s": time_s,
        "exploration_env_steps": (room_graphs.explored_steps if room_graphs is not None else 0) - explored,
    }


# ------------------------------------------------------------------------------- main


def evaluate(args: EvalArgs) -> tuple[dict, Path]:
    """Run (or resume) the eval `args` describes; returns (results.json content, results folder).

    Each finished batch of episodes is appended to batches.jsonl; a rerun of the same eval continues at
    the first batch not recorded there and ends with the results an uninterrupted run writes."""
    from jepa_mpc.run import Run

    check_finite(args)
    validate_control(args.control)  # every policy's control settings, before anything runs
    if args.episodes < 0 or args.batch <= 0 or args.video < 0 or args.plan_chunk < 0 or args.devices < 0:
        raise ConfigError("--episodes, --video, --plan-chunk and --devices must be >= 0 and --batch > 0")
    if args.sim_backend != DEFAULT_SIM_BACKEND and args.dynamics != "oracle":
        raise ConfigError(f"--sim-backend {args.sim_backend}: only the oracle (--dynamics oracle) rolls out a simulator "
                          "in batch; leave the flag out")
    if args.planner != "random-actions" and args.dynamics == "model" and not Path(args.checkpoint).is_dir():
        raise ConfigError(f"--checkpoint {args.checkpoint}: no such run directory (train one with `jepa-mpc train`)")
    if args.planner != "random-actions" and Run.exists(args.checkpoint):
        check_run_objective(Run.open(args.checkpoint), args)  # before anything is written
    out = results_folder(args)
    suite = _load_suite(args.suite)
    family = get_family(suite.env_id)
    family.check_sim_backend(args.sim_backend)
    if args.video and not family.renders:  # refused before any episode runs, not after the last
        raise ConfigError(f"--video {args.video}: {suite.env_id} has no renderer (state only); leave the flag out")
    tasks = suite.tasks[: args.episodes or None]
    args, settings = with_run_settings(args, suite)  # the run's action block, its data's frame skip
    frame_skip = settings["frame_skip"]
    batches = [tasks[start : start + args.batch] for start in range(0, len(tasks), args.batch)]
    suite_sha256 = hashlib.sha256(Path(args.suite).read_bytes()).hexdigest()
    identity = eval_identity(args, suite_sha256, settings)
    check_results_folder(out, identity, args.overwrite)
    done = [] if args.overwrite else read_batch_records(out / RECORDS_FILE, [[t.name for t in b] for b in batches])
    policy, obs_type, planner_cfg, ckpt = build_policy(args, suite, frame_skip)
    inputs = provenance_record(args, suite_sha256, policy)
    label = f"{args.planner}" + ("" if args.planner in ("random-actions", "gcbc") else f" ({args.dynamics})")
    start_results_folder(out, identity, args.overwrite)

    finished = sum(len(b) for b in batches[: len(done)])
    if done:
        print(f"eval: resuming {out} at batch {len(done)} of {len(batches)} ({finished} episodes recorded)")
    bar = tqdm(total=len(tasks), initial=finished, desc=f"eval {label}", unit="ep")

    def make_env():
        return family.make_env(layout=suite.layout, obs_type=obs_type, frame_skip=frame_skip)

    for index in range(len(done), len(batches)):
        record = run_batch(index, batches[index], make_env, policy, args, family, bar)
        append_json_line(out / RECORDS_FILE, record)
        done.append(record)
        bar.update(len(batches[index]))
        bar.set_postfix(success=f"{np.mean([e['success'] for b in done for e in b['episodes']]):.3f}")
    bar.close()

    episodes = [e for b in done for e in b["episodes"]]
    records = [episode_from_record(e) for e in episodes]
    calls = [c for b in done for c in b["plan_calls"]]
    summary = summarize(records, [c[0] for c in calls], [c[1] for c in calls], sum(b["wall_s"] for b in done))
    summary["time_breakdown_s"] = time_breakdown(done)
    if getattr(policy, "room_graphs", None) is not None:  # reward-free steps spent exploring the rooms first
        summary["exploration_env_steps"] = sum(b.get("exploration_env_steps", 0) for b in done)
    result = {
        "schema_version": 1,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": provenance.git_commit(),
        "versions": package_versions(),
        "args": to_dict(args),
        "identity": identity_digest(identity),
        "label": label,
        "suite": {
            "path": str(args.suite),
            "sha256": suite_sha256,
            "env_id": suite.env_id,
            "tasks": len(tasks),
        },
        "checkpoint": ckpt,
        "provenance": inputs,
        "frame_skip": frame_skip,
        "action_block": settings["action_block"],
        "planner_config": to_dict(planner_cfg) if planner_cfg is not None else None,
        "goal_config": to_dict(args.control.goal) if planner_cfg is not None and args.planner != "gcbc" else None,
        "summary": summary,
        "episodes": [{k: e[k] for k in EPISODE_FIELDS + OPTIONAL_EPISODE_FIELDS if k in e} for e in episodes],
    }
    if args.video:
        from jepa_mpc.video import write_episode_video

        write_episode_video(out / VIDEO_FILE, suite, tasks[: args.video], records[: args.video])
    write_text_atomic(out / SUMMARY_FILE, summary_markdown(label, summary))
    write_json_atomic(out / RESULTS_FILE, result, sort_keys=False)  # last: its presence means complete
    return result, out


def eval_main(args: EvalArgs) -> None:
    result, out = evaluate(args)
    print(summary_markdown(result["label"], result["summary"]), end="")
    print(f"results: {out / RESULTS_FILE}")


__all__ = ["EvalArgs", "evaluate", "eval_main", "wilson_interval", "summarize"]
