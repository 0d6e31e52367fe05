"""Provenance saved with every artifact: the code's git state, the package versions, file digests.

    git_commit()          the commit of the checkout this package runs from (None outside git)
    git_dirty()           whether its tracked code differs from that commit (untracked files, *.md and
                          results/ ignored)
    git_state()           {"git_commit", "git_dirty"}: what dataset meta, run config and results record
    file_sha256(path)     SHA-256 of one file's bytes
    directory_sha256(dir) SHA-256 over every file below `dir` (relative path and bytes, sorted by path)

Every git helper takes `cwd` (default: this package's directory) and answers None where git is
missing, times out or `cwd` is not inside a work tree, so provenance never stops a run.
"""

from __future__ import annotations

import hashlib
import platform
import subprocess
from pathlib import Path

import numpy as np

PACKAGE_DIR = Path(__file__).resolve().parent


def _git(args: list[str], cwd: str | Path | None) -> str | None:
    """stdout of `git ARGS` run in `cwd` (default: this package's directory), None if it fails."""
    try:
        out = subprocess.run(["git", *args], cwd=cwd or PACKAGE_DIR, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def git_commit(cwd: str | Path | None = None) -> str | None:
    """The commit of the checkout this package runs from (or of `cwd`), or None outside git."""
    out = _git(["rev-parse", "HEAD"], cwd)
    return (out or "").strip() or None


# Tracked paths whose edits cannot change a result: documentation and the result files themselves.
NOT_CODE = (":(top,exclude)*.md", ":(top,exclude)results")


def git_dirty(cwd: str | Path | None = None) -> bool | None:
    """True if tracked files of the checkout (of `cwd`) differ from its commit (staged or not),
    False if they do not, None outside git. Untracked files are ignored (they are not the code), and so
    are Markdown files and results/ (NOT_CODE): a README edit does not make a figure unreproducible."""
    if git_commit(cwd) is None:
        return None
    out = _git(["status", "--porcelain", "--untracked-files=no", "--", ":(top)", *NOT_CODE], cwd)
    return None if out is None else bool(out.strip())


def git_state(cwd: str | Path | None = None) -> dict:
    """{"git_commit", "git_dirty"} of the checkout this package runs from (or of `cwd`)."""
    return {"git_commit": git_commit(cwd), "git_dirty": git_dirty(cwd)}


def file_sha256(path: str | Path) -> str | None:
    """SHA-256 of a file's bytes, None if it is not a file."""
    path = Path(path)
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def directory_sha256(directory: str | Path) -> str | None:
    """SHA-256 over every file below `directory`, in the order of their relative paths (POSIX), each
    entering as its path, its size and its bytes' SHA-256; None if `directory` is not a directory."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    h = hashlib.sha256()
    files = sorted((p.relative_to(directory).as_posix(), p) for p in directory.rglob("*") if p.is_file())
    for rel, path in files:
        h.update(f"{rel}\0{path.stat().st_size}\0{file_sha256(path)}\n".encode())
    return h.hexdigest()


def package_versions() -> dict[str, str]:
    import h5py
    import mujoco

    import jepa_mpc

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "mujoco": mujoco.__version__,
        "h5py": h5py.__version__,
        "hdf5": h5py.version.hdf5_version,
        "jepa_mpc": getattr(jepa_mpc, "__version__", "unknown"),
    }
