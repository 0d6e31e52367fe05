"""results.csv (one tidy row per eval with results), models.csv (one row per trained model with its
train.json / inspect.json numbers) and report.md (header, one table per section, world models, the
planner-efficiency answer, jobs not run). Text only, deterministic: the same files give the same bytes."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jepa_mpc.report.efficiency import REFERENCE_EVALUATIONS, TARGET_FRACTION, TOLERANCE
from jepa_mpc.report.load import AXES, Experiment, Row
from jepa_mpc.report.pool import Cell, Section, data_key, position, varying, wilson

CSV_COLUMNS = AXES + ("model_evaluations", "episodes", "successes", "success_rate", "ci_low", "ci_high",
                      "violation_free_rate", "plan_ms_per_episode_p50", "plan_ms_p50", "wall_time_s",
                      "git_commit", "job_id", "git_dirty", "experiment")
# train.json / inspect.json keys shown in report.md, in this order (models.csv has every numeric key)
MODEL_COLUMNS = (
    ("train", "steps", "train steps", "{:.0f}"),
    ("train", "steps_per_s", "steps/s", "{:.1f}"),
    ("inspect", "latent_std_min", "latent std min", "{:.3f}"),
    ("inspect", "latent_std_mean", "latent std mean", "{:.3f}"),
    ("inspect", "effective_rank", "effective rank", "{:.2f}"),
    ("inspect", "active_dims", "active dims", "{:.1f}"),
    ("inspect", "latent_dim", "latent dim", "{:.0f}"),
    ("inspect", "sigreg", "SIGReg", "{:.3f}"),
    ("inspect", "pred_copy_ratio", "pred ÷ copy-last (1 step)", "{:.3f}"),
    ("inspect", "rollout_copy_ratio", "pred ÷ copy-last (rollout)", "{:.3f}"),
    ("inspect", "r2_state", "read-out R² state", "{:.3f}"),
    ("inspect", "r2_position", "read-out R² position", "{:.3f}"),
    ("inspect", "r2_velocity", "read-out R² velocity", "{:.3f}"),
)
MAX_SUCCESS_COLUMNS = 4  # planning settings shown beside the world models (more: see the tables above)


# --------------------------------------------------------------------------------------- CSV


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def _csv(header: Sequence[str], records: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[_csv_value(v) for v in rec] for rec in records])
    return buf.getvalue()


def results_csv(rows: Sequence[Row]) -> str:
    """One line per eval that has results (in table order), the columns of CSV_COLUMNS."""
    records = []
    for r in rows:
        if not r.ran:
            continue
        lo, hi = wilson(r.successes, r.episodes)
        rate = r.successes / r.episodes if r.episodes else None
        free = r.violation_free / r.episodes if r.episodes else None
        records.append([r.axes[a] for a in AXES] + [
            r.model_evaluations, r.episodes, r.successes, rate, lo, hi, free, r.plan_ms_per_episode_p50,
            r.plan_ms_p50, r.wall_time_s, r.git_commit, r.job_id, r.git_dirty, r.experiment])
    return _csv(CSV_COLUMNS, records)


def model_records(experiments: Sequence[Experiment]) -> list[dict]:
    """One dict per trained model: its job, axes, and every number of its train.json / inspect.json."""
    out = []
    for exp in experiments:
        for job_id, entry in sorted(exp.models.items()):
            axes = entry.get("axes") or {}
            rec = {"job_id": job_id, "experiment": exp.name,
                   **{a: axes.get(a) for a in ("family", "obs", "data", "model", "seed")},
                   "kind": "policy" if entry.get("policy") else "world model"}
            for source in ("train", "inspect"):
                rec.update(_flat_numbers(entry.get(source) or {}, source))
            out.append(rec)
    return out


def _flat_numbers(obj: dict, prefix: str) -> dict:
    """{"prefix.key[.sub]": number} of a JSON object's numbers (nested objects flattened; a train.json's
    `config` left out: it is the configuration, not a measurement)."""
    out = {}
    for key, value in obj.items():
        name = f"{prefix}.{key}"
        if isinstance(value, dict) and name != "train.config":
            out.update(_flat_numbers(value, name))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = value
    return out


def model_metric(rec: dict, source: str, key: str) -> float | None:
    """A model's number: train.json's `key`, or inspect.json's (else the collapse metrics train logged at
    its last held-out evaluation, train.json's last_eval)."""
    if source == "train":
        return rec.get(f"train.{key}")
    return rec.get(f"inspect.{key}", rec.get(f"train.last_eval.{key}"))


