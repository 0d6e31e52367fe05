"""A predictor that sees a latent history (`--model.history L`): the planner keeps each episode's past
latents and executed blocks, and the probe measures errors ahead from true histories."""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx

from jepa_mpc.config import ModelConfig, TrainConfig
from jepa_mpc.control import ControlConfig, LatentPlannerPolicy
from jepa_mpc.goals import LatentGoal
from jepa_mpc.model import init_world_model
from jepa_mpc.model.checkpoint import LoadedModel
from jepa_mpc.probe import history_windows

BUDGET = dict(samples=16, iterations=2, horizon=3)


def _model(history: int) -> LoadedModel:
    cfg = TrainConfig(model=ModelConfig(latent_dim=8, encoder_hidden=(32,), projector_hidden=32,
                                        predictor_hidden=32, action_dim=10, history=history), action_block=5)
    wm = init_world_model(cfg.model, seed=0)
    # a predictor that is not the identity, so what it sees changes what it predicts
    wm.predictor.out.kernel[...] = 0.3 * jax.random.normal(jax.random.key(1), wm.predictor.out.kernel.shape)
    graphdef, state = nnx.split(wm)
    return LoadedModel(cfg, graphdef, state, {}, 0, "<memory>")


def test_policy_keeps_each_episodes_past_latents_and_executed_blocks():
    model = _model(history=2)
    policy = LatentPlannerPolicy(model, ControlConfig(goal=LatentGoal(), action_block=5, **BUDGET), None, chunk=0)
    rng = np.random.default_rng(0)
    obs = rng.uniform(-0.8, 0.8, (3, 4)).astype(np.float32)
    goals = rng.uniform(-0.8, 0.8, (3, 4)).astype(np.float32)
    policy.start(obs, goals, goals, jax.random.key(0))
    z_start = np.asarray(policy.encode(obs))
    np.testing.assert_allclose(policy.z_past[:, 0], z_start, atol=1e-6)  # the start latent, repeated
    assert not policy.a_past.any()  # and no block before it

    first, _ = policy.act(obs, obs, jax.random.key(1), np.arange(3))
    np.testing.assert_allclose(policy.a_past[:, 0], first.reshape(3, -1))
    obs2 = obs + 0.1
    live = np.array([0, 2])  # episode 1 has ended: its past stays as it was
    before = policy.z_past[1].copy()
    policy.act(obs2[live], obs2[live], jax.random.key(2), live)
    np.testing.assert_allclose(policy.z_past[live, 0], np.asarray(policy.encode(obs2[live])), atol=1e-6)
    np.testing.assert_array_equal(policy.z_past[1], before)


def test_plans_depend_on_the_past_only_for_a_history_model():
    """The same current observation and key: a different past block gives another plan (history 2),
    the same plan for a model that sees one latent (its policy keeps no past)."""
    obs = np.array([[-0.5, 0.2, 0.0, 0.0]], np.float32)
    goal = np.array([[0.5, -0.2, 0.0, 0.0]], np.float32)
    for history in (1, 2):
        policy = LatentPlannerPolicy(_model(history), ControlConfig(goal=LatentGoal(), action_block=5, **BUDGET),
                                     None, chunk=0)
        plans = []
        for past in (0.0, 1.0):
            policy.start(obs, goal, goal, jax.random.key(0))
            policy.a_past[:] = past
            _, info = policy.act(obs, obs, jax.random.key(1), np.arange(1))
            plans.append(info["final_cost"])
        assert policy.z_past.shape == (1, history - 1, 8)
        assert (history == 1) == bool(np.allclose(plans[0], plans[1]))


def test_history_windows_take_the_frames_and_blocks_before_each_start():
    obs = np.arange(2 * 8).reshape(2, 8)  # (E, T + 1): the value is 8 e + t
    actions = 100 + np.arange(2 * 7).reshape(2, 7, 1)  # (E, T, 1): 100 + 7 e + t
    o, past, ahead = history_windows(obs, actions, np.array([2, 4]), history=3, blocks=2)
    np.testing.assert_array_equal(o, [[0, 1, 2], [2, 3, 4], [8, 9, 10], [10, 11, 12]])
    np.testing.assert_array_equal(past[..., 0], [[100, 101], [102, 103], [107, 108], [109, 110]])
    np.testing.assert_array_equal(ahead[..., 0], [[102, 103], [104, 105], [109, 110], [111, 112]])


def test_history_windows_of_env_steps_concatenate_each_blocks_actions():
    """block 2: the frames two steps apart, each model step's action the two env actions of its block."""
    obs = np.arange(11)[None]  # (1, T + 1): the value is the step
    actions = 100 + np.arange(10).reshape(1, 10, 1)
    o, past, ahead = history_windows(obs, actions, np.array([2, 4]), history=2, blocks=2, block=2)
    np.testing.assert_array_equal(o, [[0, 2], [2, 4]])
    np.testing.assert_array_equal(past, [[[100, 101]], [[102, 103]]])
    np.testing.assert_array_equal(ahead, [[[102, 103], [104, 105]], [[104, 105], [106, 107]]])
    one = history_windows(obs, actions, np.array([3]), history=1, blocks=1, block=2)
    assert one[1].shape == (1, 0, 2)  # no past: an empty one, not an error
