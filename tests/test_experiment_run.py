"""`jepa-mpc experiment run` end to end on a tiny TwoRoom experiment: an interrupted run resumes without
repeating a finished job, a rerun executes nothing, the results equal an uninterrupted run's, --jobs 2,
and a failed job stops only its dependents."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jepa_mpc.experiment.execute import STOP_AFTER_ENV

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "envs/tasks/tworoom_heldout.json"
TINY = f"""
name = "tiny"
seeds = [0]
episodes = 4

[[families]]
name = "tworoom"
data = [600]                                   # 20 episodes x 30 steps, 2 chunks
collect = {{episode_len = 30, chunk_episodes = 10}}
inspect = true
suite_validation = "{SUITE}"
[families.train]
steps = 20
batch_size = 16
log_every = 10
eval_every = 20
ckpt_every = 10
reg = {{num_projections = 8}}
model = {{latent_dim = 8, encoder_hidden = [16], predictor_hidden = 16, projector_hidden = 16}}

[[planners]]
kind = "cem"
budgets = ["8x2"]

[[goals]]
kind = "latent"

[baselines]
random = true
oracle = false
"""
JOBS = ["collect-tworoom-state-600", "train-tworoom-state-600-default-s0", "inspect-tworoom-state-600-default-s0",
        "eval-tworoom-state-600-default-s0-cem-8x2-latent-validation", "eval-tworoom-state-random-s0-validation"]
EVALS = JOBS[3:]


def experiment(tmp: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    (tmp / "tiny.toml").write_text(TINY)
    return subprocess.run([sys.executable, "-m", "jepa_mpc.cli", "experiment", "run", str(tmp / "tiny.toml"),
                           "--results-root", str(tmp / "results"), "--store", str(tmp / "store"), "--no-report", *extra],
                          capture_output=True, text=True, timeout=900, env={**os.environ, **(env or {})})


def status(tmp: Path) -> dict:
    return json.loads((tmp / "results/tiny/status.json").read_text())["jobs"]


def starts(tmp: Path) -> dict[str, int]:
    """How often each job's command was started (its log has one `$ jepa-mpc ...` line per start)."""
    logs = tmp / "results/tiny/logs"
    return {p.stem: sum(ln.startswith("$ jepa-mpc ") for ln in p.read_text().splitlines()) for p in logs.glob("*.log")}


def eval_results(tmp: Path, job: str) -> dict:
    d = json.loads((tmp / "results/tiny/evals" / job / "results.json").read_text())
    return {"episodes": d["episodes"], "successes": d["summary"]["successes"], "planner": d["planner_config"]}


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    """Stopped after 2 jobs (as on Ctrl-C), then resumed with --jobs 2."""
    tmp = tmp_path_factory.mktemp("resumed")
    first = experiment(tmp, env={STOP_AFTER_ENV: "2"})
    assert first.returncode == 130, first.stderr[-2000:]
    states = {i: s["state"] for i, s in status(tmp).items()}
    second = experiment(tmp, "--jobs", "2")
    assert second.returncode == 0, second.stderr[-2000:]
    return tmp, states, second


def test_interrupted_run_resumes_without_repeating_a_job(resumed):
    tmp, first_states, second = resumed
    assert [first_states[i] for i in JOBS] == ["done", "done", "pending", "pending", "pending"]
    assert all(s["state"] == "done" for s in status(tmp).values())
    assert starts(tmp) == {i: 1 for i in JOBS}
    assert "experiment tiny: 3 jobs run, 2 cached, 0 failed, 0 not run" in second.stdout
    plan = json.loads((tmp / "results/tiny/plan.json").read_text())
    assert [j["id"] for j in plan["jobs"]] == JOBS and plan["schema_version"] == 1
    assert (tmp / "results/tiny/experiment.toml").read_text() == TINY
    models = tmp / "results/tiny/models" / JOBS[1]
    train = json.loads((models / "train.json").read_text())
    assert train["steps"] == 20 and train["config"]["steps"] == 20 and "effective_rank" in train["last_eval"]
    inspect = json.loads((models / "inspect.json").read_text())
    assert inspect["latent_dim"] == 8 and "effective_rank" in inspect
    for job in EVALS:
        assert eval_results(tmp, job)["episodes"] and len(eval_results(tmp, job)["episodes"]) == 4


