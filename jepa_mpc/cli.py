"""`jepa-mpc` command line: one verb per pipeline stage.

    jepa-mpc collect | tasks | train | inspect | probe | eval | bench collect | bench plan | bench train | demo |
    experiment run

Each verb is a function taking a frozen dataclass of arguments (parsed by tyro).
Bad input ends with one line on stderr and exit code 2.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import sys
from collections.abc import Sequence

import tyro

from jepa_mpc import compile_cache
from jepa_mpc.errors import UserError

# verb -> (module, function, argument dataclass). Imported lazily so `--help` of one verb
# does not import every stage.
VERBS: dict[str, tuple[str, str, str]] = {
    "collect": ("jepa_mpc.data.collect", "collect_main", "CollectArgs"),
    "tasks": ("jepa_mpc.tasks_cli", "tasks_main", "TasksArgs"),
    "train": ("jepa_mpc.train", "train_main", ""),
    "inspect": ("jepa_mpc.diagnostics", "inspect_main", "InspectArgs"),
    "probe": ("jepa_mpc.probe", "probe_main", "ProbeArgs"),
    "eval": ("jepa_mpc.evaluate", "eval_main", "EvalArgs"),
    "bench collect": ("jepa_mpc.data.collect", "bench_collect_main", "BenchCollectArgs"),
    "bench plan": ("jepa_mpc.bench_plan", "bench_plan_main", "BenchPlanArgs"),
    "bench train": ("jepa_mpc.bench_train", "bench_train_main", "BenchTrainArgs"),
    "demo": ("jepa_mpc.demo", "demo_main", "DemoArgs"),
    "experiment run": ("jepa_mpc.experiment.main", "experiment_run_main", "ExperimentRunArgs"),
    "report": ("jepa_mpc.report", "report_main", "ReportArgs"),
}

USAGE = "usage: jepa-mpc {" + "|".join(VERBS) + "} [--help] [options]"


def _split_verb(argv: Sequence[str]) -> tuple[str, list[str]]:
    argv = list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip() + "\n\n" + USAGE)
        raise SystemExit(0 if argv else 2)
    if len(argv) > 1 and f"{argv[0]} {argv[1]}" in VERBS:  # two-word verbs: bench plan, experiment run
        return f"{argv[0]} {argv[1]}", argv[2:]
    group = [v for v in VERBS if v.startswith(argv[0] + " ")]
    if group and (len(argv) == 1 or argv[1] in ("-h", "--help")):
        print(f"usage: jepa-mpc {{{'|'.join(group)}}} [--help] [options]")
        raise SystemExit(0 if len(argv) > 1 else 2)
    if argv[0] not in VERBS:
        raise UserError(f"unknown command {argv[0]!r}; expected one of: {', '.join(VERBS)}")
    return argv[0], argv[1:]


def run(argv: Sequence[str]) -> None:
    verb, rest = _split_verb(argv)
    module_name, fn_name, args_name = VERBS[verb]
    module = importlib.import_module(module_name)
    if "jax" in sys.modules:  # a verb that compiles: reuse what earlier commands compiled
        compile_cache.enable()
    fn = getattr(module, fn_name)
    if not args_name:  # the verb parses its own arguments (e.g. train: preset first, then overrides)
        fn(rest)
        return
    args = parse(getattr(module, args_name), rest, prog=f"jepa-mpc {verb}")
    fn(args)


def parse(args_cls: type, argv: Sequence[str], prog: str, default=None):
    """tyro's parse of `argv` into `args_cls`; a bad flag or subcommand is a one-line UserError.

    Tagged unions (e.g. eval's `planner:NAME`, `goal:KIND`) are subcommands whose flags may come
    before or after them (`CascadeSubcommandArgs`); `--help` prints as usual. `default`: an instance
    of `args_cls` whose values are the defaults (train: the preset's config).
    """
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return tyro.cli(args_cls, args=list(argv), prog=prog, default=default,
                            config=(tyro.conf.CascadeSubcommandArgs,))
    except SystemExit as exit_:
        if exit_.code in (0, None):
            sys.stderr.write(err.getvalue())
            raise
        raise UserError(_one_line(err.getvalue()) or f"{prog}: bad arguments") from None


def _one_line(box: str) -> str:
    """The message of tyro's error box: its first section, plus the available subcommands if listed."""
    sections, current = [], []
    for line in box.splitlines()[1:]:  # the first line is the box title
        text = line.strip().strip("│|").strip()
        if set(text) <= set("-─╭╮╰╯"):  # a rule between sections (or the box's edge)
            if current:
                sections.append(" ".join(current))
            current = []
            continue
        current.append(" ".join(text.split()))
    sections.append(" ".join(current))
    sections = [s for s in sections if s]
    extra = [s for s in sections[1:] if s.startswith("Available subcommands")]
    return "; ".join(sections[:1] + extra)


def main(argv: Sequence[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    try:
        run(argv)
    except UserError as err:
        print(f"jepa-mpc: error: {err}", file=sys.stderr)
        if getattr(err, "exit_immediately", False):  # a library left threads that would print on shutdown
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(2)
        raise SystemExit(2) from None
    except KeyboardInterrupt as err:  # train says where it stopped and that it saved a checkpoint
        print(f"jepa-mpc: interrupted{f' ({err})' if str(err) else ''}", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
