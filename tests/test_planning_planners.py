"""Planner-specific behaviour: warm vs cold start, shift_plan, make_config/with_budget rules, config errors.

The contract every planner meets is tested for all of PLANNERS in test_planning_conformance.py.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jepa_mpc.errors import ConfigError
from jepa_mpc.planning import (
    CEMConfig,
    GradientConfig,
    MPPIConfig,
    get_planner,
    make_config,
    plan,
    shift_plan,
    with_budget,
)

H, A = 5, 2
SEEDS = 5
# A reachable target trajectory: cumsum of an action sequence inside the bounds.
A_STAR = jnp.array([[0.8, -0.5], [0.3, -0.9], [-0.6, 0.2], [0.5, 0.5], [-0.2, 0.7]], jnp.float32)
TARGET = jnp.cumsum(A_STAR, axis=0)


def quadratic(actions):
    return jnp.sum(jnp.square(jnp.cumsum(actions, axis=0) - TARGET))


def run_seeds(config, init, cost=quadratic):
    keys = jax.random.split(jax.random.PRNGKey(42), SEEDS)
    return jax.jit(jax.vmap(lambda k: plan(cost, init, k, config)))(keys)


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


def test_make_config_elites_follow_samples():
    assert make_config("cem").elites == 30
    assert make_config("cem", samples=16).elites == 2
    assert make_config("cem", samples=3).elites == 1
    assert make_config("cem", samples=16, elites=5).elites == 5
    cfg = make_config("cem-gd", samples=20)
    assert (cfg.elites, cfg.gd_elites) == (2, 2)


def test_with_budget_overrides_keep_set_fields_and_elites_follow_samples():
    assert with_budget(CEMConfig(), samples=64, iterations=4, horizon=None) == make_config("cem", samples=64, iterations=4)
    assert with_budget(CEMConfig(), samples=64).elites == 6
    assert with_budget(CEMConfig(elites=10, momentum=0.5), samples=64) == CEMConfig(samples=64, elites=10, momentum=0.5)
    assert with_budget(MPPIConfig(temperature=0.3), horizon=7) == MPPIConfig(temperature=0.3, horizon=7)
    assert with_budget(GradientConfig(), samples=None) == GradientConfig()
    with pytest.raises(ConfigError, match="elites"):
        with_budget(CEMConfig(elites=20), samples=10)


def test_bad_elites_are_config_errors():
    with pytest.raises(ConfigError, match="elites"):
        make_config("cem", samples=10, elites=20)
    with pytest.raises(ConfigError, match="not a planner config"):
        plan(quadratic, jnp.zeros((H, A)), jax.random.PRNGKey(0), object())
