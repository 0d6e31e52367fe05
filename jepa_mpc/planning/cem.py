"""Cross-entropy method: sample Gaussian action sequences, refit mean/std to the elites.

Default budget is LeWorldModel's: 300 samples, 30 elites, 30 iterations, horizon 5 blocks.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from jepa_mpc.errors import ConfigError
from jepa_mpc.planning import common


@dataclasses.dataclass(frozen=True)
class CEMConfig(common.GaussianConfig):
    kind: ClassVar[str] = "cem"
    """Its name in PLANNERS and on the command line (planner:cem)."""

    elites: int = 30
    """Lowest-cost samples the Gaussian is refitted to."""
    keep_elites: int = 0
    """Elites carried into the next iteration's samples (replacing fresh samples)."""
    return_mean: bool = False
    """Return the final mean instead of the best sequence evaluated."""


def validate(config: CEMConfig) -> None:
    common.validate(config)
    common.check_noise(config)
    if not 0 < config.elites <= config.samples:
        raise ConfigError(f"CEMConfig.elites must be in 1..samples={config.samples}, got {config.elites}")
    if not 0 <= config.keep_elites <= config.elites or config.keep_elites >= config.samples:
        raise ConfigError(f"CEMConfig.keep_elites must be in 0..elites={config.elites}, got {config.keep_elites}")
    if not 0.0 <= config.momentum < 1.0:
        raise ConfigError(f"CEMConfig.momentum must be in [0, 1), got {config.momentum}")


model_evaluations = common.sequence_evaluations


def run_cem(cost_fn, init_actions, key, config: CEMConfig):
    """CEM iterations; also returns the final elites (used by CEM+GD). See ``plan``."""
    validate(config)
    mean, std, min_std, low, high = common.gaussian_start(init_actions, config)
    costs_of = common.batch_cost(cost_fn)
    n, k, keep = config.samples, config.elites, config.keep_elites
    m = config.momentum

    def iteration(carry, key):
        mean, std, elites, best_a, best_c = carry
        cand = common.gaussian_candidates(key, mean, std, low, high, config)
        if keep:
            cand = cand.at[n - keep :].set(elites[:keep])
        costs = costs_of(cand)
        neg_top, idx = jax.lax.top_k(-costs, k)
        new_elites = cand[idx]
        best_a, best_c = common.best_of(new_elites[:1], -neg_top[:1], best_a, best_c)
        e_mean = jnp.mean(new_elites, axis=0)
        e_std = jnp.std(new_elites, axis=0)
        mean = m * mean + (1 - m) * e_mean
        std = jnp.maximum(m * std + (1 - m) * e_std, min_std)
        return (mean, std, new_elites, best_a, best_c), (best_c, -neg_top[0])

    elites0 = jnp.broadcast_to(mean, (k,) + mean.shape)
    carry0 = (mean, std, elites0, mean, jnp.asarray(common.BIG, jnp.float32))
    (mean, std, elites, best_a, best_c), (best_hist, iter_best) = jax.lax.scan(
        iteration, carry0, jax.random.split(key, config.iterations)
    )
    info = {"best_cost": best_hist, "iteration_best_cost": iter_best, "final_std": std}
    if config.return_mean:
        actions = common.project(mean, low, high)
        final = common.sanitize_costs(common.single_cost(cost_fn)(actions))
    else:
        actions, final = common.project(best_a, low, high), best_c
    info["final_cost"] = final
    return actions, info, elites


def plan(cost_fn, init_actions, key, config: CEMConfig = CEMConfig()):
    """CEM plan: ``(actions (H, A), info)``; see ``jepa_mpc.planning.common`` for the contract."""
    actions, info, _ = run_cem(cost_fn, init_actions, key, config)
    return actions, info
