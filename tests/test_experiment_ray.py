"""`jepa-mpc experiment run --executor ray`: the tiny TwoRoom experiment of test_experiment_run run as Ray
tasks on a local Ray instance gives the local executor's result files, a rerun runs nothing (cached by
content digest), a stopped job gets SIGTERM and checkpoints; without ray installed, or with an unknown
executor, a one-line error."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import assert_one_line_error
from test_experiment_run import JOBS, TINY

pytestmark = pytest.mark.xdist_group("ray")  # `make test` (--dist loadgroup): one worker starts Ray
TIME_FIELDS = ("wall_time_s", "plan_latency_ms", "time_breakdown_s")  # results.json summary: measured times
TIME_COLUMNS = ("plan_ms_per_episode_p50", "plan_ms_p50", "wall_time_s")  # results.csv: measured times


def experiment(root: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The tiny experiment under `root` (results/, store/), with its report."""
    (root / "tiny.toml").write_text(TINY)
    return subprocess.run([sys.executable, "-m", "jepa_mpc.cli", "experiment", "run", str(root / "tiny.toml"),
                           "--results-root", str(root / "results"), "--store", str(root / "store"), "--quiet", *extra],
                          capture_output=True, text=True, timeout=900, env={**os.environ, **(env or {})})


def starts(root: Path) -> dict[str, int]:
    """How often each job's command was started (one `$ jepa-mpc ...` line per start in its log)."""
    logs = root / "results/tiny/logs"
    return {p.stem: sum(ln.startswith("$ jepa-mpc ") for ln in p.read_text().splitlines()) for p in logs.glob("*.log")}


def comparable_json(root: Path, rel: str) -> dict:
    """A result file with its folder's path replaced by ROOT, without its creation time, measured times
    and the hashes of the run's config.json (which holds its dataset's creation time)."""
    d = json.loads((root / "results/tiny" / rel).read_text().replace(str(root), "ROOT"))
    if "summary" in d:
        d["summary"] = {k: v for k, v in d["summary"].items() if k not in TIME_FIELDS}
    checkpoint = (d.get("provenance") or {}).get("checkpoint") or {}
    for key in ("config_sha256", "digest"):
        checkpoint.pop(key, None)
    return {k: v for k, v in d.items() if k not in ("created", "identity")}


def comparable_csv(root: Path) -> list[dict]:
    rows = csv.DictReader(io.StringIO((root / "results/tiny/results.csv").read_text().replace(str(root), "ROOT")))
    return [{k: v for k, v in row.items() if k not in TIME_COLUMNS} for row in rows]


