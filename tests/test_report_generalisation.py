"""Held-out ÷ in-distribution ratios in `jepa-mpc report`: suite pairing, the Katz interval, the table."""

from __future__ import annotations

import math

import pytest

from jepa_mpc.report import write_report
from jepa_mpc.report.generalisation import held_out_counterpart, rate_ratio

from test_report_build import eval_job, results_json, write_experiment

HELD, INDIST = "envs/tasks/tworoom_layouts_test.json", "envs/tasks/tworoom_layouts_indist_test.json"


def test_counterpart_of_an_indist_suite_is_the_held_out_one():
    assert held_out_counterpart(INDIST) == HELD
    assert held_out_counterpart("envs/tasks/tworoom_layouts_indist_val.json") == "envs/tasks/tworoom_layouts_val.json"
    assert held_out_counterpart(HELD) is None and held_out_counterpart("envs/tasks/tworoom_test.json") is None
    assert held_out_counterpart(None) is None


def test_rate_ratio_matches_the_katz_log_interval():
    ratio, lo, hi = rate_ratio(150, 200, 180, 200)
    se = math.sqrt((1 - 0.75) / 150 + (1 - 0.9) / 180)
    assert ratio == pytest.approx(0.75 / 0.9)
    assert (lo, hi) == pytest.approx((ratio * math.exp(-1.96 * se), ratio * math.exp(1.96 * se)))
    assert lo < ratio < hi
    ratio, lo, hi = rate_ratio(200, 200, 200, 200)  # both perfect: 0.5 added, a finite interval around 1
    assert ratio == 1.0 and lo < 1.0 < hi and math.isfinite(hi)
    ratio, lo, hi = rate_ratio(0, 100, 50, 100)
    assert ratio == 0.0 and 0.0 < lo < hi < 0.2
    assert rate_ratio(10, 100, 0, 100) is None and rate_ratio(1, 0, 1, 1) is None


def _axes(family: str, suite: str, agent: str, seed: int) -> dict:
    planner, budget = ("cem", "300x30") if agent != "random" else (None, None)
    return {"family": family, "env_id": "jepa_mpc_envs/TwoRoomLayouts-v0", "obs": "pixels", "data": 150000,
            "model": "default" if agent == "model" else None, "seed": seed, "agent": agent, "planner": planner,
            "budget": budget, "goal": "graph-explore-mixed" if agent != "random" else None, "suite": suite,
            "split": "test"}


def test_report_pairs_held_out_with_in_distribution_cells(tmp_path):
    evals = []
    wins = {("tworoom-layouts", HELD, "model"): (40, 42), ("tworoom-layouts-indist", INDIST, "model"): (47, 48),
            ("tworoom-layouts", HELD, "random"): (1, 0), ("tworoom-layouts-indist", INDIST, "random"): (2, 1)}
    for (family, suite, agent), per_seed in wins.items():
        for seed, w in enumerate(per_seed):
            job = eval_job(f"eval-{family}-{agent}-s{seed}", _axes(family, suite, agent, seed),
                           9000 if agent == "model" else None, f"train-s{seed}" if agent == "model" else None)
            result = results_json("cem" if agent == "model" else None, 300, 30, w, seed)
            result["suite"]["path"] = suite
            evals.append((job, result))
    folder = write_experiment(tmp_path / "layouts", "layouts", evals)
    summary = write_report(folder)
    pairs = {p["agent"]: p for p in summary["generalisation"]}
    assert set(pairs) == {"model", "random"}
    model = pairs["model"]
    assert model["held_out"] == (82, 100) and model["indist"] == (95, 100)
    assert model["ratio"] == pytest.approx(0.82 / 0.95)
    lo, hi = model["ratio_ci95"]
    assert lo < model["ratio"] < hi <= 1.2
    text = (folder / "report.md").read_text()
    assert "## Held-out ÷ in-distribution" in text
    assert f"| 82.0 [" in text and f"(82/100) | 95.0 [" in text and f"{0.82 / 0.95:.2f} [{lo:.2f}, {hi:.2f}]" in text