def models_csv(records: Sequence[dict]) -> str:
    fixed = ["job_id", "experiment", "family", "obs", "data", "model", "seed", "kind"]
    numeric = sorted({k for rec in records for k in rec if k not in fixed})
    return _csv(fixed + numeric, [[rec.get(k) for k in fixed + numeric] for rec in records])


# ---------------------------------------------------------------------------------- markdown


def pct(rate: float | None) -> str:
    return "–" if rate is None else f"{100 * rate:.1f}"


def success_text(cell: Cell) -> str:
    if cell.rate is None:
        return "0 episodes" if cell.ran else "not run"
    lo, hi = cell.ci95
    return f"{pct(cell.rate)} [{pct(lo)}, {pct(hi)}]"


def violation_free_text(cell: Cell) -> str:
    if cell.violation_free_rate is None:
        return "–"
    lo, hi = wilson(cell.violation_free, cell.episodes)
    return f"{pct(cell.violation_free_rate)} [{pct(lo)}, {pct(hi)}]"


def per_seed_text(cell: Cell) -> str:
    return " · ".join(f"s{seed}: {'not run' if rate is None else pct(rate)}" for seed, rate in cell.per_seed())


def _int(value: Any) -> str:
    return "–" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def _text(value: Any) -> str:
    return "–" if value is None else f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def section_table(section: Section, combined: bool) -> list[str]:
    cells = section.cells
    main = section.main
    shown = [a for a in ("model", "data", "goal") if varying(main, a)]
    header = ["agent", "planner", "budget"] + shown + (["experiment"] if combined else [])
    header += ["model evals / plan", "success % [95 % CI]", "per seed", "episodes", "ms / plan / episode"]
    violations = any(c.violation_free_rate is not None and c.violation_free_rate < 1 for c in cells)
    if violations:
        header.insert(-1, "violation-free % [95 % CI]")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for c in cells:
        row = [c["agent"], _text(c["planner"]), _text(c["budget"])] + [_text(c[a]) for a in shown]
        row += [c.experiment] if combined else []
        row += [_int(c.model_evaluations), success_text(c), per_seed_text(c), _int(c.episodes)]
        if violations:
            row.append(violation_free_text(c))
        row.append(_ms(c.plan_ms))
        lines.append("| " + " | ".join(row) + " |")
    fixed = [f"{a} {_text(main[0][a])}" for a in ("model", "data", "goal") if a not in shown and main[0][a] is not None]
    seeds = sorted({r.axes["seed"] for c in cells for r in c.rows if r.axes["seed"] is not None})
    env = main[0]["env_id"]
    facts = fixed + [f"suite `{section.suite}`"] + ([f"env `{env}`"] if env else [])
    facts += [f"seeds {', '.join(map(str, seeds))} (success pooled over seeds: sum of successes ÷ sum of episodes)"]
    return ["", f"## {section.title}", "", "; ".join(facts) + ".", ""] + lines


def models_table(section_key: tuple, records: Sequence[dict], cells: Sequence[Cell],
                 order: dict[str, Sequence]) -> list[str]:
    """World models of one (family, obs): train/inspect numbers (mean over seeds) beside planning success;
    rows by model variant (in the plan's order), then data size."""
    groups: dict[tuple, list[dict]] = {}
    for rec in sorted(records, key=lambda r: (position(order, "model", r["model"]), data_key(r["data"]))):
        groups.setdefault((repr(rec["data"]), repr(rec["model"])), []).append(rec)
    present = [col for col in MODEL_COLUMNS if any(model_metric(rec, col[0], col[1]) is not None for rec in records)]
    learned = [c for c in cells if c["agent"] == "model"]
    settings = []
    for c in learned:
        s = (c["planner"], c["budget"], c["goal"])
        if s not in settings:
            settings.append(s)
    show_success = 0 < len(settings) <= MAX_SUCCESS_COLUMNS
    header = ["data", "model", "seeds"] + [col[2] for col in present]
    if show_success:
        header += [f"success % {' '.join(_text(v) for v in s if v is not None)}" for s in settings]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (_, _), recs in groups.items():
        jobs = {rec["job_id"] for rec in recs}
        row = [_text(recs[0]["data"]), _text(recs[0]["model"]), str(len(recs))]
        for source, key, _, fmt in present:
            values = [v for v in (model_metric(rec, source, key) for rec in recs) if v is not None]
            row.append(fmt.format(sum(values) / len(values)) if values else "–")
        if show_success:
            for s in settings:
                rows = [r for c in learned if (c["planner"], c["budget"], c["goal"]) == s
                        for r in c.ran if r.train_job in jobs]
                n, k = sum(r.episodes for r in rows), sum(r.successes for r in rows)
                row.append(f"{pct(k / n)} [{pct(wilson(k, n)[0])}, {pct(wilson(k, n)[1])}]" if n else "–")
        lines.append("| " + " | ".join(row) + " |")
    family, obs = section_key
    note = ("Collapse metrics from models/<job>/inspect.json (else train.json's last held-out evaluation) and "
            "train.json, mean over seeds")
    note += "; success pooled over the model's evals." if show_success else \
        "; planning success per setting in the tables above."
    return ["", f"### World models · {family} · {obs}", "", note, ""] + lines


