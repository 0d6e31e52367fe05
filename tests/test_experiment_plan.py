"""Expansion of an experiment into jobs: counts, ids, dependencies, content digests, --dry-run."""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from conftest import run_cli
from jepa_mpc.experiment.execute import command, record_path
from jepa_mpc.experiment.main import dry_run_text
from jepa_mpc.experiment.plan import Roots, expand, flags
from jepa_mpc.experiment.spec import SpecError, load_experiment, read_experiment

ROOT = Path(__file__).resolve().parents[1]
SUITE = str(ROOT / "envs/tasks/tworoom_heldout.json")
HAZARDS = str(ROOT / "envs/tasks/tworoom_hazards.json")
EVAL_AXES = {"family", "env_id", "obs", "data", "model", "seed", "agent", "planner", "budget", "goal", "suite", "split"}

GRID = {
    "name": "grid", "seeds": [0, 1], "episodes": 8,
    "families": [{"name": "tworoom", "obs": ["state", "pixels"], "data": [600, 1200], "collect": {"episode_len": 30},
                  "train": {"steps": 20}, "suite_validation": SUITE}],
    "models": [{"name": "sig"}, {"name": "none", "train": {"reg.kind": "none"}}],
    "planners": [{"kind": "cem", "budgets": ["100x10", "30x3"]}, {"kind": "mppi", "budgets": ["50x4"]}],
    "goals": [{"kind": "latent", "mode": "terminal"}, {"kind": "graph"}],
}


def _expand(d: dict, tmp_path: Path):
    exp = read_experiment(d, "grid.toml")
    return exp, expand(exp, Roots(results=tmp_path / "results", store=tmp_path / "store"))


def _by_id(jobs):
    return {j.id: j for j in jobs}


def test_grid_expands_into_every_combination(tmp_path):
    _, jobs = _expand(copy.deepcopy(GRID), tmp_path)
    kinds = [j.kind for j in jobs]
    # 2 obs x 2 data sizes; x 2 models x 2 seeds runs; each: 3 budgets x 2 goals + per obs x seed random and oracle
    assert kinds.count("collect") == 4
    assert kinds.count("train") == 16
    evals = [j for j in jobs if j.kind == "eval"]
    model_evals = [j for j in evals if j.axes["agent"] == "model"]
    assert len(model_evals) == 16 * 3 * 2
    assert sum(j.axes["agent"] == "random" for j in evals) == 2 * 2
    assert sum(j.axes["agent"] == "oracle" for j in evals) == 2 * 2
    assert len(jobs) == 4 + 16 + 96 + 8
    ids = [j.id for j in jobs]
    assert len(set(ids)) == len(ids)
    seen = set()
    for j in jobs:  # dependency order
        assert set(j.deps) <= seen, j.id
        seen.add(j.id)
    for j in evals:
        assert set(j.axes) == EVAL_AXES
        assert j.out == str(tmp_path / "results" / "grid" / "evals" / j.id)
    e = _by_id(jobs)["eval-tworoom-state-600-none-s1-cem-30x3-latent-terminal-validation"]
    assert e.model_evaluations == 30 * 3
    assert e.axes == {"family": "tworoom", "env_id": "jepa_mpc_envs/TwoRoom-v0", "obs": "state", "data": 600,
                      "model": "none", "seed": 1, "agent": "model", "planner": "cem", "budget": "30x3",
                      "goal": "latent-terminal", "suite": SUITE, "split": "validation"}
    argv = list(e.argv)
    assert argv[:2] == ["eval", "--checkpoint"] and "planner:cem" in argv and "goal:latent" in argv
    assert argv[argv.index("--control.samples") + 1] == "30" and argv[argv.index("--seed") + 1] == "1"
    oracle = _by_id(jobs)["eval-tworoom-pixels-oracle-cem-64x4-latent-terminal-s0-validation"]
    assert "--dynamics" in oracle.argv and oracle.model_evaluations == 64 * 4


def test_model_variants_share_their_dataset_and_stores(tmp_path):
    _, jobs = _expand(copy.deepcopy(GRID), tmp_path)
    by = _by_id(jobs)
    a, b = by["train-tworoom-state-600-sig-s0"], by["train-tworoom-state-600-none-s0"]
    assert a.deps == b.deps == ("collect-tworoom-state-600",)
    collect = by["collect-tworoom-state-600"]
    assert collect.out == str(tmp_path / "store" / "data" / "store" / collect.digest[:16])
    assert a.out == str(tmp_path / "store" / "runs" / "store" / a.digest[:16]) and a.digest != b.digest
    assert a.argv[a.argv.index("--data") + 1] == collect.out
    assert "--reg.kind" in b.argv and b.argv[b.argv.index("--reg.kind") + 1] == "none"
    assert by["collect-tworoom-pixels-600"].argv.count("--pixels") == 1


