"""`jepa-mpc report`: tables, CSV and plots of synthetic experiment folders written here (plan.json,
status.json, evals/*/results.json, models/*/*.json as the runner and `jepa-mpc eval` write them)."""

from __future__ import annotations

import csv
import io
import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from jepa_mpc import cli
from jepa_mpc.evaluate import wilson_interval
from jepa_mpc.report import build_report, write_report
from jepa_mpc.report.tables import CSV_COLUMNS

REPO = Path(__file__).resolve().parents[1]
SUITE = "envs/tasks/tworoom_test.json"
ENV_ID = "jepa_mpc_envs/TwoRoom-v0"
EPISODES = 50
COMMIT = "a" * 40


def results_json(kind: str | None, samples: int, iterations: int, successes: int, seed: int, dynamics: str = "model",
                 provenance: dict | None = None, episodes: int = EPISODES) -> dict:
    """A results.json as jepa_mpc.evaluate writes it (schema_version 1), with the fields the report reads."""
    planner = None if kind is None else {"kind": kind, "samples": samples, "iterations": iterations, "horizon": 5}
    ms = None if kind is None else 0.01 * samples * iterations + 5.0
    result = {
        "schema_version": 1, "created": "2026-12-02T00:00:00+00:00", "git_commit": COMMIT, "versions": {},
        "args": {"checkpoint": "runs/x", "dynamics": dynamics, "seed": seed,
                 "control": {"planner": {"kind": kind or "random-actions"}}},
        "identity": "0" * 64, "label": kind or "random-actions",
        "suite": {"path": SUITE, "sha256": "1" * 64, "env_id": ENV_ID, "tasks": episodes},
        "checkpoint": None if kind is None or dynamics == "oracle" else {"run": "runs/x", "step": 100},
        "frame_skip": 5, "action_block": 5, "planner_config": planner,
        "goal_config": None if kind is None else {"kind": "graph", "source": "data", "mode": "mixed"},
        "summary": {
            "episodes": episodes, "successes": successes, "success_rate": successes / episodes,
            "success_ci95": list(wilson_interval(successes, episodes)), "violation_free_rate": 1.0,
            "violation_free_ci95": list(wilson_interval(episodes, episodes)), "infeasible_plans": 0,
            "episodes_with_infeasible_plans": 0, "mean_steps_success": 30.0,
            "plan_latency_ms": {"calls": 10, "p50": None if ms is None else 4 * ms, "p95": None,
                                "per_episode_p50": ms},
            "wall_time_s": 12.5,
        },
        "episodes": [],
    }
    if provenance is not None:
        result["provenance"] = provenance
    return result


def axes(agent: str, planner: str | None, budget: str | None, seed: int, data: int = 5000, model: str = "sigreg",
         goal: str = "graph-mixed") -> dict:
    return {"family": "tworoom", "env_id": ENV_ID, "obs": "state", "data": data, "model": model, "seed": seed,
            "agent": agent, "planner": planner, "budget": budget, "goal": goal, "suite": SUITE, "split": "test"}


def eval_job(job_id: str, ax: dict, evals: int | None, train: str | None) -> dict:
    return {"id": job_id, "kind": "eval", "digest": "2" * 64, "deps": [train] if train else [],
            "out": f"results/toy/evals/{job_id}", "argv": ["eval"], "model_evaluations": evals, "axes": ax}


def write_experiment(folder: Path, name: str, evals: list[tuple[dict, dict | None]], models: dict | None = None,
                     status: dict | None = None) -> Path:
    """plan.json (+ train jobs), evals/<id>/results.json for the jobs that have a result, models/, status.json."""
    folder.mkdir(parents=True)
    trains = sorted({job["deps"][0] for job, _ in evals if job["deps"]})
    jobs = [{"id": t, "kind": "train", "digest": "3" * 64, "deps": [], "out": "runs/store/x", "argv": ["train"],
             "axes": {}} for t in trains] + [job for job, _ in evals]
    plan = {"schema_version": 1, "name": name, "description": f"{name}: a synthetic experiment",
            "source": f"experiments/{name}.toml", "source_sha256": "4" * 64, "git_commit": COMMIT,
            "created": "2026-12-02T00:00:00+00:00", "jobs": jobs}
    (folder / "plan.json").write_text(json.dumps(plan))
    for job, result in evals:
        if result is not None:
            (folder / "evals" / job["id"]).mkdir(parents=True)
            (folder / "evals" / job["id"] / "results.json").write_text(json.dumps(result))
    for job_id, files in (models or {}).items():
        (folder / "models" / job_id).mkdir(parents=True)
        for file_name, content in files.items():
            (folder / "models" / job_id / file_name).write_text(json.dumps(content))
    if status is not None:
        (folder / "status.json").write_text(json.dumps({"jobs": status}))
    return folder


