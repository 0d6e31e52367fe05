"""Override tables as command-line flags, and the configs the verbs resolve from those flags.

`flags` turns (dotted field, value) pairs into the flags a verb parses; `resolve_train` and
`resolve_eval` parse them exactly as `jepa-mpc train` and `jepa-mpc eval` do (cached), so the experiment
checks and digests what the subprocess will run.
"""

from __future__ import annotations

import functools
from typing import Any


def flags(pairs: Any) -> list[str]:
    """Command-line flags of (dotted field, value) overrides: `--reg.kind none`, `--pixels`/`--no-pixels`,
    tuples as several values."""
    out: list[str] = []
    for key, value in pairs:
        parts = key.replace("_", "-").split(".")
        if isinstance(value, bool):
            out.append("--" + ".".join(parts[:-1] + [("" if value else "no-") + parts[-1]]))
        elif isinstance(value, tuple):
            out += ["--" + ".".join(parts), *(_flag_value(v) for v in value)]
        else:
            out += ["--" + ".".join(parts), _flag_value(value)]
    return out


def prefixed(prefix: str, pairs: Any) -> list[str]:
    """`flags` of a nested config's fields: `--planner.samples 300`, `--goal.no-avoid-hazards`."""
    return flags((f"{prefix}.{key}", value) for key, value in pairs)


def _flag_value(v: Any) -> str:
    return repr(v) if isinstance(v, float) else str(v)


@functools.lru_cache(maxsize=None)
def resolve_train(preset: str, train_flags: tuple[str, ...]) -> Any:
    """The TrainConfig `jepa-mpc train --preset P FLAGS` trains with (validated)."""
    from jepa_mpc.train import parse_train_cli, validate_train_config

    cfg = parse_train_cli(["--preset", preset, "--data", "-", "--run", "-", *train_flags]).config
    validate_train_config(cfg)
    return cfg


@functools.lru_cache(maxsize=None)
def resolve_eval(eval_flags: tuple[str, ...]) -> Any:
    """The EvalArgs `jepa-mpc eval FLAGS` runs with (validated; checkpoint/suite/out left default)."""
    from jepa_mpc.cli import parse
    from jepa_mpc.control import validate_control
    from jepa_mpc.evaluate import EvalArgs

    args = parse(EvalArgs, list(eval_flags), prog="jepa-mpc eval")
    if args.planner != "random-actions":
        validate_control(args.control)
    return args
