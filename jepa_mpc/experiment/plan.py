"""Expansion of an experiment into a job graph: collect -> train -> probe / inspect -> eval.

Every job is one `jepa-mpc VERB ...` command line plus the content digest of its inputs:

    collect  <- env + resolved CollectConfig                           -> <store>/data/store/<digest16>
    train    <- dataset digest + resolved TrainConfig (seed included)  -> <store>/runs/store/<digest16>
    probe    <- run digest                                             -> <run>/probe.npz
    inspect  <- run digest                                             -> results/<name>/models/<train id>/inspect.json
    eval     <- run digest + suite sha256 + resolved eval settings     -> results/<name>/evals/<eval id>/
                (planner, goal, control, dynamics, episodes, seed)

Configs are resolved the way the verbs resolve them (the train CLI parser, tyro's parse of EvalArgs,
make_config), so a bad override fails here, before any job runs, and the digest is of what runs.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json
import math
from pathlib import Path
from typing import Any

from jepa_mpc import provenance
from jepa_mpc.config import CollectConfig, to_dict, train_identity
from jepa_mpc.errors import ConfigError, UserError
from jepa_mpc.experiment.resolve import flags, prefixed, resolve_eval, resolve_train
from jepa_mpc.experiment.spec import Budget, Experiment, FamilySpec, SpecError

DIGEST_CHARS = 16  # store folder names: the first 16 hex digits of the sha256


@dataclasses.dataclass(frozen=True)
class Job:
    """One command of the experiment. `done_paths`: files that all exist once it has finished."""

    id: str
    kind: str  # collect | train | probe | inspect | eval
    digest: str
    deps: tuple[str, ...]
    out: str
    argv: tuple[str, ...]
    done_paths: tuple[str, ...]
    axes: dict | None = None
    model_evaluations: int | None = None
    cost: str = ""  # a short size estimate for --dry-run (transitions, steps, episodes x plans)
    total_model_evaluations: int | None = None  # evals: upper bound over the episodes (every step planned)
    in_store: bool = False  # a content-addressed artifact shared between experiments

    def to_json(self) -> dict:
        d = {"id": self.id, "kind": self.kind, "digest": self.digest, "deps": list(self.deps), "out": self.out,
             "argv": list(self.argv), "axes": self.axes}
        if self.kind == "eval":
            d["model_evaluations"] = self.model_evaluations
        return d


@dataclasses.dataclass(frozen=True)
class Roots:
    """Where jobs write: the results root (results/<name>/ below it) and the store root (data/store,
    runs/store below it)."""

    results: Path = Path("results")
    store: Path = Path(".")

    def experiment(self, name: str) -> Path:
        return self.results / name

    def data(self, digest: str) -> Path:
        return self.store / "data" / "store" / digest[:DIGEST_CHARS]

    def run(self, digest: str) -> Path:
        return self.store / "runs" / "store" / digest[:DIGEST_CHARS]


def digest_of(payload: Any) -> str:
    """sha256 of the canonical JSON of `payload`."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def size_label(n: int) -> str:
    """50000 -> "50k", 2500 -> "2500", 1000000 -> "1000k"."""
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def suite_info(path: str) -> tuple[str, str, int, float, bool]:
    """(sha256, env id, tasks, mean max_steps, any hazards) of a suite file."""
    from jepa_mpc_envs.registry import load_suite

    suite = load_suite(path)
    steps = sum(t.max_steps for t in suite.tasks) / max(len(suite.tasks), 1)
    return provenance.file_sha256(path), suite.env_id, len(suite.tasks), steps, any(t.hazards for t in suite.tasks)


def _wrap(where: str, source: str, fn, *args):
    try:
        return fn(*args)
    except SpecError:
        raise
    except UserError as err:
        raise SpecError(f"{source}: {where}: {err}") from None


# ----------------------------------------------------------------------------- expansion


class _Graph:
    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.by_digest: dict[str, Job] = {}

    def add(self, job: Job) -> Job:
        """Add `job` (a store job of a digest already present is that job: e.g. tworoom and
        tworoom-hazards share their dataset and runs)."""
        if job.in_store and job.digest in self.by_digest:
            return self.by_digest[job.digest]
        old = self.jobs.get(job.id)
        if old is not None and old.digest != job.digest:
            raise ConfigError(f"two different jobs would be named {job.id!r}; give the grid entries distinct names")
        self.jobs.setdefault(job.id, job)
        if job.in_store:
            self.by_digest.setdefault(job.digest, job)
        return self.jobs[job.id]


