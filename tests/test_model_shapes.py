"""Shapes and purity of the world-model API (state and pixels, mlp, transformer and conv predictors)."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from jepa_mpc.config import TRAIN_PRESETS, ModelConfig
from jepa_mpc.errors import ConfigError
from jepa_mpc.model import encode, init_world_model, obs_shape, predict, rollout
from jepa_mpc.model.world_model import validate_model_config

SMALL_PIXELS = ModelConfig(
    obs_key="pixels", latent_dim=16, encoder_hidden=(32,), cnn_channels=(4, 8, 8, 8), projector_hidden=32,
    predictor_hidden=32,
)
CASES = {
    "state-mlp": ModelConfig(latent_dim=8, encoder_hidden=(32,), projector_hidden=32, predictor_hidden=32),
    "pixels-mlp": SMALL_PIXELS,
    "state-mlp-history": ModelConfig(latent_dim=8, encoder_hidden=(32,), projector_hidden=32, predictor_hidden=32,
                                     history=2),
    "state-transformer": ModelConfig(
        latent_dim=8, encoder_hidden=(32,), projector_hidden=32, predictor="transformer", history=3,
        predictor_hidden=32, num_heads=2, predictor_depth=1,
    ),
    # a spatial latent: 64 / 2^3 = 8 x 8 cells x 2 channels
    "pixels-spatial-conv": ModelConfig(
        obs_key="pixels", latent_dim=128, cnn_channels=(4, 8, 8), projector_hidden=16, latent_channels=2,
        predictor="conv", predictor_hidden=8,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_encode_predict_rollout_shapes(name):
    cfg = CASES[name]
    graphdef, state = nnx.split(init_world_model(cfg))
    B, T, H, D, A = 3, 5, 7, cfg.latent_dim, cfg.action_dim
    dtype = jnp.uint8 if cfg.obs_key == "pixels" else jnp.float32
    obs = jnp.zeros((B, T, *obs_shape(cfg)), dtype)

    z = jax.jit(encode, static_argnums=0)(graphdef, state, obs)
    chex.assert_shape(z, (B, T, D))
    chex.assert_tree_all_finite(z)

    z1 = jax.jit(predict, static_argnums=0)(graphdef, state, z, jnp.ones((B, T, A)))
    chex.assert_shape(z1, (B, T, D))

    zs = jax.jit(rollout, static_argnums=0)(graphdef, state, z[0, 0], jnp.ones((H, A)))
    chex.assert_shape(zs, (H, D))
    zb = jax.jit(jax.vmap(rollout, (None, None, 0, 0)), static_argnums=0)(graphdef, state, z[:, 0], jnp.ones((B, H, A)))
    chex.assert_shape(zb, (B, H, D))
    chex.assert_trees_all_close(zb[0], zs, atol=1e-5)


def test_rollout_first_step_equals_predict():
    cfg = CASES["state-mlp"]
    model = init_world_model(cfg, seed=1)
    # perturb the zero-initialised output layer so the predictor is not the identity
    model.predictor.out.kernel[...] = 0.1 * jax.random.normal(jax.random.key(0), model.predictor.out.kernel.shape)
    z0 = model.encode(jnp.ones((4,)))
    a = jnp.array([[0.5, -0.5], [1.0, 0.0]])
    zs = model.rollout(z0, a)
    chex.assert_trees_all_close(zs[0], model.predict(z0, a[0]), atol=1e-6)
    chex.assert_trees_all_close(zs[1], model.predict(zs[0], a[1]), atol=1e-6)
    assert not jnp.allclose(zs[0], z0)


def test_mlp_history_sees_the_past_and_a_repeated_latent_is_the_padded_start():
    """history 2: the predictor's input is both latents and both action blocks (history 1 keeps its
    parameter shapes); a rollout from one latent equals one from that latent twice with a zero block before."""
    cfg = CASES["state-mlp-history"]
    assert init_world_model(CASES["state-mlp"]).predictor.layers[0].kernel.shape[0] == 8 + 2
    model = init_world_model(cfg, seed=1)
    assert model.predictor.layers[0].kernel.shape[0] == 2 * (8 + 2)
    model.predictor.out.kernel[...] = 0.1 * jax.random.normal(jax.random.key(0), model.predictor.out.kernel.shape)
    z0, z_prev = model.encode(jnp.ones((4,))), model.encode(-jnp.ones((4,)))
    a = jnp.array([[0.5, -0.5], [1.0, 0.0]])
    padded = model.rollout(jnp.stack([z0, z0]), a, jnp.zeros((1, 2)))
    chex.assert_trees_all_close(model.rollout(z0, a), padded, atol=1e-6)
    other_past = model.rollout(jnp.stack([z_prev, z0]), a, jnp.ones((1, 2)))
    assert not jnp.allclose(other_past[0], padded[0], atol=1e-4)  # the past latent and block matter


def test_presets_are_valid():
    for name, cfg in TRAIN_PRESETS.items():
        validate_model_config(cfg.model, name)
        graphdef, state = nnx.split(nnx.eval_shape(lambda: init_world_model(cfg.model)))
        obs = jax.ShapeDtypeStruct((2, *obs_shape(cfg.model)), jnp.float32)
        z = jax.eval_shape(lambda s, o: encode(graphdef, s, o), state, obs)
        assert z.shape == (2, cfg.model.latent_dim)


def test_bad_model_config_raises_config_error():
    with pytest.raises(ConfigError, match="predictor"):
        validate_model_config(ModelConfig(predictor="lstm"))
    with pytest.raises(ConfigError, match="history"):
        validate_model_config(ModelConfig(history=0))
    with pytest.raises(ConfigError, match="history"):
        validate_model_config(ModelConfig(latent_dim=128, cnn_channels=(4, 8, 8), obs_key="pixels", latent_channels=2,
                                          predictor="conv", history=2))


def test_bad_spatial_config_raises_config_error():
    ok = CASES["pixels-spatial-conv"]
    with pytest.raises(ConfigError, match="latent_dim=64, but a spatial latent of 8 x 8 cells x 2 channels has 128"):
        validate_model_config(dataclasses.replace(ok, latent_dim=64))
    with pytest.raises(ConfigError, match="goes with a spatial latent"):
        validate_model_config(dataclasses.replace(ok, predictor="mlp"))
    with pytest.raises(ConfigError, match="goes with a spatial latent"):
        validate_model_config(dataclasses.replace(ok, latent_channels=0, latent_dim=16))
    with pytest.raises(ConfigError, match="needs pixels"):
        validate_model_config(ModelConfig(latent_channels=2, predictor="conv"))


def test_conv_predictor_is_local():
    """A cell's prediction depends on its neighbourhood: two 3x3 convolutions reach 2 cells, no further."""
    cfg = CASES["pixels-spatial-conv"]
    model = init_world_model(cfg, seed=1)
    model.predictor.out.kernel[...] = 0.1 * jax.random.normal(jax.random.key(0), model.predictor.out.kernel.shape)
    z = jax.random.normal(jax.random.key(1), (cfg.latent_dim,))
    a = jnp.ones((cfg.action_dim,))
    bumped = z.reshape(8, 8, 2).at[0, 0, 0].add(1.0).reshape(-1)
    change = jnp.abs(model.predict(bumped, a) - model.predict(z, a)).reshape(8, 8, 2).max(-1)
    assert change[:3, :3].max() > 0  # the neighbourhood moved
    assert float(change[3:, :].max()) == 0.0 and float(change[:, 3:].max()) == 0.0  # the rest did not
