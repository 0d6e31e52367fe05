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
class CEMConfig:
    kind: ClassVar[str] = "cem"
    """Its name in PLANNERS and on the command line (planner:cem)."""

    samples: int = 300
    """Action sequences evaluated per iteration."""
    elites: int = 30
    """Lowest-cost samples the Gaussian is refitted to."""
    iterations: int = 30
    horizon: int = 5
    """Plan length in action blocks."""
    action_low: float | tuple[float, ...] = -1.0
    action_high: float | tuple[float, ...] = 1.0
    noise: str = "hash"
    """Sampler: "hash" (fast counter-hash Gaussian/uniform, default) or "jax" (jax.random)."""
    init_std: float = 1.0
    """Initial standard deviation, as a fraction of half the action range."""
    min_std: float = 0.05
    """Floor on the standard deviation (same units as init_std)."""
    momentum: float = 0.0
    """Mean/std update: new = momentum * old + (1 - momentum) * elite statistics."""
    keep_elites: int = 0
    """Elites carried into the next iteration's samples (replacing fresh samples)."""
    include_mean: bool = True
    """Evaluate the current mean as one of the samples (keeps a good warm start)."""
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


def model_evaluations(config: CEMConfig) -> int:
    return config.samples * config.iterations


def run_cem(cost_fn, init_actions, key, config: CEMConfig):
    """CEM iterations; also returns the final elites (used by CEM+GD). See ``plan``."""
    validate(config)
    mean = common.check_init(init_actions, config)
    horizon, action_dim = mean.shape
    low, high = common.bounds(config, action_dim)
    half_range = 0.5 * (high - low)
    std = jnp.broadcast_to(config.init_std * half_range, mean.shape)
    min_std = config.min_std * half_range
    costs_of = common.batch_cost(cost_fn)
    n, k, keep = config.samples, config.elites, config.keep_elites
    m = config.momentum

    def iteration(carry, key):
        mean, std, elites, best_a, best_c = carry
        noise = common.normal_noise(key, (n, horizon, action_dim), config.noise)
        cand = jnp.clip(mean + std * noise, low, high)
        if config.include_mean:
            cand = cand.at[0].set(mean)
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

    elites0 = jnp.broadcast_to(mean, (k, horizon, action_dim))
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
