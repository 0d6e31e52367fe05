"""Data parallelism with `jax.sharding`: one mesh over the devices, batches split along it.

    mesh = data_mesh(devices)                  # the first `devices` devices (0: all, of every process)
    step = jax.jit(step, in_shardings=(replicated(mesh), batch_sharding(mesh)), out_shardings=...)
    state = replicate(state, mesh)
    batch = global_batch(rows, mesh, global_size)   # this process's rows -> one array split over the mesh

The step is the single-device step, written for the whole (global) batch; XLA partitions it and inserts
the cross-device reductions. So every batch statistic (SIGReg's projections, VICReg's variance and
covariance, the losses' means) is computed over the global batch, never per device, and the sharded
step equals the single-device step up to float rounding (tests/test_parallel.py checks loss, gradients
and a short training run on 4 host devices).

Several processes (`init_distributed`, `jepa-mpc train --distributed`): each runs the same program on
its own devices; `jax.devices()` lists every process's devices, the mesh spans them all, and each
process supplies only its own rows of every batch (`process_rows`). On CPU the processes reduce with
Gloo. Only the primary process (`is_primary`) writes logs; checkpoints are written by Orbax, which
every process calls and which writes from the primary.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jepa_mpc.errors import ConfigError

DATA_AXIS = "data"

# The environment `init_distributed` reads when no value is given (a cluster launcher sets them, or
# JAX's own auto-detection finds SLURM / Open MPI / Kubernetes when they are absent).
COORDINATOR_ENV, NUM_PROCESSES_ENV, PROCESS_ID_ENV = "JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"


def _env_int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise ConfigError(f"${name}={value!r}: expected a non-negative integer")
    return int(value)


def init_distributed(coordinator: str = "", num_processes: int | None = None, process_id: int | None = None) -> None:
    """Join a multi-process JAX run (`jax.distributed.initialize`). Unset values come from
    $JAX_COORDINATOR_ADDRESS (host:port of process 0), $JAX_NUM_PROCESSES and $JAX_PROCESS_ID, else from
    JAX's cluster auto-detection. One-line ConfigError when the run cannot be joined."""
    coordinator = coordinator or os.environ.get(COORDINATOR_ENV, "")
    num_processes = num_processes if num_processes is not None else _env_int(NUM_PROCESSES_ENV)
    process_id = process_id if process_id is not None else _env_int(PROCESS_ID_ENV)
    if num_processes is not None and process_id is not None and not 0 <= process_id < num_processes:
        raise ConfigError(f"--distributed: process id {process_id} is not in [0, {num_processes})")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # cross-process reductions on CPU
    try:
        jax.distributed.initialize(coordinator or None, num_processes, process_id)
    except Exception as err:  # noqa: BLE001  (JAX raises ValueError/RuntimeError/XlaRuntimeError here)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(
            f"--distributed: could not join the run ({first}); set ${COORDINATOR_ENV} (host:port of process 0), "
            f"${NUM_PROCESSES_ENV} and ${PROCESS_ID_ENV}, or run under a cluster JAX detects (SLURM, Open MPI)"
        ) from None


def is_primary() -> bool:
    """The process that writes logs and files shared by all (process 0)."""
    return jax.process_index() == 0


def device_mesh(devices: int, axis: str, local: bool = False) -> Mesh:
    """A one-axis mesh named `axis` over the first `devices` devices (0: all), of every process or, with
    `local`, of this process only; a one-line error when more are asked for than are visible."""
    available = jax.local_devices() if local else jax.devices()
    if devices < 0:
        raise ConfigError(f"--devices must be >= 0 (0: all {len(available)}), got {devices}")
    if devices > len(available):
        raise ConfigError(f"--devices {devices}: only {len(available)} {jax.default_backend()} device(s) are visible")
    return Mesh(np.array(available[: devices or len(available)]), (axis,))


def data_mesh(devices: int = 0) -> Mesh:
    """A one-axis mesh ("data") over the first `devices` devices (0: all of every process)."""
    if jax.process_count() > 1 and devices not in (0, len(jax.devices())):
        raise ConfigError(f"--devices {devices}: a --distributed run uses every device of every process "
                          f"({len(jax.devices())}); leave --devices at 0")
    return device_mesh(devices, DATA_AXIS)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Split the leading (batch) axis over the mesh; other axes whole."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def check_batch_divides(batch_size: int, mesh: Mesh) -> None:
    n = mesh.devices.size
    if batch_size % n:
        raise ConfigError(f"--batch-size {batch_size} does not split evenly over {n} devices "
                          f"(use a multiple of {n}, or --devices)")


def process_rows(batch_size: int) -> slice:
    """This process's rows of a global batch of `batch_size` (all of them in a one-process run).
    Devices are ordered by process, so process p holds the p-th equal slice."""
    per = batch_size // jax.process_count()
    return slice(jax.process_index() * per, (jax.process_index() + 1) * per)


def global_batch(rows: dict[str, np.ndarray], mesh: Mesh, batch_size: int) -> dict[str, jax.Array]:
    """This process's rows of every batch array -> global arrays of `batch_size` rows split over `mesh`."""
    sharding = batch_sharding(mesh)
    if jax.process_count() == 1:
        return jax.device_put(rows, sharding)
    return {k: jax.make_array_from_process_local_data(sharding, v, (batch_size, *v.shape[1:]))
            for k, v in rows.items()}


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Every leaf copied to every device of `mesh` (each process passes the same values)."""
    sharding = replicated(mesh)
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    def put(x):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(put, tree)


def host_copy(tree: Any) -> Any:
    """A replicated (or single-device) pytree as numpy arrays on this host."""
    return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)) if isinstance(x, jax.Array) else x, tree)


def any_process(flag: bool) -> bool:
    """True when `flag` is true in any process (a collective: every process must call it)."""
    if jax.process_count() == 1:
        return bool(flag)
    from jax.experimental import multihost_utils

    return bool(np.any(multihost_utils.process_allgather(np.asarray([flag], np.int32))))


__all__ = ["DATA_AXIS", "init_distributed", "is_primary", "device_mesh", "data_mesh", "batch_sharding", "replicated",
           "check_batch_divides", "process_rows", "global_batch", "replicate", "host_copy", "any_process"]
