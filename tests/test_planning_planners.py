"""Planners: equal-budget quality vs random shooting, warm start, registry and config errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jepa_mpc.errors import ConfigError
from jepa_mpc.planning import (
    PLANNERS,
    CEMConfig,
    get_planner,
    make_config,
    model_evaluations,
    plan,
    shift_plan,
)

H, A = 5, 2
SEEDS = 5
# A reachable target trajectory: cumsum of an action sequence inside the bounds.
A_STAR = jnp.array([[0.8, -0.5], [0.3, -0.9], [-0.6, 0.2], [0.5, 0.5], [-0.2, 0.7]], jnp.float32)
TARGET = jnp.cumsum(A_STAR, axis=0)


def quadratic(actions):
    return jnp.sum(jnp.square(jnp.cumsum(actions, axis=0) - TARGET))


# Equal budget: 512 cost evaluations per plan for every planner.
BUDGET = 512
CONFIGS = {
    "random-shooting": make_config("random-shooting", samples=64, iterations=8),
    "cem": make_config("cem", samples=64, elites=8, iterations=8),
    "mppi": make_config("mppi", samples=64, iterations=8),
    "gradient": make_config("gradient", samples=4, iterations=127),
    "cem-gd": make_config("cem-gd", samples=64, elites=8, iterations=7, gd_elites=4, gd_iterations=15),
}


def run_seeds(config, init, cost=quadratic):
    keys = jax.random.split(jax.random.PRNGKey(42), SEEDS)
    return jax.jit(jax.vmap(lambda k: plan(cost, init, k, config)))(keys)


@pytest.fixture(scope="module")
def results():
    init = jnp.zeros((H, A))
    return {name: run_seeds(cfg, init) for name, cfg in CONFIGS.items()}


def test_registry_has_all_planners_and_budgets_are_equal():
    assert set(PLANNERS) == set(CONFIGS)
    for name, cfg in CONFIGS.items():
        assert model_evaluations(cfg) == BUDGET, name
        assert get_planner(name).config_cls is type(cfg)


@pytest.mark.parametrize("name", [n for n in CONFIGS if n != "random-shooting"])
def test_planner_beats_random_shooting_at_equal_budget(results, name):
    baseline = np.median(results["random-shooting"][1]["final_cost"])
    ours = np.median(results[name][1]["final_cost"])
    assert ours < 0.5 * baseline, (name, ours, baseline)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_info_shapes_and_monotone_best_cost(results, name):
    actions, info = results[name]
    assert actions.shape == (SEEDS, H, A)
    best = np.asarray(info["best_cost"])
    assert best.ndim == 2 and best.shape[0] == SEEDS
    assert np.all(np.diff(best, axis=1) <= 1e-5), name
    # final_cost is the true cost of the returned actions
    true = jax.vmap(quadratic)(actions)
    np.testing.assert_allclose(info["final_cost"], true, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(best[:, -1], info["final_cost"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_warm_start_from_optimum_stays_there(name):
    extra = {"elites": 2, "gd_elites": 2} if name == "cem-gd" else {"elites": 2} if name == "cem" else {}
    tiny = make_config(name, samples=4, iterations=2, **extra)
    actions, info = run_seeds(tiny, A_STAR)
    assert np.max(info["final_cost"]) < 1e-6, name
    np.testing.assert_allclose(actions, np.broadcast_to(A_STAR, actions.shape), atol=1e-3)


@pytest.mark.parametrize("name", ["cem", "mppi", "random-shooting"])
def test_warm_start_beats_cold_start_at_equal_budget(name):
    cfg = make_config(name, samples=16, iterations=2, **({"elites": 4} if name == "cem" else {}))
    near = A_STAR + 0.1 * jax.random.normal(jax.random.PRNGKey(1), A_STAR.shape)
    warm = np.median(run_seeds(cfg, near)[1]["final_cost"])
    cold = np.median(run_seeds(cfg, jnp.zeros((H, A)))[1]["final_cost"])
    assert warm < cold


def test_shift_plan():
    a = jnp.arange(10.0).reshape(5, 2)
    np.testing.assert_array_equal(shift_plan(a), [[2, 3], [4, 5], [6, 7], [8, 9], [8, 9]])
    np.testing.assert_array_equal(shift_plan(a, fill="zero")[-1], [0, 0])
    np.testing.assert_array_equal(shift_plan(a, steps=2)[2:], [[8, 9], [8, 9], [8, 9]])
    with pytest.raises(ConfigError):
        shift_plan(a, fill="mirror")


def test_unknown_planner_is_config_error():
    with pytest.raises(ConfigError, match="unknown planner 'beam'"):
        get_planner("beam")
    with pytest.raises(ConfigError, match="no option"):
        make_config("cem", temperature=1.0)


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("field", ["horizon", "samples", "iterations"])
@pytest.mark.parametrize("value", [0, -3])
def test_nonpositive_sizes_are_config_errors(name, field, value):
    with pytest.raises(ConfigError, match=field):
        make_config(name, **{field: value})
    cfg = get_planner(name).config_cls(**{field: value})
    with pytest.raises(ConfigError, match=field):
        plan(quadratic, jnp.zeros((max(cfg.horizon, 1), A)), jax.random.PRNGKey(0), cfg)


def test_make_config_elites_follow_samples():
    assert make_config("cem").elites == 30
    assert make_config("cem", samples=16).elites == 2
    assert make_config("cem", samples=3).elites == 1
    assert make_config("cem", samples=16, elites=5).elites == 5
    cfg = make_config("cem-gd", samples=20)
    assert (cfg.elites, cfg.gd_elites) == (2, 2)


def test_bad_bounds_init_shape_and_elites_are_config_errors():
    with pytest.raises(ConfigError, match="action_low"):
        make_config("cem", action_low=1.0, action_high=-1.0)
    with pytest.raises(ConfigError, match="elites"):
        make_config("cem", samples=10, elites=20)
    with pytest.raises(ConfigError, match="init_actions"):
        plan(quadratic, jnp.zeros((3, A)), jax.random.PRNGKey(0), CEMConfig())
    with pytest.raises(ConfigError, match="not a planner config"):
        plan(quadratic, jnp.zeros((H, A)), jax.random.PRNGKey(0), object())
