"""Provenance saved with every artifact: the code's git commit and the package versions."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import numpy as np


def git_commit() -> str | None:
    """The commit of the checkout this package runs from, or None outside git."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


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
