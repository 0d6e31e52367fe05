"""How many sampled plans keep a speed limit: CEM's first Gaussian samples, rolled out on the true simulator
from the starts of a suite's speed-limited tasks, at several initial spreads (``--planner.init-std``).

    .venv/bin/python experiments/speed_limit_sampling.py \\
        --suite envs/tasks/reacher_hazards_hard_val.json --tasks 10 --stds 1 0.5 0.3 0.2

For each spread it prints the fraction of plans whose every env step stays under the task's limit
(the mean over tasks) and the farthest such a plan moves the family's goal features in its horizon.
For families whose task start is the first fields of their state (Reacher, TwoRoom).
"""

from __future__ import annotations

import argparse

import numpy as np

from jepa_mpc.control import mujoco_block_simulator
from jepa_mpc_envs.registry import get_family, load_suite


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="envs/tasks/reacher_hazards_hard_val.json")
    ap.add_argument("--tasks", type=int, default=10, help="the first N tasks that carry a speed limit")
    ap.add_argument("--stds", type=float, nargs="+", default=[1.0, 0.5, 0.3, 0.2])
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--horizon", type=int, default=8, help="plan blocks")
    ap.add_argument("--action-block", type=int, default=5)
    ap.add_argument("--frame-skip", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    suite = load_suite(args.suite)
    family = get_family(suite.env_id)
    tasks = [t for t in suite.tasks if getattr(t, "speed_limit", None)][: args.tasks]
    if not tasks:
        raise SystemExit(f"{args.suite}: no task carries a speed limit")
    simulate = mujoco_block_simulator(family.build_model(suite.layout), args.frame_skip, args.action_block, env=family)
    goal_dim, rng = family.goal_dim, np.random.default_rng(args.seed)
    shape = (args.samples, args.horizon, args.action_block * family.action_dim)
    print(f"{len(tasks)} speed-limited tasks of {args.suite}, {args.samples} plans of {args.horizon} x "
          f"{args.action_block} steps each")
    for std in args.stds:
        kept, reach = [], []
        for task in tasks:
            start = np.zeros(len(family.state_fields), np.float32)  # the task's start point, at rest
            start[: len(task.start)] = task.start
            plans = np.clip(rng.normal(0.0, std, shape), -1.0, 1.0).astype(np.float32)
            out = simulate(np.repeat(start[None], args.samples, 0), plans)  # (N, H, k, goal_dim + R)
            speeds = family.safety_geometry(out[..., goal_dim:].astype(np.float64), suite.layout, np)[1]
            safe = speeds.max(axis=(1, 2, 3)) <= task.speed_limit
            moved = np.abs(out[:, -1, -1, :goal_dim] - family.goal_features(start[None])[0]).max(-1)
            kept.append(safe.mean())
            reach.append(moved[safe].max() if safe.any() else 0.0)
        print(f"init-std {std:g}: {np.mean(kept):.1%} of plans keep the limit at every step; "
              f"the farthest safe plan moves {np.mean(reach):.2f} (goal-feature units, mean over tasks)")


if __name__ == "__main__":
    main()
