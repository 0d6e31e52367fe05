"""`jepa-mpc eval`: MPC on a task suite, with results a paper can cite.

    jepa-mpc eval --checkpoint runs/tworoom-state --suite envs/tasks/tworoom_heldout.json   # CEM, graph goal
    jepa-mpc eval --checkpoint runs/tworoom-state planner:random-actions        # floor
    jepa-mpc eval --checkpoint runs/tworoom-state --dynamics oracle             # planner on true dynamics
    jepa-mpc eval --checkpoint runs/tworoom-state planner:mppi --planner.temperature 0.2 goal:latent

Writes a results folder: `results.json` (schema below), `summary.md`, and optionally
`episodes.mp4`. Success is the environment's physical predicate.

results.json (schema_version 1)::

    {"schema_version": 1, "created": ISO time, "git_commit": str|null, "versions": {...},
     "args": {...every flag...}, "suite": {"path", "sha256", "env_id", "tasks"},
     "checkpoint": {"run", "step"} | null, "dataset": path,
     "planner_config": {"kind": planner, ...every field, budget overrides applied} | null,
     "goal_config": {"kind": "graph"|"latent", ...every field} | null,
     "summary": {"episodes", "successes", "success_rate", "success_ci95": [lo, hi],
                 "violation_free_rate", "violation_free_ci95", "infeasible_plans",
                 "episodes_with_infeasible_plans", "mean_steps_success",
                 "plan_latency_ms": {"calls", "p50", "p95", "per_episode_p50"},
                 "wall_time_s"},
     "episodes": [{"task", "success", "steps", "violation_steps", "violation_free",
                   "final_distance", "plans", "infeasible_plans"}]}

An "infeasible" plan is one the planner acted on although no plan it found satisfied every
predicted constraint (see jepa_mpc.safety); with hazards in the suite a latent planner loads the
run's probe (<run>/probe.npz), fitting it on the fly when missing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import math
import time
from pathlib import Path
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from jepa_mpc import goals, provenance
from jepa_mpc.atomic import write_json_atomic
from jepa_mpc.config import to_dict
from jepa_mpc.control import (
    ControlConfig,
    EpisodeRecord,
    LatentPlannerPolicy,
    OraclePlannerPolicy,
    RandomActions,
    RandomActionsPolicy,
    mujoco_block_simulator,
    run_mpc,
    validate_control,
)
from jepa_mpc.errors import ConfigError
from jepa_mpc_envs.tasks import shipped_suite_path

DEFAULT_SUITE = shipped_suite_path("tworoom_heldout")  # installed with the package (envs/tasks/)


@dataclasses.dataclass(frozen=True)
class EvalArgs:
    """Evaluate MPC on a task suite and write a results folder."""

    checkpoint: str = "runs/tworoom-state"
    """Training run directory (from `jepa-mpc train`). Its dataset is used for the goal graph."""
    suite: str = DEFAULT_SUITE
    """Task-suite JSON file (see envs/tasks/SCHEMA.md)."""
    dynamics: Literal["model", "oracle"] = "model"
    """model: plan through the learned world model; oracle: the same planner on true MuJoCo dynamics."""
    out: str = ""
    """Results folder (default: results/<suite>-<planner>-<dynamics>)."""
    episodes: int = 0
    """Evaluate the first N tasks of the suite (0: all)."""
    batch: int = 100
    """Episodes run and planned at once (vmapped)."""
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
    )


# ---------------------------------------------------------------------------- provenance


def package_versions() -> dict[str, str]:
    import flax
    import optax

    from jepa_mpc import provenance

    return {**provenance.package_versions(), "jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__}


# ------------------------------------------------------------------------------- set-up


def _load_suite(path: str):
    from jepa_mpc_envs.ogbench_adapter import load_suite  # OGBench suites; any other through envs.tasks

    return load_suite(path)


def _run_record(run_dir: str) -> dict:
    from jepa_mpc.model.checkpoint import read_run_config

    return read_run_config(run_dir)[1]


def _dataset_for(args: EvalArgs, record: dict | None):
    from jepa_mpc.data.store import Dataset

    path = (record or {}).get("data")
    if not path:
        raise ConfigError(f"{args.checkpoint}: run record names no dataset (needed for the goal graph)")
    return Dataset.open(path), path


def _check_suite_matches(suite, meta: dict, where: str) -> None:
    env_id = meta.get("env_id")
    if env_id and env_id != suite.env_id:
        raise ConfigError(f"{suite.path}: suite is for {suite.env_id!r}, but {where} was trained on {env_id!r}")


def build_policy(args: EvalArgs, suite, frame_skip: int):
    """(policy, env obs_type, planner config or None, checkpoint info)."""
    from jepa_mpc_envs.registry import get_env_spec

    cfg = args.control
    env = get_env_spec(suite.env_id)
    if isinstance(cfg.planner, RandomActions):
        return RandomActionsPolicy(cfg.action_block, env.action_dim), "state", None, None
    validate_control(cfg)
    record = _run_record(args.checkpoint)
    ds, data_path = _dataset_for(args, record)
    _check_suite_matches(suite, ds.meta, f"{args.checkpoint} (dataset {data_path})")
    if args.dynamics == "oracle":
        goal = cfg.goal.build(goals.StateSpace(env, ds, suite.layout), cfg.seed)
        sim = mujoco_block_simulator(env.build_model(suite.layout), frame_skip, cfg.action_block, env=env)
        policy = OraclePlannerPolicy(sim, cfg, goal, action_dim=env.action_dim, goal_dim=env.goal_dim)
        return policy, "state", policy.planner_cfg, None
    from jepa_mpc.model.checkpoint import load_world_model

    model = load_world_model(args.checkpoint)
    probe = None
    if cfg.safety != "none" or any(t.hazards for t in suite.tasks):
        from jepa_mpc.probe import load_or_train_probe

        probe = load_or_train_probe(model, ds)  # constraints are read from the latents through it
    encode_p = jax.jit(model.encode_p)

    def encode(obs):
        return encode_p(model.state, obs)

    to_xy = None
    if probe is not None:  # goal-graph node positions, for detours around hazards
        from jepa_mpc.probe import apply_probe

        arrays = probe.arrays()
        to_xy = lambda nodes: np.asarray(jax.jit(apply_probe)(arrays, jnp.asarray(nodes)))[:, :2]  # noqa: E731
    goal = cfg.goal.build(goals.LatentSpace(encode, model.obs_key, ds, env, suite.layout, to_xy), cfg.seed)
    policy = LatentPlannerPolicy(model, cfg, goal, probe)
    return policy, model.obs_key, policy.planner_cfg, {"run": args.checkpoint, "step": model.step}


# ------------------------------------------------------------------------------- main


def evaluate(args: EvalArgs) -> tuple[dict, Path]:
    from jepa_mpc_envs.registry import get_env_spec

    if args.episodes < 0 or args.batch <= 0:
        raise ConfigError("--episodes must be >= 0 and --batch > 0")
    if args.planner != "random-actions" and args.dynamics == "model" and not Path(args.checkpoint).is_dir():
        raise ConfigError(f"--checkpoint {args.checkpoint}: no such run directory (train one with `jepa-mpc train`)")
    suite = _load_suite(args.suite)
    env_spec = get_env_spec(suite.env_id)
    tasks = suite.tasks[: args.episodes or None]
    frame_skip = 5
    policy, obs_type, planner_cfg, ckpt = build_policy(args, suite, frame_skip)
    label = f"{args.planner}" + ("" if args.planner == "random-actions" else f" ({args.dynamics})")
    out = Path(args.out or f"results/{Path(args.suite).stem}-{args.planner}-{args.dynamics}")
    out.mkdir(parents=True, exist_ok=True)

    latencies, batch_sizes, records = [], [], []
    key = jax.random.key(args.seed)
    t0 = time.perf_counter()
    bar = tqdm(total=len(tasks), desc=f"eval {label}", unit="ep")
    for start in range(0, len(tasks), args.batch):
        chunk = tasks[start : start + args.batch]
        envs = [env_spec.make_env(layout=suite.layout, obs_type=obs_type, frame_skip=frame_skip) for _ in chunk]

        def on_plan(info):
            if info["latency_s"]:
                latencies.append(info["latency_s"])
                batch_sizes.append(info["live"])  # episodes planned in this call
            bar.set_postfix(live=info["live"], plan_ms=f"{1e3 * info['latency_s']:.0f}")

        key, sub = jax.random.split(key)
        recs = run_mpc(envs, chunk, policy, sub, on_plan=on_plan)
        records += recs
        for env in envs:
            env.close()
        bar.update(len(chunk))
        bar.set_postfix(success=f"{np.mean([r.success for r in records]):.3f}")
    bar.close()
    wall = time.perf_counter() - t0
    summary = summarize(records, latencies, batch_sizes, wall)
    if getattr(policy, "room_graphs", None) is not None:  # reward-free steps spent exploring the rooms first
        summary["exploration_env_steps"] = policy.room_graphs.explored_steps
    result = {
        "schema_version": 1,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": provenance.git_commit(),
        "versions": package_versions(),
        "args": to_dict(args),
        "label": label,
        "suite": {
            "path": str(args.suite),
            "sha256": hashlib.sha256(Path(args.suite).read_bytes()).hexdigest(),
            "env_id": suite.env_id,
            "tasks": len(tasks),
        },
        "checkpoint": ckpt,
        "planner_config": to_dict(planner_cfg) if planner_cfg is not None else None,
        "goal_config": to_dict(args.control.goal) if planner_cfg is not None else None,
        "summary": summary,
        "episodes": [
            {
                "task": r.task,
                "success": r.success,
                "steps": r.steps,
                "violation_steps": r.violation_steps,
                "violation_free": r.violation_free,
                "final_distance": float(r.final_distance),
                "plans": r.plans,
                "infeasible_plans": r.infeasible_plans,
            }
            for r in records
        ],
    }
    write_json_atomic(out / "results.json", result, sort_keys=False)
    (out / "summary.md").write_text(summary_markdown(label, summary))
    if args.video:
        from jepa_mpc.video import write_episode_video

        write_episode_video(out / "episodes.mp4", suite, tasks[: args.video], records[: args.video])
    return result, out


def eval_main(args: EvalArgs) -> None:
    result, out = evaluate(args)
    print(summary_markdown(result["label"], result["summary"]), end="")
    print(f"results: {out / 'results.json'}")


__all__ = ["EvalArgs", "evaluate", "eval_main", "wilson_interval", "summarize"]