# (planner, samples, iterations, successes of seed 0, of seed 1 (None: not run))
PLANNER_GRID = [
    ("cem", 300, 30, 45, 46),    # the reference: 91 / 100
    ("cem", 100, 10, 43, 44),    # 1,000 evals, 87 %: more than 2 points below
    ("mppi", 100, 10, 40, 41),
    ("icem", 30, 10, 44, 46),    # 300 evals, 90 %: within 2 points -> the answer (3.3 % of 9,000)
    ("icem", 20, 5, 30, None),   # 100 evals: seed 1 not run
]
CLEAN = {"git_commit": COMMIT, "git_dirty": False, "dataset_digest": "5" * 64, "checkpoint": {}, "probe_sha256": None}


def planners_experiment(root: Path, name: str = "toy") -> Path:
    evals = []
    for planner, samples, iterations, *wins in PLANNER_GRID:
        for seed, w in enumerate(wins):
            job = eval_job(f"eval-{planner}-{samples}x{iterations}-s{seed}",
                           axes("model", planner, f"{samples}x{iterations}", seed), samples * iterations, f"train-s{seed}")
            prov = dict(CLEAN, git_dirty=(planner == "mppi" and seed == 1))
            evals.append((job, None if w is None else results_json(planner, samples, iterations, w, seed, provenance=prov)))
    for seed, wins in enumerate([35, 36]):  # the goal-conditioned behaviour-cloning policy: no planner, no budget
        evals.append((eval_job(f"eval-gcbc-s{seed}", axes("gcbc", None, None, seed), None, f"train-gcbc-s{seed}"),
                      results_json(None, 0, 0, wins, seed, provenance=CLEAN)))
    for seed, (rand, orac) in enumerate([(1, 50), (2, 49)]):
        evals.append((eval_job(f"eval-random-s{seed}", axes("random", None, None, seed), None, None),
                      results_json(None, 0, 0, rand, seed)))
        evals.append((eval_job(f"eval-oracle-s{seed}", axes("oracle", "cem", "300x30", seed), 9000, f"train-s{seed}"),
                      results_json("cem", 300, 30, orac, seed, dynamics="oracle")))
    models = {f"train-s{s}": {"train.json": {"steps": 1000, "wall_s": 50.0, "steps_per_s": 20.0 + s, "last_eval": {},
                                             "config": {}},
                              "inspect.json": {"effective_rank": 10.0 + 2 * s, "active_dims": 12 + s, "latent_dim": 32,
                                               "latent_std_min": 0.1, "latent_std_mean": 0.5, "r2_state": 0.9,
                                               "pred_copy_ratio": 0.2, "rollout_copy_ratio": 0.4}}
              for s in (0, 1)}
    models["train-gcbc-s0"] = {"train.json": {"steps": 500, "wall_s": 9.0, "steps_per_s": 55.0}}  # a policy
    status = {"eval-icem-20x5-s1": {"state": "failed", "wall_s": 3.0, "error": "killed"}}
    return write_experiment(root / name, name, evals, models, status)


