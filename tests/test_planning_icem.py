"""iCEM: coloured noise statistics, the shrinking population and its evaluation count, elite
carry-over, one jit per config, config errors, and better than random shooting at equal model
evaluations on a smooth tracking problem. The planner contract is in test_planning_conformance.py."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import assert_one_line_error, run_cli
from jepa_mpc.errors import ConfigError
from jepa_mpc.planning import ICEMConfig, batched, make_config, model_evaluations, plan
from jepa_mpc.planning.icem import coloured_noise, population_sizes, power_law_scale

# ------------------------------------------------------------------------------ coloured noise


@pytest.mark.parametrize("horizon", [1, 2, 5, 16, 33])
@pytest.mark.parametrize("beta", [0.0, 1.0, 2.0, 3.0])
def test_power_law_filter_keeps_unit_variance_exactly(horizon, beta):
    # The filter is a circular convolution: white noise of unit variance comes out with variance
    # = squared norm of each row of its matrix, which must be 1 at every step.
    matrix = np.fft.irfft(np.fft.rfft(np.eye(horizon), axis=0) * power_law_scale(horizon, beta)[:, None],
                          n=horizon, axis=0)
    np.testing.assert_allclose(np.sum(matrix**2, axis=0), 1.0, rtol=1e-10)


@pytest.mark.parametrize("kind", ["hash", "jax"])
def test_coloured_noise_has_unit_variance_and_a_power_law_spectrum(kind):
    horizon, n = 64, 20_000
    for beta in (0.0, 1.0, 2.0):
        x = np.asarray(coloured_noise(jax.random.PRNGKey(0), (n, horizon, 1), beta, kind))[..., 0]
        assert x.shape == (n, horizon) and x.dtype == np.float32
        np.testing.assert_allclose(x.mean(), 0.0, atol=0.03)
        np.testing.assert_allclose(x.var(axis=0), 1.0, atol=0.06)  # every step, not just on average
        power = np.mean(np.abs(np.fft.rfft(x, axis=1)) ** 2, axis=0)
        f = np.fft.rfftfreq(horizon)
        slope = np.polyfit(np.log(f[1:-1]), np.log(power[1:-1]), 1)[0]
        assert abs(slope + beta) < 0.1, (beta, slope)


def test_coloured_noise_is_correlated_along_the_horizon_only():
    n, horizon = 20_000, 16
    x = np.asarray(coloured_noise(jax.random.PRNGKey(1), (n, horizon, 2), 2.0))
    white = np.asarray(coloured_noise(jax.random.PRNGKey(1), (n, horizon, 2), 0.0))

    def lag1(v):  # mean correlation of consecutive steps, per action dimension
        return np.mean([np.corrcoef(v[:, t, 0], v[:, t + 1, 0])[0, 1] for t in range(horizon - 1)])

    assert lag1(x) > 0.6 and abs(lag1(white)) < 0.03
    # action dimensions are independent
    assert abs(np.corrcoef(x[:, 3, 0], x[:, 3, 1])[0, 1]) < 0.03


# --------------------------------------------------------------------- population and budget


def test_population_shrinks_to_twice_the_elites_and_evaluations_count_it():
    cfg = ICEMConfig(samples=100, elites=10, shrink=1.5, iterations=6, horizon=4)
    assert population_sizes(cfg) == (100, 67, 44, 30, 20, 20)
    assert model_evaluations(cfg) == 281
    seen = []

    def cost(actions):  # (N, H, A) -> (N,); records how many sequences each call evaluated
        jax.debug.callback(lambda n: seen.append(int(n)), jnp.asarray(actions.shape[0]))
        return jnp.sum(jnp.square(actions - 0.3), axis=(1, 2))

    actions, info = jax.jit(lambda k: plan(batched(cost), jnp.zeros((4, 2)), k, cfg))(jax.random.PRNGKey(0))
    jax.block_until_ready(actions)
    assert sorted(seen, reverse=True) == list(population_sizes(cfg)) and sum(seen) == model_evaluations(cfg)
    np.testing.assert_array_equal(info["population"], population_sizes(cfg))
    assert info["best_cost"].shape == (6,)
    no_shrink = ICEMConfig(samples=100, elites=10, shrink=1.0, iterations=6)
    assert model_evaluations(no_shrink) == 600


def test_carried_elites_make_each_iterations_best_non_increasing_and_jit_once():
    target = jnp.linspace(-0.5, 0.5, 8)[:, None] * jnp.ones((1, 2))

    def cost(a):
        return jnp.sum(jnp.square(a - target)) + 0.1 * jnp.sum(jnp.sin(7 * a))

    cfg = ICEMConfig(samples=40, elites=5, keep_fraction=0.4, iterations=8, horizon=8)
    fn = jax.jit(lambda k: plan(cost, jnp.zeros((8, 2)), k, cfg))
    for seed in range(3):
        _, info = fn(jax.random.PRNGKey(seed))
        assert np.all(np.diff(np.asarray(info["iteration_best_cost"])) <= 1e-6)
    assert fn._cache_size() == 1


# ----------------------------------------------------------------------------- quality


def test_beats_random_shooting_at_equal_model_evaluations_on_smooth_tracking():
    # A 1-D point driven by velocity actions must follow a smooth reference over 20 steps.
    horizon = 20
    t = jnp.arange(1, horizon + 1) / horizon
    reference = 0.6 * jnp.sin(2 * jnp.pi * t) * horizon / 8

    def cost(actions):
        return jnp.mean(jnp.square(jnp.cumsum(actions[:, 0]) - reference))

    icem = make_config("icem", samples=100, elites=10, iterations=6, horizon=horizon)
    budget = model_evaluations(icem)
    shooting = make_config("random-shooting", samples=budget, iterations=1, horizon=horizon)
    assert model_evaluations(shooting) == budget
    keys = jax.random.split(jax.random.PRNGKey(0), 7)

    def final_costs(cfg):
        return np.asarray(jax.jit(jax.vmap(lambda k: plan(cost, jnp.zeros((horizon, 1)), k, cfg)))(keys)[1]["final_cost"])

    ours, baseline = np.median(final_costs(icem)), np.median(final_costs(shooting))
    assert ours < 0.2 * baseline, (ours, baseline)


# ------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("overrides, field", [
    ({"samples": 10, "elites": 6}, "elites"),
    ({"shrink": 0.9}, "shrink"),
    ({"keep_fraction": 1.5}, "keep_fraction"),
    ({"momentum": 1.0}, "momentum"),
    ({"noise": "pink"}, "noise"),
])
def test_bad_icem_configs_are_config_errors(overrides, field):
    with pytest.raises(ConfigError, match=field):
        make_config("icem", **overrides)


def test_cli_knows_planner_icem():
    proc = run_cli("eval", "planner:icem", "--help")
    assert proc.returncode == 0, proc.stderr[-2000:]
    for flag in ("--planner.beta", "--planner.shrink", "--planner.keep-fraction", "--planner.elites"):
        assert flag in proc.stdout
    assert_one_line_error(run_cli("eval", "--dynamics", "oracle", "--suite", "envs/tasks/tworoom_heldout.json",
                                  "planner:icem", "--planner.shrink", "0.5"), "shrink")