def test_rerun_executes_no_job(resumed):
    tmp, _, _ = resumed
    before = starts(tmp)
    proc = experiment(tmp)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "0 jobs run, 5 cached" in proc.stdout
    assert starts(tmp) == before
    assert all(s["cached"] and s["state"] == "done" for s in status(tmp).values())


def test_recorded_results_need_no_store(resumed, tmp_path):
    """Committed results on a fresh clone (an empty store): nothing is collected or trained again."""
    tmp, _, _ = resumed
    shutil.copytree(tmp / "results", tmp_path / "results")
    before = starts(tmp_path)
    proc = experiment(tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "0 jobs run, 3 cached, 2 not needed, 0 failed" in proc.stdout
    assert starts(tmp_path) == before and not (tmp_path / "store").exists()
    assert {i: s["state"] for i, s in status(tmp_path).items()} == {
        **{i: "done" for i in JOBS[2:]}, JOBS[0]: "not needed", JOBS[1]: "not needed"}


@pytest.mark.slow  # a second full pipeline
def test_results_equal_an_uninterrupted_run(resumed, tmp_path):
    tmp, _, _ = resumed
    proc = experiment(tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    a = json.loads((tmp / "results/tiny/plan.json").read_text())["jobs"]
    b = json.loads((tmp_path / "results/tiny/plan.json").read_text())["jobs"]
    assert [j["digest"] for j in a] == [j["digest"] for j in b]
    for job in EVALS:
        assert eval_results(tmp, job) == eval_results(tmp_path, job)


def test_failed_job_skips_its_dependents_and_exits_nonzero(tmp_path):
    bad = TINY.replace("chunk_episodes = 10}", f'chunk_episodes = 10, layout = "{tmp_path / "missing.json"}"}}')
    (tmp_path / "tiny.toml").write_text(bad)
    proc = subprocess.run([sys.executable, "-m", "jepa_mpc.cli", "experiment", "run", str(tmp_path / "tiny.toml"),
                           "--results-root", str(tmp_path / "results"), "--store", str(tmp_path / "store"), "--no-report"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1
    failure = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "job collect-tworoom-state-600 failed" in ln]
    assert len(failure) == 1 and "--layout" in failure[0] and "log: " in failure[0]
    jobs = status(tmp_path)
    assert jobs[JOBS[0]]["state"] == "failed" and "--layout" in jobs[JOBS[0]]["error"]
    assert all(jobs[i]["state"] == "pending" and "not run" in jobs[i]["error"] for i in JOBS[1:])
    assert "1 failed, 4 not run" in proc.stdout


@pytest.mark.slow  # trains a few thousand steps
def test_runner_stopped_mid_training_resumes_at_the_checkpoint(tmp_path):
    import signal
    import time

    # long enough that a fast machine is still training when the first checkpoint appears (only the
    # last 2 are kept, so the test waits for any, not for step 25 itself)
    long = TINY.replace("steps = 20\n", "steps = 3000\n").replace("ckpt_every = 10\n", "ckpt_every = 25\n")
    long = long.replace("eval_every = 20\n", "eval_every = 3000\n")
    (tmp_path / "tiny.toml").write_text(long)
    argv = [sys.executable, "-m", "jepa_mpc.cli", "experiment", "run", str(tmp_path / "tiny.toml"), "--results-root",
            str(tmp_path / "results"), "--store", str(tmp_path / "store"), "--no-report"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    runs = tmp_path / "store/runs/store"

    def checkpoints() -> list[int]:
        return [int(p.name) for p in runs.glob("*/checkpoints/*") if p.name.isdigit()]

    while time.time() < deadline and not checkpoints() and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-2000:]
    assert status(tmp_path)[JOBS[1]]["state"] == "pending"
    stopped_at = max(checkpoints())
    assert 25 <= stopped_at < 3000
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    log = (tmp_path / "results/tiny/logs" / f"{JOBS[1]}.log").read_text().replace("\r", "\n")
    assert starts(tmp_path)[JOBS[1]] == 2 and starts(tmp_path)[JOBS[0]] == 1
    first, second = log.split("$ jepa-mpc ")[1:3]
    assert "checkpoint saved" in first  # one SIGTERM: train saved where it stopped (a second makes it give up)
    assert f"{stopped_at}/3000 [" in second and " 0/3000 [" not in second  # it continued from the checkpoint
    assert json.loads((tmp_path / "results/tiny/models" / JOBS[1] / "train.json").read_text())["steps"] == 3000
