"""Probes: small read-outs from the frozen latent to physical quantities (x, y, vx, vy, ...).

The world model is trained without hazards; safety constraints are stated in arena coordinates.
A probe bridges the two: ``probe(z) -> (x, y, vx, vy, ...)``, the family's *safety read-out* (its
position and velocity fields, then any further ``safety_fields`` it declares, e.g. Push-T's pusher),
fitted on the dataset's physical state with the encoder frozen. The family's ``safety_geometry``
maps a read-out to the points hazards apply to (Reacher: the fingertip); the probe's error on those
points (``point_rmse``, m) sets the planner's margin. Two kinds:

* ``"mlp"`` (default): a 2-hidden-layer GELU MLP (128 units) on standardised latents, trained
  with Adam on random minibatches (~5 s on 2 CPU cores for 45 k states);
* ``"linear"``: closed-form ridge regression.

Held-out error: RMSE per quantity on the held-out episodes of ``ds.split(held_out_fraction)``
(the world model's own split when it is the same fraction and seed). Measured on the TwoRoom
state model ``runs/blk`` (3,000 training steps, 64-d latent, 500 episodes): MLP probe x/y RMSE
~0.006 m, vx/vy ~0.011 / 0.016 m/s; linear ridge x/y ~0.032 m, vx/vy ~0.075 / 0.094 m/s.
The predictor adds more: probe(predicted latent) vs the true position is 0.036 m RMSE one block
(5 env steps) ahead and 0.054 m five blocks ahead (``meta["rollout_position_rmse"]``); the
planner's safety margin (``ControlConfig.safety_margin`` x probe RMSE + ``safety_buffer``) covers both.

A model that predicts one latent per block of k > 1 env steps also gets a *within-block read-out*
(``fit_within_block``): least squares from a block's start and end read-outs and its k actions to the
read-outs of its k - 1 inner steps, fitted on the dataset's true states, so the planner can check
constraints at every env step (``--control.within-block learned``) instead of on a straight line between
block ends, which misses a block that speeds up and brakes again. ``rollout_speed_rmse`` measures the
error of the speeds the planner then reads, the scale of ``--control.speed-margin``.

Saved with the checkpoint as ``<run>/probe.npz`` (numpy arrays only, no pickle; written to a temp
file then renamed) holding the weights and a JSON metadata string (kind, quantities, rmse, ...).

    jepa-mpc probe runs/blk            # train, save, print the held-out RMSE
    probe = load_or_train_probe(model) # used by `jepa-mpc eval` (trains on the fly if missing or stale)
    xyv = probe.apply(z)               # (..., D) -> (..., 4), pure and jittable
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tyro

from jepa_mpc.atomic import dumps_strict, write_npz_atomic
from jepa_mpc.config import check_finite
from jepa_mpc.errors import ConfigError
from jepa_mpc.run import PROBE_FILE, Run
from jepa_mpc.safety import interpolate_blocks
from jepa_mpc_envs.registry import ENV_IDS, get_family, is_known_env_id

QUANTITIES = ("x", "y", "vx", "vy")


@dataclasses.dataclass(frozen=True)
class ProbeConfig:
    kind: str = "mlp"
    """mlp (default, accurate) | linear (closed-form ridge)."""
    hidden: int = 128
    steps: int = 3000
    batch_size: int = 512
    lr: float = 3e-3
    ridge: float = 1e-3
    held_out_fraction: float = 0.1
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class Probe:
    """A fitted read-out. ``params``: list of (W, b) numpy pairs; ``mean``/``std`` standardise z."""

    params: tuple[tuple[np.ndarray, np.ndarray], ...]
    mean: np.ndarray
    std: np.ndarray
    rmse: dict[str, float]
    meta: dict
    within: tuple[np.ndarray, np.ndarray] | None = None
    """The within-block read-out (W, b) of a model that predicts blocks of k > 1 env steps (`fit_within_block`)."""

    @property
    def position_rmse(self) -> float:
        """Held-out position error: sqrt of the mean squared error over the two position slots (x and y)."""
        return float(np.sqrt(0.5 * (self.rmse["x"] ** 2 + self.rmse["y"] ** 2)))

    @property
    def point_rmse(self) -> float:
        """Held-out error (m) of the safety points its read-out gives (the family's `safety_geometry`), per
        coordinate; the position RMSE where the position is the one point (TwoRoom) or none was measured."""
        value = self.meta.get("point_rmse")
        return float(value) if value is not None else self.position_rmse

    def speed_rmse(self, within_block: str = "line") -> float | None:
        """Held-out RMSE of the speeds the planner reads one block ahead, at every env step of the block (the
        steps between its ends read as ``within_block`` says: line | learned); None: not measured."""
        value = (self.meta.get("rollout_speed_rmse") or {}).get(within_block)
        return float(value[0]) if isinstance(value, list) and value and value[0] is not None else None

    @property
    def within_block(self) -> int:
        """Env steps per block of its within-block read-out (0: it has none)."""
        info = self.meta.get("within_block")
        return int(info["block"]) if self.within is not None and isinstance(info, dict) else 0

    def arrays(self) -> dict[str, jax.Array]:
        """The probe as a pytree of jnp arrays (pass it through jit as an argument)."""
        out = {
            "mean": jnp.asarray(self.mean),
            "std": jnp.asarray(self.std),
            "layers": [(jnp.asarray(w), jnp.asarray(b)) for w, b in self.params],
        }
        if self.within is not None:
            out["within"] = tuple(jnp.asarray(x) for x in self.within)
        return out

    def apply(self, z: jax.Array) -> jax.Array:
        return apply_probe(self.arrays(), z)


def apply_probe(p: dict, z: jax.Array) -> jax.Array:
    """(..., D) latents -> (..., R) read-outs (x, y, vx, vy, ...). Pure: ``p`` is ``Probe.arrays()``."""
    h = (z - p["mean"]) / p["std"]
    layers = p["layers"]
    for w, b in layers[:-1]:
        h = jax.nn.gelu(h @ w + b)
    w, b = layers[-1]
    return h @ w + b


def apply_within_block(within: tuple[jax.Array, jax.Array], r0: jax.Array, r: jax.Array, actions: jax.Array) -> jax.Array:
    """Read-outs at every env step of each predicted block: (H, k, R), the last of each block its end.

    r0 (R,) is the current read-out, r (H, R) the predicted block ends, actions (H, k * A) each block's
    actions; ``within`` (W, b) maps a block's (start read-out, end read-out, actions) to the read-outs of
    its k - 1 inner steps (`fit_within_block`). Unlike a straight line between the ends, it sees a block
    that speeds up and brakes again before its end.
    """
    w, b = within
    prev = jnp.concatenate([r0[None], r[:-1]], axis=0)
    inner = jnp.concatenate([prev, r, actions], axis=-1) @ w + b
    inner = inner.reshape(r.shape[:1] + (-1, r.shape[-1]))
    return jnp.concatenate([inner, r[:, None]], axis=1)


def block_readouts(p: dict, r0: jax.Array, r: jax.Array, actions: jax.Array, within_block: str = "line",
                   points: int = 4) -> jax.Array:
    """(H, K, R) read-outs where constraints are checked inside each predicted block: ``line``, ``points``
    on the straight line between the block's ends (`jepa_mpc.safety.interpolate_blocks`); ``learned``,
    every env step by the probe's within-block read-out (``p["within"]``, `apply_within_block`)."""
    if within_block == "learned":
        return apply_within_block(p["within"], r0, r, actions)
    return interpolate_blocks(r0, r, points)


def predicted_readouts(model: Any, p: dict, obs: np.ndarray, actions: np.ndarray,
                       past_actions: np.ndarray | None = None) -> tuple[jax.Array, jax.Array]:
    """Read-outs (N, R) of observations obs (N, ...) and (N, H, R) of the latents the model predicts from
    them under action blocks actions (N, H, k A). ``p`` is ``Probe.arrays()``. A model with a latent
    history of L > 1 takes obs (N, L, ...), the last the current one, and the L - 1 action blocks between
    them, past_actions (N, L - 1, k A); the read-outs (N, R) are of the current observation."""
    if past_actions is None:
        obs = np.asarray(obs)[:, None]
        past_actions = np.zeros((len(obs), 0, np.shape(actions)[-1]), np.float32)

    @jax.jit
    def predict(state, o_hist, a, a_past):
        z_hist = model.encode_p(state, o_hist)  # (N, L, D)
        z = jax.vmap(lambda zh, a, ap: model.rollout_p(state, zh, a, ap))(z_hist, a, a_past)
        return apply_probe(p, z_hist[:, -1]), apply_probe(p, z)

    return predict(model.state, jnp.asarray(obs), jnp.asarray(actions), jnp.asarray(past_actions))


def history_windows(obs: np.ndarray, actions: np.ndarray, starts: np.ndarray, history: int, blocks: int,
                    block: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Planning contexts from episodes obs (E, T+1, ...), actions (E, T, A) whose steps are `block` steps of
    a model step (1: the episodes are already in model steps): for each start step s (each >= (L - 1) x
    block), the observations of the L model steps ending at s (E*S, L, ...), the L - 1 action blocks
    between them (E*S, L-1, block A) and the `blocks` action blocks that follow (E*S, blocks, block A)."""
    lag = block * np.arange(1 - history, 1)
    within = np.arange(block)
    o = obs[:, starts[:, None] + lag]  # (E, S, L, ...)
    past = actions[:, starts[:, None, None] + lag[:-1, None] + within]  # (E, S, L-1, block, A)
    ahead = actions[:, starts[:, None, None] + block * np.arange(blocks)[:, None] + within]  # (E, S, blocks, block, A)
    flat = lambda x: x.reshape((x.shape[0] * x.shape[1],) + x.shape[2:])  # explicit: L - 1 may be 0
    merge = lambda x: x.reshape(x.shape[:-2] + (block * x.shape[-1],))
    return flat(o), flat(merge(past)), flat(merge(ahead))


# ------------------------------------------------------------------------------ fitting


def within_block_windows(readouts: np.ndarray, actions: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Every window of ``block`` env steps of episodes readouts (E, T+1, R), actions (E, T, A):
    inputs (E, W, 2R + kA) (start read-out, end read-out, the k actions) and the k - 1 inner read-outs
    (E, W, (k - 1) R) as targets; W = T - k + 1 windows start at every step."""
    t = actions.shape[1]
    starts = np.arange(t - block + 1)
    steps = starts[:, None] + np.arange(block + 1)[None]  # (W, k + 1) state indices of each window
    r = readouts[:, steps]  # (E, W, k + 1, R)
    a = actions[:, steps[:, :-1]].reshape(actions.shape[0], len(starts), -1)  # (E, W, k A)
    x = np.concatenate([r[:, :, 0], r[:, :, -1], a], axis=-1)
    return x, r[:, :, 1:-1].reshape(r.shape[:2] + (-1,))


def fit_within_block(readouts: np.ndarray, actions: np.ndarray, block: int, held: np.ndarray,
                     names: Sequence[str], ridge: float = 1e-6) -> tuple[tuple[np.ndarray, np.ndarray], dict]:
    """A within-block read-out for a model that predicts one step per ``block`` env steps.

    Least squares (ridge ``ridge`` x the features' scale) from a block's start and end read-outs and its
    actions to the read-outs of its inner steps, fitted on the dataset's true states of the episodes not in
    ``held`` (E,) bool. Returns (W, b) and its held-out RMSE per read-out slot (``names``) beside a
    straight line's between the ends (what the planner checks without it)."""
    x, y = within_block_windows(np.asarray(readouts, np.float64), np.asarray(actions, np.float64), block)
    train, test = ~np.asarray(held, bool), np.asarray(held, bool)
    if not train.any() or not test.any():
        raise ConfigError("probe: the within-block read-out needs training and held-out episodes")
    xt, yt = x[train].reshape(-1, x.shape[-1]), y[train].reshape(-1, y.shape[-1])
    a = np.concatenate([xt, np.ones((len(xt), 1))], axis=1)
    gram = a.T @ a
    reg = ridge * np.trace(gram) / len(gram) * np.eye(len(gram))
    reg[-1, -1] = 0.0
    coef = np.linalg.solve(gram + reg, a.T @ yt)
    w, b = coef[:-1].astype(np.float32), coef[-1].astype(np.float32)
    r = readouts.shape[-1]
    xh = x[test].reshape(-1, x.shape[-1])
    pred = (xh @ w + b).reshape(-1, block - 1, r)
    true = y[test].reshape(-1, block - 1, r)
    s = (np.arange(1, block) / block)[None, :, None]
    line = xh[:, None, :r] + s * (xh[:, None, r : 2 * r] - xh[:, None, :r])
    rmse = lambda p: {n: float(e) for n, e in zip(names, np.sqrt(np.mean(np.square(p - true), axis=(0, 1))))}  # noqa: E731
    return (w, b), {"block": int(block), "rmse": rmse(pred), "line_rmse": rmse(line)}


def _fit_linear(z: np.ndarray, y: np.ndarray, mean, std, cfg: ProbeConfig):
    x = (z - mean) / std
    a = np.concatenate([x, np.ones((len(x), 1), np.float32)], axis=1).astype(np.float64)
    reg = cfg.ridge * np.eye(a.shape[1])
    reg[-1, -1] = 0.0
    w = np.linalg.solve(a.T @ a + reg, a.T @ y.astype(np.float64))
    return ((w[:-1].astype(np.float32), w[-1].astype(np.float32)),)


def _fit_mlp(z: np.ndarray, y: np.ndarray, mean, std, cfg: ProbeConfig):
    sizes = [z.shape[1], cfg.hidden, cfg.hidden, y.shape[1]]
    key = jax.random.key(cfg.seed)
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        key, sub = jax.random.split(key)
        layers.append((jax.random.normal(sub, (a, b), jnp.float32) / np.sqrt(a), jnp.zeros((b,), jnp.float32)))
    p = {"mean": jnp.asarray(mean), "std": jnp.asarray(std), "layers": layers}
    opt = optax.adam(optax.cosine_decay_schedule(cfg.lr, cfg.steps))
    state = opt.init(p["layers"])

    @jax.jit
    def step(layers, state, zb, yb):
        loss_fn = lambda ls: jnp.mean(jnp.square(apply_probe({**p, "layers": ls}, zb) - yb))  # noqa: E731
        loss, grads = jax.value_and_grad(loss_fn)(layers)
        updates, state = opt.update(grads, state, layers)
        return optax.apply_updates(layers, updates), state, loss

    rng = np.random.default_rng(cfg.seed)
    layers = p["layers"]
    for _ in range(cfg.steps):
        idx = rng.integers(0, len(z), cfg.batch_size)
        layers, state, _ = step(layers, state, z[idx], y[idx])
    return tuple((np.asarray(w), np.asarray(b)) for w, b in layers)


def validate_probe_config(cfg: ProbeConfig) -> None:
    """ConfigError (one line, naming the flag) for NaN/inf or out-of-range probe settings."""
    check_finite(cfg, "--probe.")
    if cfg.kind not in ("mlp", "linear"):
        raise ConfigError(f"--probe.kind must be 'mlp' or 'linear', got {cfg.kind!r}")
    for name in ("hidden", "steps", "batch_size", "lr"):
        if getattr(cfg, name) <= 0:
            raise ConfigError(f"--probe.{name.replace('_', '-')} must be > 0, got {getattr(cfg, name)}")
    if cfg.ridge < 0:
        raise ConfigError(f"--probe.ridge must be >= 0, got {cfg.ridge}")
    if not 0.0 < cfg.held_out_fraction < 1.0:
        raise ConfigError(f"--probe.held-out-fraction must be in (0, 1), got {cfg.held_out_fraction}")


def slot_names(width: int, fields: Sequence[str] = ()) -> tuple[str, ...]:
    """Names of a read-out's slots: x, y, vx, vy (the family's position and velocity), then the names of
    any further fields it reads (`fields`, the read-out's state-field names)."""
    return QUANTITIES[:width] + tuple(fields[len(QUANTITIES):width])


def fit_probe(z_train: np.ndarray, y_train: np.ndarray, z_test: np.ndarray, y_test: np.ndarray,
              cfg: ProbeConfig = ProbeConfig(), meta: dict | None = None,
              points: Callable[[np.ndarray], np.ndarray] | None = None) -> Probe:
    """Fit a probe on (z_train, y_train (N, R)); report its RMSE per read-out slot on (z_test, y_test)
    (slots beyond x, y, vx, vy are named by ``meta["state_fields"]``) and, given ``points`` (read-outs ->
    safety points, `StateLayout.points`), the held-out RMSE of those points as ``meta["point_rmse"]``."""
    if cfg.kind not in ("mlp", "linear"):
        raise ConfigError(f"probe kind must be 'mlp' or 'linear', got {cfg.kind!r}")
    z_train = np.asarray(z_train, np.float32)
    y_train = np.asarray(y_train, np.float32)
    if len(z_train) == 0 or len(z_test) == 0:
        raise ConfigError("probe: empty training or held-out set")
    mean = z_train.mean(0)
    std = z_train.std(0) + 1e-6
    fit = _fit_mlp if cfg.kind == "mlp" else _fit_linear
    params = fit(z_train, y_train, mean, std, cfg)
    probe = Probe(params, mean, std, {}, dict(meta or {}, config=dataclasses.asdict(cfg)))
    pred = np.asarray(jax.jit(apply_probe)(probe.arrays(), jnp.asarray(z_test, jnp.float32)))
    err = np.sqrt(np.mean(np.square(pred - np.asarray(y_test, np.float32)), axis=0))
    rmse = {q: float(e) for q, e in zip(slot_names(len(err), (meta or {}).get("state_fields", ())), err)}
    if not all(np.isfinite(list(rmse.values()))):
        raise ConfigError(f"probe: non-finite held-out error {rmse} (diverged; try --kind linear)")
    if points is not None:
        point_err = points(pred.astype(np.float64)) - points(np.asarray(y_test, np.float64))
        probe = dataclasses.replace(probe, meta={**probe.meta, "point_rmse": float(np.sqrt(np.mean(np.square(point_err))))})
    return dataclasses.replace(probe, rmse=rmse)


def encode_states(model: Any, states: np.ndarray, batch: int = 8192) -> np.ndarray:
    """Latents (N, D) of physical states (N, 4) with a state-observation model."""
    enc = jax.jit(model.encode_p)
    return np.concatenate([np.asarray(enc(model.state, jnp.asarray(states[i : i + batch])))
                           for i in range(0, len(states), batch)])


@dataclasses.dataclass(frozen=True)
class StateLayout:
    """Which fields of a dataset's states the probe reads: its family's safety read-out (its declared
    position and velocity, then any further `safety_fields`)."""

    position: slice
    velocity: slice
    names: tuple[str, ...]
    """The state-field names of the read-out slots (x, y, vx, vy, ...) (Reacher: q1, q2, dq1, dq2)."""
    fields: tuple[int, ...] = (0, 1, 2, 3)
    """Their state-field indices."""
    family: Any = None
    """The dataset's TaskFamily (None: an env outside the registry)."""
    layout: Any = None
    """The dataset's layout (for the family's safety geometry), None: the family's default."""

    def targets(self, states: np.ndarray) -> np.ndarray:
        """(..., state_dim) -> (..., R): the probe's read-out."""
        return np.asarray(states)[..., list(self.fields)]

    def points(self, readout: np.ndarray) -> np.ndarray:
        """(..., R) read-outs -> (..., P, 2) the family's safety points (the position without a family)."""
        if self.family is None:
            return np.asarray(readout)[..., None, 0:2]
        return np.asarray(self.family.safety_geometry(np.asarray(readout, np.float64), self.layout, np)[0])


def state_layout(meta: dict | None) -> StateLayout:
    """The StateLayout of a dataset from its meta: its family's declarations (`env_id`, default TwoRoom);
    a dataset from an env outside the registry (synthetic data) reads as (x, y, vx, vy) in its first four fields."""
    meta = meta or {}
    env_id = meta.get("env_id", ENV_IDS[0])
    if not is_known_env_id(env_id):
        return StateLayout(slice(0, 2), slice(2, 4), tuple(meta.get("state_fields", QUANTITIES))[:4])
    family = get_family(env_id)
    layout = family.default_layout()
    if meta.get("layout"):
        try:
            layout = family.layout_from_dict(meta["layout"])
        except (ValueError, TypeError):
            pass  # the dataset's own checks report a bad layout; the geometry falls back to the default
    fields = family.safety_indices
    return StateLayout(family.position, family.velocity, tuple(family.state_fields[i] for i in fields), fields,
                       family, layout)


def train_probe(model: Any, ds: Any, cfg: ProbeConfig = ProbeConfig()) -> Probe:
    """Fit a probe for a loaded world model on a dataset's observations -> physical state."""
    key = model.obs_key
    if key not in ds.arrays:
        raise ConfigError(f"probe: dataset has no '{key}' observations (keys: {', '.join(ds.keys)})")
    train_idx, held_idx = ds.split(cfg.held_out_fraction, seed=0)
    layout = state_layout(getattr(ds, "meta", None))

    def flat(idx):
        obs = ds.arrays[key][idx]
        state = ds.arrays["state"][idx]
        return obs.reshape((-1,) + obs.shape[2:]), layout.targets(state.reshape(-1, state.shape[-1]))

    (o_tr, y_tr), (o_te, y_te) = flat(train_idx), flat(held_idx)
    z_tr, z_te = encode_states(model, o_tr), encode_states(model, o_te)
    meta = {"run": str(getattr(model, "run_dir", "")), "step": int(getattr(model, "step", -1)),
            "train_states": int(len(z_tr)), "held_out_states": int(len(z_te)),
            "held_out_episodes": int(len(held_idx)),
            # what the read-out slots (x, y, vx, vy, ...) are in this env (Reacher: q1, q2, dq1, dq2)
            "state_fields": list(layout.names)}
    probe = fit_probe(z_tr, y_tr, z_te, y_te, cfg, meta, points=layout.points)
    block = int(getattr(model, "action_block", 1))
    if block > 1 and np.all(ds.episode_lengths == ds.episode_len) and ds.episode_len >= block:
        held = np.zeros(ds.num_episodes, bool)
        held[held_idx] = True
        within, info = fit_within_block(layout.targets(ds.arrays["state"]), ds.arrays["action"], block, held,
                                        slot_names(len(layout.fields), layout.names))
        probe = dataclasses.replace(probe, within=within, meta={**probe.meta, "within_block": info})
    elif block > 1:  # episodes of unequal length: none (recorded, so loading does not refit it again)
        probe = dataclasses.replace(probe, meta={**probe.meta, "within_block": False})
    try:
        roll = rollout_position_rmse(model, probe, ds, cfg.held_out_fraction)
        roll = [v if np.isfinite(v) else None for v in roll]  # metadata is strict JSON
    except Exception as err:  # noqa: BLE001  (a diagnostic only: never block the probe itself)
        roll = {"error": f"{type(err).__name__}: {err}"[:200]}
    try:
        speed = rollout_speed_rmse(model, probe, ds, cfg.held_out_fraction)
    except Exception as err:  # noqa: BLE001  (as above)
        speed = {"error": f"{type(err).__name__}: {err}"[:200]}
    return dataclasses.replace(probe, meta={**probe.meta, "rollout_position_rmse": roll, "rollout_speed_rmse": speed})


def rollout_speed_rmse(model: Any, probe: Probe, ds: Any, held_out_fraction: float = 0.1,
                       blocks: int = 5, max_windows: int = 1024) -> dict[str, list[float]]:
    """RMSE of the family's speeds (TwoRoom: m/s; Reacher: rad/s per joint) the planner reads at every env
    step of a predicted block, 1..`blocks` model steps ahead, on held-out episodes: probe(predicted latent)
    at the block ends, the steps between read by the within-block read-out ("learned", when the probe has
    one) and by a straight line between the ends ("line"). The scale of ``--control.speed-margin``.
    """
    block = int(getattr(model, "action_block", 1))
    layout = state_layout(getattr(ds, "meta", None))
    if layout.family is None:
        return {}
    steps, history = blocks * block, int(getattr(model, "history", 1))
    _, held = ds.split(held_out_fraction, seed=0)
    length = int(np.min(ds.episode_lengths[held]))
    first = (history - 1) * block  # a latent history needs the frames of the blocks before the start
    starts = np.arange(first, length - steps + 1, steps)
    if len(starts) == 0:
        return {}
    obs, past, actions = (x[:max_windows] for x in history_windows(
        ds.arrays[model.obs_key][held], ds.arrays["action"][held], starts, history, blocks, block))
    idx = starts[:, None] + np.arange(steps)[None]
    states = ds.arrays["state"][held][:, idx + 1].reshape(-1, steps, ds.arrays["state"].shape[-1])[:max_windows]
    true = layout.family.safety_geometry(layout.targets(states).astype(np.float64), layout.layout, np)[1]
    p = probe.arrays()
    r0, r = predicted_readouts(model, p, obs, actions, past)
    kinds = ("line", "learned") if probe.within_block == block else ("line",)
    result = {}
    for name in kinds:
        step = jax.vmap(functools.partial(block_readouts, within_block=name, points=block), in_axes=(None, 0, 0, 0))
        readouts = np.asarray(step(p, r0, r, jnp.asarray(actions)), np.float64)
        speeds = layout.family.safety_geometry(readouts, layout.layout, np)[1]
        err = np.square(speeds.reshape(true.shape) - true).reshape(len(true), blocks, -1)
        result[name] = [float(v) for v in np.sqrt(err.mean(axis=(0, 2)))]
    return result


def rollout_position_rmse(model: Any, probe: Probe, ds: Any, held_out_fraction: float = 0.1,
                          blocks: int = 5, max_windows: int = 1024, start: int | None = None) -> list[float]:
    """Safety-point RMSE (m; TwoRoom: the position) of probe(predicted latent) vs the true points, 1..`blocks`
    model steps ahead (Euclidean per point, averaged over the family's safety points).

    On held-out episodes, from block `start` of each (None: the first with a whole latent history behind
    it, block L - 1): it includes the predictor's error, which the probe's own RMSE does not (the
    planner's safety margin must cover both).
    """
    view = ds.action_blocks(model.action_block) if getattr(model, "action_block", 1) > 1 else ds
    _, held = view.split(held_out_fraction, seed=0)
    held = held[:max_windows]
    layout = state_layout(getattr(ds, "meta", None))
    history = int(getattr(model, "history", 1))
    start = history - 1 if start is None else start
    if start < history - 1:
        raise ConfigError(f"rollout_position_rmse: start block {start} has no history of {history} latents behind it")
    blocks = min(blocks, view.arrays["action"].shape[1] - start)  # short episodes: as many blocks as they hold
    obs, past, actions = history_windows(view.arrays[model.obs_key][held], view.arrays["action"][held],
                                         np.array([start]), history, blocks)
    true = layout.points(layout.targets(view.arrays["state"][held][:, start + 1 : start + 1 + blocks]))
    _, r = predicted_readouts(model, probe.arrays(), obs, actions, past)
    pred = layout.points(np.asarray(r, np.float64))
    return [float(v) for v in np.sqrt(np.mean(np.sum(np.square(pred - true), -1), axis=(0, 2)))]


# ------------------------------------------------------------------------------ file I/O


def save_probe(run_dir: str | Path, probe: Probe) -> Path:
    """Write ``<run_dir>/probe.npz`` atomically (arrays + JSON metadata, no pickle)."""
    path = Path(run_dir) / PROBE_FILE
    arrays = {"mean": probe.mean, "std": probe.std}
    for i, (w, b) in enumerate(probe.params):
        arrays[f"w{i}"], arrays[f"b{i}"] = w, b
    if probe.within is not None:
        arrays["within_w"], arrays["within_b"] = probe.within
    meta = dict(probe.meta, rmse=probe.rmse, layers=len(probe.params), quantities=list(probe.rmse))
    arrays["meta_json"] = np.array(dumps_strict(meta))
    write_npz_atomic(path, arrays)
    return path


def load_probe(run_dir: str | Path) -> Probe | None:
    """The saved probe of a run, or None if there is none; ConfigError if it is unreadable."""
    path = Path(run_dir) / PROBE_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta_json"]))
            params = tuple((f[f"w{i}"], f[f"b{i}"]) for i in range(int(meta["layers"])))
            within = (f["within_w"], f["within_b"]) if "within_w" in f.files else None
            probe = Probe(params, f["mean"], f["std"], {k: float(v) for k, v in meta["rmse"].items()}, meta, within)
    except Exception as err:  # noqa: BLE001  (truncated zip, garbled arrays or metadata: all one answer)
        detail = " ".join(f"{type(err).__name__}: {err}".split())[:160]
        raise ConfigError(f"{path}: unreadable probe ({detail}); rerun `jepa-mpc probe`") from None
    arrays = [probe.mean, probe.std, *(x for layer in probe.params for x in layer), *(probe.within or ())]
    if not all(np.isfinite(np.asarray(a, np.float64)).all() for a in arrays):
        raise ConfigError(f"{path}: probe holds non-finite (NaN/inf) weights; rerun `jepa-mpc probe`")
    return probe


def probe_fields(probe: Probe) -> tuple[str, ...]:
    """The state fields a probe's outputs were fitted to (probes saved before they were recorded: x, y, vx, vy)."""
    return tuple(probe.meta.get("state_fields") or QUANTITIES)


def load_run_probe(run: Run, refit: bool = False) -> Probe | None:
    """A run's saved probe or None; ConfigError if it is unreadable or reads latents of another size.
    A probe fitted to other state fields than the family's declared position and velocity (one saved
    before they were declared) is an error too, or None with ``refit`` (the caller fits a new one)."""
    probe = load_probe(run.path)
    latent = run.config.model.latent_dim
    if probe is not None and np.asarray(probe.mean).shape != (latent,):
        raise ConfigError(f"{run.probe_path}: probe reads {np.asarray(probe.mean).shape[0]}-d latents, the run's "
                          f"model makes {latent}-d ones; rerun `jepa-mpc probe {run.path}`")
    layout = state_layout(run.dataset_meta)
    declared = layout.names
    if probe is not None and probe_fields(probe) != declared:
        if refit:
            return None
        raise ConfigError(f"{run.probe_path}: probe reads state fields ({', '.join(probe_fields(probe))}), the "
                          f"run's env declares ({', '.join(declared)}); rerun `jepa-mpc probe {run.path}`")
    if probe is not None and "point_rmse" not in probe.meta and _own_geometry(layout.family):
        if refit:
            return None
        raise ConfigError(f"{run.probe_path}: probe has no safety-point error (fitted before its env's safety "
                          f"geometry); rerun `jepa-mpc probe {run.path}`")
    return probe


def _own_geometry(family: Any) -> bool:
    """Whether a family's safety points are other than its position (its own `safety_geometry`)."""
    from jepa_mpc_envs.family import TaskFamily

    return family is not None and type(family).safety_geometry is not TaskFamily.safety_geometry


def load_or_train_probe(model: Any, ds: Any = None, cfg: ProbeConfig = ProbeConfig(), save: bool = True) -> Probe:
    """The run's saved probe if its checkpoint step and state fields match, else train one (and save it)."""
    run = Run.open(model.run_dir)
    probe = load_run_probe(run, refit=True)
    block = int(getattr(model, "action_block", 1))
    if probe is not None and int(probe.meta.get("step", -1)) == int(model.step) and \
            (block == 1 or probe.within_block == block or probe.meta.get("within_block") is False):
        return probe
    if ds is None:
        ds = run.dataset()
    probe = train_probe(model, ds, cfg)
    if save:
        save_probe(model.run_dir, probe)
    return probe


# ------------------------------------------------------------------------------ CLI verb


@dataclasses.dataclass(frozen=True)
class ProbeArgs:
    """Fit latent -> (x, y, vx, vy, ...) read-out probes for a trained run and save them as <run>/probe.npz."""

    run: tyro.conf.Positional[str]
    """Training run directory (from `jepa-mpc train`)."""
    data: str = ""
    """Dataset directory (default: the run's own dataset)."""
    probe: ProbeConfig = ProbeConfig()


def probe_main(args: ProbeArgs) -> None:
    validate_probe_config(args.probe)
    run = Run.open(args.run)
    model = run.load_world_model()
    probe = train_probe(model, run.dataset(args.data), args.probe)
    path = save_probe(args.run, probe)
    names = probe.meta.get("state_fields") or list(QUANTITIES)
    print(f"probe ({args.probe.kind}) for {args.run} step {model.step}: held-out RMSE "
          + ", ".join(f"{name} {probe.rmse[q]:.4f}" for q, name in zip(probe.rmse, names))
          + f"; safety points {probe.point_rmse:.4f} m ({probe.meta['held_out_episodes']} held-out episodes)")
    roll = probe.meta.get("rollout_position_rmse")
    if isinstance(roll, list):
        print("safety-point RMSE of probe(predicted latent), 1.." + str(len(roll)) + " model steps ahead: "
              + ", ".join(f"{v:.4f}" for v in roll) + " m")
    speed = probe.meta.get("rollout_speed_rmse") or {}
    if isinstance(speed.get("line"), list):
        print("speed RMSE the planner reads at each env step, 1.." + str(len(speed["line"])) + " model steps ahead: "
              + "; ".join(f"{how} " + ", ".join(f"{v:.4f}" for v in speed[how]) for how in ("learned", "line") if how in speed))
    within = probe.meta.get("within_block")
    if isinstance(within, dict):
        print(f"within-block read-out ({within['block']} env steps per block), held-out RMSE of the inner steps: "
              + ", ".join(f"{name} {within['rmse'][q]:.4f} (straight line {within['line_rmse'][q]:.4f})"
                          for q, name in zip(within["rmse"], names)))
    print(f"saved: {path}")


__all__ = ["Probe", "ProbeConfig", "ProbeArgs", "apply_probe", "apply_within_block", "block_readouts", "fit_probe",
           "fit_within_block", "predicted_readouts", "train_probe", "save_probe", "validate_probe_config", "load_run_probe", "slot_names", "state_layout", "StateLayout",
           "load_probe", "load_or_train_probe", "probe_fields", "probe_main", "PROBE_FILE", "QUANTITIES"]
