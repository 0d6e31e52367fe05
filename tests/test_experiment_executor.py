"""The local executor stops a job with exactly one SIGTERM: `train` takes a second signal as "give up now"
and would skip its stop checkpoint. A job that ignores SIGTERM is killed at the deadline."""

from __future__ import annotations

import subprocess
import sys
import time

from jepa_mpc.experiment import executor as ex

# A stand-in for `train`: counts SIGTERMs, spends 0.5 s "checkpointing" after the first, writes the count.
JOB = """
import signal, sys, time
count = 0
def handle(signum, frame):
    global count
    count += 1
signal.signal(signal.SIGTERM, handle)
print("ready", flush=True)
while count == 0:
    time.sleep(0.01)
end = time.time() + 0.5
while time.time() < end:
    time.sleep(0.01)
open(sys.argv[1], "w").write(str(count))
"""


def start(tmp_path, code: str, name: str) -> ex.LocalJob:
    log = (tmp_path / f"{name}.log").open("a")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / f"{name}.count")], stdout=subprocess.PIPE,
                            stderr=log, text=True, start_new_session=True)
    assert proc.stdout.readline().strip() == "ready"
    return ex.LocalJob(proc, log)


def test_stop_sends_one_sigterm_to_each_job_and_waits_for_it(tmp_path):
    jobs = [start(tmp_path, JOB, f"job{i}") for i in range(2)]
    ex.LocalExecutor().stop(jobs)
    for i, job in enumerate(jobs):
        assert job.proc.returncode == 0
        assert (tmp_path / f"job{i}.count").read_text() == "1"
    assert ex.terminate(jobs[0].proc) == 0  # an ended job is not signalled again


def test_a_job_that_ignores_sigterm_is_killed_at_the_deadline(tmp_path, monkeypatch):
    monkeypatch.setattr(ex, "STOP_WAIT_S", 0.5)
    stubborn = JOB.replace("while count == 0:", "while True:")
    job = start(tmp_path, stubborn, "stubborn")
    t0 = time.monotonic()
    ex.LocalExecutor().stop([job])
    assert job.proc.returncode == -9 and time.monotonic() - t0 < 10
    assert not (tmp_path / "stubborn.count").exists()
