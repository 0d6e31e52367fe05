"""One plan's sample axis split across devices (jepa_mpc/planning/sharding.py).

The process sees one CPU device unless XLA_FLAGS asks for more before JAX starts, so the two-device
checks run in a subprocess started with --xla_force_host_platform_device_count=2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax

from jepa_mpc.planning.common import batched
from jepa_mpc.planning.sharding import sample_sharding, shard_samples

TWO_DEVICES = """
import jax, jax.numpy as jnp, numpy as np, json
from jepa_mpc.planning import make_config, plan
from jepa_mpc.planning.common import batched
from jepa_mpc.planning.sharding import sample_sharding, shard_samples
goal = jnp.linspace(-0.5, 0.5, 12).reshape(3, 4)
cost = batched(lambda a: jnp.sum((a - goal) ** 2, axis=(1, 2)))
config = make_config("cem", samples=64, iterations=5, horizon=3)
sharding = sample_sharding(config.samples)
init, key = jnp.zeros((3, 4)), jax.random.key(0)
plain = jax.jit(lambda: plan(cost, init, key, config))()
split = jax.jit(lambda: plan(shard_samples(cost, sharding), init, key, config))()
print(json.dumps({"devices": len(jax.devices()), "sharded": sharding is not None,
                  "max_diff": float(jnp.abs(plain[0] - split[0]).max()),
                  "costs": [float(plain[1]["final_cost"]), float(split[1]["final_cost"])]}))
"""


def test_one_device_or_indivisible_samples_leave_the_cost_alone():
    cost = batched(lambda a: a.sum(axis=(1, 2)))
    assert sample_sharding(300, jax.devices()[:1]) is None
    assert shard_samples(cost, None) is cost


def test_a_plan_split_across_two_host_devices_equals_the_plain_plan():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", TWO_DEVICES], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["devices"] == 2 and result["sharded"]
    assert result["max_diff"] < 1e-5
    assert abs(result["costs"][0] - result["costs"][1]) < 1e-4
    assert result["costs"][1] < 0.5  # the zero plan costs sum(goal^2) = 1.18; CEM gets close to the goal
