"""The `ray` executor: each job a Ray task that runs the job's `python -m jepa_mpc.cli VERB ...` subprocess
on a node of a Ray cluster (the optional extra `cluster`: pip install -e '.[cluster]').

    jepa-mpc experiment run FILE --executor ray --address HEAD:6379 --jobs 8 --store /shared/jepa --results-root /shared/jepa/results

The task writes the job's log where the local executor would and returns its exit code; everything else
(caching by content digest, locks, status.json, the report) stays with the runner, the Ray driver. So
every node must see the store and results folders, and the runner's working directory, at the same absolute
paths (a shared filesystem), and have the same jepa-mpc installed. Stopping a job cancels its task without
force: the task sends SIGTERM to its subprocess (train checkpoints first) and ends when it has.

`--address` empty: a Ray instance on this machine is started for the run (or the cluster named by
RAY_ADDRESS is used, as `ray.init()` does), and shut down at its end.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from jepa_mpc.errors import ConfigError
from jepa_mpc.experiment.executor import STOP_WAIT_S, cli_command, terminate

INSTALL_HINT = "pip install -e '.[cluster]'"
POLL_S = 0.2  # how often a task checks its subprocess (a cancel is seen between two checks)
TASK_FAILED_RC = 1  # the exit code recorded for a task that Ray could not run to its end (node lost, ...)


def import_ray():
    """The `ray` module, or a one-line ConfigError naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--executor ray: the ray package is not installed; install it with {INSTALL_HINT}") \
            from None
    return ray


def run_job(argv: Sequence[str], log: str, cwd: str) -> int:
    """The Ray task: `jepa-mpc ARGV...` in `cwd` on this node, its output appended to `log`; its exit code.

    `ray.cancel` (without force) raises KeyboardInterrupt here (TaskCancelledError once the task is
    cancelled): the subprocess gets SIGTERM and the task ends after it has."""
    listen_for_cancel()
    for path, what in ((Path(cwd), "the runner's working directory"), (Path(log).parent, "the job's log folder")):
        if not path.is_dir():
            raise FileNotFoundError(f"{what} {path} does not exist on node {os.uname().nodename}: the store and results "
                                    "folders must be on a filesystem every node sees at the same path")
    with open(log, "a") as fh:
        proc = subprocess.Popen(cli_command(argv), stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=cwd)
        try:
            while (rc := proc.poll()) is None:  # a blocking wait() would not see the cancel
                time.sleep(POLL_S)
            return rc
        except BaseException:  # KeyboardInterrupt / TaskCancelledError (ray.cancel), SystemExit (worker shutdown)
            terminate(proc)
            raise


def listen_for_cancel() -> None:
    """Let `ray.cancel` reach this task. It interrupts the worker's main thread as SIGINT would
    (_thread.interrupt_main), which does nothing where SIGINT is ignored: in the workers of a Ray started
    from a background job (`cmd &`), which inherit its ignored SIGINT. Python's own handler is put back."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@dataclasses.dataclass
class RayJob:
    ref: object  # ray.ObjectRef of run_job's exit code
    log: Path


def describe_failure(err: BaseException) -> str:
    """One line for a task that did not return: its cause's type and message (else Ray's error's)."""
    cause = getattr(err, "cause", None) or err
    text = " ".join(str(cause).split()) or type(cause).__name__
    return f"{type(cause).__name__}: {text}"[:300]


class RayExecutor:
    """Jobs as Ray tasks of `cpus_per_job` CPUs and `gpus_per_job` GPUs each (Ray queues what does not fit)."""

    def __init__(self, address: str = "", cpus_per_job: float = 1.0, gpus_per_job: float = 0.0):
        if cpus_per_job <= 0:
            raise ConfigError(f"--ray-cpus-per-job must be > 0, got {cpus_per_job}")
        if gpus_per_job < 0:
            raise ConfigError(f"--ray-gpus-per-job must be >= 0, got {gpus_per_job}")
        self.ray = ray = import_ray()
        self.started = not ray.is_initialized()  # in-process callers (tests) may have connected already
        if self.started:
            try:  # the jobs' output is in their logs: the workers' is not echoed here
                ray.init(address=address or None, logging_level=logging.WARNING, log_to_driver=False)
            except Exception as err:
                where = f"--address {address}" if address else "--executor ray (a local Ray instance)"
                raise ConfigError(f"{where}: could not start or reach Ray: {describe_failure(err)}") from None
        self.task = ray.remote(run_job).options(num_cpus=cpus_per_job, num_gpus=gpus_per_job, max_retries=0)
        self.cwd = os.getcwd()
        cpus = ray.cluster_resources().get("CPU", 0.0)
        if cpus < cpus_per_job:
            print(f"warning: --ray-cpus-per-job {cpus_per_job} > the cluster's {cpus:g} CPUs: jobs wait until "
                  "nodes that large join", file=sys.stderr)

    def start(self, argv: Sequence[str], log: Path) -> RayJob:
        return RayJob(self.task.remote(list(argv), str(log.resolve()), self.cwd), log)

    def poll(self, handle: RayJob) -> int | None:
        ready, _ = self.ray.wait([handle.ref], timeout=0)
        if not ready:
            return None
        try:
            return int(self.ray.get(handle.ref))
        except self.ray.exceptions.RayError as err:  # the runner reports the log's last error line
            handle.log.parent.mkdir(parents=True, exist_ok=True)
            with handle.log.open("a") as fh:
                fh.write(f"jepa-mpc: error: ray task failed: {describe_failure(err)}\n")
            return TASK_FAILED_RC

    def stop(self, handles: Sequence[RayJob]) -> None:
        refs = [h.ref for h in handles]
        if not refs:
            return
        for ref in refs:
            self.ray.cancel(ref, force=False)
        _, left = self.ray.wait(refs, num_returns=len(refs), timeout=STOP_WAIT_S + 30)
        for ref in left:  # a task that outlived its subprocess's kill: end its worker
            self.ray.cancel(ref, force=True)

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


__all__ = ["RayExecutor", "run_job", "import_ray", "INSTALL_HINT"]
