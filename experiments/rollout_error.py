"""Where a world model's predictions go wrong: the safety-point error of probe(predicted latent), 1..5
blocks ahead, of several runs on the same held-out episodes and the same start blocks.

    .venv/bin/python experiments/rollout_error.py runs/tworoom-pixels runs/tworoom-pixels-h2 \
        --data data/tworoom-pixels --out results/latent-history/rollout_error.json

Each run needs its probe (`jepa-mpc probe RUN`). A run with a latent history of L starts from its true
past; the start blocks must leave every run's history inside the episode. Prints one row per run and
start block (cm) and writes them, with each run's step and the commit, to --out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jepa_mpc.atomic import write_json_atomic
from jepa_mpc.errors import UserError
from jepa_mpc.model import load_world_model
from jepa_mpc.probe import load_probe, rollout_position_rmse
from jepa_mpc.provenance import git_state
from jepa_mpc.run import Run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="trained runs with a probe")
    ap.add_argument("--data", default="", help="held-out episodes of this dataset (default: each run's own)")
    ap.add_argument("--starts", type=int, nargs="+", default=[1, 4, 10], help="start blocks of the predictions")
    ap.add_argument("--blocks", type=int, default=5)
    ap.add_argument("--out", default="", help="a JSON file for the rows")
    args = ap.parse_args()

    rows = []
    for run in args.runs:
        model, probe = load_world_model(run), load_probe(run)
        if probe is None:
            raise UserError(f"{run}: no probe (run `jepa-mpc probe {run}` first)")
        ds = Run.open(run).dataset(args.data)  # the run's own (checked unchanged), or --data (checked: same env)
        for start in args.starts:
            cm = [100 * v for v in rollout_position_rmse(model, probe, ds, blocks=args.blocks, start=start)]
            rows.append({"run": run, "step": model.step, "history": model.history, "start_block": start,
                         "rmse_cm": [round(v, 2) for v in cm]})
            print(f"{run} (history {model.history}), from block {start}: " + ", ".join(f"{v:.1f}" for v in cm) + " cm")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(args.out, {"rows": rows, "data": args.data or "each run's own", **git_state()})


if __name__ == "__main__":
    try:
        main()
    except UserError as err:  # bad input: one line, exit 2
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
