"""`jepa-mpc tasks`: generate a task-suite file for a family, or validate one with --check."""

from __future__ import annotations

import dataclasses
from typing import Literal

from jepa_mpc.paths import output_file
from jepa_mpc_envs.registry import ENV_IDS, get_family, load_suite
from jepa_mpc_envs.suites import DEFAULT_STREAM, Suite, save_suite
from jepa_mpc_envs.tworoom_tasks import ENV_ID as TWOROOM_ID


@dataclasses.dataclass(frozen=True)
class TasksArgs:
    """Generate a task suite file for an env (or validate one with --check)."""

    env: str = ENV_IDS[0]  # env id (jepa_mpc_envs/TwoRoom-v0 | jepa_mpc_envs/Reacher-v0 | ... | ogbench:<dataset>)

    seed: int = 0  # seed of the task RNG (independent of any collected data)
    n: int = 100  # number of tasks
    hazards: Literal["none", "line", "door", "mixed", "hard"] = "none"  # hazard placement ("mixed": half line, half door; "hard": TwoRoom half-door, corridor, gap, near-start, goal-ring; Reacher fingertip path, gap, goal-ring, speed limit)
    out: str = "tasks.json"  # output suite file (written atomically)
    tolerance: float = 0.0  # success radius around the goal features; 0: the env's default (TwoRoom 0.1 m, Reacher 0.12 rad)
    max_steps: int = 0  # episode length (control steps); 0: the env's default (TwoRoom 200, Reacher 100)
    check: str = ""  # if set: only load and validate this suite file, print its summary
    split: str = ""  # env-specific task split (TwoRoomLayouts: "heldout" rooms, the default, or "train" rooms)
    stream: str = ""  # seed stream of the task RNG: validation (the default; for tuning) | test (reported figures) | legacy (the pre-stream generator of the old shipped suites; shares collection's stream)


def summary(suite: Suite, where: str) -> str:
    """One line: tasks, door crossings (TwoRoom), hazards, env."""
    n_h = sum(len(t.hazards) for t in suite.tasks)
    crossing = f"{suite.door_crossing_fraction():.0%} need a door crossing, " if suite.env_id == TWOROOM_ID else ""
    g = suite.generator
    made = f", {g.get('stream') or 'no'} stream, seed {g.get('seed')}" if g else ""
    return f"{where}: {len(suite)} tasks, {crossing}{n_h} hazards, env {suite.env_id}{made}"


def generator_record(args: TasksArgs, family) -> dict:
    """The options that made a suite file (its ``generator`` object), the defaults resolved, so that
    `regenerate` reproduces it."""
    return {"env": args.env, "seed": args.seed, "n": args.n,
            "stream": args.stream or (DEFAULT_STREAM if family.streams else ""),
            "split": args.split or (family.splits[0] if family.splits else ""), "hazards": args.hazards,
            "tolerance": args.tolerance or None, "max_steps": args.max_steps or None}


def regenerate(generator: dict) -> Suite:
    """The suite a file's ``generator`` object (`generator_record`) describes, generated again."""
    g = generator
    return get_family(g["env"]).generate_suite(g["seed"], g["n"], hazards=g["hazards"], tolerance=g["tolerance"],
                                               max_steps=g["max_steps"], split=g["split"], stream=g["stream"])


def tasks_main(args: TasksArgs) -> None:
    """CLI `jepa-mpc tasks`: generate + save a suite (or validate --check FILE) and print a summary."""
    if args.check:
        suite = load_suite(args.check)
        print(summary(suite, f"ok {args.check}"))
        return
    output_file(args.out, "--out")
    family = get_family(args.env)
    suite = family.generate_suite(args.seed, args.n, hazards=args.hazards, tolerance=args.tolerance or None,
                                  max_steps=args.max_steps or None, split=args.split, stream=args.stream)
    suite = dataclasses.replace(suite, generator=generator_record(args, family))
    save_suite(suite, args.out)
    print(summary(suite, f"wrote {args.out}"))