def expand(exp: Experiment, roots: Roots = Roots()) -> list[Job]:
    """The experiment's jobs in dependency order (each job after its deps)."""
    g = _Graph()
    src = exp.source
    home = roots.experiment(exp.name)
    for fi, fam in enumerate(exp.families):
        where = f"families[{fi}]"
        suites = {}
        for split in exp.splits:
            path = fam.suite(split)
            if not Path(path).is_file():
                raise SpecError(f"{src}: {where}.suite_{split}: no such suite file {path}")
            info = _wrap(f"{where}.suite_{split}", src, suite_info, path)
            if info[1] != fam.env:
                raise SpecError(f"{src}: {where}.suite_{split}: {path} is a suite of {info[1]}, not of {fam.env}")
            suites[split] = (path, info)
        for obs in fam.obs:
            preset = fam.preset(obs)
            base_control = dict(exp.control) | dict(fam.control)
            for di, data in enumerate(fam.data):
                collect = _collect_job(g, fam, obs, data, roots, src, where)
                for mi, model in enumerate(exp.models):
                    train_pairs = tuple((dict(fam.train) | dict(model.train)).items())
                    cfg0 = _wrap(f"models[{mi}].train (with {where}.train)", src, resolve_train, preset, tuple(flags(train_pairs)))
                    for seed in exp.seeds:
                        run = _train_job(g, fam, obs, data, model.name, seed, preset, train_pairs, cfg0, collect, roots, home)
                        needs_probe = fam.probe or base_control.get("safety", "none") != "none" or any(
                            s[1][4] for s in suites.values()) or any(dict(p.control).get("safety", "none") != "none" for p in exp.planners)
                        eval_deps = [run.id]
                        if needs_probe:
                            eval_deps.append(_probe_job(g, run).id)
                        if fam.inspect:
                            _inspect_job(g, run, home)
                        for split, (suite, info) in suites.items():
                            for pi, p in enumerate(exp.planners):
                                control = base_control | dict(p.control)
                                for bi, budget in enumerate(p.budgets):
                                    for gi, goal in enumerate(exp.goals):
                                        if fam.goals and goal.name not in fam.goals:
                                            continue
                                        w = f"planners[{pi}].budgets[{bi}] with goals[{gi}]"
                                        _eval_job(g, exp, fam, obs, data, model.name, seed, split, suite, info, run,
                                                  eval_deps, "model", p.kind, p.name, tuple(p.planner), budget, goal,
                                                  control, cfg0.action_block, home, w, video=p.video)
                            if di == 0 and mi == 0:  # baselines beside the first data size and model
                                _baselines(g, exp, fam, obs, seed, split, suite, info, run, base_control,
                                           cfg0.action_block, home)
                    if mi == 0 and exp.baselines.gcbc:
                        for seed in exp.seeds:
                            _gcbc_jobs(g, exp, fam, obs, data, seed, preset, collect, suites, roots, home)
    return list(g.jobs.values())


def _collect_job(g: _Graph, fam: FamilySpec, obs: str, data: int, roots: Roots, src: str, where: str) -> Job:
    from jepa_mpc.data.collect import num_chunks, validate_config

    over = dict(fam.collect)
    episode_len = over.get("episode_len", CollectConfig.episode_len)
    cfg = dataclasses.replace(CollectConfig(), out="", env_id=fam.env, num_episodes=data // episode_len,
                              pixels=obs == "pixels", **over)
    _wrap(f"{where}.collect", src, validate_config, cfg)
    digest = digest_of({"kind": "collect", "config": to_dict(cfg)})
    out = roots.data(digest)
    argv = ["collect", "--out", str(out), "--env", fam.env, "--num-episodes", str(cfg.num_episodes)]
    argv += (["--pixels"] if cfg.pixels else []) + flags(sorted(over.items()))
    done = [str(out / "meta.json")] + [str(out / f"chunk_{i:05d}.h5") for i in range(num_chunks(cfg))]
    return g.add(Job(id=f"collect-{fam.name}-{obs}-{size_label(data)}", kind="collect", digest=digest, deps=(),
                     out=str(out), argv=tuple(argv), done_paths=tuple(done),
                     axes={"family": fam.name, "env_id": fam.env, "obs": obs, "data": data},
                     cost=f"{cfg.num_episodes} episodes x {cfg.episode_len} steps", in_store=True))


def _train_job(g, fam, obs, data, model, seed, preset, train_pairs, cfg0, collect: Job, roots: Roots, home: Path) -> Job:
    cfg = dataclasses.replace(cfg0, seed=seed)
    digest = digest_of({"kind": "train", "dataset": collect.digest, "preset": preset, "config": train_identity(cfg)})
    out = roots.run(digest)
    argv = ["train", "--preset", preset, "--data", collect.out, "--run", str(out), *flags(train_pairs), "--seed", str(seed)]
    return g.add(Job(id=f"train-{fam.name}-{obs}-{size_label(data)}-{model}-s{seed}", kind="train", digest=digest,
                     deps=(collect.id,), out=str(out), argv=tuple(argv),
                     done_paths=(str(out / "config.json"), str(out / "checkpoints" / str(cfg.steps))),
                     axes={"family": fam.name, "env_id": fam.env, "obs": obs, "data": data, "model": model, "seed": seed},
                     cost=f"{cfg.steps} steps", in_store=True))