def test_digests_are_stable_and_follow_their_inputs(tmp_path):
    def digests(d):
        return {j.id: j.digest for j in _expand(d, tmp_path)[1]}

    base = digests(copy.deepcopy(GRID))
    assert digests(copy.deepcopy(GRID)) == base

    more_steps = copy.deepcopy(GRID)
    more_steps["models"][1]["train"]["steps"] = 21
    changed = {i for i, d in digests(more_steps).items() if base.get(i) != d}
    assert changed and all("-none-" in i for i in changed)  # only that variant's runs and their evals
    assert {i.split("-")[0] for i in changed} == {"train", "eval"}

    budget = copy.deepcopy(GRID)
    budget["planners"][1]["planner"] = {"temperature": 0.3}
    changed = {i for i, d in digests(budget).items() if base.get(i) != d}
    assert changed and all(i.startswith("eval-") and "-mppi-" in i for i in changed)

    episodes = copy.deepcopy(GRID)
    episodes["episodes"] = 7
    changed = {i for i, d in digests(episodes).items() if base.get(i) != d}
    assert changed == {i for i in base if i.startswith("eval-")}

    collect = copy.deepcopy(GRID)
    collect["families"][0]["collect"]["seed"] = 3
    changed = {i for i, d in digests(collect).items() if base.get(i) != d}
    assert changed == set(base)  # the data changed: everything downstream too


def test_suite_content_enters_eval_digests(tmp_path):
    suite = tmp_path / "suite.json"
    shutil.copy(SUITE, suite)
    d = copy.deepcopy(GRID)
    d["families"][0]["suite_validation"] = str(suite)
    first = {j.id: j.digest for j in _expand(d, tmp_path)[1]}
    doc = json.loads(suite.read_text())
    doc["tasks"] = doc["tasks"][::-1]
    suite.write_text(json.dumps(doc))
    second = {j.id: j.digest for j in _expand(d, tmp_path)[1]}
    changed = {i for i in first if first[i] != second[i]}
    assert changed == {i for i in first if i.startswith("eval-")}


def test_probe_inspect_and_gcbc_jobs(tmp_path):
    d = {"name": "h", "seeds": [0], "episodes": 4,
         "families": [{"name": "tworoom-hazards", "data": [600], "collect": {"episode_len": 30}, "inspect": True,
                       "suite_validation": HAZARDS}],
         "baselines": {"gcbc": True, "oracle": False}}
    _, jobs = _expand(d, tmp_path)
    by = _by_id(jobs)
    probe = by["probe-tworoom-hazards-state-600-default-s0"]
    assert probe.argv == ("probe", by["train-tworoom-hazards-state-600-default-s0"].out)
    model_eval = by["eval-tworoom-hazards-state-600-default-s0-cem-default-graph-validation"]
    assert probe.id in model_eval.deps
    inspect = by["inspect-tworoom-hazards-state-600-default-s0"]
    assert inspect.argv[-2:] == ("--out", str(tmp_path / "results/h/models/train-tworoom-hazards-state-600-default-s0/inspect.json"))
    gcbc_train = by["train-tworoom-hazards-state-600-gcbc-s0"]
    assert "--objective" in gcbc_train.argv and gcbc_train.argv[gcbc_train.argv.index("--objective") + 1] == "gcbc"
    assert gcbc_train.done_paths[-1].endswith("/checkpoints/" + str(gcbc_train.cost.split()[0]))  # resolved steps
    gcbc_eval = by["eval-tworoom-hazards-state-600-gcbc-s0-validation"]
    assert gcbc_eval.argv[-1] == "planner:gcbc" and gcbc_eval.deps == (gcbc_train.id,)
    assert gcbc_eval.axes["agent"] == "gcbc" and gcbc_eval.model_evaluations is None
    assert not any(j.axes and j.axes.get("agent") == "oracle" for j in jobs)


