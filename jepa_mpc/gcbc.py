"""Goal-conditioned behaviour cloning (GCBC) with hindsight goal relabelling: the offline policy baseline.

    loss = mean || pi(o_t, g) - norm(a_t) ||^2,   g = o_{t+k} of the same episode, k >= 1 blocks later

trained by the same loop as the world model (`jepa-mpc train --objective gcbc`, jepa_mpc/train.py: its
`Objective` plugs in this module's model, loss, batches and held-out check) on the same reward-free
data, in the run's action blocks; the relabelling and the goal input are documented on
`jepa_mpc.config.GCBCConfig`. Evaluated through `jepa-mpc eval --checkpoint RUN planner:gcbc`
(`jepa_mpc.control.GCBCPolicy`): the predicted mean action block, clipped to [-1, 1].

    policy = load_gcbc_policy("runs/gcbc")        # latest checkpoint, verified
    policy.act(obs (..., *obs_shape), goal_obs (..., *obs_shape)) -> (..., action_dim) in [-1, 1]

The goal features a state policy reads are the family's declared goal slice, stored as the
normalisation statistic `goal_mask` (1 on the goal features, 0 elsewhere) in the run's norm_stats.json,
so eval feeds the whole goal observation and the policy keeps what it was trained on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jepa_mpc.config import GOAL_SAMPLING, TrainConfig
from jepa_mpc.data.store import WindowSampler
from jepa_mpc.errors import ConfigError, UserError
from jepa_mpc.model.encoders import Stat, make_encoder

ACTION_LOW, ACTION_HIGH = -1.0, 1.0  # every family's action bounds (the planners' and random actions')


# ---------------------------------------------------------------- the policy


class GCBCPolicyNet(nnx.Module):
    """pi(obs, goal_obs) -> normalised action block (..., action_dim).

    state: an MLP on (normalised obs, normalised goal features of goal_obs, zero elsewhere);
    pixels: the preset's CNN encoder (cfg.model), shared by both frames, then the MLP on both embeddings.
    """

    def __init__(self, cfg: TrainConfig, *, rngs: nnx.Rngs):
        m = cfg.model
        self.obs_key = m.obs_key
        if m.obs_key == "state":
            self.mean = Stat(jnp.zeros((m.obs_dim,), jnp.float32))
            self.std = Stat(jnp.ones((m.obs_dim,), jnp.float32))
            self.goal_mask = Stat(jnp.ones((m.obs_dim,), jnp.float32))
            width = 2 * m.obs_dim
        else:
            self.encoder = make_encoder(m, rngs=rngs)
            width = 2 * m.latent_dim
        self.action_mean = Stat(jnp.zeros((m.action_dim,), jnp.float32))
        self.action_std = Stat(jnp.ones((m.action_dim,), jnp.float32))
        widths = (width, *cfg.gcbc.hidden)
        self.layers = nnx.List([nnx.Linear(i, o, rngs=rngs) for i, o in zip(widths[:-1], widths[1:])])
        self.norms = nnx.List([nnx.LayerNorm(o, rngs=rngs) for o in widths[1:]])
        self.head = nnx.Linear(widths[-1], m.action_dim, rngs=rngs)

    def set_norm_stats(self, stats: dict) -> None:
        """Dataset stats (state or pixel mean, action mean/std, and the goal mask) into the model."""
        if self.obs_key == "state":
            self.mean[...] = jnp.asarray(stats["state_mean"], jnp.float32)
            self.std[...] = jnp.maximum(jnp.asarray(stats["state_std"], jnp.float32), 1e-3)
            if "goal_mask" in stats:
                self.goal_mask[...] = jnp.asarray(stats["goal_mask"], jnp.float32)
        elif "pixel_mean" in stats:
            self.encoder.pixel_mean[...] = jnp.asarray(stats["pixel_mean"], jnp.float32)
        self.action_mean[...] = jnp.asarray(stats["action_mean"], jnp.float32)
        self.action_std[...] = jnp.maximum(jnp.asarray(stats["action_std"], jnp.float32), 1e-3)

    def features(self, obs: jax.Array, goal_obs: jax.Array) -> jax.Array:
        if self.obs_key == "state":
            norm = lambda x: (x.astype(jnp.float32) - self.mean[...]) / self.std[...]  # noqa: E731
            return jnp.concatenate([norm(obs), norm(goal_obs) * self.goal_mask[...]], axis=-1)
        return jnp.concatenate([self.encoder(obs), self.encoder(goal_obs)], axis=-1)

    def __call__(self, obs: jax.Array, goal_obs: jax.Array) -> jax.Array:
        h = self.features(obs, goal_obs)
        for layer, norm in zip(self.layers, self.norms):
            h = nnx.gelu(norm(layer(h)))
        return self.head(h)

    def act(self, obs: jax.Array, goal_obs: jax.Array) -> jax.Array:
        """The predicted mean action block in env units, clipped to the action bounds."""
        a = self(obs, goal_obs) * self.action_std[...] + self.action_mean[...]
        return jnp.clip(a, ACTION_LOW, ACTION_HIGH)


def init_gcbc_policy(cfg: TrainConfig, stats: dict | None = None, seed: int | None = None) -> GCBCPolicyNet:
    net = GCBCPolicyNet(cfg, rngs=nnx.Rngs(cfg.seed if seed is None else seed))
    if stats is not None:
        net.set_norm_stats(stats)
    return net


def validate_gcbc_config(cfg: TrainConfig) -> None:
    g = cfg.gcbc
    if g.goal_sampling not in GOAL_SAMPLING:
        raise ConfigError(f"--gcbc.goal-sampling {g.goal_sampling!r}: expected one of {', '.join(GOAL_SAMPLING)}")
    if not 0.0 < g.geom_p <= 1.0:
        raise ConfigError(f"--gcbc.geom-p must be in (0, 1], got {g.geom_p}")
    if not g.hidden or min(g.hidden) < 1:
        raise ConfigError(f"--gcbc.hidden must be one or more positive widths, got {g.hidden}")


def goal_mask(env_id: str | None, obs_dim: int) -> np.ndarray:
    """(obs_dim,) 1.0 on the family's declared goal features of a state observation, 0.0 elsewhere; all
    ones when the env is not a registered family (e.g. synthetic test data) or its state is not the obs."""
    from jepa_mpc_envs.registry import get_family

    try:
        family = get_family(env_id) if env_id else None
    except UserError:
        family = None
    mask = np.ones((obs_dim,), np.float32)
    if family is not None and family.state_dim == obs_dim:
        mask[:] = 0.0
        mask[family.goal] = 1.0
    return mask


def gcbc_stats(ds, cfg: TrainConfig) -> dict:
    """The statistic GCBC adds to the run's norm_stats.json: the goal mask of state runs."""
    if cfg.model.obs_key != "state":
        return {}
    return {"goal_mask": goal_mask(ds.meta.get("env_id"), cfg.model.obs_dim)}