def _probe_job(g: _Graph, run: Job) -> Job:
    path = str(Path(run.out) / "probe.npz")
    return g.add(Job(id="probe" + run.id[len("train"):], kind="probe", digest=digest_of({"kind": "probe", "run": run.digest}),
                     deps=(run.id,), out=path, argv=("probe", run.out), done_paths=(path,), axes=run.axes, in_store=True))


def _inspect_job(g: _Graph, run: Job, home: Path) -> Job:
    path = str(home / "models" / run.id / "inspect.json")
    return g.add(Job(id="inspect" + run.id[len("train"):], kind="inspect", digest=digest_of({"kind": "inspect", "run": run.digest}),
                     deps=(run.id,), out=path, argv=("inspect", run.out, "--out", path), done_paths=(path,), axes=run.axes))


def _eval_flags(agent: str, kind: str, planner: tuple, budget: Budget | None, goal, control: dict, episodes: int,
                video: int) -> tuple[str, ...]:
    out = ["--episodes", str(episodes), "--video", str(video)]
    if agent == "oracle":
        out += ["--dynamics", "oracle"]
    out += prefixed("control", sorted(control.items()))
    if budget is not None:
        out += [x for k in ("samples", "iterations", "horizon") if getattr(budget, k) is not None
                for x in (f"--control.{k}", str(getattr(budget, k)))]
    out.append(f"planner:{kind}")
    out += prefixed("planner", planner)
    if goal is not None:
        out.append(f"goal:{goal.kind}")
        out += prefixed("goal", goal.fields)
    return tuple(out)


def _eval_job(g, exp: Experiment, fam, obs, data, model, seed, split, suite, info, run: Job, deps, agent, kind,
              planner_name, planner, budget, goal, control, action_block, home: Path, where: str,
              job_id: str | None = None, video: int | None = None) -> Job:
    from jepa_mpc.evaluate import identity_flags  # (resolve_eval has imported it already)
    from jepa_mpc.planning import model_evaluations

    video = exp.video if video is None else video
    eval_flags = _eval_flags(agent, kind, planner, budget, goal, control, exp.episodes, video)
    args = _wrap(where, exp.source, resolve_eval, eval_flags)
    evals_per_plan = None
    if kind != "random-actions" and agent != "gcbc":
        evals_per_plan = model_evaluations(args.control.planner_config())
    sha, _, n_tasks, mean_steps, _ = info
    episodes = min(exp.episodes or n_tasks, n_tasks)
    plans = episodes * math.ceil(mean_steps / action_block)
    payload = {"kind": "eval", "run": run.digest, "suite_sha256": sha, "seed": seed,
               "args": {k: v for k, v in identity_flags(args).items() if k != "seed"}}
    payload["args"]["control"]["seed"] = seed
    if job_id is None:
        job_id = (f"eval-{fam.name}-{obs}-{size_label(data)}-{model}-s{seed}-{planner_name}-{budget.label}-{goal.name}"
                  f"-{split}")
    out = home / "evals" / job_id
    argv = ["eval", "--checkpoint", run.out, "--suite", suite, "--out", str(out), "--seed", str(seed),
            "--control.seed", str(seed), *eval_flags]
    axes = {"family": fam.name, "env_id": fam.env, "obs": obs, "data": data, "model": model, "seed": seed,
            "agent": agent, "planner": None if kind in ("random-actions", "gcbc") else kind,
            "budget": budget.label if budget is not None else None, "goal": goal.name if goal is not None else None,
            "suite": suite, "split": split}
    return g.add(Job(id=job_id, kind="eval", digest=digest_of(payload), deps=tuple(deps), out=str(out),
                     argv=tuple(argv), done_paths=(str(out / "results.json"),), axes=axes,
                     model_evaluations=evals_per_plan,
                     cost=f"{episodes} episodes, <= {plans} plans",
                     total_model_evaluations=None if evals_per_plan is None else evals_per_plan * plans))