def test_two_families_of_one_env_share_dataset_and_runs(tmp_path):
    d = {"name": "s", "episodes": 4, "baselines": {"oracle": False, "random": False},
         "families": [{"name": "tworoom", "data": [600], "collect": {"episode_len": 30}, "suite_validation": SUITE},
                      {"name": "tworoom-hazards", "data": [600], "collect": {"episode_len": 30},
                       "suite_validation": HAZARDS}]}
    _, jobs = _expand(d, tmp_path)
    assert [j.kind for j in jobs].count("collect") == 1 and [j.kind for j in jobs].count("train") == 1
    evals = [j for j in jobs if j.kind == "eval"]
    assert {j.axes["family"] for j in evals} == {"tworoom", "tworoom-hazards"}


def test_missing_or_foreign_suite_is_named(tmp_path):
    d = copy.deepcopy(GRID)
    d["families"][0]["suite_validation"] = str(tmp_path / "nope.json")
    with pytest.raises(SpecError, match=r"families\[0\]\.suite_validation: no such suite file"):
        _expand(d, tmp_path)
    d["families"][0]["suite_validation"] = str(ROOT / "envs/tasks/reacher_heldout.json")
    with pytest.raises(SpecError, match="is a suite of jepa_mpc_envs/Reacher-v0, not of jepa_mpc_envs/TwoRoom-v0"):
        _expand(d, tmp_path)


def test_flags_of_overrides():
    assert flags([("reg.kind", "none"), ("pixels", True), ("goal.avoid_hazards", False),
                  ("model.encoder_hidden", (32, 32)), ("lr", 0.001)]) == [
        "--reg.kind", "none", "--pixels", "--goal.no-avoid-hazards", "--model.encoder-hidden", "32", "32", "--lr", "0.001"]


def test_eval_folder_of_other_inputs_is_redone_with_overwrite(tmp_path):
    _, jobs = _expand(copy.deepcopy(GRID), tmp_path)
    job = next(j for j in jobs if j.kind == "eval")
    home = tmp_path / "results" / "grid"
    assert command(job, home) == (list(job.argv), None)  # nothing there yet
    Path(job.out).mkdir(parents=True)
    (Path(job.out) / "batches.jsonl").write_text("")
    argv, note = command(job, home)  # a folder without this runner's record
    assert argv[-1] == "--overwrite" and "no record" in note
    record_path(home, job).parent.mkdir(parents=True)
    record_path(home, job).write_text(json.dumps({"digest": "0" * 64}))
    argv, note = command(job, home)
    assert argv[-1] == "--overwrite" and "other inputs" in note
    record_path(home, job).write_text(json.dumps({"digest": job.digest}))
    assert command(job, home) == (list(job.argv), None)  # the same eval: resumed, not redone


def test_dry_run_lists_the_graph(tmp_path):
    exp, jobs = _expand(copy.deepcopy(GRID), tmp_path)
    text = dry_run_text(exp.name, "grid.toml", jobs, tmp_path / "results" / "grid")
    lines = text.splitlines()
    assert lines[0] == f"experiment grid (grid.toml): {len(jobs)} jobs, 0 cached, {len(jobs)} to run"
    row = next(ln for ln in lines if "eval-tworoom-state-600-sig-s0-cem-100x10-graph-validation" in ln)
    assert row.split()[1:4] == ["eval", "run", "1000"]
    assert "estimated model evaluations" in lines[-1]


def test_cli_dry_run_runs_nothing(tmp_path):
    f = tmp_path / "e.toml"
    f.write_text(f'name = "dry"\nepisodes = 4\n[[families]]\nname = "tworoom"\ndata = [600]\n'
                 f'collect = {{episode_len = 30}}\nsuite_validation = "{SUITE}"\n'
                 f'[[planners]]\nkind = "cem"\nbudgets = ["30x3"]\n')
    proc = run_cli("experiment", "run", f, "--dry-run", "--results-root", tmp_path / "r", "--store", tmp_path / "s")
    assert proc.returncode == 0, proc.stderr
    assert "5 jobs, 0 cached, 5 to run" in proc.stdout  # collect, train, eval, random, oracle
    assert "eval-tworoom-state-600-default-s0-cem-30x3-graph-validation" in proc.stdout
    assert not (tmp_path / "r").exists() and not (tmp_path / "s").exists()


def test_a_job_runs_under_one_lock_at_a_time(tmp_path):
    from jepa_mpc.experiment.execute import Runner

    _, jobs = _expand(copy.deepcopy(GRID), tmp_path)
    home = tmp_path / "results" / "grid"
    a, b = Runner(jobs, home), Runner(jobs, home)  # two runners sharing the store
    collect, evaluation = jobs[0], next(j for j in jobs if j.kind == "eval")
    assert a.lock(collect) and Path(collect.out + ".lock").exists()
    assert not b.lock(collect)
    assert a.lock(evaluation) and not b.lock(evaluation)
    a.unlock(collect.id)
    assert b.lock(collect)
    b.unlock(collect.id)
    a.unlock(evaluation.id)


