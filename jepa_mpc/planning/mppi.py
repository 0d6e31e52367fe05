"""MPPI: Gaussian samples around the mean, mean updated with exp(-cost / temperature) weights."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from jepa_mpc.errors import ConfigError
from jepa_mpc.planning import common


@dataclasses.dataclass(frozen=True)
class MPPIConfig(common.GaussianConfig):
    kind: ClassVar[str] = "mppi"
    """Its name in PLANNERS and on the command line (planner:mppi)."""

    temperature: float = 0.1
    """Softmax temperature. With normalize_costs, in units of (median cost - min cost)."""
    normalize_costs: bool = True
    """Rescale costs by (median - min) each iteration so the temperature is scale-free."""
    adapt_std: bool = True
    """Refit the std to the weighted samples (else keep init_std)."""


def validate(config: MPPIConfig) -> None:
    common.validate(config)
    common.check_noise(config)
    if config.temperature <= 0:
        raise ConfigError(f"MPPIConfig.temperature must be > 0, got {config.temperature}")


model_evaluations = common.sequence_evaluations


def plan(cost_fn, init_actions, key, config: MPPIConfig = MPPIConfig()):
    validate(config)
    mean, std, min_std, low, high = common.gaussian_start(init_actions, config)
    costs_of = common.batch_cost(cost_fn)
    m = config.momentum

    def iteration(carry, key):
        mean, std, best_a, best_c = carry
        cand = common.gaussian_candidates(key, mean, std, low, high, config)
        costs = costs_of(cand)
        best_a, best_c = common.best_of(cand, costs, best_a, best_c)
        shifted = costs - jnp.min(costs)
        if config.normalize_costs:
            shifted = shifted / (jnp.median(shifted) + 1e-12)
        w = jax.nn.softmax(-shifted / config.temperature)
        w_mean = jnp.einsum("n,nha->ha", w, cand)
        mean = m * mean + (1 - m) * w_mean
        if config.adapt_std:
            w_std = jnp.sqrt(jnp.einsum("n,nha->ha", w, jnp.square(cand - w_mean)))
            std = jnp.maximum(m * std + (1 - m) * w_std, min_std)
        return (mean, std, best_a, best_c), (best_c, jnp.min(costs))

    carry0 = (mean, std, mean, jnp.asarray(common.BIG, jnp.float32))
    (mean, std, best_a, best_c), (hist, iter_best) = jax.lax.scan(
        iteration, carry0, jax.random.split(key, config.iterations)
    )
    # The weighted mean is usually the MPPI answer; return it only if it is at least as good.
    mean = common.project(mean, low, high)
    mean_c = common.sanitize_costs(common.single_cost(cost_fn)(mean))
    use_mean = mean_c <= best_c
    actions = jnp.where(use_mean, mean, common.project(best_a, low, high))
    final = jnp.minimum(mean_c, best_c)
    hist = hist.at[-1].set(final)
    return actions, {"best_cost": hist, "iteration_best_cost": iter_best, "final_cost": final}
