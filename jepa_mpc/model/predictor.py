"""Action-conditioned latent predictors: next latent from the last `history` latents and actions.

Interface of both: `predictor(z_hist (..., L, D), a_hist (..., L, A)) -> z_next (..., D)`, where the
last entry along L is the current time step. Actions are normalised inside by dataset stats.
- ResidualMLP (default, L >= 1): z_next = z + f([z_1..z_L, a_1..a_L]), the history flattened into one
  input (L = 1: f([z, a])). Two latents and the action between them show a velocity one frame lacks.
- HistoryTransformer (L >= 1): causal self-attention over tokens embed([z_i, a_i]); the residual of the
  last token's output is added to the current latent.
- ConvPredictor (L = 1, spatial latents): the latent as its grid of cells, the action broadcast to every
  cell as extra channels, two 3x3 convolutions and a zero-initialised 1x1 one: z_next = z + f(z, a). Each
  cell's change depends on its neighbourhood only, so what happens at a wall is decided where the wall is.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jepa_mpc.config import ModelConfig
from jepa_mpc.model.encoders import Stat


class _ActionNorm(nnx.Module):
    def __init__(self, action_dim: int):
        self.action_mean = Stat(jnp.zeros((action_dim,), jnp.float32))
        self.action_std = Stat(jnp.ones((action_dim,), jnp.float32))

    def norm(self, a: jax.Array) -> jax.Array:
        return (a - self.action_mean[...]) / self.action_std[...]


class ResidualMLP(_ActionNorm):
    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        super().__init__(cfg.action_dim)
        d, h = cfg.latent_dim, cfg.predictor_hidden
        widths = (cfg.history * (d + cfg.action_dim), *([h] * cfg.predictor_depth))
        self.layers = nnx.List(
            [nnx.Linear(i, o, rngs=rngs) for i, o in zip(widths[:-1], widths[1:])]
        )
        self.norms = nnx.List([nnx.LayerNorm(o, rngs=rngs) for o in widths[1:]])
        # Zero-initialised output: the predictor starts as the copy-last model z' = z.
        self.out = nnx.Linear(widths[-1], d, kernel_init=nnx.initializers.zeros, rngs=rngs)

    def __call__(self, z_hist: jax.Array, a_hist: jax.Array) -> jax.Array:
        steps = jnp.concatenate([z_hist, self.norm(a_hist)], axis=-1)  # (..., L, D + A)
        h = steps.reshape((*steps.shape[:-2], -1))  # L = 1: [z, a]
        for layer, norm in zip(self.layers, self.norms):
            h = nnx.gelu(norm(layer(h)))
        return z_hist[..., -1, :] + self.out(h)


class _Block(nnx.Module):
    def __init__(self, width: int, heads: int, *, rngs: nnx.Rngs):
        self.ln1 = nnx.LayerNorm(width, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(
            num_heads=heads, in_features=width, decode=False, rngs=rngs
        )
        self.ln2 = nnx.LayerNorm(width, rngs=rngs)
        self.fc1 = nnx.Linear(width, 2 * width, rngs=rngs)
        self.fc2 = nnx.Linear(2 * width, width, rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        x = x + self.attn(self.ln1(x), mask=mask)
        return x + self.fc2(nnx.gelu(self.fc1(self.ln2(x))))


class HistoryTransformer(_ActionNorm):
    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        super().__init__(cfg.action_dim)
        w = cfg.predictor_hidden
        self.embed = nnx.Linear(cfg.latent_dim + cfg.action_dim, w, rngs=rngs)
        self.pos = nnx.Param(0.02 * jax.random.normal(rngs.params(), (cfg.history, w)))
        self.blocks = nnx.List(
            [_Block(w, cfg.num_heads, rngs=rngs) for _ in range(cfg.predictor_depth)]
        )
        self.ln = nnx.LayerNorm(w, rngs=rngs)
        self.out = nnx.Linear(w, cfg.latent_dim, kernel_init=nnx.initializers.zeros, rngs=rngs)

    def __call__(self, z_hist: jax.Array, a_hist: jax.Array) -> jax.Array:
        length = z_hist.shape[-2]
        x = self.embed(jnp.concatenate([z_hist, self.norm(a_hist)], axis=-1))
        x = x + self.pos[...][-length:]
        mask = nnx.make_causal_mask(jnp.ones(x.shape[:-1], jnp.int32))
        for block in self.blocks:
            x = block(x, mask)
        return z_hist[..., -1, :] + self.out(self.ln(x[..., -1, :]))


class ConvPredictor(_ActionNorm):
    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        super().__init__(cfg.action_dim)
        c, h = cfg.latent_channels, cfg.predictor_hidden
        self.side = cfg.feature_side
        widths = (c + cfg.action_dim, *([h] * cfg.predictor_depth))
        self.convs = nnx.List([nnx.Conv(i, o, kernel_size=(3, 3), padding="SAME", rngs=rngs)
                               for i, o in zip(widths[:-1], widths[1:])])
        self.norms = nnx.List([nnx.LayerNorm(o, rngs=rngs) for o in widths[1:]])
        self.out = nnx.Conv(widths[-1], c, kernel_size=(1, 1), kernel_init=nnx.initializers.zeros, rngs=rngs)

    def __call__(self, z_hist: jax.Array, a_hist: jax.Array) -> jax.Array:
        z, a = z_hist[..., -1, :], self.norm(a_hist[..., -1, :])
        lead = z.shape[:-1]
        grid = z.reshape((-1, self.side, self.side, z.shape[-1] // self.side ** 2))
        act = jnp.broadcast_to(a.reshape((-1, 1, 1, a.shape[-1])), grid.shape[:3] + (a.shape[-1],))
        h = jnp.concatenate([grid, act], axis=-1)
        for conv, norm in zip(self.convs, self.norms):
            h = nnx.gelu(norm(conv(h)))
        return z + self.out(h).reshape((*lead, z.shape[-1]))


def make_predictor(cfg: ModelConfig, *, rngs: nnx.Rngs) -> nnx.Module:
    if cfg.predictor == "mlp":
        return ResidualMLP(cfg, rngs=rngs)
    if cfg.predictor == "conv":
        return ConvPredictor(cfg, rngs=rngs)
    return HistoryTransformer(cfg, rngs=rngs)
