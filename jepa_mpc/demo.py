"""`jepa-mpc demo` (what `make demo` runs): collect -> train -> plan on held-out tasks -> table.

Every stage resumes: a finished dataset or training run is reused, and each evaluation continues
from the episode batches its results folder has recorded, so a second `make demo` reprints the
table without re-running anything. The table puts the learned-model planner between its floor (random
actions) and its ceiling (the same planner on the true simulator).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from jepa_mpc.config import TRAIN_PRESETS, CollectConfig
from jepa_mpc.control import ControlConfig, RandomActions
from jepa_mpc.evaluate import DEFAULT_SUITE, EvalArgs, evaluate, summary_markdown


@dataclasses.dataclass(frozen=True)
class DemoArgs:
    """End-to-end demo on the default task (TwoRoom, state observations)."""

    data: str = "data/tworoom"
    run: str = "runs/tworoom-state"
    results: str = "results/demo"
    preset: str = "tworoom-state"
    suite: str = DEFAULT_SUITE
    episodes: int = 200
    """Held-out tasks for the learned-model planner and random actions (0: all)."""
    oracle_episodes: int = 0
    """Tasks for the oracle baseline (0: all; true MuJoCo dynamics are its slow part)."""
    control: ControlConfig = ControlConfig(iterations=10)
    """CEM: 300 samples, 30 elites, 10 warm-started iterations per re-plan (LeWorldModel uses 30);
    the planner and goal cost as in `jepa-mpc eval` (`planner:NAME --planner.FIELD`, `goal:KIND`)."""
    oracle_samples: int = 64
    oracle_iterations: int = 4
    """Oracle budget (the same planner): batched MuJoCo rollouts cost ~1,000x a latent step, so a smaller one."""
    num_episodes: int = 500
    """Exploration episodes of 100 steps to collect (500 = 50k transitions)."""
    seed: int = 0


def demo_main(args: DemoArgs) -> None:
    from jepa_mpc.data.collect import collect, print_summary
    from jepa_mpc.train import train

    t_start = time.perf_counter()
    timings = {}

    t = time.perf_counter()
    ccfg = CollectConfig(out=args.data, num_episodes=args.num_episodes, seed=args.seed)
    print(f"[1/3] collect {args.num_episodes} reward-free episodes -> {args.data}")
    print_summary(ccfg, collect(ccfg))
    timings["collect"] = time.perf_counter() - t

    t = time.perf_counter()
    cfg = TRAIN_PRESETS[args.preset]
    print(f"[2/3] train preset {args.preset} ({cfg.steps} steps) -> {args.run}")
    result = train(cfg, args.run, args.data)
    e = result.last_eval
    if e:
        print(
            f"  held-out: R^2 {e['r2_state']:.4f}, pred/copy-last {e['pred_copy_ratio']:.3f}, "
            f"effective rank {e['effective_rank']:.1f}/{e['latent_dim']}"
        )
    timings["train"] = time.perf_counter() - t

    print(f"[3/3] evaluate on {Path(args.suite).name}")
    rows = []
    oracle_control = dataclasses.replace(args.control, samples=args.oracle_samples, iterations=args.oracle_iterations)
    runs = [
        ("model", args.episodes, dataclasses.replace(args.control, planner=RandomActions())),
        ("model", args.episodes, args.control),
        ("oracle", args.oracle_episodes, oracle_control),
    ]
    for dynamics, episodes, control in runs:
        t = time.perf_counter()
        eval_args = EvalArgs(
            checkpoint=args.run,
            suite=args.suite,
            dynamics=dynamics,
            episodes=episodes,
            control=control,
            out=f"{args.results}/{control.planner.kind}-{dynamics}",
            seed=args.seed,
        )
        res, _ = evaluate(eval_args)
        rows.append(summary_markdown(res["label"], res["summary"]).splitlines())
        timings[f"eval {res['label']}"] = time.perf_counter() - t

    print()
    print("\n".join(rows[0][:2] + [r[2] for r in rows]))
    print()
    print("time: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + f"; total {time.perf_counter() - t_start:.0f} s")
    print(f"results: {args.results}/*/results.json")
