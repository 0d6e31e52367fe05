"""Output paths checked before any work: one line naming the flag when a verb could not write there.

    output_dir(args.out, "--out")     # a directory that exists or can be created
    output_file(args.out, "--out")    # a file that can be (re)written: not a directory, parent creatable

Neither creates anything; the writer creates missing parent folders itself.
"""

from __future__ import annotations

import os
from pathlib import Path

from jepa_mpc.errors import ConfigError


def _check_creatable(path: Path, flag: str, shown: str) -> None:
    """The nearest existing ancestor of `path` is a directory this process may write into."""
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{flag} {shown}: {parent} is a file, not a directory")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ConfigError(f"{flag} {shown}: cannot create it, {parent} is not writable")
            return


def output_dir(path: str | os.PathLike, flag: str) -> Path:
    """`path` as a Path if it is a writable directory or can be created as one, else a one-line ConfigError."""
    p, shown = Path(path), os.fspath(path)
    if p.exists():
        if not p.is_dir():
            raise ConfigError(f"{flag} {shown}: exists and is not a directory")
        if not os.access(p, os.W_OK | os.X_OK):
            raise ConfigError(f"{flag} {shown}: directory is not writable")
        return p
    _check_creatable(p, flag, shown)
    return p


def output_file(path: str | os.PathLike, flag: str) -> Path:
    """`path` as a Path if a file can be written there (new or replaced), else a one-line ConfigError."""
    p, shown = Path(path), os.fspath(path)
    if not shown or p.is_dir():
        raise ConfigError(f"{flag} {shown or repr(shown)}: is a directory, expected a file name")
    _check_creatable(p, flag, shown)  # a new file or a replacement (os.replace) both need its folder writable
    return p


__all__ = ["output_dir", "output_file"]
