"""Figures of one section (family · obs · split), as PNG and SVG, with matplotlib's Agg/SVG writers
(no pyplot, no display): success vs model evaluations per plan and vs plan time per episode (when the
budget varies), success vs data size (when `data` varies), bars per model variant / goal cost (when
those vary), bars per agent when a GCBC policy is among them (a benchmark). Error bars: Wilson 95 %
intervals of the success pooled over seeds; random and oracle (and GCBC beside planner budgets) as
horizontal lines. The same cells give the same bytes (fixed SVG hash salt, no dates, no software tag).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from jepa_mpc.atomic import atomic_path
from jepa_mpc.report.pool import Cell, Section, varying

FORMATS = ("png", "svg")
METADATA = {"png": {"Software": None}, "svg": {"Date": None}}
RC = {"svg.hashsalt": "jepa-mpc-report", "svg.fonttype": "path", "font.size": 9, "axes.grid": True,
      "grid.alpha": 0.3, "figure.dpi": 100}
AGENT_COLOURS = {"model": "C0", "gcbc": "C2", "oracle": "0.25", "random": "0.65"}
BASELINE_STYLE = {"random": ("0.45", ":"), "oracle": ("0.1", "--")}


def _figure():
    from matplotlib.figure import Figure

    return Figure(figsize=(6.4, 4.2), layout="constrained")


def _label(cell: Cell, axes: Sequence[str]) -> str:
    parts = [str(cell[a]) for a in axes if cell[a] is not None]
    label = " · ".join(parts) or str(cell["agent"])
    return f"{label} ({cell.experiment})" if cell.experiment else label  # a combined report: per experiment


def _lines(cells: Sequence[Cell], series_axes: Sequence[str], x: Callable[[Cell], float | None]) -> dict[str, list]:
    """series label -> [(x, rate, lo, hi)] sorted by x, cells without results or x left out."""
    series: dict[str, list] = {}
    for c in cells:
        if c.rate is None or x(c) is None:
            continue
        lo, hi = c.ci95
        series.setdefault(_label(c, series_axes), []).append((x(c), c.rate, lo, hi))
    return {k: sorted(v) for k, v in series.items()}


def _draw_baselines(ax, section: Section, policies: bool = False) -> None:
    """Random and oracle (and with `policies` the GCBC policies, which have no budget) as horizontal lines."""
    lines = list(section.baselines) + ([c for c in section.learned if c["agent"] == "gcbc"] if policies else [])
    for c in lines:
        if c.rate is None:
            continue
        colour, style = BASELINE_STYLE.get(c["agent"], ("C7", "-."))
        extra = [str(v) for v in (c["planner"], c["budget"], c.experiment or None) if v is not None]
        ax.axhline(100 * c.rate, color=colour, linestyle=style, linewidth=1.2,
                   label=" ".join([c["agent"]] + extra) + f" ({100 * c.rate:.1f} %)")


def _error_bars(points: Sequence[tuple[float, float, float]]) -> list[list[float]]:
    """matplotlib's [below, above] error bars in percent from (rate, low, high); at 0 % or 100 % success
    the Wilson bound equals the rate up to rounding (100 of 100: high 0.9999999999999999), so clamp at 0."""
    return [[max(0.0, 100 * (r - lo)) for r, lo, _ in points], [max(0.0, 100 * (hi - r)) for r, _, hi in points]]


def _line_plot(section: Section, cells: Sequence[Cell], series_axes: Sequence[str], x: Callable, xlabel: str,
               title: str):
    fig = _figure()
    ax = fig.add_subplot()
    for label, points in _lines(cells, series_axes, x).items():
        xs = [p[0] for p in points]
        ys = [100 * p[1] for p in points]
        err = _error_bars([(p[1], p[2], p[3]) for p in points])
        ax.errorbar(xs, ys, yerr=err, marker="o", markersize=4, capsize=3, linewidth=1.4, label=label)
    _draw_baselines(ax, section, policies=all(c["agent"] == "model" for c in cells))
    ax.set_xscale("log")
    ax.set_ylim(-2, 102)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("success % (95 % Wilson interval)")
    ax.set_title(f"{section.title}: {title}")
    ax.legend(fontsize=7, loc="best")
    return fig


def _bar_plot(section: Section, cells: Sequence[Cell], bar_axes: Sequence[str], title: str, lines: bool = True):
    fig = _figure()
    ax = fig.add_subplot()
    ran = [c for c in cells if c.rate is not None]
    labels = [_label(c, bar_axes) for c in ran]
    ys = [100 * c.rate for c in ran]
    err = _error_bars([(c.rate, *c.ci95) for c in ran])
    colours = [AGENT_COLOURS.get(c["agent"], "C0") for c in ran]
    ax.bar(range(len(ran)), ys, yerr=err, capsize=3, color=colours, alpha=0.85)
    ax.set_xticks(range(len(ran)), labels, rotation=30 if len(ran) > 4 else 0, ha="right" if len(ran) > 4 else "center")
    if lines:
        _draw_baselines(ax, section, policies=True)
    ax.set_ylim(0, 102)
    ax.set_ylabel("success % (95 % Wilson interval)")
    ax.set_title(f"{section.title}: {title}")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")
    return fig


def section_figures(section: Section) -> dict[str, object]:
    """kind -> matplotlib Figure for the axes that vary in the section's learned-model cells."""
    learned = [c for c in section.learned if c["agent"] == "model"]
    figures = {}
    if len({c.model_evaluations for c in learned if c.model_evaluations is not None}) > 1:
        series = ["planner"] + [a for a in ("model", "data", "goal") if varying(learned, a)]
        figures["success-vs-evals"] = _line_plot(section, learned, series, lambda c: c.model_evaluations or None,
                                                 "model evaluations per plan (log)", "success vs budget")
        figures["success-vs-time"] = _line_plot(section, learned, series, lambda c: c.plan_ms or None,
                                                "plan time per episode, ms (log)", "success vs plan time")
    with_data = [c for c in section.learned if isinstance(c["data"], (int, float))]
    if varying(with_data, "data"):
        series = ["agent"] + [a for a in ("planner", "budget", "model", "goal") if varying(with_data, a)]
        figures["success-vs-data"] = _line_plot(section, with_data, series, lambda c: c["data"] or None,
                                                "reward-free transitions (log)", "success vs data")
    for axis, name in (("model", "model variant"), ("goal", "goal cost")):
        if varying(learned, axis):
            bars = [axis] + [a for a in ("planner", "budget", "data", "model", "goal") if a != axis and varying(learned, a)]
            figures[f"success-by-{axis}"] = _bar_plot(section, learned, bars, f"success by {name}")
    if any(c["agent"] == "gcbc" for c in section.learned):  # a benchmark: every agent side by side
        bars = ["agent"] + [a for a in ("planner", "budget", "model", "data", "goal") if varying(section.cells, a)]
        figures["success-by-agent"] = _bar_plot(section, section.cells, bars, "success by agent", lines=False)
    return figures


def save_figure(fig, stem: Path) -> list[Path]:
    """stem.png and stem.svg, each written to a temp name and renamed into place."""
    import matplotlib

    paths = []
    with matplotlib.rc_context(RC):
        for fmt in FORMATS:
            path = stem.with_name(f"{stem.name}.{fmt}")
            with atomic_path(path, keep_suffix=True) as tmp:
                fig.savefig(tmp, format=fmt, metadata=METADATA[fmt])
            paths.append(path)
    return paths


def draw_section(section: Section, folder: Path, slug: str) -> list[Path]:
    """Every figure of the section, saved as folder/<slug>-<kind>.{png,svg}; the paths written."""
    import matplotlib

    written = []
    with matplotlib.rc_context(RC):
        for kind, fig in section_figures(section).items():
            written += save_figure(fig, folder / f"{slug}-{kind}")
    return written
