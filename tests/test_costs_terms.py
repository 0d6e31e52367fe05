"""Cost terms, composition, breakdown, constraint violations and the latent cost_fn."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jepa_mpc.costs import (
    TERMS,
    action_magnitude,
    action_smoothness,
    constraint,
    expand_actions,
    goal_distance,
    latent_cost_fn,
    make_cost,
    make_term,
)
from jepa_mpc.errors import ConfigError

H, D, A = 4, 3, 2
KEY = jax.random.PRNGKey(0)
Z = jax.random.normal(KEY, (H, D))
ACT = jax.random.normal(jax.random.PRNGKey(1), (H, A))
CTX = {"goal": jnp.ones(D)}


def test_goal_term_modes_and_metrics():
    sq = jnp.sum(jnp.square(Z - 1.0), axis=-1)
    np.testing.assert_allclose(goal_distance()(Z, ACT, CTX), jnp.zeros(H).at[-1].set(sq[-1]), rtol=1e-6)
    np.testing.assert_allclose(goal_distance(mode="all")(Z, ACT, CTX), sq, rtol=1e-6)
    np.testing.assert_allclose(
        goal_distance(mode="all", discount=0.5)(Z, ACT, CTX), sq * 0.5 ** jnp.arange(H), rtol=1e-6
    )
    np.testing.assert_allclose(goal_distance(metric="l2", mode="all")(Z, ACT, CTX), jnp.sqrt(sq), rtol=1e-5)
    w = (0.0, 1.0, 0.0, 2.0)
    np.testing.assert_allclose(goal_distance(weights=w)(Z, ACT, CTX), sq * jnp.array(w), rtol=1e-6)
    with pytest.raises(ConfigError, match="step weights"):
        goal_distance(weights=(1.0,))(Z, ACT, CTX)
    with pytest.raises(ConfigError, match="metric"):
        goal_distance(metric="cosine")
    with pytest.raises(ConfigError, match="mode"):
        goal_distance(mode="first")


def test_action_terms():
    np.testing.assert_allclose(action_magnitude()(Z, ACT, CTX), jnp.sum(ACT**2, -1), rtol=1e-6)
    smooth = action_smoothness()(Z, ACT, CTX)
    assert smooth.shape == (H,) and float(smooth[0]) == 0.0
    np.testing.assert_allclose(smooth[1:], jnp.sum(jnp.diff(ACT, axis=0) ** 2, -1), rtol=1e-6)
    prev = action_smoothness()(Z, ACT, {**CTX, "prev_action": jnp.zeros(A)})
    np.testing.assert_allclose(prev[0], jnp.sum(ACT[0] ** 2), rtol=1e-6)


def test_breakdown_sums_to_total_and_is_jittable():
    cost = make_cost(
        {
            "goal": (goal_distance(mode="all"), 1.0),
            "effort": (action_magnitude(), 0.1),
            "smooth": ("action_smoothness", 0.5),
            "custom": (lambda z, a, ctx: z[:, 0], 2.0),
        }
    )
    parts = jax.jit(cost.breakdown)(Z, ACT, CTX)
    assert list(cost.names) == ["goal", "effort", "smooth", "custom"]
    assert set(parts) == set(cost.names)
    assert all(v.shape == (H,) for v in parts.values())
    total = jax.jit(cost.total)(Z, ACT, CTX)
    np.testing.assert_allclose(total, sum(float(jnp.sum(v)) for v in parts.values()), rtol=1e-5)
    np.testing.assert_allclose(parts["custom"], 2.0 * Z[:, 0], rtol=1e-6)
    np.testing.assert_allclose(cost(Z, ACT, CTX), total, rtol=1e-6)


def test_unknown_terms_are_config_errors():
    with pytest.raises(ConfigError, match="unknown cost term 'speed'"):
        make_term("speed")
    with pytest.raises(ConfigError, match="unknown cost term"):
        make_cost({"x": ("speed", 1.0)})
    with pytest.raises(ConfigError):
        make_cost({})
    with pytest.raises(ConfigError, match="pair"):
        make_cost({"goal": goal_distance()})
    assert {"goal", "action_magnitude", "action_smoothness"} <= set(TERMS)


def test_constraint_term_violations():
    # constraint z_0 <= 0: violation max(z_0, 0) per step
    cost = make_cost({"goal": ("goal", 1.0), "hazard": (constraint(lambda z, ctx: z[0]), 10.0)})
    parts = cost.breakdown(Z, ACT, CTX)
    np.testing.assert_allclose(parts["hazard"], 10.0 * jnp.maximum(Z[:, 0], 0.0), rtol=1e-6)
    assert int(cost.violations(Z, ACT, CTX)["hazard"]) == int(jnp.sum(Z[:, 0] > 0))


def cumsum_rollout(z0, actions):
    """A toy 'world model': the latent is the running sum of actions (padded to D)."""
    steps = jnp.pad(actions, ((0, 0), (0, D - A)))
    return z0 + jnp.cumsum(steps, axis=0)


@pytest.mark.parametrize("repeat", [1, 3])
def test_latent_cost_fn_action_repeat(repeat):
    z0 = jnp.zeros(D)
    seen = {}

    def spy(z_seq, a_seq, ctx):
        seen["z"], seen["a"] = z_seq, a_seq
        return jnp.sum(z_seq[-1])

    fn = latent_cost_fn(cumsum_rollout, z0, CTX, spy, action_repeat=repeat)
    value = fn(ACT)
    assert seen["z"].shape == (H, D) and seen["a"].shape == (H, A)
    # after every block the latent moved by repeat * block action
    np.testing.assert_allclose(seen["z"][:, :A], repeat * jnp.cumsum(ACT, axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(value, repeat * jnp.sum(ACT), rtol=1e-5, atol=1e-5)

    fn_all = latent_cost_fn(cumsum_rollout, z0, CTX, spy, action_repeat=repeat, latents="all")
    fn_all(ACT)
    assert seen["z"].shape == (H * repeat, D) and seen["a"].shape == (H * repeat, A)
    np.testing.assert_array_equal(expand_actions(ACT, repeat)[::repeat], ACT)


def test_latent_cost_fn_plans_to_goal():
    from jepa_mpc.planning import make_config, plan

    goal = jnp.array([1.5, -2.0, 0.0])
    cost = make_cost({"goal": (goal_distance(), 1.0)})
    fn = latent_cost_fn(cumsum_rollout, jnp.zeros(D), {"goal": goal}, cost, action_repeat=2)
    cfg = make_config("cem", horizon=H, samples=64, elites=8, iterations=10)
    actions, info = jax.jit(lambda k: plan(fn, jnp.zeros((H, A)), k, cfg))(KEY)
    assert float(info["final_cost"]) < 0.05
    np.testing.assert_allclose(2 * jnp.sum(actions, axis=0), goal[:A], atol=0.25)


def test_bad_latent_cost_options():
    with pytest.raises(ConfigError):
        latent_cost_fn(cumsum_rollout, jnp.zeros(D), CTX, goal_distance(), action_repeat=0)
    with pytest.raises(ConfigError):
        latent_cost_fn(cumsum_rollout, jnp.zeros(D), CTX, goal_distance(), latents="some")
