"""Collapse diagnostics of a JEPA world model, logged at every evaluation and by `jepa-mpc inspect`.

- latent std per dimension (min / mean over dims): ~0 means collapsed dimensions;
- effective rank of a latent batch: exp(entropy of normalised singular values of the centred batch),
  between 1 (rank one / collapsed) and D (isotropic); it is scale-free, so also `active_dims`: the
  principal directions with std > 0.05 (catches a latent shrinking to a point);
- SIGReg statistic (Epps-Pulley vs isotropic Gaussian; O(1) when Gaussian, O(N) when collapsed);
- one-step and k-step prediction error relative to the copy-last baseline z_{t+1} = z_t (< 1 means the
  predictor beats doing nothing);
- R^2 of a ridge read-out latent -> physical state, fitted on training episodes, scored on held-out ones;
- with `--walls SUITE` (TwoRoom families), the wall diagnostic of `jepa_mpc/walls.py`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import tyro
from flax import nnx

from jepa_mpc.regularizers import sigreg
from jepa_mpc.errors import ConfigError
from jepa_mpc.probe import state_layout
from jepa_mpc.walls import WallProbeConfig, data_wall_stats, format_wall_report, suite_rooms, validate_wall_config, wall_diagnostic


def latent_std(z: np.ndarray) -> tuple[float, float]:
    """(min, mean) over dimensions of the per-dimension std of z (N, D)."""
    std = np.asarray(z, np.float64).std(axis=0)
    return float(std.min()), float(std.mean())


def effective_rank(z: np.ndarray) -> float:
    """exp(entropy) of the normalised singular values of the centred batch z (N, D)."""
    z = np.asarray(z, np.float64)
    s = np.linalg.svd(z - z.mean(0), compute_uv=False)
    if s.sum() <= 1e-12:
        return 1.0
    p = s / s.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def active_dims(z: np.ndarray, min_std: float = 0.05) -> int:
    """Principal directions of z (N, D) whose std exceeds `min_std` (absolute scale: a latent that
    shrinks towards a point loses active dims even when its effective rank, which is scale-free, stays)."""
    z = np.asarray(z, np.float64)
    s = np.linalg.svd(z - z.mean(0), compute_uv=False) / np.sqrt(len(z))
    return int((s > min_std).sum())


def ridge_r2(
    z_fit: np.ndarray, y_fit: np.ndarray, z_test: np.ndarray, y_test: np.ndarray, alpha: float = 1e-3
) -> np.ndarray:
    """Per-target R^2 on (z_test, y_test) of a ridge regression y ~ z fitted on (z_fit, y_fit)."""
    mu_z, sd_z = z_fit.mean(0), z_fit.std(0) + 1e-8
    mu_y = y_fit.mean(0)
    x = (np.asarray(z_fit, np.float64) - mu_z) / sd_z
    w = np.linalg.solve(x.T @ x + alpha * len(x) * np.eye(x.shape[1]), x.T @ (y_fit - mu_y))
    pred = ((z_test - mu_z) / sd_z) @ w + mu_y
    ss_res = ((y_test - pred) ** 2).sum(0)
    ss_tot = ((y_test - y_test.mean(0)) ** 2).sum(0) + 1e-12
    return 1.0 - ss_res / ss_tot


def encode_in_chunks(graphdef, state, obs: np.ndarray, chunk: int = 512) -> np.ndarray:
    """Encode (N, *obs_shape) observations in chunks (bounded memory for pixels)."""
    fn = _jit_encode(graphdef)
    out = [np.asarray(fn(state, jnp.asarray(obs[i : i + chunk]))) for i in range(0, len(obs), chunk)]
    return np.concatenate(out, axis=0)


_ENCODE_CACHE: dict = {}


def _jit_encode(graphdef):
    if graphdef not in _ENCODE_CACHE:
        _ENCODE_CACHE[graphdef] = jax.jit(lambda s, o: nnx.merge(graphdef, s).encode(o))
    return _ENCODE_CACHE[graphdef]


_RATIO_CACHE: dict = {}


def _jit_ratios(graphdef, history: int):
    if (graphdef, history) in _RATIO_CACHE:
        return _RATIO_CACHE[graphdef, history]

    @jax.jit
    def fn(state, z, actions):
        model = nnx.merge(graphdef, state)
        L = history
        z_ctx, a_ctx = z[:, :L], actions[:, :L]
        one = model.predict_hist(z_ctx, a_ctx)
        one_err = jnp.mean((one - z[:, L]) ** 2)
        one_copy = jnp.mean((z[:, L - 1] - z[:, L]) ** 2)
        roll = jax.vmap(model.rollout)(z_ctx, actions[:, L - 1 :], a_ctx[:, : L - 1])
        roll_err = jnp.mean((roll - z[:, L:]) ** 2)
        roll_copy = jnp.mean((z[:, L - 1 : L] - z[:, L:]) ** 2)
        return one_err, one_copy, roll_err, roll_copy

    _RATIO_CACHE[graphdef, history] = fn
    return fn


def prediction_ratios(graphdef, state, z: jax.Array, actions: jax.Array, history: int) -> dict:
    """One-step and open-loop k-step error / copy-last error on latent windows z (N, W, D), a (N, W-1, A)."""
    fn = _jit_ratios(graphdef, history)
    one_err, one_copy, roll_err, roll_copy = (float(x) for x in fn(state, z, actions))
    return {
        "pred_err": one_err,
        "copy_err": one_copy,
        "pred_copy_ratio": one_err / max(one_copy, 1e-12),
        "rollout_copy_ratio": roll_err / max(roll_copy, 1e-12),
    }


@dataclasses.dataclass
class EvalData:
    """Held-out material for diagnostics (numpy, built once per run)."""

    windows_obs: np.ndarray  # (N, W, *obs_shape) from held-out episodes
    windows_action: np.ndarray  # (N, W-1, A)
    fit_obs: np.ndarray  # (M, *obs_shape) frames from training episodes (read-out fit)
    fit_state: np.ndarray  # (M, state_dim)
    test_obs: np.ndarray  # (K, *obs_shape) frames from held-out episodes (read-out score)
    test_state: np.ndarray  # (K, state_dim)
    position: slice = dataclasses.field(default_factory=lambda: slice(0, 2))  # the family's declared position fields
    velocity: slice = dataclasses.field(default_factory=lambda: slice(2, 4))  # ... and velocity fields


def _episode(ds, i: int) -> dict:
    return ds.episodes[i]


def build_eval_data(
    ds, train_ids, heldout_ids, obs_key: str, window: int, max_windows: int = 512,
    max_frames: int = 4000, seed: int = 0,
) -> EvalData:
    rng = np.random.default_rng(seed)
    wo, wa = [], []
    per_ep = max(1, max_windows // max(1, len(heldout_ids)))
    for i in heldout_ids:
        ep = _episode(ds, int(i))
        n_act = len(ep["action"])
        if n_act < window - 1:
            continue
        for t0 in rng.integers(0, n_act - window + 2, per_ep):
            wo.append(np.asarray(ep[obs_key][t0 : t0 + window]))
            wa.append(np.asarray(ep["action"][t0 : t0 + window - 1]))

    def frames(ids, limit):
        obs, st = [], []
        per = max(1, limit // max(1, len(ids)))
        for i in ids:
            ep = _episode(ds, int(i))
            t = rng.choice(len(ep["state"]), min(per, len(ep["state"])), replace=False)
            t.sort()
            obs.append(np.asarray(ep[obs_key][t]))
            st.append(np.asarray(ep["state"][t], np.float32))
        return np.concatenate(obs), np.concatenate(st)

    fit_obs, fit_state = frames(train_ids, max_frames)
    test_obs, test_state = frames(heldout_ids, max_frames // 2)
    layout = state_layout(getattr(ds, "meta", None))
    return EvalData(
        np.stack(wo[:max_windows]), np.stack(wa[:max_windows]), fit_obs, fit_state, test_obs, test_state,
        position=layout.position, velocity=layout.velocity,
    )


def evaluate(graphdef, state, data: EvalData, history: int, key: jax.Array | None = None) -> dict:
    """All collapse diagnostics for the model (graphdef, state) on held-out data -> flat dict."""
    n, w = data.windows_obs.shape[:2]
    z = encode_in_chunks(graphdef, state, data.windows_obs.reshape((n * w, *data.windows_obs.shape[2:])))
    z = z.reshape((n, w, -1))
    flat = z.reshape((n * w, -1))
    std_min, std_mean = latent_std(flat)
    key = jax.random.key(0) if key is None else key
    out = {
        "latent_std_min": std_min,
        "latent_std_mean": std_mean,
        "effective_rank": effective_rank(flat),
        "active_dims": active_dims(flat),
        "latent_dim": int(flat.shape[-1]),
        "sigreg": float(sigreg(jnp.asarray(flat[:1024]), key)),
    }
    out.update(prediction_ratios(graphdef, state, jnp.asarray(z), jnp.asarray(data.windows_action), history))
    z_fit = encode_in_chunks(graphdef, state, data.fit_obs)
    z_test = encode_in_chunks(graphdef, state, data.test_obs)
    r2 = ridge_r2(z_fit, data.fit_state, z_test, data.test_state)
    out["r2_state"] = float(np.mean(r2))
    out["r2_position"] = float(np.mean(r2[data.position]))
    out["r2_velocity"] = float(np.mean(r2[data.velocity]))
    return out


def format_report(d: dict) -> str:
    lines = [
        f"latent std (min / mean over {d['latent_dim']} dims): {d['latent_std_min']:.4f} / {d['latent_std_mean']:.4f}",
        f"effective rank: {d['effective_rank']:.2f} of {d['latent_dim']}; "
        f"principal directions with std > 0.05: {d['active_dims']}",
        f"SIGReg statistic: {d['sigreg']:.3f}",
        f"prediction error / copy-last: one-step {d['pred_copy_ratio']:.4f}, rollout {d['rollout_copy_ratio']:.4f}",
        f"ridge read-out R^2 (held-out episodes): state {d['r2_state']:.4f} "
        f"(position {d['r2_position']:.4f}, velocity {d['r2_velocity']:.4f})",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------- `jepa-mpc inspect RUN`


@dataclasses.dataclass(frozen=True)
class InspectArgs:
    """Print collapse diagnostics of a training run (latest checkpoint, held-out episodes)."""

    run: tyro.conf.Positional[str]  # run directory written by `jepa-mpc train`
    data: str = ""  # dataset directory (default: the one recorded in the run's config.json)
    max_windows: int = 512  # held-out windows for the prediction ratios
    seed: int = 0
    out: str = ""  # also write the diagnostics as a JSON object to this file (atomically)
    walls: str = ""
    """Task suite whose rooms the wall diagnostic probes (TwoRoom families; e.g. the held-out rooms'
    suite): how often predicted rollouts, read out by the run's probe, go through a wall the simulator stops
    at, and the prediction error at walls against open space (`jepa_mpc/walls.py`). Needs `jepa-mpc probe`."""
    wall_probe: WallProbeConfig = WallProbeConfig()


def _wall_inputs(run: Any, args: InspectArgs) -> tuple[Any, Any, Any]:
    """(family, suite, probe) of `inspect --walls`; ConfigError / TaskFileError on bad input."""
    from jepa_mpc.probe import load_run_probe
    from jepa_mpc_envs.registry import get_family, load_suite

    validate_wall_config(args.wall_probe, "--wall-probe")
    suite = load_suite(args.walls)
    if run.env_id and suite.env_id != run.env_id:
        raise ConfigError(f"--walls {args.walls}: suite is for {suite.env_id}, the run was trained on {run.env_id}")
    family = get_family(suite.env_id)
    suite_rooms(family, suite)
    probe = load_run_probe(run)
    if probe is None:
        raise ConfigError(f"--walls: {run.path} has no probe; run `jepa-mpc probe {run.path}` first")
    return family, suite, probe


def inspect_main(args: InspectArgs) -> None:
    from jepa_mpc.run import Run, split_episodes

    out = None
    if args.out:  # a bad --out fails before the work, not after it
        from jepa_mpc.paths import output_file

        out = output_file(args.out, "--out")
    run = Run.open(args.run)
    wm = run.load_world_model()
    cfg = wm.config
    walls = _wall_inputs(run, args) if args.walls else None  # bad input fails before the work
    data_path = args.data or run.data_path
    raw = run.dataset(data_path)
    ds = run.training_view(raw, where=str(data_path))
    train_ids, heldout_ids = split_episodes(ds, cfg.held_out_fraction)
    data = build_eval_data(ds, train_ids, heldout_ids, cfg.model.obs_key, cfg.window, args.max_windows, seed=args.seed)
    d = evaluate(wm.graphdef, wm.state, data, cfg.model.history, jax.random.key(args.seed))
    print(f"run {Path(args.run)} @ step {wm.step} ({cfg.model.obs_key}, reg={cfg.reg.kind}), data {data_path}")
    print(format_report(d))
    if walls is not None:
        family, suite, probe = walls
        w = wall_diagnostic(wm, probe, family, suite, run.frame_skip or family.default_frame_skip, args.wall_probe)
        w["data"] = data_wall_stats(family, state_layout(raw.meta).layout, raw.arrays["state"], raw.episode_lengths)
        print(format_wall_report(w))
        d = {**d, "walls": w}
    if out is not None:
        import math

        from jepa_mpc.atomic import write_json_atomic

        from jepa_mpc.provenance import git_state

        d = {**d, "run": str(args.run), "step": int(wm.step), "data": str(data_path), "seed": args.seed, **git_state()}
        values = {k: v.item() if isinstance(v, np.generic) else v for k, v in d.items()}  # NaN -> null: strict JSON
        values = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in values.items()}
        out.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out, values)
