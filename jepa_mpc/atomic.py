"""Atomic artifact writes: write to `<name>.tmp`, flush to disk, then `os.replace` into place."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np


def _numpy_default(o: Any) -> Any:
    """JSON for numpy scalars and arrays; anything else is an error."""
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_json_atomic(path: str | os.PathLike, obj: Any, sort_keys: bool = True) -> None:
    """Write `obj` as indented JSON (numpy values converted) so a reader never sees half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=sort_keys, default=_numpy_default)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8) so a reader never sees half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def append_json_line(path: str | os.PathLike, obj: Any) -> None:
    """Append `obj` as one line of strict JSON (no NaN/inf; numpy values converted), flushed to disk.

    A kill can at worst leave a torn last line without its newline; readers drop it."""
    line = json.dumps(obj, allow_nan=False, default=_numpy_default) + "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())