def read_csv(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def outputs(folder: Path) -> dict[str, bytes]:
    files = [folder / "report.md", folder / "results.csv", folder / "models.csv", *sorted((folder / "plots").iterdir())]
    return {str(p.relative_to(folder)): p.read_bytes() for p in files}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = planners_experiment(tmp_path_factory.mktemp("exp"))
    summary = write_report(folder)
    return folder, summary


def test_csv_has_one_tidy_row_per_eval_with_results(built):
    folder, summary = built
    rows = read_csv(folder / "results.csv")
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert len(rows) == 15 and summary["evals"] == 15 and summary["not_run"] == 1
    assert "eval-icem-20x5-s1" not in {r["job_id"] for r in rows}
    cem = next(r for r in rows if r["job_id"] == "eval-cem-300x30-s1")
    assert (cem["planner"], cem["budget"], cem["model_evaluations"], cem["seed"]) == ("cem", "300x30", "9000", "1")
    assert (cem["episodes"], cem["successes"], float(cem["success_rate"])) == ("50", "46", 0.92)
    lo, hi = wilson_interval(46, 50)
    assert (float(cem["ci_low"]), float(cem["ci_high"])) == (lo, hi)
    assert float(cem["plan_ms_per_episode_p50"]) == pytest.approx(95.0)
    assert cem["git_commit"] == COMMIT and cem["git_dirty"] == "false" and cem["experiment"] == "toy"
    rand = next(r for r in rows if r["job_id"] == "eval-random-s0")
    assert rand["planner"] == "" and rand["model_evaluations"] == "" and rand["agent"] == "random"
    # table order: learned model (planner in plan order, then budget by evaluations), then oracle, then random
    order = [(r["agent"], r["planner"], r["model_evaluations"]) for r in rows[::2]]
    assert order[:3] == [("model", "cem", "1000"), ("model", "cem", "9000"), ("model", "mppi", "1000")]
    assert [r["agent"] for r in rows[-6:]] == ["gcbc", "gcbc", "oracle", "oracle", "random", "random"]


def test_report_pools_seeds_with_wilson_intervals_and_lists_not_run(built):
    folder, _ = built
    text = (folder / "report.md").read_text()
    lo, hi = wilson_interval(91, 100)
    assert f"| model | cem | 300x30 | 9,000 | 91.0 [{100 * lo:.1f}, {100 * hi:.1f}] | s0: 90.0 · s1: 92.0 | 100 |" in text
    lo, hi = wilson_interval(3, 100)
    assert f"| random | – | – | – | 3.0 [{100 * lo:.1f}, {100 * hi:.1f}] | s0: 2.0 · s1: 4.0 | 100 |" in text
    assert "| oracle | cem | 300x30 | 9,000 | 99.0 [" in text
    assert "| gcbc | – | – | – | 71.0 [" in text
    assert "| model | icem | 20x5 | 100 | 60.0 [" in text and "s0: 60.0 · s1: not run" in text
    assert "- `eval-icem-20x5-s1` (failed: killed)" in text
    assert "`jepa-mpc experiment run experiments/toy.toml`" in text
    assert f"`{COMMIT[:12]}` (15 evals)" in text
    assert "dirty for 1 of 15 evals (eval-mppi-100x10-s1)" in text
    assert "not recorded for 4 of 15 evals" in text  # random/oracle results without provenance
    assert "## tworoom · state · test" in text
    assert "### World models · tworoom · state" in text
    assert "| 5,000 | sigreg | 2 | 1000 | 20.5 | 0.100 | 0.500 | 11.00 | 12.5 | 32 |" in text
    assert "55.0" not in text  # the GCBC policy is not a world model
    kinds = {r["job_id"]: r["kind"] for r in read_csv(folder / "models.csv")}
    assert kinds == {"train-s0": "world model", "train-s1": "world model", "train-gcbc-s0": "policy"}


def test_smallest_budget_within_two_points_of_cem(built):
    folder, summary = built
    (answer,) = summary["answers"]
    assert (answer["planner"], answer["budget"], answer["model_evaluations"]) == ("icem", "30x10", 300)
    assert answer["fraction"] == pytest.approx(300 / 9000) and answer["meets_target"]
    assert answer["reference_success"] == pytest.approx(0.91) and answer["success"] == pytest.approx(0.90)
    text = (folder / "report.md").read_text()
    assert "## Smallest budget within 2 points of CEM 300 × 30" in text
    assert "| icem | 30x10 | 300 | 3.3 % | 90.0 [" in text and "| yes |" in text


def test_plots_are_valid_png_and_svg(built):
    folder, summary = built
    names = sorted(p.name for p in (folder / "plots").iterdir())
    assert names == sorted(f"tworoom-state-test-{kind}.{ext}" for kind in ("success-vs-evals", "success-vs-time", "success-by-agent")
                           for ext in ("png", "svg"))
    for name in names:
        data = (folder / "plots" / name).read_bytes()
        if name.endswith(".png"):
            assert data.startswith(b"\x89PNG\r\n\x1a\n") and data.endswith(b"IEND\xaeB`\x82")
        else:
            assert ET.fromstring(data).tag == "{http://www.w3.org/2000/svg}svg"
    assert "![tworoom-state-test-success-vs-evals](plots/tworoom-state-test-success-vs-evals.png)" in \
        (folder / "report.md").read_text()
    assert not list(folder.rglob("*.tmp*"))


def test_rebuild_is_byte_identical_from_the_files_alone(built, tmp_path):
    folder, _ = built
    before = outputs(folder)
    copy = tmp_path / "elsewhere" / folder.name  # the same result files in another place
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("report.md", "*.csv", "plots"))
    (copy / "plots").mkdir()
    (copy / "plots" / "stale-old.svg").write_text("<svg/>")  # a plot this build does not draw: removed
    write_report(copy)
    assert outputs(copy) == before


