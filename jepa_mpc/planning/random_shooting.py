"""Random shooting (baseline): sample sequences uniformly in the bounds, keep the best."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from jepa_mpc.planning import common


@dataclasses.dataclass(frozen=True)
class RandomShootingConfig(common.SamplingConfig):
    """Iterations are batches of `samples` uniform sequences (batching bounds memory)."""

    kind: ClassVar[str] = "random-shooting"
    """Its name in PLANNERS and on the command line (planner:random-shooting)."""

    include_init: bool = True
    """Evaluate init_actions (the warm start) as one of the samples."""


def validate(config: RandomShootingConfig) -> None:
    common.validate(config)
    common.check_noise(config)


model_evaluations = common.sequence_evaluations


def plan(cost_fn, init_actions, key, config: RandomShootingConfig = RandomShootingConfig()):
    validate(config)
    init = common.check_init(init_actions, config)
    horizon, action_dim = init.shape
    low, high = common.bounds(config, action_dim)
    costs_of = common.batch_cost(cost_fn)

    def batch(carry, xs):
        best_a, best_c = carry
        key, i = xs
        cand = common.uniform_noise(key, (config.samples, horizon, action_dim), low, high, config.noise)
        if config.include_init:
            cand = jnp.where(i == 0, cand.at[0].set(init), cand)
        best_a, best_c = common.best_of(cand, costs_of(cand), best_a, best_c)
        return (best_a, best_c), best_c

    keys = jax.random.split(key, config.iterations)
    carry0 = (init, jnp.asarray(common.BIG, jnp.float32))
    (best_a, best_c), hist = jax.lax.scan(batch, carry0, (keys, jnp.arange(config.iterations)))
    return common.project(best_a, low, high), {"best_cost": hist, "final_cost": best_c}
