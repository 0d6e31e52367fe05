"""The planner contract, checked for every planner in the registry (`PLANNERS`).

A new planner gets these tests by being registered: actions finite and inside the bounds whatever
the cost returns (NaN, +-inf, huge), warm starts accepted, `info["best_cost"]` one value per
iteration and never increasing, `info["final_cost"]` the cost of the returned actions, jittable and
vmappable, and better than random shooting at an equal budget on a known quadratic.
Planner-specific behaviour lives in test_planning_planners.py.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jepa_mpc.errors import ConfigError
from jepa_mpc.planning import PLANNERS, batched, get_planner, make_config, model_evaluations, plan

H, A = 5, 2
SEEDS = 5
# A reachable target trajectory: cumsum of an action sequence inside the bounds.
A_STAR = jnp.array([[0.8, -0.5], [0.3, -0.9], [-0.6, 0.2], [0.5, 0.5], [-0.2, 0.7]], jnp.float32)
TARGET = jnp.cumsum(A_STAR, axis=0)
BUDGET = 512  # cost evaluations per plan, for every planner


def quadratic(actions):
    return jnp.sum(jnp.square(jnp.cumsum(actions, axis=0) - TARGET))


def equal_budget_config(name: str):
    """The planner's defaults, with samples x iterations scaled to BUDGET evaluations per plan."""
    default = get_planner(name).config_cls()
    fields = {f.name for f in dataclasses.fields(default)}
    samples = 4 if name == "gradient" else 64
    changes = {"samples": samples}
    if "elites" in fields:
        changes["elites"] = 8
    if "gd_elites" in fields:
        changes["gd_elites"] = min(default.gd_elites, 8)
    cfg = make_config(name, **changes)
    per_iteration = model_evaluations(dataclasses.replace(cfg, iterations=2)) - model_evaluations(
        dataclasses.replace(cfg, iterations=1))
    rest = model_evaluations(dataclasses.replace(cfg, iterations=1)) - per_iteration
    iterations = max(1, (BUDGET - rest) // per_iteration)
    return make_config(name, **changes, iterations=iterations)


def small_config(name: str, samples: int = 4, **overrides):
    """A tiny budget of the planner (`samples` sequences, 2 iterations), keeping its other defaults."""
    fields = {f.name for f in dataclasses.fields(get_planner(name).config_cls)}
    extra = {"elites": max(2, samples // 4), "gd_elites": 2, "gd_iterations": 2}
    extra = {k: v for k, v in extra.items() if k in fields}
    return make_config(name, samples=samples, iterations=2, **{**extra, **overrides})


def run_seeds(config, init, cost=quadratic):
    keys = jax.random.split(jax.random.PRNGKey(42), SEEDS)
    return jax.jit(jax.vmap(lambda k: plan(cost, init, k, config)))(keys)


@functools.lru_cache(maxsize=None)
def quadratic_results(name: str):
    return run_seeds(equal_budget_config(name), jnp.zeros((H, A)))


@pytest.mark.parametrize("name", list(PLANNERS))
def test_registry_entry_is_consistent(name):
    planner = get_planner(name)
    assert planner.name == name == planner.config_cls.kind
    cfg = planner.config_cls()
    planner.validate(cfg)
    assert model_evaluations(cfg) > 0
    assert equal_budget_config(name).iterations >= 1


@pytest.mark.parametrize("name", list(PLANNERS))
def test_info_best_cost_per_iteration_non_increasing_and_final_cost_is_true(name):
    actions, info = quadratic_results(name)
    assert actions.shape == (SEEDS, H, A)
    best = np.asarray(info["best_cost"])
    assert best.ndim == 2 and best.shape[0] == SEEDS and best.shape[1] >= equal_budget_config(name).iterations
    assert np.all(np.diff(best, axis=1) <= 1e-5), name
    np.testing.assert_allclose(info["final_cost"], jax.vmap(quadratic)(actions), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(best[:, -1], info["final_cost"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", [n for n in PLANNERS if n != "random-shooting"])
def test_beats_random_shooting_at_equal_budget_on_a_quadratic(name):
    assert model_evaluations(equal_budget_config(name)) <= BUDGET
    baseline = np.median(quadratic_results("random-shooting")[1]["final_cost"])
    ours = np.median(quadratic_results(name)[1]["final_cost"])
    assert ours < 0.5 * baseline, (name, ours, baseline)


@pytest.mark.parametrize("name", list(PLANNERS))
def test_warm_start_at_the_optimum_is_kept(name):
    actions, info = run_seeds(small_config(name), A_STAR)
    assert np.max(info["final_cost"]) < 1e-6, name
    np.testing.assert_allclose(actions, np.broadcast_to(A_STAR, actions.shape), atol=1e-3)


@pytest.mark.parametrize("name", list(PLANNERS))
def test_jittable_with_a_batched_cost_and_same_answer_as_per_sequence(name):
    cfg = small_config(name)
    key = jax.random.PRNGKey(3)
    one = jax.jit(lambda k: plan(quadratic, jnp.zeros((H, A)), k, cfg))(key)
    many = jax.jit(lambda k: plan(batched(jax.vmap(quadratic)), jnp.zeros((H, A)), k, cfg))(key)
    np.testing.assert_allclose(one[0], many[0], atol=1e-5)
    np.testing.assert_allclose(one[1]["final_cost"], many[1]["final_cost"], rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ robustness to bad costs

LOW = (-0.5, -1.0)
HIGH = (1.0, 0.25)
GOAL = jnp.array([2.0, -3.0])
# What a "bad" region of action space returns: NaN, +inf, -inf, a huge finite value, overflow.
SPECIALS = jnp.array([jnp.nan, jnp.inf, -jnp.inf, 3e38, 1e30], jnp.float32)


def nasty_cost(actions, params):
    """Quadratic cost, replaced by SPECIALS[kind] where actions[0, 0] > threshold; times scale."""
    kind, threshold, scale = params
    base = scale * jnp.sum(jnp.square(jnp.cumsum(actions, axis=0) - GOAL))
    # also makes the gradient non-finite in the bad region
    return jnp.where(actions[0, 0] > threshold, SPECIALS[kind] * (1 + actions[0, 0] ** 2), base)


@functools.lru_cache(maxsize=None)
def jitted_nasty(name: str, batched_cost: bool):
    cfg = small_config(name, samples=16, horizon=4, action_low=LOW, action_high=HIGH)

    def run(init, key, params):
        fn = functools.partial(nasty_cost, params=params)
        return plan(batched(jax.vmap(fn)) if batched_cost else fn, init, key, cfg)

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
def test_actions_finite_and_in_bounds_whatever_the_cost(name, kind, threshold, scale, init_scale, seed, batched_cost):
    key = jax.random.PRNGKey(seed)
    init = init_scale * jax.random.normal(key, (4, A))  # possibly far outside the bounds
    params = (jnp.int32(kind), jnp.float32(threshold), jnp.float32(scale))
    actions, info = jitted_nasty(name, batched_cost)(init, key, params)
    actions = np.asarray(actions)
    assert actions.shape == (4, A)
    assert np.all(np.isfinite(actions))
    assert np.all(actions >= np.array(LOW)) and np.all(actions <= np.array(HIGH))
    for value in jax.tree_util.tree_leaves(info):
        assert np.all(np.isfinite(np.asarray(value)))


@pytest.mark.parametrize("name", [n for n in PLANNERS if n != "gradient"])
def test_sampling_planner_avoids_a_nan_region(name):
    """Where half the space is NaN, a sampling planner returns an action from the finite half.

    (The gradient planner has no signal inside a NaN region: a restart that starts there stays.)
    """
    params = (jnp.int32(0), jnp.float32(0.0), jnp.float32(1.0))  # NaN where a[0, 0] > 0
    actions, info = jitted_nasty(name, False)(jnp.full((4, A), 0.5), jax.random.PRNGKey(0), params)
    assert float(actions[0, 0]) <= 0.0
    assert float(info["final_cost"]) < 1e29


# --------------------------------------------------------------------------- bad configs


@pytest.mark.parametrize("name", list(PLANNERS))
@pytest.mark.parametrize("field", ["horizon", "samples", "iterations"])
@pytest.mark.parametrize("value", [0, -3])
def test_nonpositive_sizes_are_config_errors(name, field, value):
    with pytest.raises(ConfigError, match=field):
        make_config(name, **{field: value})
    cfg = get_planner(name).config_cls(**{field: value})
    with pytest.raises(ConfigError, match=field):
        plan(quadratic, jnp.zeros((max(cfg.horizon, 1), A)), jax.random.PRNGKey(0), cfg)


@pytest.mark.parametrize("name", list(PLANNERS))
def test_bad_bounds_and_init_shape_are_config_errors(name):
    with pytest.raises(ConfigError, match="action_low"):
        make_config(name, action_low=1.0, action_high=-1.0)
    with pytest.raises(ConfigError, match="init_actions"):
        plan(quadratic, jnp.zeros((3, A)), jax.random.PRNGKey(0), get_planner(name).config_cls())
