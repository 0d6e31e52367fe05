"""Observation encoders: MLP for the state vector, CNN for 64x64 RGB frames.

Both end in the same projector (Linear -> LayerNorm -> GELU -> Linear), whose output is the
embedding z that the predictor works on and the regulariser shapes. Inputs are normalised inside
the encoder (state: dataset mean/std stored as `Stat` variables; pixels: uint8 / 255), so callers
pass raw observations.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jepa_mpc.config import ModelConfig


class Stat(nnx.Variable):
    """A non-trainable normalisation statistic (saved with the model, never optimised)."""


class Projector(nnx.Module):
    def __init__(self, in_dim: int, hidden: int, out_dim: int, *, rngs: nnx.Rngs):
        self.fc1 = nnx.Linear(in_dim, hidden, rngs=rngs)
        self.norm = nnx.LayerNorm(hidden, rngs=rngs)
        self.fc2 = nnx.Linear(hidden, out_dim, rngs=rngs)

    def __call__(self, h: jax.Array) -> jax.Array:
        return self.fc2(nnx.gelu(self.norm(self.fc1(h))))


class StateEncoder(nnx.Module):
    """(..., obs_dim) float state -> (..., latent_dim)."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        self.mean = Stat(jnp.zeros((cfg.obs_dim,), jnp.float32))
        self.std = Stat(jnp.ones((cfg.obs_dim,), jnp.float32))
        widths = (cfg.obs_dim, *cfg.encoder_hidden)
        self.layers = nnx.List(
            [nnx.Linear(i, o, rngs=rngs) for i, o in zip(widths[:-1], widths[1:])]
        )
        self.projector = Projector(widths[-1], cfg.projector_hidden, cfg.latent_dim, rngs=rngs)

    def __call__(self, obs: jax.Array) -> jax.Array:
        h = (obs.astype(jnp.float32) - self.mean[...]) / self.std[...]
        for layer in self.layers:
            h = nnx.gelu(layer(h))
        return self.projector(h)


class PixelEncoder(nnx.Module):
    """(..., S, S, 3) uint8 frames -> (..., latent_dim). 4x4 stride-2 convs, then dense + projector."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        chans = (3, *cfg.cnn_channels)
        self.convs = nnx.List(
            [
                nnx.Conv(i, o, kernel_size=(4, 4), strides=(2, 2), padding="SAME", rngs=rngs)
                for i, o in zip(chans[:-1], chans[1:])
            ]
        )
        side = cfg.image_size // (2 ** len(cfg.cnn_channels))
        flat = side * side * chans[-1]
        hidden = cfg.encoder_hidden[0] if cfg.encoder_hidden else flat
        self.dense = nnx.Linear(flat, hidden, rngs=rngs)
        self.projector = Projector(hidden, cfg.projector_hidden, cfg.latent_dim, rngs=rngs)
        self.image_shape = (cfg.image_size, cfg.image_size, 3)

    def __call__(self, obs: jax.Array) -> jax.Array:
        lead = obs.shape[:-3]
        h = obs.reshape((-1, *obs.shape[-3:])).astype(jnp.float32) / 255.0
        for conv in self.convs:
            h = nnx.gelu(conv(h))
        h = nnx.gelu(self.dense(h.reshape((h.shape[0], -1))))
        z = self.projector(h)
        return z.reshape((*lead, z.shape[-1]))


def make_encoder(cfg: ModelConfig, *, rngs: nnx.Rngs) -> nnx.Module:
    if cfg.obs_key == "state":
        return StateEncoder(cfg, rngs=rngs)
    return PixelEncoder(cfg, rngs=rngs)
