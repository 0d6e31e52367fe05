"""Draw the subgoals the two-level planner handed down (``--control.hierarchy graph``), one panel per episode:
the positions the reward-free data visited (grey: the maze's free space as the data saw it), the episode's
start and goal, and the recorded subgoal positions in the order they were given (a line from the start).

    .venv/bin/python experiments/plot_subgoals.py results/hierarchy/pointmaze-giant/test/hier-h3-a25 \\
        --data data/ogbench-pointmaze-giant --suite envs/tasks/ogbench_pointmaze_giant_test.json \\
        --episodes 0 1 2 3 4 --out results/hierarchy/pointmaze-giant/test/subgoals

Writes OUT.png and OUT.svg. Everything drawn comes from the eval's results.json, its suite and the dataset.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from jepa_mpc.atomic import atomic_path
from jepa_mpc.data.store import Dataset
from jepa_mpc_envs.registry import get_family, load_suite


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", help="an eval folder (results.json with subgoals)")
    ap.add_argument("--data", required=True, help="the dataset the model (and its goal graph) came from")
    ap.add_argument("--suite", default="", help="the eval's task suite (default: the path results.json names)")
    ap.add_argument("--episodes", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--out", required=True, help="output path without suffix")
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = json.loads((Path(args.results) / "results.json").read_text())
    suite = load_suite(args.suite or results["suite"]["path"])
    family = get_family(suite.env_id)
    tasks = {t.name: t for t in suite.tasks}
    free = family.positions(Dataset.open(args.data).arrays["state"]).reshape(-1, 2)[::7]
    episodes = [results["episodes"][i] for i in args.episodes]
    if any("subgoals" not in e for e in episodes):
        raise SystemExit(f"{args.results}: episodes without subgoals (not an eval with --control.hierarchy graph)")

    fig, axes = plt.subplots(1, len(episodes), figsize=(3.6 * len(episodes), 3.0), squeeze=False)
    for ax, ep in zip(axes[0], episodes):
        task = tasks[ep["task"]]
        start, goal = family.positions(np.asarray(task.start)), family.positions(np.asarray(task.goal))
        ax.scatter(free[:, 0], free[:, 1], s=0.2, c="0.85", rasterized=True)
        route = np.array([start] + [s[2] for s in ep["subgoals"] if s[2] is not None])
        ax.plot(route[:, 0], route[:, 1], "-", c="tab:purple", lw=0.8)
        ax.scatter(route[1:, 0], route[1:, 1], s=6, c="tab:purple", label="subgoals")
        ax.scatter(*start, marker="o", s=40, c="tab:blue", label="start")
        ax.scatter(*goal, marker="*", s=90, c="tab:green", label="goal")
        outcome = f"reached in {ep['steps']} steps" if ep["success"] else f"not reached ({ep['steps']} steps)"
        ax.set_title(f"{ep['task']}: {outcome}", fontsize=8)
        ax.set_aspect("equal")
        ax.set_xticks([]), ax.set_yticks([])
    axes[0][0].legend(fontsize=6, loc="lower left")
    fig.tight_layout()
    for suffix in (".png", ".svg"):
        with atomic_path(Path(args.out).with_suffix(suffix), keep_suffix=True) as tmp:
            fig.savefig(tmp, dpi=110)
    print(f"wrote {args.out}.png and .svg ({len(episodes)} episodes)")


if __name__ == "__main__":
    main()
