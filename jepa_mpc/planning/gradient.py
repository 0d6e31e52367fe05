"""Gradient planner: Adam (optax) on the action sequence through the differentiable cost.

Several restarts run in parallel (restart 0 starts at init_actions, the others at uniform random
sequences); after every step the actions are projected onto the bounds; the best restart wins.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import optax

from jepa_mpc.planning import common


@dataclasses.dataclass(frozen=True)
class GradientConfig(common.PlanConfig):
    kind: ClassVar[str] = "gradient"
    """Its name in PLANNERS and on the command line (planner:gradient)."""

    samples: int = 8
    """Parallel restarts."""
    iterations: int = 50
    """Adam steps per restart."""
    learning_rate: float = 0.1
    """Adam step size, as a fraction of half the action range."""
    init_noise: float = 0.0
    """Std of noise added to the warm start of restarts 1.. (0: those start uniform random)."""


def validate(config: GradientConfig) -> None:
    common.validate(config)


def model_evaluations(config: GradientConfig) -> int:
    """Cost evaluations (each also back-propagated, ~3x a forward pass) plus the final check."""
    return config.samples * (config.iterations + 1)


def descend(cost_fn, starts, low, high, iterations: int, learning_rate: float):
    """Projected Adam from each start (R, H, A): returns best (R, H, A), their costs (R,), history."""
    single = common.single_cost(cost_fn)
    half_range = 0.5 * (high - low)
    opt = optax.adam(learning_rate)

    def value_and_grad(a):
        c, g = jax.value_and_grad(lambda x: jnp.asarray(single(x), jnp.float32))(a)
        return common.sanitize_costs(c), jnp.where(jnp.isfinite(g), g, 0.0)

    vg = jax.vmap(value_and_grad)

    def step(carry, _):
        a, state, best_a, best_c = carry
        c, g = vg(a)
        better = c < best_c
        best_a = jnp.where(better[:, None, None], a, best_a)
        best_c = jnp.where(better, c, best_c)
        updates, state = opt.update(g, state, a)
        a = common.project(a + updates * half_range, low, high)  # Adam steps ~ lr * half range
        return (a, state, best_a, best_c), jnp.min(best_c)

    big = jnp.full(starts.shape[:1], common.BIG, jnp.float32)
    carry0 = (starts, opt.init(starts), starts, big)
    (a, _, best_a, best_c), hist = jax.lax.scan(step, carry0, None, length=iterations)
    # the last iterate has not been evaluated yet
    c_last = common.batch_cost(cost_fn)(a)
    better = c_last < best_c
    best_a = jnp.where(better[:, None, None], a, best_a)
    best_c = jnp.where(better, c_last, best_c)
    return best_a, best_c, hist.at[-1].set(jnp.min(best_c))


def plan(cost_fn, init_actions, key, config: GradientConfig = GradientConfig()):
    validate(config)
    init = common.check_init(init_actions, config)
    horizon, action_dim = init.shape
    low, high = common.bounds(config, action_dim)
    shape = (config.samples - 1, horizon, action_dim)
    if config.init_noise > 0:
        others = init + config.init_noise * 0.5 * (high - low) * jax.random.normal(key, shape)
    else:
        others = common.uniform_actions(key, shape, low, high)
    starts = jnp.concatenate([init[None], common.project(others, low, high)], axis=0)
    best_a, best_c, hist = descend(cost_fn, starts, low, high, config.iterations, config.learning_rate)
    i = jnp.argmin(best_c)
    return common.project(best_a[i], low, high), {"best_cost": hist, "final_cost": best_c[i]}