def efficiency_table(answers: Sequence[dict]) -> list[str]:
    lines = ["", f"## Smallest budget within {100 * TOLERANCE:.0f} points of CEM 300 × 30", "",
             f"Per table: the fewest model evaluations per plan of any planner whose pooled success is at least "
             f"CEM 300 × 30's ({REFERENCE_EVALUATIONS:,} sequence evaluations) minus {100 * TOLERANCE:.0f} points, "
             f"with the same model, data and goal cost; target ≤ {100 * TARGET_FRACTION:.0f} % of its evaluations.",
             "", "| family | obs | split | setting | CEM 300 × 30 success % | planner | budget | model evals / plan "
             "| fraction of 9,000 | success % [95 % CI] | ≤ 10 % |", "|" + "---|" * 11]
    for a in answers:
        setting = ", ".join(f"{k} {_text(a[k])}" for k in ("model", "data", "goal") if a[k] is not None)
        if a["experiment"]:
            setting += f" ({a['experiment']})"
        ref = f"{pct(a['reference_success'])} [{pct(a['reference_ci95'][0])}, {pct(a['reference_ci95'][1])}]"
        got = f"{pct(a['success'])} [{pct(a['ci95'][0])}, {pct(a['ci95'][1])}]"
        lines.append(f"| {_text(a['family'])} | {_text(a['obs'])} | {_text(a['split'])} | {setting or '–'} | {ref} "
                     f"| {_text(a['planner'])} | {_text(a['budget'])} | {_int(a['model_evaluations'])} "
                     f"| {100 * a['fraction']:.1f} % | {got} | {'yes' if a['meets_target'] else 'no'} |")
    return lines


def generalisation_table(pairs: Sequence[dict]) -> list[str]:
    lines = ["", "## Held-out ÷ in-distribution", "",
             "Each setting on a held-out suite beside the same setting on its in-distribution counterpart "
             "(`X_indist_<split>.json`), seeds pooled; ratio of the success rates with a 95 % interval (Katz log "
             "method).", "", "| family | obs | agent | setting | held-out success % [95 % CI] "
             "| in-distribution success % [95 % CI] | held-out ÷ in-distribution [95 % CI] |", "|" + "---|" * 7]
    for p in pairs:
        setting = ", ".join(f"{k} {_text(p[k])}" for k in ("planner", "budget", "model", "data", "goal")
                            if p[k] is not None)
        if p["experiment"]:
            setting += f" ({p['experiment']})"
        cols = []
        for k, n in (p["held_out"], p["indist"]):
            lo, hi = wilson(k, n)
            cols.append(f"{pct(k / n)} [{pct(lo)}, {pct(hi)}] ({k}/{n})")
        ratio = "–" if p["ratio"] is None else \
            f"{p['ratio']:.2f} [{p['ratio_ci95'][0]:.2f}, {p['ratio_ci95'][1]:.2f}]"
        lines.append(f"| {_text(p['family'])} | {_text(p['obs'])} | {_text(p['agent'])} | {setting or '–'} "
                     f"| {cols[0]} | {cols[1]} | {ratio} |")
    return lines


def display_path(folder: Path) -> str:
    """The folder as `results/...` when it lies under a `results` folder, else its name (the same text
    whatever the working directory, so a rebuild gives the same bytes)."""
    parts = Path(folder).resolve().parts
    if "results" in parts:
        i = len(parts) - 1 - parts[::-1].index("results")
        return "/".join(parts[i:])
    return Path(folder).resolve().name


