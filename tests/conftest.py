"""Shared test helpers: run the CLI in a fresh process and check its one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Every CLI process of the suite (and every xdist worker) shares one compilation cache, not the user's.
os.environ.setdefault("JEPA_MPC_COMPILE_CACHE", str(Path(__file__).resolve().parents[1] / ".pytest_cache" / "xla"))


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


# ---------------------------------------------------------------- a tiny trained world model

TINY_RUN_STEPS = 30


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """(dataset dir, run dir) of a tiny TwoRoom-state world model: 20 episodes of 20 reward-free steps
    collected, trained TINY_RUN_STEPS steps in blocks of 5 actions. Enough to exercise the learned-model
    path (encode, rollout, plan, probe, explore), not to plan well. Read-only: copy it to change it."""
    from jepa_mpc.config import CollectConfig, ModelConfig, RegularizerConfig, TrainConfig
    from jepa_mpc.data.collect import collect
    from jepa_mpc.train import train

    root = tmp_path_factory.mktemp("tiny-run")
    data, run = root / "data", root / "run"
    collect(CollectConfig(out=str(data), num_episodes=20, episode_len=20, chunk_episodes=20), progress=False)
    model = ModelConfig(latent_dim=8, encoder_hidden=(32,), projector_hidden=32, predictor_hidden=32, action_dim=10)
    cfg = TrainConfig(model=model, reg=RegularizerConfig(num_projections=16), action_block=5, steps=TINY_RUN_STEPS,
                      batch_size=16, rollout_steps=2, warmup_steps=5, log_every=10, eval_every=1000, ckpt_every=1000)
    train(cfg, run, str(data), progress=False, tensorboard=False)
    return data, run
