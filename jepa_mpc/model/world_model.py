"""The JEPA world model: encoder + action-conditioned predictor, and its pure functional API.

Shapes follow (batch, time, dim). The module methods work on any leading batch shape:

    model.encode(obs (..., *obs_shape))                      -> z (..., D)
    model.predict(z (..., D), a (..., A))                     -> z' (..., D)        (history 1)
    model.predict_hist(z_hist (..., L, D), a_hist (..., L, A)) -> z' (..., D)
    model.rollout(z0 (D,) or (L, D), actions (H, A))          -> (H, D)             (vmap for batches)

For hot loops (train step, planner) split once and merge inside the jitted function:

    graphdef, state = nnx.split(model)
    encode(graphdef, state, obs); predict(graphdef, state, z, a); rollout(graphdef, state, z0, actions)

These are pure functions of (state, inputs) and can be jitted / vmapped freely.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jepa_mpc.config import OBS_KEYS, PREDICTORS, ModelConfig
from jepa_mpc.errors import ConfigError
from jepa_mpc.model.encoders import Stat, make_encoder
from jepa_mpc.model.predictor import make_predictor


def validate_model_config(cfg: ModelConfig, where: str = "model config") -> None:
    """Raise ConfigError (one line, naming the field) for an unusable model config."""
    if cfg.obs_key not in OBS_KEYS:
        raise ConfigError(f"{where}: model.obs_key={cfg.obs_key!r}; expected one of {OBS_KEYS}")
    if cfg.predictor not in PREDICTORS:
        raise ConfigError(f"{where}: model.predictor={cfg.predictor!r}; expected one of {PREDICTORS}")
    if cfg.history < 1:
        raise ConfigError(f"{where}: model.history={cfg.history} (latents the predictor sees: >= 1)")
    if cfg.inverse_hidden < 0:
        raise ConfigError(f"{where}: model.inverse_hidden must be >= 0, got {cfg.inverse_hidden}")
    if cfg.latent_dim < 1 or cfg.action_dim < 1:
        raise ConfigError(f"{where}: model.latent_dim and model.action_dim must be positive")
    if cfg.obs_key == "pixels" and cfg.image_size % (2 ** len(cfg.cnn_channels)):
        raise ConfigError(
            f"{where}: model.image_size={cfg.image_size} not divisible by 2^len(model.cnn_channels)"
        )
    if cfg.latent_channels < 0:
        raise ConfigError(f"{where}: model.latent_channels must be >= 0, got {cfg.latent_channels}")
    spatial = cfg.latent_channels > 0
    if spatial and cfg.obs_key != "pixels":
        raise ConfigError(f"{where}: model.latent_channels={cfg.latent_channels} (a spatial latent) needs pixels")
    if spatial:
        side = cfg.feature_side
        if cfg.latent_dim != side * side * cfg.latent_channels:
            raise ConfigError(f"{where}: model.latent_dim={cfg.latent_dim}, but a spatial latent of {side} x {side} "
                              f"cells x {cfg.latent_channels} channels has {side * side * cfg.latent_channels}")
    if (cfg.predictor == "conv") != spatial:
        raise ConfigError(f"{where}: model.predictor='conv' goes with a spatial latent (model.latent_channels > 0) "
                          f"and a spatial latent with it; got predictor={cfg.predictor!r}, latent_channels={cfg.latent_channels}")
    if cfg.predictor == "conv" and cfg.history != 1:
        raise ConfigError(f"{where}: model.history={cfg.history} (conv predictor needs 1)")
    if cfg.predictor == "transformer" and cfg.predictor_hidden % cfg.num_heads:
        raise ConfigError(f"{where}: model.predictor_hidden must be divisible by model.num_heads")


def obs_shape(cfg: ModelConfig) -> tuple[int, ...]:
    """Shape of one observation the encoder takes."""
    if cfg.obs_key == "state":
        return (cfg.obs_dim,)
    return (cfg.image_size, cfg.image_size, 3)


class WorldModel(nnx.Module):
    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        validate_model_config(cfg)
        self.cfg = cfg
        self.encoder = make_encoder(cfg, rngs=rngs)
        self.predictor = make_predictor(cfg, rngs=rngs)
        if cfg.inverse_hidden > 0:  # trained with the model, never used to plan
            d, h = cfg.latent_dim, cfg.inverse_hidden
            self.inverse = nnx.Sequential(nnx.Linear(2 * d, h, rngs=rngs), nnx.LayerNorm(h, rngs=rngs), nnx.gelu,
                                          nnx.Linear(h, cfg.action_dim, rngs=rngs))

    # -- normalisation statistics (dataset stats, stored in the model state as `Stat`s)
    def set_norm_stats(self, stats: dict) -> None:
        """Copy dataset stats (state_mean/std or pixel_mean, action_mean/std) into the model (floors tiny stds)."""
        if self.cfg.obs_key == "state":
            self.encoder.mean[...] = jnp.asarray(stats["state_mean"], jnp.float32)
            self.encoder.std[...] = jnp.maximum(jnp.asarray(stats["state_std"], jnp.float32), 1e-3)
        if self.cfg.obs_key == "pixels" and "pixel_mean" in stats:
            self.encoder.pixel_mean[...] = jnp.asarray(stats["pixel_mean"], jnp.float32)
        self.predictor.action_mean[...] = jnp.asarray(stats["action_mean"], jnp.float32)
        self.predictor.action_std[...] = jnp.maximum(
            jnp.asarray(stats["action_std"], jnp.float32), 1e-3
        )

    # -- the world-model API
    def encode(self, obs: jax.Array) -> jax.Array:
        return self.encoder(obs)

    def infer_action(self, z: jax.Array, z_next: jax.Array) -> jax.Array:
        """Inverse dynamics: the (normalised) action block that took z to z_next (needs model.inverse_hidden)."""
        return self.inverse(jnp.concatenate([z, z_next], axis=-1))

    def predict_hist(self, z_hist: jax.Array, a_hist: jax.Array) -> jax.Array:
        return self.predictor(z_hist, a_hist)

    def predict(self, z: jax.Array, a: jax.Array) -> jax.Array:
        """One step from a single latent (history padded by repeating z, past actions zero)."""
        L = self.cfg.history
        z_hist = jnp.repeat(z[..., None, :], L, axis=-2)
        a_hist = jnp.concatenate(
            [jnp.zeros((*a.shape[:-1], L - 1, a.shape[-1]), a.dtype), a[..., None, :]], axis=-2
        )
        return self.predictor(z_hist, a_hist)

    def rollout(
        self, z0: jax.Array, actions: jax.Array, past_actions: jax.Array | None = None
    ) -> jax.Array:
        """Open-loop rollout: z0 (D,) or (L, D), actions (H, A) -> z_1..z_H (H, D).

        `past_actions` (L-1, A) are the actions between the latents of a (L, D) z0 (zeros if None).
        """
        L, A = self.cfg.history, actions.shape[-1]
        z_hist = jnp.broadcast_to(z0, (L, z0.shape[-1])) if z0.ndim == 1 else z0
        a_prev = jnp.zeros((L - 1, A), actions.dtype) if past_actions is None else past_actions

        def step(carry, a):
            z_hist, a_prev = carry
            a_hist = jnp.concatenate([a_prev, a[None]], axis=0)
            z_next = self.predictor(z_hist, a_hist)
            return (jnp.concatenate([z_hist[1:], z_next[None]], axis=0), a_hist[1:]), z_next

        _, zs = jax.lax.scan(step, (z_hist, a_prev), actions)
        return zs


# ---------------------------------------------------------------- pure functional API


def encode(graphdef: nnx.GraphDef, state: nnx.State, obs: jax.Array) -> jax.Array:
    return nnx.merge(graphdef, state).encode(obs)


def predict(graphdef: nnx.GraphDef, state: nnx.State, z: jax.Array, a: jax.Array) -> jax.Array:
    return nnx.merge(graphdef, state).predict(z, a)


def rollout(
    graphdef: nnx.GraphDef, state: nnx.State, z0: jax.Array, actions: jax.Array
) -> jax.Array:
    return nnx.merge(graphdef, state).rollout(z0, actions)


def init_world_model(cfg: ModelConfig, seed: int = 0, stats: dict | None = None) -> WorldModel:
    model = WorldModel(cfg, rngs=nnx.Rngs(seed))
    if stats is not None:
        model.set_norm_stats(stats)
    return model


def split_model(model: WorldModel) -> tuple[nnx.GraphDef, nnx.State, nnx.State]:
    """(graphdef, params, rest): params are what the optimiser updates; rest holds `Stat`s."""
    return nnx.split(model, nnx.Param, ...)


def stats_to_numpy(stats: dict) -> dict[str, np.ndarray]:
    keys = ("state_mean", "state_std", "action_mean", "action_std")
    return {k: np.asarray(stats[k], np.float32) for k in keys if k in stats}


__all__ = [
    "Stat",
    "WorldModel",
    "encode",
    "init_world_model",
    "obs_shape",
    "predict",
    "rollout",
    "split_model",
    "validate_model_config",
]
