"""Observation encoders: MLP for the state vector, CNN for 64x64 RGB frames.

Both end in the same projector (Linear -> LayerNorm -> GELU -> Linear), whose output is the
embedding z that the predictor works on and the regulariser shapes. Inputs are normalised inside
the encoder (state: dataset mean/std stored as `Stat` variables; pixels: uint8 / 255 minus the
dataset's mean frame, also a `Stat`), so callers pass raw observations.

Why the mean frame: in TwoRoom the only thing that changes between frames is a ~3-pixel agent on a
static arena. Without removing the static scene, a freshly initialised CNN maps every frame to
almost the same embedding (spread ~1 % of its norm); SIGReg's gradient barely acts on the spread
of a nearly collapsed batch while the prediction loss shrinks it further, and training collapses.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jepa_mpc.config import ModelConfig
from jepa_mpc.model.conv import conv4x4s2


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


def mean_frame(frames: np.ndarray, lengths: np.ndarray, episodes: np.ndarray | None = None) -> np.ndarray:
    """Mean frame (S, S, 3) float32 in [0, 1] over the valid steps of (E, T+1, S, S, 3) uint8 episodes.

    `lengths` (E,) are the episodes' action counts (frames 0..length are valid); `episodes` selects
    which episodes count (all if None). One episode at a time, so memory stays bounded.
    """
    ids = np.arange(len(frames)) if episodes is None else np.asarray(episodes)
    total = np.zeros(frames.shape[2:], np.float64)
    count = 0
    for i in ids:
        n = int(lengths[i]) + 1
        total += frames[i, :n].sum(axis=0, dtype=np.float64)
        count += n
    return (total / (255.0 * max(count, 1))).astype(np.float32)


class PixelEncoder(nnx.Module):
    """(..., S, S, 3) uint8 frames -> (..., latent_dim). 4x4 stride-2 convs, then dense + projector; or,
    with `latent_channels` > 0, the projector on every cell of the last feature map, flattened (a spatial
    latent, for the conv predictor).

    Frames are scaled to [0, 1] and the dataset's mean frame (`pixel_mean`, zeros until
    `WorldModel.set_norm_stats` sets it) is subtracted first.
    """

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        self.pixel_mean = Stat(jnp.zeros((cfg.image_size, cfg.image_size, 3), jnp.float32))
        chans = (3, *cfg.cnn_channels)
        self.convs = nnx.List(
            [
                nnx.Conv(i, o, kernel_size=(4, 4), strides=(2, 2), padding="SAME", rngs=rngs)
                for i, o in zip(chans[:-1], chans[1:])
            ]
        )
        self.spatial = cfg.latent_channels > 0
        if self.spatial:  # each cell of the last feature map projected on its own: where things are stays put
            self.projector = Projector(chans[-1], cfg.projector_hidden, cfg.latent_channels, rngs=rngs)
        else:
            flat = cfg.feature_side ** 2 * chans[-1]
            hidden = cfg.encoder_hidden[0] if cfg.encoder_hidden else flat
            self.dense = nnx.Linear(flat, hidden, rngs=rngs)
            self.projector = Projector(hidden, cfg.projector_hidden, cfg.latent_dim, rngs=rngs)
        self.image_shape = (cfg.image_size, cfg.image_size, 3)

    def __call__(self, obs: jax.Array) -> jax.Array:
        lead = obs.shape[:-3]
        h = obs.reshape((-1, *obs.shape[-3:])).astype(jnp.float32) / 255.0 - self.pixel_mean[...]
        for conv in self.convs:  # conv4x4s2: nnx.Conv's computation with a faster input gradient on CPU
            h = nnx.gelu(conv4x4s2(h, conv.kernel[...]) + conv.bias[...])
        if self.spatial:
            z = self.projector(h).reshape((h.shape[0], -1))  # (B, side, side, channels) flattened
        else:
            z = self.projector(nnx.gelu(self.dense(h.reshape((h.shape[0], -1)))))
        return z.reshape((*lead, z.shape[-1]))


def make_encoder(cfg: ModelConfig, *, rngs: nnx.Rngs) -> nnx.Module:
    if cfg.obs_key == "state":
        return StateEncoder(cfg, rngs=rngs)
    return PixelEncoder(cfg, rngs=rngs)