def header(experiments: Sequence[Experiment], rows: Sequence[Row], out: Path) -> list[str]:
    combined = len(experiments) > 1
    lines = [f"# {'Combined report: ' + ', '.join(e.name for e in experiments) if combined else experiments[0].name}", ""]
    for i, e in enumerate(experiments):
        if combined:
            lines += ([""] if i else []) + [f"**{e.name}**" + (f": {e.description}" if e.description else ""), ""]
        elif e.description:
            lines += [e.description, ""]
        if e.source:
            sha = f" (source sha256 `{e.source_sha256[:16]}`)" if e.source_sha256 else ""
            lines.append(f"- Reproduce{' ' + e.name if combined else ''}: `jepa-mpc experiment run {e.source}`{sha}"
                         + (f"; plan made at commit `{e.git_commit[:12]}`" if e.git_commit else ""))
        else:
            lines.append(f"- {display_path(e.folder)}: eval results folders made by hand (no plan.json); "
                         "axes read from each results.json")
    ran = [r for r in rows if r.ran]
    commits: dict[str, int] = {}
    for r in ran:
        commits[r.git_commit or "unknown"] = commits.get(r.git_commit or "unknown", 0) + 1
    lines += ["", "All results:", ""] if combined else []
    lines.append("- Numbers from commit(s): " + ", ".join(
        f"`{c[:12]}` ({n} eval{'s' * (n != 1)})" for c, n in sorted(commits.items())))
    dirty = [r.job_id for r in ran if r.git_dirty is True]
    unknown = sum(r.git_dirty is None for r in ran)
    if unknown == len(ran):
        tree = f"not recorded (results.json without a provenance block) for all {len(ran)} evals"
    else:
        tree = f"dirty for {len(dirty)} of {len(ran)} evals ({', '.join(dirty)})" if dirty else \
            "clean for every eval that records it"
        if unknown:
            tree += f"; not recorded for {unknown} of {len(ran)} evals (results.json without a provenance block)"
    lines.append(f"- Working tree: {tree}")
    not_run = len(rows) - len(ran)
    lines.append(f"- Evals: {len(ran)} with results" + (f", {not_run} not run (listed below)" if not_run else ""))
    sources = " ".join(display_path(e.folder) for e in experiments)
    out_flag = f" --out {display_path(out)}" if combined or Path(out).resolve() != Path(experiments[0].folder).resolve() else ""
    lines.append(f"- Rebuild this report from the result files: `jepa-mpc report {sources}{out_flag}`")
    lines.append("- Success: % of episodes, Wilson 95 % interval in brackets; model evals / plan: cost-sequence "
                 "evaluations per plan call; ms / plan / episode: median plan time per episode (batched), mean over seeds.")
    return lines


def not_run_list(rows: Sequence[Row]) -> list[str]:
    missing = [r for r in rows if not r.ran]
    if not missing:
        return []
    lines = ["", "## Not run", "", "Eval jobs of the plan without results.json:", ""]
    for r in sorted(missing, key=lambda r: (r.experiment, r.job_id)):
        detail = f": {r.error}" if r.error else ""
        lines.append(f"- `{r.job_id}` ({r.state}{detail})")
    return lines


def report_markdown(experiments: Sequence[Experiment], rows: Sequence[Row], sections: Sequence[Section],
                    model_recs: Sequence[dict], answers: Sequence[dict], figures: Sequence[Sequence[str]],
                    out: Path, order: dict[str, Sequence], pairs: Sequence[dict] = ()) -> str:
    """The whole report.md; figures[i]: the plot files (relative to out) drawn for sections[i]."""
    combined = len(experiments) > 1
    lines = header(experiments, rows, out)
    if answers:
        lines += efficiency_table(answers)
    if pairs:
        lines += generalisation_table(pairs)
    for section, drawn in zip(sections, figures, strict=True):
        lines += section_table(section, combined)
        if drawn:
            lines += [""] + [f"![{Path(p).stem}]({p})" for p in drawn]
    by_family: dict[tuple, list[dict]] = {}
    world_models = [rec for rec in model_recs if rec["kind"] == "world model"]
    for rec in sorted(world_models, key=lambda r: (position(order, "family", r["family"]), position(order, "obs", r["obs"]))):
        by_family.setdefault((rec["family"], rec["obs"]), []).append(rec)
    if by_family:
        lines += ["", "## World models"]
        for key, recs in by_family.items():
            cells = [c for s in sections if (s.family, s.obs) == key for c in s.learned]
            lines += models_table(key, recs, cells, order)
    lines += not_run_list(rows)
    ignored = [f"{e.name}/evals/{i}" for e in experiments for i in e.ignored]
    if ignored:
        lines += ["", f"Result folders not in plan.json (not reported): {', '.join(ignored)}"]
    return "\n".join(lines) + "\n"
