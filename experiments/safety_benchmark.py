"""Safety benchmark: unconstrained / penalty / constrained MPC on a TwoRoom hazard suite (validation split
by default; --suite envs/tasks/tworoom_hazards_test.json to report, tworoom_hazards.json for the legacy suite).

    .venv/bin/python experiments/safety_benchmark.py --episodes 40          # quick
    .venv/bin/python experiments/safety_benchmark.py --stride 5 --offset 2  # 40 tasks, half line, half door
    .venv/bin/python experiments/safety_benchmark.py                        # all 200 tasks (~1 h on 2 cores)

Each mode is one `jepa-mpc eval` run (same checkpoint, tasks, planner budget and seed); finished
runs (results.json with the same arguments) are reused. Prints violation-free and success rates
with 95 % Wilson intervals side by side.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from jepa_mpc.config import to_dict
from jepa_mpc.control import ControlConfig
from jepa_mpc.evaluate import EvalArgs, evaluate
from jepa_mpc.planning import PLANNERS, make_config
from jepa_mpc_envs.registry import load_suite
from jepa_mpc_envs.suites import save_suite


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="runs/tworoom-state", help="a trained run (make demo trains this one)")
    ap.add_argument("--suite", default="envs/tasks/tworoom_hazards_val.json",
                    help="tune on the validation split (default); report tworoom_hazards_test.json once")
    ap.add_argument("--episodes", type=int, default=0, help="first N tasks (0: all)")
    ap.add_argument("--planner", default="cem", choices=sorted(PLANNERS), help="at its default settings")
    ap.add_argument("--modes", default="none,penalty,constrained")
    ap.add_argument("--stride", type=int, default=1, help="every k-th task (from --offset): a mixed line/door subset")
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("--out", default="results/safety")
    ap.add_argument("--safety-buffer", type=float, default=ControlConfig.safety_buffer, help="margin in metres")
    ap.add_argument("--safety-motion", type=float, default=ControlConfig.safety_motion,
                    help="extra margin per metre of predicted block travel")
    args = ap.parse_args()
    suite_path, tag = args.suite, str(args.episodes or "all")
    if args.stride > 1 or args.offset:
        suite = load_suite(args.suite)
        subset = dataclasses.replace(suite, tasks=suite.tasks[args.offset :: args.stride])
        tag = f"s{args.stride}o{args.offset}-{args.episodes or 'all'}"
        suite_path = save_suite(subset, f"{args.out}/suite-{tag}.json")

    tag += f"-b{args.safety_buffer:g}-m{args.safety_motion:g}"
    rows = []
    for mode in args.modes.split(","):
        control = ControlConfig(planner=make_config(args.planner), safety=mode, safety_buffer=args.safety_buffer,
                                safety_motion=args.safety_motion)
        ev = EvalArgs(checkpoint=args.checkpoint, suite=suite_path, episodes=args.episodes, control=control,
                      out=f"{args.out}/{args.planner}-{mode}-{tag}")
        path = Path(ev.out) / "results.json"
        old = json.loads(path.read_text()) if path.is_file() else None
        if old is not None and old["args"] == json.loads(json.dumps(to_dict(ev))):
            result = old
        else:
            result, _ = evaluate(ev)
        rows.append((mode, result["summary"]))

    print("| planner | safety | episodes | violation-free [95 % CI] | success [95 % CI] | infeasible plans (episodes) |")
    print("|---|---|---|---|---|---|")
    pct = lambda r, ci: f"{100 * r:.1f} % [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"  # noqa: E731
    for mode, s in rows:
        print(f"| {args.planner} | {mode} | {s['episodes']} | {pct(s['violation_free_rate'], s['violation_free_ci95'])} "
              f"| {pct(s['success_rate'], s['success_ci95'])} | {s.get('infeasible_plans', '-')} "
              f"({s.get('episodes_with_infeasible_plans', '-')}) |")


if __name__ == "__main__":
    main()
