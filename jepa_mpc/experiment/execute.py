"""Running a job graph: each job a `python -m jepa_mpc.cli VERB ...` subprocess, in dependency order,
started by an executor (jepa_mpc.experiment.executor: here, or as Ray tasks on a cluster).

A job is done when its artifacts exist (collect: meta.json and every chunk; train: config.json and the
checkpoint at the configured steps; probe: probe.npz; inspect: inspect.json; eval: results.json) and,
for the jobs that write into results/<name>/ (eval, inspect), when its record
results/<name>/jobs/<id>.json holds the same digest. Done jobs are skipped; the others are started
again and resume on their own (collect chunks, train checkpoints, eval batches). An eval folder whose
recorded digest differs from the job's (or that has no record) is redone with --overwrite.

Two runners sharing a store (two experiments needing one dataset) never run one job twice at once:
a job is started only under its lock file (<store folder>.lock, results/<name>/jobs/<id>.lock), and
a job found done once the lock is held is not run again. SIGINT/SIGTERM to the runner stop the running jobs
(SIGTERM: they keep what they finished) and leave them pending.

Logs: results/<name>/logs/<id>.log (the job's stdout and stderr). status.json is rewritten after every
change. A failed job is reported in one line and its dependents are not run; the others continue.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from jepa_mpc.atomic import write_json_atomic
from jepa_mpc.experiment.executor import Executor, LocalExecutor
from jepa_mpc.experiment.plan import Job

STOP_AFTER_ENV = "JEPA_MPC_EXPERIMENT_STOP_AFTER"
"""Test hook: stop (as on Ctrl-C) once this many jobs have finished in this invocation."""

RESULT_KINDS = ("eval", "inspect")  # jobs writing into results/<name>/, checked against their record


@dataclasses.dataclass
class JobState:
    state: str = "pending"  # pending | running | done | failed | not needed
    wall_s: float | None = None
    error: str | None = None
    cached: bool = False


def record_path(home: Path, job: Job) -> Path:
    return home / "jobs" / f"{job.id}.json"


def log_path(home: Path, job: Job) -> Path:
    return home / "logs" / f"{job.id}.log"


def read_record(home: Path, job: Job) -> dict | None:
    try:
        return json.loads(record_path(home, job).read_text())
    except (OSError, ValueError):
        return None


def is_done(job: Job, home: Path) -> bool:
    record = read_record(home, job)
    if not artifacts_exist(job):
        return False
    return record is not None and record.get("digest") == job.digest if job.kind in RESULT_KINDS else True


def command(job: Job, home: Path) -> tuple[list[str], str | None]:
    """The job's argv, with --overwrite (and a note why) for an eval folder of another digest."""
    argv = list(job.argv)
    if job.kind != "eval" or not Path(job.out).exists() or not any(Path(job.out).iterdir()):
        return argv, None
    record = read_record(home, job)
    if record is None:
        return argv + ["--overwrite"], f"{job.out} has no record of this job: redone (--overwrite)"
    if record.get("digest") != job.digest:
        return argv + ["--overwrite"], f"{job.out} holds an eval of other inputs (digest {record.get('digest', '')[:12]} " \
                                       f"-> {job.digest[:12]}): redone (--overwrite)"
    return argv, None


def last_error_line(log: Path) -> str:
    """The verb's one-line error from a job's log (else its last non-empty line)."""
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").replace("\r", "\n").splitlines() if ln.strip()]
    except OSError:
        return ""
    errors = [ln for ln in lines if ln.startswith("jepa-mpc: error:")]
    return (errors or lines or [""])[-1][:300]


def progress_line(log: Path) -> str:
    """The last progress line of a running job (its tqdm bar), shortened."""
    try:
        with log.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 400))
            tail = f.read().decode(errors="replace")
    except OSError:
        return ""
    parts = [p.strip() for p in tail.replace("\r", "\n").split("\n") if p.strip()]
    return parts[-1][:80] if parts else ""


def train_summary(run_dir: Path, wall_s: float | None) -> dict | None:
    """models/<train id>/train.json of a finished run: steps, wall_s, steps_per_s, last_eval, config."""
    try:
        config = json.loads((run_dir / "config.json").read_text())
        lines = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines() if ln.strip()]
    except (OSError, ValueError):
        return None
    train = [ln for ln in lines if ln.get("split") == "train"]
    evals = [ln for ln in lines if ln.get("split") == "eval"]
    strip = lambda d: {k: v for k, v in d.items() if k not in ("step", "split")}  # noqa: E731
    return {"steps": max((ln.get("step", 0) for ln in lines), default=0), "wall_s": wall_s,
            "steps_per_s": train[-1].get("steps_per_s") if train else None,
            "last_eval": strip(evals[-1]) if evals else {}, "config": config.get("train", config),
            "run": str(run_dir)}