@pytest.fixture(scope="module")
def ray_address():
    """A Ray instance of this test process (2 CPUs), which the experiment runner joins with --address."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20, logging_level="WARNING",
             log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def on_ray(tmp_path_factory, ray_address) -> Path:
    """The tiny experiment run by the Ray executor (--jobs 2)."""
    root = tmp_path_factory.mktemp("ray")
    proc = experiment(root, "--executor", "ray", "--address", ray_address, "--jobs", "2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "experiment tiny: 5 jobs run, 0 cached, 0 failed, 0 not run" in proc.stdout
    return root


@pytest.mark.slow  # a whole experiment on Ray, then locally (minutes on 2 cores): `make test-slow`
def test_ray_executor_runs_every_job_once(on_ray):
    assert starts(on_ray) == {i: 1 for i in JOBS}
    status = json.loads((on_ray / "results/tiny/status.json").read_text())["jobs"]
    assert all(s["state"] == "done" and not s["cached"] for s in status.values())
    for job in JOBS[3:]:
        assert len(comparable_json(on_ray, f"evals/{job}/results.json")["episodes"]) == 4
    assert len(comparable_csv(on_ray)) == 2


@pytest.mark.slow  # a whole experiment on Ray, then locally (minutes on 2 cores): `make test-slow`
def test_ray_rerun_runs_no_job(on_ray, ray_address):
    before = starts(on_ray)
    proc = experiment(on_ray, "--executor", "ray", "--address", ray_address, "--no-report")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "experiment tiny: 0 jobs run, 5 cached, 0 failed, 0 not run" in proc.stdout
    assert starts(on_ray) == before


@pytest.mark.slow  # a whole experiment on Ray, then locally (minutes on 2 cores): `make test-slow`
def test_ray_executor_gives_the_local_result_files(on_ray, tmp_path):
    """The same experiment run by the local executor: the same digests and result files (measured times,
    creation stamps and the paths of the two folders aside). A second pipeline, ~35-45 s here."""
    proc = experiment(tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    plans = [json.loads((root / "results/tiny/plan.json").read_text())["jobs"] for root in (tmp_path, on_ray)]
    assert [j["digest"] for j in plans[0]] == [j["digest"] for j in plans[1]]
    for rel in [f"evals/{job}/results.json" for job in JOBS[3:]] + [f"models/{JOBS[1]}/inspect.json"]:
        assert comparable_json(tmp_path, rel) == comparable_json(on_ray, rel), rel
    assert comparable_csv(tmp_path) == comparable_csv(on_ray)


@pytest.mark.slow  # a whole experiment on Ray, then locally (minutes on 2 cores): `make test-slow`
def test_ray_stop_sends_sigterm_and_the_job_checkpoints(on_ray, tmp_path):
    """RayExecutor.stop cancels the task without force; the task's SIGTERM makes `train` save a checkpoint
    at its next step and exit as interrupted, before stop returns."""
    from jepa_mpc.experiment.ray_executor import RayExecutor

    train = next(j for j in json.loads((on_ray / "results/tiny/plan.json").read_text())["jobs"] if j["kind"] == "train")
    argv, run, log = list(train["argv"]), tmp_path / "run", tmp_path / "train.log"
    argv[argv.index("--run") + 1] = str(run)
    argv[argv.index("--steps") + 1] = "1000000"
    executor = RayExecutor()  # joins this process's Ray instance, which it leaves running
    handle = executor.start(argv, log)
    deadline = time.monotonic() + 300
    while not (run / "metrics.jsonl").exists() or not (run / "metrics.jsonl").read_text().strip():  # trained 10 steps
        assert executor.poll(handle) is None, log.read_text()[-2000:]
        assert time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.5)
    executor.stop([handle])
    last = log.read_text().strip().splitlines()[-1]
    assert last.startswith("jepa-mpc: interrupted (stopped by signal") and last.endswith("checkpoint saved)"), last
    logged = max(json.loads(ln)["step"] for ln in (run / "metrics.jsonl").read_text().splitlines() if ln.strip())
    saved = [int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit()]
    assert saved and max(saved) >= logged >= 10
    executor.close()
    assert not executor.started and __import__("ray").is_initialized()


def test_a_task_that_cannot_run_fails_in_one_log_line(ray_address, tmp_path):
    """A node that does not see the runner's folders: the job fails with the task's reason in its log."""
    from jepa_mpc.experiment.execute import last_error_line
    from jepa_mpc.experiment.ray_executor import TASK_FAILED_RC, RayExecutor

    executor = RayExecutor()
    executor.cwd = str(tmp_path / "not-shared")
    handle = executor.start(["tasks", "--help"], tmp_path / "logs/job.log")
    deadline = time.monotonic() + 120
    while (rc := executor.poll(handle)) is None:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    line = last_error_line(tmp_path / "logs/job.log")
    assert rc == TASK_FAILED_RC and line.startswith("jepa-mpc: error: ray task failed: FileNotFoundError: ")
    assert "not-shared does not exist on node" in line and "same path" in line


def test_missing_ray_is_a_one_line_error(tmp_path):
    shadow = tmp_path / "shadow/ray"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'ray'\", name='ray')\n")
    (tmp_path / "tiny.toml").write_text(TINY)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shadow.parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "jepa_mpc.cli", "experiment", "run", str(tmp_path / "tiny.toml"),
                           "--results-root", str(tmp_path / "results"), "--store", str(tmp_path / "store"),
                           "--executor", "ray"], capture_output=True, text=True, timeout=300, env=env)
    assert_one_line_error(proc, "pip install -e '.[cluster]'")
    assert not (tmp_path / "results").exists()  # nothing written


def test_unknown_executor_is_a_one_line_error(tmp_path, cli):
    (tmp_path / "tiny.toml").write_text(TINY)
    line = assert_one_line_error(cli("experiment", "run", tmp_path / "tiny.toml", "--executor", "slurm"), "slurm")
    assert "--executor" in line


def test_a_task_hears_its_cancel_where_sigint_is_ignored():
    """ray.cancel interrupts a task as SIGINT would; workers of a Ray started from a background job
    inherit an ignored SIGINT, so the task puts Python's handler back first (run without Ray)."""
    code = ("import signal, _thread, time\n"
            "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
            "from jepa_mpc.experiment.ray_executor import listen_for_cancel\n"
            "listen_for_cancel()\n"
            "_thread.interrupt_main()\n"
            "time.sleep(30)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "KeyboardInterrupt" in proc.stderr, proc.stderr[-2000:]
