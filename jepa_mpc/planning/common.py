"""Shared pieces of the planners: bounds, cost sanitising, batching, validation, warm start.

Every planner is ``plan(cost_fn, init_actions, key, config) -> (actions, info)``:

* ``cost_fn`` maps one action sequence (H, A) to a scalar. Planners evaluate it on many sequences
  at once with ``jax.vmap``; a cost wrapped with ``batched(fn)`` is instead called directly on
  (N, H, A) -> (N,) (use it when you can write a faster batched rollout yourself).
* ``init_actions`` (H, A) is the starting plan (warm start: ``shift_plan`` of the previous one).
* the returned actions are always finite and inside [action_low, action_high], whatever the cost
  returns (NaN / inf costs rank as ``BIG``, NaN gradients are zeroed).
* ``info`` holds at least ``best_cost`` (iterations,) (best cost found so far, per iteration) and
  ``final_cost`` () (the cost of the returned actions).

Planners are pure and jit-friendly: jit the caller (e.g. one MPC step) with the config static.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jepa_mpc.errors import ConfigError

Array = jax.Array
CostFn = Callable[[Array], Array]

# Non-finite or huge costs are replaced by this (large, finite) value before ranking.
BIG = 1e30


# --------------------------------------------------------------------------- configs
# Each planner's config extends one of these (its own fields after the shared ones).


@dataclasses.dataclass(frozen=True)
class PlanConfig:
    """What every planner's config holds: its budget and the action bounds."""

    samples: int = 300
    """Action sequences evaluated per iteration (gradient: parallel restarts)."""
    iterations: int = 30
    horizon: int = 5
    """Plan length in action blocks."""
    action_low: float | tuple[float, ...] = -1.0
    action_high: float | tuple[float, ...] = 1.0


@dataclasses.dataclass(frozen=True)
class SamplingConfig(PlanConfig):
    """A sampling planner's config: plus its random-number sampler."""

    noise: str = "hash"
    """Sampler: "hash" (fast counter-hash Gaussian/uniform, default) or "jax" (jax.random)."""


@dataclasses.dataclass(frozen=True)
class GaussianConfig(SamplingConfig):
    """A planner that samples around a Gaussian over action sequences (CEM, MPPI)."""

    init_std: float = 1.0
    """Initial standard deviation, as a fraction of half the action range."""
    min_std: float = 0.05
    """Floor on the standard deviation (same units as init_std)."""
    momentum: float = 0.0
    """Mean/std update: new = momentum * old + (1 - momentum) * this iteration's estimate."""
    include_mean: bool = True
    """Evaluate the current mean as one of the samples (keeps a good warm start)."""


def sequence_evaluations(config: PlanConfig) -> int:
    """Cost evaluations of a planner that evaluates `samples` sequences per iteration."""
    return config.samples * config.iterations


class batched:  # noqa: N801  (used like a decorator)
    """Mark a cost as batched: ``fn(actions (N, H, A)) -> (N,)``. Planners call it directly."""

    batched = True

    def __init__(self, fn: Callable[[Array], Array]):
        self.fn = fn

    def __call__(self, actions: Array) -> Array:
        return self.fn(actions)


def batch_cost(cost_fn: CostFn) -> Callable[[Array], Array]:
    """(N, H, A) -> (N,) version of a cost, sanitised (see ``sanitize_costs``)."""
    fn = cost_fn if getattr(cost_fn, "batched", False) else jax.vmap(cost_fn)
    return lambda actions: sanitize_costs(fn(actions))


def single_cost(cost_fn: CostFn) -> CostFn:
    """(H, A) -> () version of a cost (unwraps a batched one)."""
    if getattr(cost_fn, "batched", False):
        return lambda actions: cost_fn(actions[None])[0]
    return cost_fn


def sanitize_costs(costs: Array) -> Array:
    """float32 costs with NaN, +-inf and anything above BIG replaced by BIG (below -BIG: -BIG)."""
    costs = jnp.asarray(costs, jnp.float32)
    return jnp.where(jnp.isfinite(costs), jnp.clip(costs, -BIG, BIG), BIG)


def bounds(config: Any, action_dim: int) -> tuple[Array, Array]:
    """(A,) lower and upper action bounds from a planner config (scalars or per-dimension tuples)."""
    low = jnp.broadcast_to(jnp.asarray(config.action_low, jnp.float32), (action_dim,))
    high = jnp.broadcast_to(jnp.asarray(config.action_high, jnp.float32), (action_dim,))
    return low, high


def project(actions: Array, low: Array, high: Array) -> Array:
    """Finite actions inside [low, high]: NaN -> midpoint, then clip."""
    actions = jnp.where(jnp.isnan(actions), 0.5 * (low + high), actions)
    return jnp.clip(actions, low, high)


def uniform_actions(key: Array, shape: tuple[int, ...], low: Array, high: Array) -> Array:
    return jax.random.uniform(key, shape, jnp.float32, low, high)


def shift_plan(actions: Array, steps: int = 1, fill: str = "repeat") -> Array:
    """Warm start for the next MPC step: drop the first ``steps`` blocks, pad the end.

    fill: "repeat" (repeat the last block) or "zero".
    """
    if fill not in ("repeat", "zero"):
        raise ConfigError(f"shift_plan: unknown fill {fill!r}; expected 'repeat' or 'zero'")
    horizon = actions.shape[0]
    steps = min(steps, horizon)
    last = actions[-1:] if fill == "repeat" else jnp.zeros_like(actions[-1:])
    pad = jnp.repeat(last, steps, axis=0)
    return jnp.concatenate([actions[steps:], pad], axis=0)


