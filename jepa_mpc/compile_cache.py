"""XLA's persistent compilation cache for every `jepa-mpc` command.

An eval compiles its plan function once per padded batch size, and its encoder, goal set-up and model
initialisation besides: on 2 CPU cores, 17 s of a 35 s, 24-episode TwoRoom eval. The same programs come
back in the next eval of the same model (a rerun, an experiment resumed, another seed of the same
shapes), so `jepa-mpc` keeps compiled programs on disk and loads them instead (that eval repeated: 35 ->
18 s).

    JEPA_MPC_COMPILE_CACHE=DIR   where (default ~/.cache/jepa-mpc/xla); `off` disables it
    JAX_COMPILATION_CACHE_DIR    JAX's own setting wins when set

The cache is keyed by the program and the compiler's options, so a changed program is compiled anew.
It is capped at MAX_BYTES (least recently used entries go first), and that cap turns on JAX's file
lock, so parallel jobs (`experiment run --jobs N`) share it safely.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "JEPA_MPC_COMPILE_CACHE"
MAX_BYTES = 2 << 30


def cache_dir() -> Path | None:
    """The folder this process caches compiled programs in; None when off or left to JAX's own setting."""
    where = os.environ.get(ENV, "").strip()
    if where.lower() in ("off", "0", "none") or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return None
    return Path(where).expanduser() if where else Path.home() / ".cache" / "jepa-mpc" / "xla"


def enable() -> Path | None:
    """Point JAX at the cache (before the first compile of the process); the folder, or None."""
    where = cache_dir()
    if where is None:
        return None
    import jax

    jax.config.update("jax_compilation_cache_dir", str(where))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)  # small programs add up too
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    return where


__all__ = ["ENV", "MAX_BYTES", "cache_dir", "enable"]
