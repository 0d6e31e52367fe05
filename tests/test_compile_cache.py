"""The persistent compilation cache every `jepa-mpc` command uses (jepa_mpc.compile_cache)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from jepa_mpc import compile_cache

COMPILE = ("from jepa_mpc import compile_cache; print(compile_cache.enable()); import jax, jax.numpy as jnp; "
           "jax.jit(lambda x: jnp.sin(x) * 2)(jnp.ones(3)).block_until_ready()")


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in (compile_cache.ENV, "JAX_COMPILATION_CACHE_DIR")}
    return {**env, **extra}


def test_cache_folder_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.setenv(compile_cache.ENV, str(tmp_path / "x"))
    assert compile_cache.cache_dir() == tmp_path / "x"
    monkeypatch.setenv(compile_cache.ENV, "off")
    assert compile_cache.cache_dir() is None
    monkeypatch.delenv(compile_cache.ENV)
    assert compile_cache.cache_dir() == Path.home() / ".cache" / "jepa-mpc" / "xla"
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "jax"))  # JAX's own setting wins
    assert compile_cache.cache_dir() is None


def test_a_compile_is_written_once_and_off_writes_nothing(tmp_path):
    where = tmp_path / "xla"
    entries = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", COMPILE], capture_output=True, text=True, timeout=300,
                              env=_env(**{compile_cache.ENV: str(where)}))
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.strip() == str(where)
        entries.append(sorted(p.name for p in where.iterdir() if p.name.endswith("-cache")))
    assert entries[0] and entries[1] == entries[0]  # the second process found them and added none
    off = tmp_path / "off"
    proc = subprocess.run([sys.executable, "-c", COMPILE], capture_output=True, text=True, timeout=300,
                          env=_env(**{compile_cache.ENV: "off", "HOME": str(off)}))
    assert proc.returncode == 0 and proc.stdout.strip() == "None" and not off.exists()
