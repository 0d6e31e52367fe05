"""One plan's sample axis split across devices: the CPU's cores as XLA host devices, or GPUs.

XLA runs a small plan's matmuls (300 x 256) on one thread. Started with
``XLA_FLAGS=--xla_force_host_platform_device_count=N``, the process sees N CPU devices; a batched cost
whose candidate sequences are constrained to be split along the sample axis then evaluates each
device's share on its own thread, and the planner's ranking (top-k, softmax) gathers the costs. The
plan is the same computation (results equal up to float rounding). On GPUs the same constraint
spreads one plan over several devices.

    sharding = sample_sharding(samples)        # None with one device or samples not divisible
    cost = shard_samples(batched_cost, sharding)
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jepa_mpc.planning.common import batched

def sample_sharding(samples: int, devices: list | None = None) -> NamedSharding | None:
    """A sharding of (samples, ...) arrays over `devices` (default: all of the default backend's) along
    the sample axis, or None when there is one device or `samples` does not divide among them."""
    devices = list(jax.devices() if devices is None else devices)
    if len(devices) < 2 or samples % len(devices):
        return None
    return NamedSharding(Mesh(np.array(devices), ("samples",)), PartitionSpec("samples"))


def shard_samples(cost: Callable, sharding: NamedSharding | None) -> Callable:
    """The batched cost (N, H, A) -> (N,) with its input and output split along the sample axis by
    `sharding` (unchanged when None)."""
    if sharding is None:
        return cost
    fn = cost.fn if getattr(cost, "batched", False) else jax.vmap(cost)

    def sharded(actions):
        actions = jax.lax.with_sharding_constraint(actions, sharding)
        return jax.lax.with_sharding_constraint(fn(actions), sharding)

    return batched(sharded)