def _baselines(g, exp, fam, obs, seed, split, suite, info, run: Job, control, action_block, home) -> None:
    b = exp.baselines
    if b.random:
        _eval_job(g, exp, fam, obs, None, None, seed, split, suite, info, run, [run.id], "random", "random-actions",
                  None, (), None, None, {}, action_block, home, "baselines.random",
                  job_id=f"eval-{fam.name}-{obs}-random-s{seed}-{split}")
    if b.oracle is not None:
        o = b.oracle
        usable = [gl for gl in exp.goals if not fam.goals or gl.name in fam.goals]
        goal = next((gl for gl in usable if gl.name == o.goal), usable[0])  # the family's first if not its
        _eval_job(g, exp, fam, obs, None, None, seed, split, suite, info, run, [run.id], "oracle", o.planner, o.planner,
                  (), o.budget, goal, control, action_block, home, "baselines.oracle",
                  job_id=f"eval-{fam.name}-{obs}-oracle-{o.planner}-{o.budget.label}-{goal.name}-s{seed}-{split}")


def _gcbc_jobs(g, exp, fam, obs, data, seed, preset, collect: Job, suites, roots: Roots, home: Path) -> None:
    """GCBC: `train --objective gcbc` on the same data (baselines.gcbc's train flags), then `eval planner:gcbc`."""
    gcbc_flags = flags(exp.baselines.gcbc_train) + ["--objective", "gcbc"]  # resolved and run in this order
    cfg = _wrap("baselines.gcbc", exp.source, resolve_train, preset, tuple(gcbc_flags))
    cfg = dataclasses.replace(cfg, seed=seed)
    digest = digest_of({"kind": "train", "dataset": collect.digest, "preset": preset, "config": train_identity(cfg)})
    out = roots.run(digest)
    run = g.add(Job(id=f"train-{fam.name}-{obs}-{size_label(data)}-gcbc-s{seed}", kind="train", digest=digest,
                    deps=(collect.id,), out=str(out),
                    argv=("train", "--preset", preset, "--data", collect.out, "--run", str(out), *gcbc_flags,
                          "--seed", str(seed)),
                    done_paths=(str(out / "config.json"), str(out / "checkpoints" / str(cfg.steps))),
                    axes={"family": fam.name, "env_id": fam.env, "obs": obs, "data": data, "model": "gcbc", "seed": seed},
                    cost=f"{cfg.steps} steps", in_store=True))
    for split, (suite, info) in suites.items():
        sha, _, n_tasks, _, _ = info
        job_id = f"eval-{fam.name}-{obs}-{size_label(data)}-gcbc-s{seed}-{split}"
        eval_out = home / "evals" / job_id
        payload = {"kind": "eval-gcbc", "run": digest, "suite_sha256": sha, "seed": seed, "episodes": exp.episodes}
        g.add(Job(id=job_id, kind="eval", digest=digest_of(payload), deps=(run.id,), out=str(eval_out),
                  argv=("eval", "--checkpoint", str(out), "--suite", suite, "--out", str(eval_out), "--seed", str(seed),
                        "--episodes", str(exp.episodes), "planner:gcbc"),
                  done_paths=(str(eval_out / "results.json"),),
                  axes={"family": fam.name, "env_id": fam.env, "obs": obs, "data": data, "model": None, "seed": seed,
                        "agent": "gcbc", "planner": None, "budget": None, "goal": None, "suite": suite, "split": split},
                  cost=f"{min(exp.episodes or n_tasks, n_tasks)} episodes"))


def select(jobs: list[Job], patterns: tuple[str, ...]) -> set[str]:
    """Ids of the jobs matching any glob in `patterns` (e.g. "*-tworoom-*", "eval-*-cem-*"), with
    everything they depend on; all ids when `patterns` is empty. ConfigError if a pattern matches nothing."""
    if not patterns:
        return {j.id for j in jobs}
    by_id = {j.id: j for j in jobs}
    chosen: set[str] = set()
    for pattern in patterns:
        hits = [j.id for j in jobs if fnmatch.fnmatchcase(j.id, pattern)]
        if not hits:
            raise ConfigError(f"--only {pattern!r} matches no job id (see --dry-run)")
        chosen.update(hits)
    todo = list(chosen)
    while todo:
        for dep in by_id[todo.pop()].deps:
            if dep not in chosen:
                chosen.add(dep)
                todo.append(dep)
    return chosen


def plan_document(exp: Experiment, jobs: list[Job], source_sha256: str, git_commit: str | None, created: str) -> dict:
    """plan.json (schema_version 1; see notes in jepa_mpc/experiment/__init__.py)."""
    return {"schema_version": 1, "name": exp.name, "description": exp.description, "source": exp.source,
            "source_sha256": source_sha256, "git_commit": git_commit, "created": created,
            "jobs": [j.to_json() for j in jobs]}


__all__ = ["Job", "Roots", "expand", "digest_of", "flags", "plan_document", "select", "size_label"]
