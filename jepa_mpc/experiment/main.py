"""`jepa-mpc experiment run FILE`: expand an experiment file into jobs and run what is not done yet."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import sys
from pathlib import Path
from typing import Annotated

import tyro

from jepa_mpc.atomic import write_bytes_atomic, write_json_atomic
from jepa_mpc.errors import ConfigError, UserError
from jepa_mpc.experiment.execute import Runner, is_done, not_needed
from jepa_mpc.experiment.executor import EXECUTORS, Executor, ExecutorName, LocalExecutor
from jepa_mpc.experiment.plan import Job, Roots, expand, plan_document, select
from jepa_mpc.experiment.spec import load_experiment


@dataclasses.dataclass(frozen=True)
class ExperimentRunArgs:
    """Run an experiment file (experiments/*.toml): every job not done yet, in dependency order."""

    file: Annotated[tyro.conf.Positional[str], tyro.conf.arg(metavar="FILE")]
    """The experiment TOML (schema: jepa_mpc/experiment/spec.py)."""
    dry_run: bool = False
    """Print the job graph (cached or to run, model evaluations per plan) and run nothing."""
    jobs: int = 1
    """Jobs run at once (independent ones only), here or on the Ray cluster."""
    executor: ExecutorName = "local"
    """Where the jobs run: `local` (subprocesses of this command) or `ray` (Ray tasks on the cluster at
    --address; needs the `cluster` extra: pip install -e '.[cluster]'). With `ray`, the store and results
    folders (and this working directory) must be on a filesystem every node sees at the same absolute path."""
    address: str = ""
    """--executor ray: the Ray cluster's address (HEAD_IP:6379, or `auto` for the one `ray start` began on
    this machine); empty: start a Ray instance on this machine for the run (or use RAY_ADDRESS)."""
    ray_cpus_per_job: float = 1.0
    """--executor ray: CPUs Ray reserves for each job (a node runs at most its CPUs / this jobs at once)."""
    ray_gpus_per_job: float = 0.0
    """--executor ray: GPUs Ray reserves for each job (and makes visible to it through CUDA_VISIBLE_DEVICES)."""
    only: tuple[str, ...] = ()
    """Run only the jobs whose id matches one of these globs (and what they depend on), e.g.
    --only '*-tworoom-*' 'eval-*-cem-*'."""
    results_root: str = "results"
    """Results go to RESULTS_ROOT/<name>/."""
    store: str = "."
    """Root of the content-addressed store: STORE/data/store/<digest16>, STORE/runs/store/<digest16>. The
    default keeps paths relative to the working directory (a run records its dataset's path as given);
    any other root is made absolute, so runs trained there find their datasets from anywhere."""
    report: bool = True
    """Write report.md, results.csv and plots at the end (`jepa-mpc report`; --no-report: not)."""
    quiet: bool = False
    """No progress bar (without a terminal: one line per job start and end instead)."""


def _sci(n: float) -> str:
    return f"{n:.3g}" if n < 1e4 else f"{n:.2e}"


def dry_run_text(name: str, source: str, jobs: list[Job], home: Path) -> str:
    done = {j.id: is_done(j, home) for j in jobs}
    skip = not_needed(jobs, done)
    width = max(len(j.id) for j in jobs)
    lines = [f"experiment {name} ({source}): {len(jobs)} jobs, {sum(done.values())} cached, "
             + (f"{len(skip)} not needed (every job using them is cached), " if skip else "")
             + f"{len(jobs) - sum(done.values()) - len(skip)} to run",
             f"  {'id':<{width}}  {'kind':<7}  {'state':<6}  {'evals/plan':>10}  size"]
    for j in jobs:
        per_plan = "-" if j.model_evaluations is None else str(j.model_evaluations)
        lines.append(f"  {j.id:<{width}}  {j.kind:<7}  {'cached' if done[j.id] else 'skip' if j.id in skip else 'run':<6}  {per_plan:>10}  {j.cost}")
    kinds = {}
    for j in jobs:
        if not done[j.id] and j.id not in skip:
            kinds[j.kind] = kinds.get(j.kind, 0) + 1
    total = sum(j.total_model_evaluations or 0 for j in jobs if not done[j.id])
    lines.append("to run: " + (", ".join(f"{n} {k}" for k, n in kinds.items()) or "nothing"))
    lines.append(f"estimated model evaluations of the evals to run: {_sci(total)} "
                 "(upper bound: every step of every episode planned)")
    return "\n".join(lines)


def make_executor(name: str, address: str = "", cpus_per_job: float = 1.0, gpus_per_job: float = 0.0) -> Executor:
    """The executor called `name` (EXECUTORS); `address`, `cpus_per_job`, `gpus_per_job`: Ray's (ray_executor)."""
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        from jepa_mpc.experiment.ray_executor import RayExecutor

        return RayExecutor(address=address, cpus_per_job=cpus_per_job, gpus_per_job=gpus_per_job)
    raise ConfigError(f"--executor: unknown executor {name!r}; expected one of: {', '.join(EXECUTORS)}")


def experiment_run_main(args: ExperimentRunArgs) -> None:
    if args.jobs < 1:
        raise UserError(f"--jobs must be >= 1, got {args.jobs}")
    exp = load_experiment(args.file)
    roots = Roots(results=Path(args.results_root), store=Path(args.store) if args.store == "." else Path(args.store).resolve())
    jobs = expand(exp, roots)
    home = roots.experiment(exp.name)
    selected = select(jobs, args.only)
    if args.dry_run:
        print(dry_run_text(exp.name, args.file, [j for j in jobs if j.id in selected], home))
        return
    from jepa_mpc.provenance import git_commit

    executor = make_executor(args.executor, args.address, args.ray_cpus_per_job, args.ray_gpus_per_job)
    source = Path(args.file).read_bytes()
    home.mkdir(parents=True, exist_ok=True)
    copy = home / "experiment.toml"
    if copy.exists() and copy.read_bytes() != source:
        print(f"{copy}: replaced by {args.file} (changed since the last run; jobs whose inputs changed are redone)")
    write_bytes_atomic(copy, source)
    created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    write_json_atomic(home / "plan.json", plan_document(exp, jobs, hashlib.sha256(source).hexdigest(), git_commit(),
                                                       created), sort_keys=False)
    bar = not args.quiet and sys.stderr.isatty()  # else one line per job start and end
    echo = None
    if bar:
        from tqdm import tqdm

        echo = tqdm.write
    runner = Runner(jobs, home, max_jobs=args.jobs, progress=bar, echo=echo, selected=selected, executor=executor)
    try:
        states = {i: s for i, s in runner.run().items() if i in selected}
    finally:
        executor.close()
    failed = [i for i, s in states.items() if s.state == "failed"]
    not_run = [i for i, s in states.items() if s.state == "pending"]
    ran = [i for i, s in states.items() if s.state == "done" and not s.cached]
    cached = [i for i, s in states.items() if s.cached and s.state == "done"]
    unneeded = [i for i, s in states.items() if s.state == "not needed"]
    report_ok = _report(home) if args.report else True
    print(f"experiment {exp.name}: {len(ran)} jobs run, {len(cached)} cached, "
          + (f"{len(unneeded)} not needed, " if unneeded else "")
          + f"{len(failed)} failed, {len(not_run)} not run; results: {home}")
    if failed or not_run or not report_ok:
        raise SystemExit(1)


def _report(home: Path) -> bool:
    """report.md, results.csv and plots of what has results (jepa_mpc.report); False if it failed."""
    from jepa_mpc.report import write_report

    try:
        write_report(home)
    except Exception as err:  # the jobs' results stay; the report can be rebuilt from them
        print(f"report: failed ({type(err).__name__}: {' '.join(str(err).split())[:300]}); "
              f"rebuild with: jepa-mpc report {home}", file=sys.stderr)
        return False
    return True
