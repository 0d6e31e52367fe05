"""The planner-efficiency question of issue 13: the smallest budget (model evaluations per plan) of any
planner whose pooled success is within 2 points of CEM at 300 x 30 (9,000 sequence evaluations), and
its fraction of that budget. Answered per table and per setting (model, data, goal) that has the
reference."""

from __future__ import annotations

from collections.abc import Sequence

from jepa_mpc.report.pool import Cell, Section

REFERENCE_PLANNER, REFERENCE_EVALUATIONS = "cem", 9000  # CEM 300 samples x 30 iterations
TOLERANCE = 0.02  # success-rate points
TARGET_FRACTION = 0.10  # the target: <= 10 % of the reference's model evaluations


def _setting(cell: Cell) -> tuple:
    return (repr(cell["model"]), repr(cell["data"]), repr(cell["goal"]), cell.experiment)


def smallest_matching_budgets(sections: Sequence[Section]) -> list[dict]:
    """One answer per reference cell (CEM, 9,000 model evaluations, learned model, ran) that has other
    planners or budgets of the same setting to compare with."""
    answers = []
    for section in sections:
        learned = [c for c in section.learned if c["agent"] == "model" and c.rate is not None
                   and c.model_evaluations is not None]
        refs = [c for c in learned if c["planner"] == REFERENCE_PLANNER and c.model_evaluations == REFERENCE_EVALUATIONS]
        for ref in refs:
            same = [c for c in learned if _setting(c) == _setting(ref)]
            if len(same) < 2:  # nothing to compare the reference with in this setting
                continue
            peers = [c for c in same if c.rate >= ref.rate - TOLERANCE - 1e-12]
            best = min(peers, key=lambda c: (c.model_evaluations, -c.rate, str(c["planner"]), str(c["budget"])))
            fraction = best.model_evaluations / REFERENCE_EVALUATIONS
            answers.append({
                "family": section.family, "obs": section.obs, "split": section.split, "suite": section.suite,
                "model": ref["model"], "data": ref["data"], "goal": ref["goal"], "experiment": ref.experiment,
                "reference_success": ref.rate, "reference_ci95": list(ref.ci95),
                "reference_episodes": ref.episodes,
                "planner": best["planner"], "budget": best["budget"], "model_evaluations": best.model_evaluations,
                "fraction": fraction, "success": best.rate, "ci95": list(best.ci95), "episodes": best.episodes,
                "meets_target": fraction <= TARGET_FRACTION,
            })
    return answers
