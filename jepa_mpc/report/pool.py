"""Rows pooled over seeds into table cells, cells grouped into sections (one table / figure each).

A cell is one setting (every axis but the seed): successes and episodes summed over the seeds that
ran, a Wilson 95 % interval of that pooled proportion, and the per-seed rates beside it. A section is
the learned-model cells of one (family, obs, split, suite) with the random and oracle cells of the
same family and suite.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from jepa_mpc.report.load import AXES, Row

LEARNED, BASELINES = ("model", "gcbc"), ("oracle", "random")
AGENT_RANK = {"model": 0, "gcbc": 1, "oracle": 2, "random": 3}
CELL_AXES = tuple(a for a in AXES if a != "seed")


def wilson(successes: int, n: int) -> tuple[float, float]:
    from jepa_mpc.evaluate import wilson_interval  # the one implementation (imports jax: only when drawing)

    return wilson_interval(successes, n)


@dataclasses.dataclass(frozen=True)
class Cell:
    """One setting pooled over seeds (rows that did not run are kept, to be listed as such)."""

    axes: dict[str, Any]  # every axis but the seed
    experiment: str
    model_evaluations: int | None
    rows: tuple[Row, ...]

    @property
    def ran(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.ran)

    @property
    def episodes(self) -> int:
        return sum(r.episodes for r in self.ran)

    @property
    def successes(self) -> int:
        return sum(r.successes for r in self.ran)

    @property
    def rate(self) -> float | None:
        return self.successes / self.episodes if self.episodes else None

    @property
    def ci95(self) -> tuple[float, float] | None:
        return wilson(self.successes, self.episodes) if self.episodes else None

    @property
    def violation_free(self) -> int:
        return sum(r.violation_free for r in self.ran)

    @property
    def violation_free_rate(self) -> float | None:
        return self.violation_free / self.episodes if self.episodes else None

    @property
    def plan_ms(self) -> float | None:
        """Plan time per episode (p50 of each eval), mean over the seeds that ran."""
        values = [r.plan_ms_per_episode_p50 for r in self.ran if r.plan_ms_per_episode_p50 is not None]
        return sum(values) / len(values) if values else None

    def per_seed(self) -> list[tuple[Any, float | None]]:
        """(seed, success rate or None when it did not run), in seed order."""
        rows = sorted(self.rows, key=lambda r: (r.axes["seed"] is None, r.axes["seed"] or 0, r.job_id))
        return [(r.axes["seed"], r.successes / r.episodes if r.ran and r.episodes else None) for r in rows]

    def __getitem__(self, key: str) -> Any:
        return self.axes[key]


@dataclasses.dataclass(frozen=True)
class Section:
    """One table: learned cells of (family, obs, split, suite) plus the baselines of its family/suite."""

    family: str | None
    obs: str | None
    split: str | None
    suite: str | None
    learned: tuple[Cell, ...]
    baselines: tuple[Cell, ...]

    @property
    def cells(self) -> tuple[Cell, ...]:
        return self.learned + self.baselines

    @property
    def main(self) -> tuple[Cell, ...]:
        """The cells whose axes say what the table varies: the planner-on-model ones (else the learned
        policies', else the baselines')."""
        return tuple(c for c in self.learned if c["agent"] == "model") or self.learned or self.baselines

    @property
    def title(self) -> str:
        parts = [self.family or "unknown family", self.obs or "", self.split or ""]
        return " · ".join(p for p in parts if p)


def pool(rows: Iterable[Row], by_experiment: bool) -> list[Cell]:
    """Cells of rows equal in every axis but the seed (and, in a combined report, the experiment)."""
    groups: dict[tuple, list[Row]] = {}
    for row in rows:
        key = tuple(_hashable(row.axes[a]) for a in CELL_AXES) + (row.model_evaluations,)
        key += (row.experiment,) if by_experiment else ()
        groups.setdefault(key, []).append(row)
    return [Cell({a: rs[0].axes[a] for a in CELL_AXES}, rs[0].experiment if by_experiment else "",
                 rs[0].model_evaluations, tuple(rs)) for rs in groups.values()]


def _hashable(value: Any) -> Any:
    return repr(value) if isinstance(value, (dict, list)) else value


def sections(cells: Sequence[Cell], order: dict[str, Sequence]) -> list[Section]:
    """Learned cells by (family, obs, split, suite), each with the baselines of its family and suite
    (those of the same obs when there are any, else all of them); baselines without learned cells
    form sections of their own."""
    key = lambda c: (c["family"], c["obs"], c["split"], c["suite"])  # noqa: E731
    learned: dict[tuple, list[Cell]] = {}
    for cell in cells:
        if cell["agent"] not in BASELINES:
            learned.setdefault(key(cell), []).append(cell)
    baselines = [c for c in cells if c["agent"] in BASELINES]
    out, used = [], set()
    for (family, obs, split, suite), group in learned.items():
        mine = [b for b in baselines if (b["family"], b["suite"]) == (family, suite)]
        same_obs = [b for b in mine if b["obs"] == obs]
        chosen = same_obs or mine
        used.update(id(b) for b in chosen)
        out.append(Section(family, obs, split, suite, tuple(sort_cells(group, order)), tuple(sort_cells(chosen, order))))
    rest: dict[tuple, list[Cell]] = {}
    for b in baselines:
        if id(b) not in used:
            rest.setdefault(key(b), []).append(b)
    for (family, obs, split, suite), group in rest.items():
        out.append(Section(family, obs, split, suite, (), tuple(sort_cells(group, order))))
    return sorted(out, key=lambda s: (position(order, "family", s.family), position(order, "obs", s.obs),
                                      str(s.split), str(s.suite)))


def position(order: dict[str, Sequence], axis: str, value: Any) -> tuple:
    """Sort key: the value's place in the plan's order (unknown values after, by their text; None last)."""
    values = list(order.get(axis, ()))
    if value is None:
        return (2, 0, "")
    if value in values:
        return (0, values.index(value), "")
    return (1, 0, f"{value:>20}" if isinstance(value, (int, float)) else str(value))


def sort_key(cell: Cell, order: dict[str, Sequence]) -> tuple:
    """Agent (model, gcbc, oracle, random), planner, model evaluations, budget, model, data, goal."""
    evals = cell.model_evaluations
    return (AGENT_RANK.get(cell["agent"], 9), position(order, "planner", cell["planner"]),
            (evals is None, evals or 0), position(order, "budget", cell["budget"]),
            position(order, "model", cell["model"]), data_key(cell["data"]),
            position(order, "goal", cell["goal"]), cell.experiment)


def data_key(data) -> tuple:
    """Data sizes in numeric order, unknown ones last."""
    return (0, data, "") if isinstance(data, (int, float)) else (1, 0, str(data))


def sort_cells(cells: Iterable[Cell], order: dict[str, Sequence]) -> list[Cell]:
    return sorted(cells, key=lambda c: sort_key(c, order))


def merge_orders(orders: Iterable[dict[str, Sequence]]) -> dict[str, tuple]:
    merged: dict[str, list] = {}
    for order in orders:
        for axis, values in order.items():
            bucket = merged.setdefault(axis, [])
            bucket.extend(v for v in values if v not in bucket)
    return {k: tuple(v) for k, v in merged.items()}


def varying(cells: Sequence[Cell], axis: str) -> bool:
    return len({_hashable(c.axes[axis]) for c in cells}) > 1