def test_data_and_model_variants_get_their_plots(tmp_path):
    evals = []
    for model, base in (("sigreg", 30), ("vicreg", 20)):
        for data, bonus in ((2500, 0), (10000, 10)):
            for seed in (0, 1):
                job = eval_job(f"eval-{model}-{data}-s{seed}", axes("model", "cem", "300x30", seed, data, model), 9000,
                               f"train-{model}-{data}-s{seed}")
                evals.append((job, results_json("cem", 300, 30, base + bonus + seed, seed)))
    def model_files(model, seed):
        metrics = {"effective_rank": (20.0 if model == "sigreg" else 4.0) + seed, "latent_dim": 32, "sigreg": 0.5}
        if model == "sigreg":
            return {"inspect.json": metrics}
        return {"train.json": {"steps": 10, "last_eval": metrics, "config": {"lr": 1e-3}}}  # no inspect job ran

    models = {f"train-{m}-{d}-s{s}": model_files(m, s) for m in ("sigreg", "vicreg") for d in (2500, 10000)
              for s in (0, 1)}
    folder = write_experiment(tmp_path / "regs", "regs", evals, models)
    summary = write_report(folder)
    names = {p.name for p in (folder / "plots").iterdir()}
    assert {"tworoom-state-test-success-vs-data.png", "tworoom-state-test-success-by-model.svg"} <= names
    assert not any("success-vs-evals" in n for n in names)  # one budget: no budget plot
    assert summary["answers"] == []  # one budget: nothing to compare CEM 300x30 with
    text = (folder / "report.md").read_text()
    assert "| agent | planner | budget | model | data | model evals / plan |" in text
    assert "Smallest budget" not in text
    # world models beside their planning success (one planning setting: one success column)
    lo, hi = wilson_interval(20 + 21, 100)  # vicreg, 2,500 transitions, seeds 0 and 1
    assert ("| data | model | seeds | train steps | effective rank | latent dim | SIGReg "
            "| success % cem 300x30 graph-mixed |") in text
    assert f"| 2,500 | vicreg | 2 | 10 | 4.50 | 32 | 0.500 | 41.0 [{100 * lo:.1f}, {100 * hi:.1f}] |" in text
    assert "| 10,000 | sigreg | 2 | – | 20.50 | 32 | 0.500 | 81.0 [" in text
    models_rows = read_csv(folder / "models.csv")
    assert len(models_rows) == 8 and "train.config.lr" not in models_rows[0]
    vicreg = next(r for r in models_rows if r["job_id"] == "train-vicreg-2500-s1")
    assert (vicreg["model"], vicreg["data"], vicreg["train.last_eval.effective_rank"]) == ("vicreg", "2500", "5.0")