# ---------------------------------------------------------------- hindsight relabelling


def goal_offsets(rng: np.random.Generator, remaining: np.ndarray, sampling: str, geom_p: float) -> np.ndarray:
    """k (B,) in 1..remaining (B,) (remaining >= 1): uniform, or Geometric(geom_p) truncated to that range
    (inverse CDF of the truncated law: P(k) proportional to (1 - p)^(k - 1) p)."""
    remaining = np.asarray(remaining, np.int64)
    u = rng.random(remaining.shape)
    if sampling == "uniform":
        k = 1 + np.floor(u * remaining).astype(np.int64)
    elif geom_p >= 1.0:
        k = np.ones_like(remaining)
    else:
        q = np.log1p(-geom_p)
        tail = -np.expm1(remaining * q)  # P(k <= remaining) of the untruncated law
        k = np.ceil(np.log1p(-u * tail) / q).astype(np.int64)
    return np.clip(k, 1, remaining)


class GoalSampler(WindowSampler):
    """Batches {obs (B, *obs), action (B, A), goal (B, *obs), goal_offset (B,)} of training episodes: a
    uniformly drawn (o_t, a_t) (WindowSampler's windows of 2: every transition equally likely) and its
    hindsight goal o_{t+k}, k from `goal_offsets`. A pure function of (seed, step), like WindowSampler."""

    def __init__(self, ds, cfg: TrainConfig, episodes=None):
        super().__init__(ds, cfg.batch_size, 2, seed=cfg.seed, keys=(cfg.model.obs_key, "action"),
                         prefetch=cfg.prefetch, episodes=episodes)
        self.obs_key = cfg.model.obs_key
        self.sampling, self.geom_p = cfg.gcbc.goal_sampling, cfg.gcbc.geom_p

    def relabel(self, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(episodes (B,), times t (B,), goal offsets k (B,)) of this step's examples: t + k <= episode length."""
        ep, t = self.indices(step)
        remaining = self.ds.episode_lengths[ep].astype(np.int64) - t
        k = goal_offsets(np.random.default_rng([self.seed, int(step), 1]), remaining, self.sampling, self.geom_p)
        return ep, t, k

    def batch(self, step: int) -> dict[str, np.ndarray]:
        ep, t, k = (x[self.rows] for x in self.relabel(step))
        obs = self.ds.arrays[self.obs_key]
        return {"obs": obs[ep, t], "action": self.ds.arrays["action"][ep, t], "goal": obs[ep, t + k],
                "goal_offset": k}


# ---------------------------------------------------------------- loss and held-out check


def gcbc_loss(model: GCBCPolicyNet, target_model, batch: dict, key: jax.Array, cfg: TrainConfig):
    """MSE on the normalised action block; metrics also give the MSE of always predicting the mean
    action (1.0 per dim on average: the floor a policy that ignores its inputs reaches)."""
    del target_model, key
    a = (batch["action"] - model.action_mean[...]) / model.action_std[...]
    pred = model(batch["obs"], batch["goal"])
    loss = jnp.mean((pred - a) ** 2)
    return loss, {"loss": loss, "action_mse": loss, "mean_action_mse": jnp.mean(a**2)}


def heldout_check(ds, train_ids, heldout_ids, cfg: TrainConfig) -> Callable:
    """(graphdef, state) -> {"heldout_action_mse", "heldout_mean_action_mse"} on a fixed relabelled batch of
    held-out episodes (of training episodes when none is held out)."""
    ids = heldout_ids if len(heldout_ids) else train_ids
    sampler = GoalSampler(ds, dataclasses.replace(cfg, batch_size=min(1024, 8 * cfg.batch_size)), ids)
    batch = {k: jnp.asarray(v) for k, v in sampler.batch(0).items()}

    @jax.jit
    def metrics(graphdef, state):
        _, m = gcbc_loss(nnx.merge(graphdef, state), None, batch, None, cfg)
        return {"heldout_action_mse": m["action_mse"], "heldout_mean_action_mse": m["mean_action_mse"]}

    return lambda graphdef, state: {k: float(v) for k, v in metrics(graphdef, state).items()}


# ---------------------------------------------------------------- a trained policy


@dataclasses.dataclass(frozen=True)
class LoadedPolicy:
    """A trained GCBC policy: act(obs, goal_obs) -> action block in [-1, 1] (pure, jit/vmap-able)."""

    config: TrainConfig
    graphdef: nnx.GraphDef
    state: nnx.State
    step: int
    run_dir: str

    @property
    def obs_key(self) -> str:
        return self.config.model.obs_key

    @property
    def action_dim(self) -> int:
        return self.config.model.action_dim

    def act_p(self, state: nnx.State, obs: jax.Array, goal_obs: jax.Array) -> jax.Array:
        return nnx.merge(self.graphdef, state).act(obs, goal_obs)

    @property
    def act(self) -> Callable[[jax.Array, jax.Array], jax.Array]:
        return lambda obs, goal_obs: self.act_p(self.state, obs, goal_obs)


def load_gcbc_policy(run_dir: str | Path, step: int | None = None) -> LoadedPolicy:
    """The latest (or given) checkpoint of a `--objective gcbc` run, verified (CheckpointError names it)."""
    from jepa_mpc.model.checkpoint import read_norm_stats, read_run_config, restore_params

    run_dir = Path(run_dir)
    cfg, _ = read_run_config(run_dir)
    if cfg.objective != "gcbc":
        raise ConfigError(f"{run_dir}: trained with --objective {cfg.objective}, not a GCBC policy")
    graphdef, state, step = restore_params(run_dir, init_gcbc_policy(cfg, read_norm_stats(run_dir), seed=0), step)
    return LoadedPolicy(cfg, graphdef, state, int(step), str(run_dir))


__all__ = ["GCBCPolicyNet", "GoalSampler", "LoadedPolicy", "gcbc_loss", "gcbc_stats", "goal_mask", "goal_offsets",
           "heldout_check", "init_gcbc_policy", "load_gcbc_policy", "validate_gcbc_config"]
