"""Planners return finite, in-bounds actions whatever the cost returns (NaN, +-inf, huge)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jepa_mpc.planning import PLANNERS, batched, make_config, plan

H, A = 4, 2
LOW = (-0.5, -1.0)
HIGH = (1.0, 0.25)
TARGET = jnp.array([2.0, -3.0])
# What a "bad" region of action space returns: NaN, +inf, -inf, a huge finite value, overflow.
SPECIALS = jnp.array([jnp.nan, jnp.inf, -jnp.inf, 3e38, 1e30], jnp.float32)

SMALL = {
    "cem": dict(samples=16, elites=4, iterations=3),
    "mppi": dict(samples=16, iterations=3),
    "gradient": dict(samples=3, iterations=4),
    "cem-gd": dict(samples=16, elites=4, iterations=2, gd_elites=2, gd_iterations=3),
    "random-shooting": dict(samples=16, iterations=2),
}


def nasty_cost(actions, params):
    """Quadratic cost, replaced by SPECIALS[kind] where actions[0, 0] > threshold; times scale."""
    kind, threshold, scale = params
    base = scale * jnp.sum(jnp.square(jnp.cumsum(actions, axis=0) - TARGET))
    special = SPECIALS[kind]
    # also make the gradient non-finite in the bad region
    return jnp.where(actions[0, 0] > threshold, special * (1 + actions[0, 0] ** 2), base)


@functools.lru_cache(maxsize=None)
def jitted(name: str, batched_cost: bool):
    cfg = make_config(name, horizon=H, action_low=LOW, action_high=HIGH, **SMALL[name])

    def run(init, key, params):
        fn = functools.partial(nasty_cost, params=params)
        cost = batched(jax.vmap(fn)) if batched_cost else fn
        return plan(cost, init, key, cfg)

    return jax.jit(run)


@pytest.mark.parametrize("name", list(PLANNERS))
@settings(max_examples=12, deadline=None)
@given(
    kind=st.integers(0, len(SPECIALS) - 1),
    threshold=st.floats(-2.0, 1.5),
    scale=st.sampled_from([1.0, 1e-30, 1e30, 1e38]),
    init_scale=st.sampled_from([0.0, 1.0, 1e6]),
    seed=st.integers(0, 2**16),
    batched_cost=st.booleans(),
)
def test_actions_finite_and_in_bounds(name, kind, threshold, scale, init_scale, seed, batched_cost):
    key = jax.random.PRNGKey(seed)
    init = init_scale * jax.random.normal(key, (H, A))  # possibly far outside the bounds
    params = (jnp.int32(kind), jnp.float32(threshold), jnp.float32(scale))
    actions, info = jitted(name, batched_cost)(init, key, params)
    actions = np.asarray(actions)
    assert actions.shape == (H, A)
    assert np.all(np.isfinite(actions))
    assert np.all(actions >= np.array(LOW)) and np.all(actions <= np.array(HIGH))
    for value in jax.tree_util.tree_leaves(info):
        assert np.all(np.isfinite(np.asarray(value)))


@pytest.mark.parametrize("name", [n for n in PLANNERS if n != "gradient"])
def test_nan_region_is_avoided(name):
    """Where half the space is NaN, a sampling planner returns an action from the finite half.

    (The gradient planner has no signal inside a NaN region: a restart that starts there stays.)
    """
    key = jax.random.PRNGKey(0)
    params = (jnp.int32(0), jnp.float32(0.0), jnp.float32(1.0))  # NaN where a[0, 0] > 0
    actions, info = jitted(name, False)(jnp.full((H, A), 0.5), key, params)
    assert float(actions[0, 0]) <= 0.0
    assert float(info["final_cost"]) < 1e29