class Runner:
    """Executes `jobs` (in dependency order) with at most `max_jobs` of them running at once."""

    def __init__(self, jobs: list[Job], home: Path, max_jobs: int = 1, progress: bool = True,
                 echo: Callable[[str], None] | None = None, selected: set[str] | None = None,
                 executor: Executor | None = None):
        """`selected`: the ids to run (closed under dependencies; default all); the others only appear
        in status.json (done or pending). `executor`: where the jobs run (default: subprocesses here)."""
        self.jobs = {j.id: j for j in jobs}
        self.order = [j.id for j in jobs]
        self.selected = set(self.order) if selected is None else set(selected)
        self.home = home
        self.max_jobs = max(1, max_jobs)
        self.progress = progress
        self.states = {j.id: JobState() for j in jobs}
        self.echo = echo or (lambda line: print(line, flush=True))
        self.executor = executor or LocalExecutor()
        self.running: dict[str, tuple[object, float]] = {}  # id -> (the executor's handle, start time)
        stop = os.environ.get(STOP_AFTER_ENV, "")
        self.stop_after = int(stop) if stop.isdigit() else None
        self.finished_here = 0
        self.locks: dict[str, int] = {}

    # ---- bookkeeping

    def write_status(self) -> None:
        write_json_atomic(self.home / "status.json", {"jobs": {
            i: {"state": "pending" if s.state == "running" else s.state, "wall_s": s.wall_s, "error": s.error,
                "cached": s.cached, "log": str(log_path(self.home, self.jobs[i]))}
            for i, s in ((i, self.states[i]) for i in self.order)}})

    def write_record(self, job: Job, state: str, wall_s: float | None = None) -> None:
        record_path(self.home, job).parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(record_path(self.home, job), {"id": job.id, "kind": job.kind, "digest": job.digest,
                                                        "state": state, "wall_s": wall_s, "argv": list(job.argv)})

    def after_train(self, job: Job, wall_s: float | None) -> None:
        path = self.home / "models" / job.id / "train.json"
        if wall_s is None and path.exists():
            return
        summary = train_summary(Path(job.out), wall_s)
        if summary is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(path, summary)

    # ---- running

    def start(self, job: Job) -> None:
        argv, note = command(job, self.home)
        if note:
            self.echo(f"{job.id}: {note}")
        log = log_path(self.home, job)
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as fh:
            fh.write(f"$ jepa-mpc {' '.join(argv)}\n")
        if job.kind in RESULT_KINDS:
            self.write_record(job, "running")
        self.running[job.id] = (self.executor.start(argv, log), time.perf_counter())
        self.states[job.id].state = "running"
        if not self.progress:
            self.echo(f"[{self.count('done') + 1}/{len(self.selected)}] {job.id}: started")

    def lock(self, job: Job) -> bool:
        """Hold the job's lock file (non-blocking); False while another process holds it."""
        path = Path(job.out + ".lock") if job.in_store else record_path(self.home, job).with_suffix(".lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self.locks[job.id] = fd
        return True

    def unlock(self, job_id: str) -> None:
        fd = self.locks.pop(job_id, None)
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def finish(self, job_id: str, rc: int) -> None:
        _, t0 = self.running.pop(job_id)
        self.unlock(job_id)
        job, st = self.jobs[job_id], self.states[job_id]
        st.wall_s = round(time.perf_counter() - t0, 3)
        if rc == 0 and artifacts_exist(job):
            st.state = "done"
            self.write_record(job, "done", st.wall_s)
            if job.kind == "train":
                self.after_train(job, st.wall_s)
            if not self.progress:
                self.echo(f"[{self.count('done')}/{len(self.selected)}] {job_id}: done in {st.wall_s:.1f} s")
        else:
            st.state = "failed"
            log = log_path(self.home, job)
            why = last_error_line(log) if rc != 0 else "finished without its artifacts"
            st.error = f"exit {rc}: {why}" if rc != 0 else why
            self.echo(f"job {job_id} failed ({st.error}); log: {log}")
        self.finished_here += 1
        self.write_status()

    def count(self, state: str) -> int:
        return sum(self.states[i].state == state for i in self.selected)

    def blocked_by(self, job: Job) -> str | None:
        for dep in job.deps:
            s = self.states[dep]
            if s.state == "failed" or (s.state == "pending" and s.error):
                return dep
        return None

    def ready(self) -> list[Job]:
        out = []
        for i in self.order:
            job, st = self.jobs[i], self.states[i]
            if st.state != "pending" or st.error or i not in self.selected:
                continue
            bad = self.blocked_by(job)
            if bad is not None:
                st.error = f"not run: dependency {bad} did not finish"
                continue
            if all(self.states[d].state == "done" for d in job.deps):
                out.append(job)
        return out

    def run(self) -> dict[str, JobState]:
        for i in self.order:
            job = self.jobs[i]
            if is_done(job, self.home):
                self.states[i] = JobState("done", _recorded_wall(self.home, job), None, cached=True)
                if job.kind == "train":
                    self.after_train(job, None)
        done = {i: s.state == "done" for i, s in self.states.items()}
        for i in not_needed(list(self.jobs.values()), done, self.selected):
            self.states[i] = JobState("not needed", cached=True)
        self.write_status()
        cached = sum(self.states[i].cached for i in self.selected)
        bar = _bar(len(self.selected), cached, self.progress)
        shown = 0.0
        previous = signal.signal(signal.SIGTERM, _interrupt)  # `kill RUNNER`: stop the jobs cleanly too
        try:
            while True:
                for i, (handle, _) in list(self.running.items()):
                    rc = self.executor.poll(handle)
                    if rc is not None:
                        self.finish(i, rc)
                        bar.update(1)
                if self.stop_after is not None and self.finished_here >= self.stop_after:
                    raise KeyboardInterrupt
                ready = self.ready()
                for job in ready:
                    if len(self.running) >= self.max_jobs:
                        break
                    if not self.lock(job):  # another runner is on it (a store shared by two experiments)
                        continue
                    if is_done(job, self.home):  # ... and has just finished it
                        self.unlock(job.id)
                        self.states[job.id] = JobState("done", _recorded_wall(self.home, job), None, cached=True)
                        if job.kind == "train":
                            self.after_train(job, None)
                        bar.update(1)
                        self.echo(f"{job.id}: done by another runner")
                        self.write_status()
                        continue
                    self.start(job)
                    self.write_status()
                if not self.running and not self.ready():
                    break
                if time.perf_counter() - shown > 1.0:
                    bar.set_description(_describe_running(self), refresh=False)
                    bar.refresh()
                    shown = time.perf_counter()
                time.sleep(0.2)
        except BaseException:  # Ctrl-C, SIGTERM or a bug here: the jobs stop too, keeping what they finished
            self.stop_running()
            bar.close()
            raise
        finally:
            signal.signal(signal.SIGTERM, previous)
            for i in list(self.locks):
                self.unlock(i)
        bar.close()
        self.write_status()
        return self.states

    def stop_running(self) -> None:
        """Stop the running jobs with SIGTERM (train checkpoints first; collect chunks and eval batches
        are written atomically, so a rerun resumes after the last finished one), mark them pending."""
        self.executor.stop([handle for handle, _ in self.running.values()])
        for i in self.running:
            self.states[i].state = "pending"
        self.running.clear()
        self.write_status()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def not_needed(jobs: list[Job], done: dict[str, bool], selected: set[str] | None = None) -> set[str]:
    """The jobs not done whose every dependent (in the selection) is done or itself not needed: a run
    whose evals are all recorded (committed results, a store emptied since) is not trained again.
    A job without dependents in the selection (an eval, or a train asked for alone) is always needed.
    `jobs` in dependency order."""
    selected = {j.id for j in jobs} if selected is None else selected
    users: dict[str, list[str]] = {j.id: [] for j in jobs}
    for j in jobs:
        for d in j.deps:
            users[d].append(j.id)
    skip: set[str] = set()
    for j in reversed(jobs):
        mine = [u for u in users[j.id] if u in selected]
        if j.id in selected and not done[j.id] and mine and all(done[u] or u in skip for u in mine):
            skip.add(j.id)
    return skip


def artifacts_exist(job: Job) -> bool:
    """Every file the job leaves when it has finished exists (every job kind names them: `done_paths`)."""
    return all(Path(p).exists() for p in job.done_paths)


def _recorded_wall(home: Path, job: Job) -> float | None:
    record = read_record(home, job)
    return record.get("wall_s") if record and record.get("digest") == job.digest else None


def _describe_running(runner: Runner) -> str:
    parts = []
    for i in runner.running:
        line = progress_line(log_path(runner.home, runner.jobs[i]))
        parts.append(f"{i}" + (f" [{line}]" if line else ""))
    return "; ".join(parts)[:160]


class _NoBar:
    def update(self, n: int = 1) -> None: ...
    def set_description(self, desc: str, refresh: bool = True) -> None: ...
    def refresh(self) -> None: ...
    def close(self) -> None: ...


def _bar(total: int, initial: int, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="job", dynamic_ncols=True,
                bar_format="{n_fmt}/{total_fmt} jobs |{bar:20}| {elapsed} {desc}")


__all__ = ["Runner", "JobState", "is_done", "command", "record_path", "log_path", "STOP_AFTER_ENV", "train_summary"]
