"""Atomic artifact writes: write to `<name>.tmp`, flush to disk, then `os.replace` into place.

`atomic_path` is the one mechanism (for writers that want a file name: h5py, ffmpeg); the
`write_*_atomic` functions use it for bytes, text, JSON and `.npz`.

JSON is strict (no NaN/Infinity, which most JSON readers reject): a non-finite number is a
`NonFiniteJSONError` naming its place in the object; store None (or a string) instead.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


class NonFiniteJSONError(ValueError):
    """A NaN or infinity was about to be written into a JSON artifact."""


def _numpy_default(o: Any) -> Any:
    """JSON for numpy scalars and arrays; anything else is an error."""
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def first_non_finite(obj: Any, where: str = "") -> str | None:
    """The place (e.g. `summary.wall_time_s`, `episodes[3].final_distance`) of the first NaN/inf number
    in a JSON-like object (dicts, lists, tuples, numpy values), or None if every number is finite."""
    if isinstance(obj, (float, np.floating)):
        return None if math.isfinite(float(obj)) else (where or "<root>")
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "fc" and not np.isfinite(obj).all():
            return where or "<root>"
        return None
    if isinstance(obj, dict):
        items = ((f"{where}.{k}" if where else str(k), v) for k, v in obj.items())
    elif isinstance(obj, (list, tuple)):
        items = ((f"{where}[{i}]", v) for i, v in enumerate(obj))
    else:
        return None
    for place, value in items:
        found = first_non_finite(value, place)
        if found is not None:
            return found
    return None


def dumps_strict(obj: Any, **kwargs: Any) -> str:
    """`json.dumps` that refuses NaN/inf with a NonFiniteJSONError naming where it is."""
    try:
        return json.dumps(obj, allow_nan=False, default=_numpy_default, **kwargs)
    except ValueError as err:
        if "Out of range float values" not in str(err):
            raise
        raise NonFiniteJSONError(f"non-finite number (NaN/inf) at {first_non_finite(obj)}: JSON "
                                 "artifacts are strict (store None instead)") from None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, keep_suffix: bool = False) -> Iterator[Path]:
    """A temporary path next to `path` to write the whole file to; when the block ends without an
    error, the file is flushed to disk and moved onto `path` (`os.replace`), so a reader never sees
    half a file. The temp file is `<name>.tmp`, or with `keep_suffix` `<stem>.tmp<suffix>` (e.g.
    `clip.tmp.mp4`, for writers that choose the format by the file's ending). A block that raises
    leaves `path` as it was and no temp file behind."""
    path = Path(path)
    tmp = path.with_name(f"{path.stem}.tmp{path.suffix}" if keep_suffix else path.name + ".tmp")
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` so a reader never sees half a file (temp file, fsync, rename)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(path: str | os.PathLike, obj: Any, sort_keys: bool = True) -> None:
    """Write `obj` as indented strict JSON (numpy values converted) so a reader never sees half a file.

    A NaN/inf anywhere in `obj` is a NonFiniteJSONError (naming the file and the key) and nothing is written.
    """
    try:
        text = dumps_strict(obj, indent=2, sort_keys=sort_keys)
    except NonFiniteJSONError as err:
        raise NonFiniteJSONError(f"{path}: {err}") from None
    write_bytes_atomic(path, (text + "\n").encode())


def write_npz_atomic(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Write numpy arrays as an uncompressed `.npz` (no pickle) atomically."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_bytes_atomic(path, buf.getvalue())


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8) so a reader never sees half a file."""
    write_bytes_atomic(path, text.encode("utf-8"))


def append_json_line(path: str | os.PathLike, obj: Any) -> None:
    """Append `obj` as one line of strict JSON (no NaN/inf; numpy values converted), flushed to disk.

    A kill can at worst leave a torn last line without its newline; readers drop it."""
    try:
        line = dumps_strict(obj) + "\n"
    except NonFiniteJSONError as err:
        raise NonFiniteJSONError(f"{path}: {err}") from None
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())