def test_combined_report_and_plain_results_folder(tmp_path, capsys):
    a = planners_experiment(tmp_path, "toy")
    b = planners_experiment(tmp_path, "toy2")
    demo = tmp_path / "demo"
    shutil.copytree(REPO / "results" / "reference" / "demo", demo, ignore=shutil.ignore_patterns("*.md", "*.csv", "plots"))
    cli.main(["report", str(a), str(b), str(demo), "--out", str(tmp_path / "all")])
    assert "report:" in capsys.readouterr().out
    rows = read_csv(tmp_path / "all" / "results.csv")
    assert {r["experiment"] for r in rows} == {"toy", "toy2", "demo"} and len(rows) == 15 + 15 + 3
    demo_rows = {r["job_id"]: r for r in rows if r["experiment"] == "demo"}
    assert (demo_rows["cem-model"]["agent"], demo_rows["cem-model"]["model_evaluations"]) == ("model", "3000")
    assert (demo_rows["cem-oracle"]["agent"], demo_rows["cem-oracle"]["model_evaluations"]) == ("oracle", "256")
    assert demo_rows["random-actions-model"]["agent"] == "random"
    assert demo_rows["cem-model"]["obs"] == "state"  # from results.json's provenance.checkpoint.train_config
    text = (tmp_path / "all" / "report.md").read_text()
    assert text.startswith("# Combined report: toy, toy2, demo")
    assert "| model | cem | 300x30 | toy2 | 9,000 | 91.0 [" in text
    assert not (a / "report.md").exists()  # --out: the inputs are left as they were


def test_plots_draw_every_success_at_100_percent(tmp_path):
    """100 of 100 has a Wilson upper bound of 0.9999999999999999 < 1: error bars must not go negative."""
    evals = [(eval_job(f"eval-cem-{s}x10-s0", axes("model", "cem", f"{s}x10", 0), 10 * s, "train-s0"),
              results_json("cem", s, 10, 100, 0, episodes=100)) for s in (30, 90)]
    evals.append((eval_job("eval-random-s0", axes("random", None, None, 0), None, None),
                  results_json(None, 0, 0, 0, 0, episodes=100)))  # 0 of 100: the lower bound side
    folder = write_experiment(tmp_path / "full", "full", evals)
    write_report(folder)
    assert (folder / "plots" / "tworoom-state-test-success-vs-evals.png").read_bytes().startswith(b"\x89PNG")


def test_results_of_other_inputs_are_reported_stale_not_as_current(tmp_path):
    """An eval folder the runner recorded under another digest (the experiment file changed, the eval not yet
    redone) must not show its old numbers under the new plan."""
    job = eval_job("eval-cem-300x30-s0", axes("model", "cem", "300x30", 0), 9000, "train-s0")
    current = eval_job("eval-random-s0", axes("random", None, None, 0), None, None)
    folder = write_experiment(tmp_path / "exp", "exp", [(job, results_json("cem", 300, 30, 45, 0)),
                                                        (current, results_json(None, 0, 0, 1, 0))])
    (folder / "jobs").mkdir()
    (folder / "jobs" / f"{job['id']}.json").write_text(json.dumps({"id": job["id"], "digest": "9" * 64}))
    write_report(folder)
    assert [r["job_id"] for r in read_csv(folder / "results.csv")] == ["eval-random-s0"]
    assert "`eval-cem-300x30-s0` (stale:" in (folder / "report.md").read_text()
    (folder / "jobs" / f"{job['id']}.json").write_text(json.dumps({"id": job["id"], "digest": job["digest"]}))
    write_report(folder)
    assert {r["job_id"]: r["successes"] for r in read_csv(folder / "results.csv")}["eval-cem-300x30-s0"] == "45"


def test_violation_free_column_sits_under_its_header(tmp_path):
    """Tables of suites with violations get a violation-free column (with its interval) in its place."""
    evals = []
    for seed, (wins, free) in enumerate([(45, 0.96), (44, 1.0)]):
        result = results_json("cem", 300, 30, wins, seed)
        result["summary"]["violation_free_rate"] = free
        evals.append((eval_job(f"eval-cem-s{seed}", axes("model", "cem", "300x30", seed), 9000, f"train-s{seed}"),
                      result))
    folder = write_experiment(tmp_path / "hz", "hz", evals)
    write_report(folder)
    lines = (folder / "report.md").read_text().splitlines()
    header = next(line for line in lines if line.startswith("| agent |"))
    row = next(line for line in lines if line.startswith("| model | cem |"))
    cols = dict(zip([h.strip() for h in header.strip("|").split("|")], [v.strip() for v in row.strip("|").split("|")]))
    lo, hi = wilson_interval(98, 100)
    assert cols["violation-free % [95 % CI]"] == f"98.0 [{100 * lo:.1f}, {100 * hi:.1f}]"
    assert cols["episodes"] == "100" and cols["success % [95 % CI]"].startswith("89.0 [")
