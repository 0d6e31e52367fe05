"""Small in-memory fake point-mass datasets (real `Dataset` objects), for tests.

Episodes are a damped point mass in [-1, 1]^2 driven by Ornstein-Uhlenbeck actions (walls are
ignored, positions are clipped at the arena edge). Pixels, if asked for, draw the agent as a bright
square on a dark background. Same batch dict and `stats()` keys as the real dataset.
"""

from __future__ import annotations

import numpy as np


def _simulate(rng: np.random.Generator, steps: int, dt: float = 0.05) -> dict[str, np.ndarray]:
    state = np.zeros((steps + 1, 4), np.float32)
    state[0, :2] = rng.uniform(-0.9, 0.9, 2)
    actions = np.zeros((steps, 2), np.float32)
    a = rng.uniform(-1, 1, 2)
    for t in range(steps):
        a = np.clip(a + 0.3 * (-a) * 1.0 + 0.5 * rng.normal(size=2), -1, 1)
        actions[t] = a
        pos, vel = state[t, :2], state[t, 2:]
        vel = vel + dt * (4.0 * a - 2.0 * vel)
        pos = pos + dt * vel
        hit = np.abs(pos) > 0.95
        vel = np.where(hit, 0.0, vel)
        state[t + 1, :2], state[t + 1, 2:] = np.clip(pos, -0.95, 0.95), vel
    return {"state": state, "action": actions}


def render_states(states: np.ndarray, size: int = 64) -> np.ndarray:
    """(N, 4) states -> (N, size, size, 3) uint8 frames with the agent as a 5x5 square."""
    n = states.shape[0]
    img = np.full((n, size, size, 3), 30, np.uint8)
    px = np.clip(((states[:, :2] + 1) / 2 * (size - 1)).round().astype(int), 2, size - 3)
    for i in range(n):
        c, r = px[i, 0], size - 1 - px[i, 1]
        r = min(max(r, 2), size - 3)
        img[i, r - 2 : r + 3, c - 2 : c + 3] = (230, 200, 40)
    return img


def make_fake_dataset(num_episodes: int = 40, steps: int = 100, seed: int = 0, pixels: bool = False):
    """A real in-memory `jepa_mpc.data.store.Dataset` of fake point-mass episodes."""
    from jepa_mpc.data.store import Dataset

    rng = np.random.default_rng(seed)
    eps = [_simulate(rng, steps) for _ in range(num_episodes)]
    arrays = {
        "state": np.stack([e["state"] for e in eps]),
        "action": np.stack([e["action"] for e in eps]),
    }
    if pixels:
        arrays["pixels"] = np.stack([render_states(e["state"]) for e in eps])
    meta = {"env_id": "fake-pointmass", "obs_types": ["state", "pixels"] if pixels else ["state"]}
    return Dataset(arrays, meta)


def save_fake_dataset(path, num_episodes: int = 40, steps: int = 100, seed: int = 0, pixels: bool = False):
    """Write a fake dataset directory readable by `Dataset.open` (one chunk). Returns the Dataset."""
    from pathlib import Path

    from jepa_mpc.data.store import write_chunk, write_meta

    ds = make_fake_dataset(num_episodes, steps, seed, pixels)
    Path(path).mkdir(parents=True, exist_ok=True)
    arrays = dict(ds.arrays)
    arrays["episode_length"] = ds.episode_lengths.astype(np.int32)
    arrays["episode_index"] = np.arange(ds.num_episodes, dtype=np.int64)
    write_chunk(path, 0, arrays)
    write_meta(path, {**ds.meta, "num_chunks": 1, "num_episodes": ds.num_episodes})
    return ds
