"""Where an experiment's jobs run: an executor starts one `python -m jepa_mpc.cli VERB ...` command,
polls it, and stops it as SIGTERM would (train checkpoints first; collect chunks and eval batches are
written atomically). The runner (jepa_mpc.experiment.execute) keeps everything else: the order, the
caching by content digest, the locks, status.json.

    local  a subprocess of the runner (the default)
    ray    a Ray task running the same subprocess on a node of a Ray cluster (ray_executor.py)

jepa_mpc.experiment.main.make_executor picks one by its name.
"""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Literal, Protocol

EXECUTORS = ("local", "ray")
ExecutorName = Literal["local", "ray"]
STOP_WAIT_S = 60.0  # a stopped job's time to finish its checkpoint before it is killed


def cli_command(argv: Sequence[str]) -> list[str]:
    """The command line of one job: this interpreter running `jepa-mpc ARGV...`."""
    return [sys.executable, "-m", "jepa_mpc.cli", *argv]


def terminate(proc: subprocess.Popen) -> int:
    """SIGTERM to a running job (SIGINT may be ignored by a background job), SIGKILL after STOP_WAIT_S;
    its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return wait_or_kill(proc, time.monotonic() + STOP_WAIT_S)


def wait_or_kill(proc: subprocess.Popen, deadline: float) -> int:
    """Wait for a signalled job until `deadline` (time.monotonic), then SIGKILL it; its exit code. It sends
    no second SIGTERM: `train` takes a second signal as "give up now" and would skip its checkpoint."""
    try:
        return proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


class Executor(Protocol):
    """Starts, polls and stops job commands. A handle is whatever `start` returns."""

    def start(self, argv: Sequence[str], log: Path) -> object:
        """Run `jepa-mpc ARGV...` with its stdout and stderr appended to `log`."""

    def poll(self, handle: object) -> int | None:
        """The job's exit code once it has ended, else None."""

    def stop(self, handles: Sequence[object]) -> None:
        """Stop the jobs (SIGTERM: they keep what they finished) and return once they have ended."""

    def close(self) -> None:
        """Release what the executor holds (a Ray instance it started)."""


@dataclasses.dataclass
class LocalJob:
    proc: subprocess.Popen
    log: IO[str]


class LocalExecutor:
    """Each job a subprocess of the runner, in its own session: a Ctrl-C at the terminal reaches the
    runner only, which passes one signal on (a second one would make `train` give up its checkpoint)."""

    def start(self, argv: Sequence[str], log: Path) -> LocalJob:
        fh = log.open("a")
        proc = subprocess.Popen(cli_command(argv), stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        return LocalJob(proc, fh)

    def poll(self, handle: LocalJob) -> int | None:
        rc = handle.proc.poll()
        if rc is not None:
            handle.log.close()
        return rc

    def stop(self, handles: Sequence[LocalJob]) -> None:
        for h in handles:  # every job is signalled once, before any is waited for; all share one deadline
            if h.proc.poll() is None:
                h.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT_S
        for h in handles:
            wait_or_kill(h.proc, deadline)
            h.log.close()

    def close(self) -> None:
        pass


__all__ = ["Executor", "LocalExecutor", "cli_command", "terminate", "wait_or_kill", "EXECUTORS", "ExecutorName",
           "STOP_WAIT_S"]
