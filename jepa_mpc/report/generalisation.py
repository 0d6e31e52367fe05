"""Held-out ÷ in-distribution: how much success a setting keeps on tasks unlike its training data.

A suite `NAME_indist_SPLIT.json` is the in-distribution counterpart of `NAME_SPLIT.json` (same family and
split, tasks drawn from the training distribution's range instead of the held-out one; e.g.
`tworoom_layouts_indist_test.json` and `tworoom_layouts_test.json`). Every cell on a held-out suite is
paired with the cell of the same setting (every axis but family and suite) on its counterpart, and the
ratio of their pooled success rates gets a 95 % interval by the Katz log method for two independent
binomial proportions, with 0.5 added to every count of a pair where one count is 0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import PurePosixPath

from jepa_mpc.report.pool import CELL_AXES, Cell, _hashable

INDIST_RE = re.compile(r"^(?P<base>.+)_indist_(?P<split>[A-Za-z0-9]+)\.json$")
PAIRED_AXES = tuple(a for a in CELL_AXES if a not in ("family", "suite"))


def held_out_counterpart(suite: str | None) -> str | None:
    """The held-out suite path of an in-distribution one (`X_indist_test.json` -> `X_test.json`), else None."""
    if not suite:
        return None
    path = PurePosixPath(suite)
    match = INDIST_RE.match(path.name)
    return str(path.with_name(f"{match['base']}_{match['split']}.json")) if match else None


def rate_ratio(k1: int, n1: int, k2: int, n2: int, z: float = 1.96) -> tuple[float, float, float] | None:
    """(k1/n1 ÷ k2/n2, low, high), a Katz log interval; None when either proportion is undefined or the
    denominator's successes are 0 (the ratio is unbounded)."""
    if n1 <= 0 or n2 <= 0 or k2 <= 0:
        return None
    ratio = (k1 / n1) / (k2 / n2)
    if k1 == 0 or k1 == n1 or k2 == n2:  # a zero in the variance terms: 0.5 added to every count
        k1, n1, k2, n2 = k1 + 0.5, n1 + 1.0, k2 + 0.5, n2 + 1.0
    se = math.sqrt((1 - k1 / n1) / k1 + (1 - k2 / n2) / k2)
    centre = math.log((k1 / n1) / (k2 / n2))
    return ratio, math.exp(centre - z * se), math.exp(centre + z * se)


def generalisation_pairs(cells: Sequence[Cell]) -> list[dict]:
    """One record per (held-out cell, in-distribution cell) pair that both ran: their axes, pooled
    successes / episodes and the ratio with its interval (None when undefined)."""
    by_setting: dict[tuple, Cell] = {}
    for cell in cells:
        by_setting[_setting(cell, cell["suite"])] = cell
    out = []
    for indist in cells:
        suite = held_out_counterpart(indist["suite"])
        held = by_setting.get(_setting(indist, suite)) if suite else None
        if held is None or not held.episodes or not indist.episodes:
            continue
        ratio = rate_ratio(held.successes, held.episodes, indist.successes, indist.episodes)
        out.append({
            **{a: held[a] for a in PAIRED_AXES}, "experiment": held.experiment,
            "family": held["family"], "held_out_suite": held["suite"], "indist_suite": indist["suite"],
            "held_out": (held.successes, held.episodes), "indist": (indist.successes, indist.episodes),
            "ratio": None if ratio is None else ratio[0], "ratio_ci95": None if ratio is None else list(ratio[1:]),
        })
    return out


def _setting(cell: Cell, suite: str | None) -> tuple:
    return tuple(_hashable(cell[a]) for a in PAIRED_AXES) + (cell.experiment, cell.model_evaluations, suite)