def test_only_selects_matching_jobs_with_their_dependencies(tmp_path):
    from jepa_mpc.errors import ConfigError
    from jepa_mpc.experiment.plan import select

    _, jobs = _expand(copy.deepcopy(GRID), tmp_path)
    assert select(jobs, ()) == {j.id for j in jobs}
    chosen = select(jobs, ("eval-tworoom-pixels-1200-none-s1-mppi-*",))
    assert chosen == {"collect-tworoom-pixels-1200", "train-tworoom-pixels-1200-none-s1",
                      "eval-tworoom-pixels-1200-none-s1-mppi-50x4-latent-terminal-validation",
                      "eval-tworoom-pixels-1200-none-s1-mppi-50x4-graph-validation"}
    # 8 seed-0 runs + 4 random evals + their 4 datasets + the 2 seed-1 runs the seed-1 random evals use
    assert len(select(jobs, ("train-*-s0", "eval-*-random-*"))) == 8 + 4 + 4 + 2
    with pytest.raises(ConfigError, match="--only 'nope' matches no job id"):
        select(jobs, ("nope",))


def test_video_per_planner(tmp_path):
    d = copy.deepcopy(GRID)
    d["video"] = 1
    d["planners"][1]["video"] = 3
    _, jobs = _expand(d, tmp_path)
    videos = {(j.axes["agent"], j.axes["planner"]): j.argv[j.argv.index("--video") + 1] for j in jobs if j.kind == "eval"}
    assert videos == {("model", "cem"): "1", ("model", "mppi"): "3", ("random", None): "1", ("oracle", "cem"): "1"}


def test_committed_results_keep_their_digests(tmp_path):
    """Every job recorded done in results/bench-quick/ expands to the same digest today: a config field added
    since (at its default) must be listed in TRAIN_IDENTITY_UNLESS_DEFAULT / IDENTITY_UNLESS_DEFAULT, or
    every committed eval would be redone on the next run."""
    exp = load_experiment(ROOT / "experiments/bench_quick.toml")
    jobs = _by_id(expand(exp, Roots(results=tmp_path / "results", store=tmp_path / "store")))
    records = [json.loads(p.read_text()) for p in sorted((ROOT / "results/bench-quick/jobs").glob("*.json"))]
    done = [r for r in records if r.get("state") == "done"]
    assert len(done) >= 16
    changed = [r["id"] for r in done if jobs[r["id"]].digest != r["digest"]]
    assert not changed, f"digests changed since these results were recorded: {changed}"


def test_a_new_train_field_at_its_default_leaves_run_digests_alone(tmp_path, monkeypatch):
    import jepa_mpc.config as config

    base = {j.id: j.digest for j in _expand(copy.deepcopy(GRID), tmp_path)[1]}
    monkeypatch.setattr(config, "TRAIN_IDENTITY_UNLESS_DEFAULT", {})  # as if latent_channels were not listed
    unlisted = {j.id: j.digest for j in _expand(copy.deepcopy(GRID), tmp_path)[1]}
    assert {i for i in base if base[i] != unlisted[i]} == {i for i in base if i.startswith(("train-", "eval-"))}
    monkeypatch.undo()
    cfg = config.TrainConfig()
    spatial = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, latent_channels=4))
    assert "latent_channels" not in config.train_identity(cfg)["model"]
    assert config.train_identity(spatial)["model"]["latent_channels"] == 4  # set: in the identity


def test_not_needed_spares_what_is_asked_for_or_still_used(tmp_path):
    from jepa_mpc.experiment.execute import not_needed

    _, jobs = _expand(copy.deepcopy(GRID), tmp_path)
    leaves = {j.id for j in jobs} - {d for j in jobs for d in j.deps}
    done = {j.id: j.id in leaves for j in jobs}
    assert not_needed(jobs, done) == {j.id for j in jobs} - leaves  # every result recorded: nothing to rebuild
    train = next(j for j in jobs if j.kind == "train")
    assert not_needed(jobs, done, {train.id, *train.deps}) == set()  # a train asked for alone is run
    user = next(j for j in jobs if train.id in j.deps and j.id in leaves)
    done[user.id] = False  # one eval still to run: its run and dataset are needed
    skip = not_needed(jobs, done)
    assert train.id not in skip and not set(train.deps) & skip