def validate(config: Any) -> None:
    """Raise ConfigError for a config no planner can run (names the field)."""
    name = type(config).__name__
    for field in ("horizon", "samples", "iterations"):
        value = getattr(config, field)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{name}.{field} must be a positive integer, got {value!r}")
    low, high = config.action_low, config.action_high
    try:
        ok = bool(np.all(np.asarray(low, np.float32) < np.asarray(high, np.float32)))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{name}.action_low/action_high: bad bounds {low!r}, {high!r} ({err})") from None
    if not ok:
        raise ConfigError(f"{name}: action_low {low!r} must be below action_high {high!r}")
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if isinstance(value, float) and field.name not in ("action_low", "action_high") and value < 0:
            raise ConfigError(f"{name}.{field.name} must be >= 0, got {value!r}")


def check_noise(config: Any) -> None:
    if config.noise not in NOISE_KINDS:
        raise ConfigError(f"{type(config).__name__}.noise: unknown {config.noise!r}; expected one of {NOISE_KINDS}")


def check_init(init_actions: Array, config: Any) -> Array:
    """float32 (H, A) initial plan, checked against the config horizon."""
    init_actions = jnp.asarray(init_actions, jnp.float32)
    if init_actions.ndim != 2 or init_actions.shape[0] != config.horizon:
        raise ConfigError(
            f"{type(config).__name__}: init_actions has shape {tuple(init_actions.shape)}, "
            f"expected (horizon={config.horizon}, action_dim)"
        )
    low, high = bounds(config, init_actions.shape[1])
    return project(init_actions, low, high)


def gaussian_start(init_actions: Array, config: GaussianConfig) -> tuple[Array, Array, Array, Array, Array]:
    """A Gaussian planner's first (mean (H, A), std (H, A)), its std floor (A,) and the bounds (A,) x 2."""
    mean = check_init(init_actions, config)
    low, high = bounds(config, mean.shape[1])
    half_range = 0.5 * (high - low)
    std = jnp.broadcast_to(config.init_std * half_range, mean.shape)
    return mean, std, config.min_std * half_range, low, high


def gaussian_candidates(key: Array, mean: Array, std: Array, low: Array, high: Array,
                        config: GaussianConfig) -> Array:
    """(samples, H, A) sequences drawn around the mean, clipped to the bounds; with include_mean the
    first is the mean itself."""
    noise = normal_noise(key, (config.samples,) + mean.shape, config.noise)
    cand = jnp.clip(mean + std * noise, low, high)
    return cand.at[0].set(mean) if config.include_mean else cand


def best_of(actions: Array, costs: Array, best_actions: Array, best_cost: Array) -> tuple[Array, Array]:
    """Keep the best (lowest-cost) sequence seen so far."""
    i = jnp.argmin(costs)
    better = costs[i] < best_cost
    return jnp.where(better, actions[i], best_actions), jnp.where(better, costs[i], best_cost)


# ------------------------------------------------------------------------------ noise
# jax.random.normal on CPU costs ~35 ns per number (threefry bits ~20 ns, erf_inv ~13 ns), which is
# ~15 % of a CEM plan at LeWorldModel's budget. The "hash" sampler below derives a seed from the key
# and hashes a counter with integer ops that XLA vectorises (~1 ns per number); still a pure,
# deterministic function of the key.

NOISE_KINDS = ("hash", "jax")


def _mix32(x: Array) -> Array:
    """murmur3's 32-bit finaliser: a bijective avalanche hash of uint32."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x85EBCA6B)
    x = x ^ (x >> 13)
    x = x * jnp.uint32(0xC2B2AE35)
    return x ^ (x >> 16)


def hash_uniform(key: Array, shape: tuple[int, ...]) -> Array:
    """float32 uniforms in the open interval (0, 1), 24 random bits each."""
    seed = jax.random.bits(key, (2,), jnp.uint32)
    size = 1
    for s in shape:
        size *= s
    counter = jax.lax.iota(jnp.uint32, size)
    bits = _mix32(_mix32(counter * jnp.uint32(0x9E3779B9) + seed[0]) ^ seed[1])
    u = ((bits >> 8).astype(jnp.float32) + 0.5) * (1.0 / (1 << 24))
    return u.reshape(shape)


def _normal_quantile(u: Array) -> Array:
    """Inverse normal CDF (Abramowitz & Stegun 26.2.23, absolute error < 4.5e-4)."""
    p = jnp.minimum(u, 1.0 - u)
    t = jnp.sqrt(-2.0 * jnp.log(p))
    num = 2.515517 + t * (0.802853 + t * 0.010328)
    den = 1.0 + t * (1.432788 + t * (0.189269 + t * 0.001308))
    x = t - num / den
    return jnp.where(u < 0.5, -x, x)


def hash_normal(key: Array, shape: tuple[int, ...]) -> Array:
    """Approximately standard-normal float32 noise (see ``_normal_quantile``)."""
    return _normal_quantile(hash_uniform(key, shape))


def normal_noise(key: Array, shape: tuple[int, ...], kind: str = "hash") -> Array:
    if kind == "hash":
        return hash_normal(key, shape)
    if kind == "jax":
        return jax.random.normal(key, shape, jnp.float32)
    raise ConfigError(f"unknown noise {kind!r}; expected one of {NOISE_KINDS}")


def uniform_noise(key: Array, shape: tuple[int, ...], low: Array, high: Array, kind: str = "hash") -> Array:
    if kind == "hash":
        return low + (high - low) * hash_uniform(key, shape)
    if kind == "jax":
        return jax.random.uniform(key, shape, jnp.float32, low, high)
    raise ConfigError(f"unknown noise {kind!r}; expected one of {NOISE_KINDS}")
