"""`jepa-mpc report DIR [DIR ...] [--out DIR]`: tables, CSV and plots from result files alone.

    jepa-mpc report results/planners-tworoom            # an experiment folder (plan.json): report into it
    jepa-mpc report results/reference/demo              # a folder of `jepa-mpc eval` results folders
    jepa-mpc report results/a results/b --out results/ab   # several folders combined into one report

Writes into the folder (or --out): results.csv (one tidy row per eval with results), report.md
(header with commits / dirty trees / the reproducing command, one table per family · obs · split with
Wilson 95 % intervals pooled over seeds and per-seed values, random and oracle beside the learned
model, world-model collapse metrics, the smallest budget within 2 points of CEM 300 x 30, held-out ÷
in-distribution success ratios (suites X_indist_<split>.json beside X_<split>.json), jobs not run), models.csv (when models/*/train.json or inspect.json exist) and plots/*.png, plots/*.svg. Every
file is written atomically; plots of an earlier build that this one does not draw are removed.
The same input files give byte-identical outputs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import tyro

from jepa_mpc.atomic import write_text_atomic
from jepa_mpc.report.efficiency import smallest_matching_budgets
from jepa_mpc.report.generalisation import generalisation_pairs
from jepa_mpc.report.load import Experiment, ReportError, load_folder
from jepa_mpc.report.pool import merge_orders, pool, sections
from jepa_mpc.report.tables import model_records, models_csv, report_markdown, results_csv

REPORT_FILE, CSV_FILE, MODELS_CSV_FILE, PLOTS_DIR = "report.md", "results.csv", "models.csv", "plots"


def write_report(results_dir: Path) -> dict:
    """Rebuild report.md, results.csv, [models.csv] and plots/ of one experiment (or results) folder."""
    return build_report([Path(results_dir)], Path(results_dir))


def build_report(folders: Sequence[Path], out: Path) -> dict:
    """Report of the folders (combined when several) written into `out`. Returns a summary dict:
    {"out", "evals", "not_run", "files", "answers"}."""
    experiments = [load_folder(Path(f)) for f in folders]
    names = [e.name for e in experiments]
    if len(set(names)) < len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ReportError(f"experiment name(s) {', '.join(dup)} given twice; a combined report needs distinct ones")
    rows = [r for e in experiments for r in e.rows]
    if not any(r.ran for r in rows):
        where = ", ".join(str(e.folder) for e in experiments)
        raise ReportError(f"{where}: no results yet ({len(rows)} eval job(s) in plan.json, none with results.json)")
    combined = len(experiments) > 1
    order = merge_orders(e.order for e in experiments)
    cells = pool(rows, by_experiment=combined)
    secs = sections(cells, order)
    answers = smallest_matching_budgets(secs)
    pairs = generalisation_pairs([c for s in secs for c in s.cells])
    table_order = {id(c): i for i, c in enumerate(c for s in secs for c in s.cells)}
    rank = {id(r): table_order.get(id(c), len(table_order)) for c in cells for r in c.rows}
    ordered_rows = sorted(rows, key=lambda r: (rank[id(r)], r.axes["seed"] is None, r.axes["seed"] or 0, r.job_id))

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / PLOTS_DIR).mkdir(exist_ok=True)
    written = [out / CSV_FILE]
    write_text_atomic(out / CSV_FILE, results_csv(ordered_rows))
    records = model_records(experiments)
    if records:
        write_text_atomic(out / MODELS_CSV_FILE, models_csv(records))
        written.append(out / MODELS_CSV_FILE)
    else:
        (out / MODELS_CSV_FILE).unlink(missing_ok=True)  # of an earlier build
    figures = _draw(secs, out / PLOTS_DIR)
    written += [p for paths in figures for p in paths]
    shown = [[f"{PLOTS_DIR}/{p.name}" for p in paths if p.suffix == ".png"] for paths in figures]
    text = report_markdown(experiments, ordered_rows, secs, records, answers, shown, out, order, pairs)
    write_text_atomic(out / REPORT_FILE, text)
    written.append(out / REPORT_FILE)
    _remove_stale_plots(out / PLOTS_DIR, set(written))
    return {"out": str(out), "evals": sum(r.ran for r in rows), "not_run": sum(not r.ran for r in rows),
            "files": [str(p) for p in written], "answers": answers, "generalisation": pairs}


def _draw(secs, folder: Path) -> list[list[Path]]:
    from jepa_mpc.report.plots import draw_section

    slugs: list[str] = []
    for s in secs:
        slug = _slug(s)
        n = sum(1 for x in slugs if x == slug or x.startswith(slug + "~"))
        slugs.append(slug if n == 0 else f"{slug}~{n + 1}")
    return [draw_section(s, folder, slug.replace("~", "-")) for s, slug in zip(secs, slugs, strict=True)]


def _slug(section) -> str:
    parts = [section.family or "unknown", section.obs or "", section.split or ""]
    if not section.split and section.suite:
        parts.append(Path(section.suite).stem)
    text = "-".join(p for p in parts if p)
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in text)


def _remove_stale_plots(folder: Path, keep: set[Path]) -> None:
    for path in sorted(folder.iterdir()):
        if path.suffix in (".png", ".svg") and path not in keep:
            path.unlink()


# ------------------------------------------------------------------------------------- CLI


@dataclasses.dataclass(frozen=True)
class ReportArgs:
    """Rebuild report.md, results.csv and plots from result files alone."""

    dirs: tyro.conf.Positional[Annotated[tuple[str, ...], tyro.conf.arg(metavar="DIR")]]
    """Experiment folders (with plan.json) or folders of `jepa-mpc eval` results folders."""
    out: str = ""
    """Write one combined report of all DIRs here (default: each DIR gets its own report)."""


def report_main(args: ReportArgs) -> None:
    if not args.dirs:
        raise ReportError("report: give at least one results folder (jepa-mpc report DIR [DIR ...])")
    for d in args.dirs:  # every folder is read (and checked) before anything is written
        load_folder(Path(d))
    jobs = [(list(args.dirs), Path(args.out))] if args.out else [([d], Path(d)) for d in args.dirs]
    for folders, out in jobs:
        summary = build_report([Path(f) for f in folders], out)
        print(f"report: {out / REPORT_FILE} ({summary['evals']} evals, {summary['not_run']} not run, "
              f"{len(summary['files'])} files)")
        for a in summary["answers"]:
            print(f"  {a['family']} {a['obs']}: {a['planner']} {a['budget']} within 2 points of CEM 300x30 at "
                  f"{a['model_evaluations']:,} model evaluations ({100 * a['fraction']:.1f} % of 9,000)")


__all__ = ["write_report", "build_report", "ReportArgs", "report_main", "ReportError", "Experiment"]
