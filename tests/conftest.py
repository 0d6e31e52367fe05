"""Shared test helpers: run the CLI in a fresh process and check its one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest


def run_cli(*argv: str, cwd=None, timeout: float = 600) -> subprocess.CompletedProcess:
    """`jepa-mpc ARGV...` in a fresh interpreter (so trailing tracebacks from threads are seen too)."""
    return subprocess.run([sys.executable, "-m", "jepa_mpc.cli", *map(str, argv)], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout)


def assert_one_line_error(proc: subprocess.CompletedProcess, needle: str) -> str:
    """Exit code 2 and exactly one non-empty stderr line containing `needle`; returns that line."""
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert proc.returncode == 2, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    assert len(lines) == 1, f"{len(lines)} stderr lines:\n{proc.stderr[-2000:]}"
    assert needle.lower() in lines[0].lower(), lines[0]
    return lines[0]


@pytest.fixture
def cli():
    """The `run_cli` function, as a fixture."""
    return run_cli
