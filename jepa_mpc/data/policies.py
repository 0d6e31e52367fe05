"""Reward-free exploration policies: whole action arrays for N parallel episodes.

Every function is pure numpy, takes an explicit `np.random.Generator` and returns
float32 actions of shape (N, T, action_dim) inside [-1, 1].

- `uniform_actions`: i.i.d. uniform actions (white noise; a poor explorer, kept as a baseline).
- `ou_actions`: Ornstein-Uhlenbeck noise, temporally correlated, so the agent keeps
  pushing in one direction long enough to travel across a room and through the door.
"""

from __future__ import annotations

import numpy as np

from jepa_mpc.errors import ConfigError

POLICIES = ("ou", "uniform")

# OU defaults, chosen on the default TwoRoom layout (T=100 control steps of 0.05 s): a slow mean
# reversion (correlation time 1/theta = 2 s) with stationary std sigma / sqrt(2 theta) ~ 1.1 (thrust
# saturated about a third of the time) makes long straight runs. About 20 % of OU episodes change
# room vs. 2 % with uniform white noise (`jepa-mpc collect --policy ou|uniform`, 500 episodes); a
# larger sigma crosses slightly more often (~23 % at sigma 2.5) but makes actions nearly bang-bang.
OU_THETA = 0.5
OU_SIGMA = 1.1
OU_DT = 0.05


def uniform_actions(
    rng: np.random.Generator, num_episodes: int, episode_len: int, action_dim: int = 2
) -> np.ndarray:
    """I.i.d. uniform actions in [-1, 1]: (N, T, action_dim) float32."""
    return rng.uniform(-1.0, 1.0, size=(num_episodes, episode_len, action_dim)).astype(np.float32)


def ou_actions(
    rng: np.random.Generator,
    num_episodes: int,
    episode_len: int,
    action_dim: int = 2,
    theta: float = OU_THETA,
    sigma: float = OU_SIGMA,
    dt: float = OU_DT,
) -> np.ndarray:
    """Ornstein-Uhlenbeck actions clipped to [-1, 1]: (N, T, action_dim) float32.

    x_{t+1} = x_t - theta * x_t * dt + sigma * sqrt(dt) * eps_t  (Euler-Maruyama, mean 0);
    x_0 is drawn from the stationary distribution N(0, sigma^2 / (2 theta)). The unclipped
    process is integrated and only the emitted actions are clipped, so saturation does not
    bias the process toward the bounds.
    """
    if theta <= 0 or sigma < 0 or dt <= 0:
        raise ConfigError(f"OU parameters must have theta > 0, sigma >= 0, dt > 0 (got theta={theta}, sigma={sigma}, dt={dt})")
    decay = 1.0 - theta * dt
    shape = (num_episodes, action_dim)
    stationary_std = sigma / np.sqrt(2.0 * theta)
    noise = rng.standard_normal(size=(episode_len,) + shape) * (sigma * np.sqrt(dt))
    x = rng.standard_normal(size=shape) * stationary_std
    out = np.empty((episode_len,) + shape, dtype=np.float64)
    for t in range(episode_len):  # T iterations over (N, action_dim) arrays: vectorised over episodes
        out[t] = x
        x = decay * x + noise[t]
    return np.clip(out, -1.0, 1.0).astype(np.float32).transpose(1, 0, 2).copy()


def make_actions(
    policy: str,
    rng: np.random.Generator,
    num_episodes: int,
    episode_len: int,
    action_dim: int = 2,
    *,
    ou_theta: float = OU_THETA,
    ou_sigma: float = OU_SIGMA,
    ou_dt: float = OU_DT,
) -> np.ndarray:
    """Actions of the named exploration policy ("ou" | "uniform"): (N, T, action_dim) float32."""
    if policy == "uniform":
        return uniform_actions(rng, num_episodes, episode_len, action_dim)
    if policy == "ou":
        return ou_actions(rng, num_episodes, episode_len, action_dim, ou_theta, ou_sigma, ou_dt)
    raise ConfigError(f"unknown exploration policy {policy!r} (--policy); expected one of: {', '.join(POLICIES)}")
