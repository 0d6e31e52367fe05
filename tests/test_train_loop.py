"""Training loop: learning, collapse vs SIGReg, resume equivalence, NaN guard, bad input."""

import json
import os
import signal

import jax
import numpy as np
import pytest

from jepa_mpc.config import ModelConfig, RegularizerConfig, TrainConfig
from jepa_mpc.errors import ConfigError, DatasetError
from jepa_mpc.model import load_world_model
from jepa_mpc.model.fake_data import make_fake_dataset, save_fake_dataset
from jepa_mpc.train import TrainingDiverged, parse_train_cli, train, train_main

TINY = ModelConfig(latent_dim=8, encoder_hidden=(64,), projector_hidden=64, predictor_hidden=64)


def tiny_cfg(**kw) -> TrainConfig:
    base = dict(
        model=TINY, reg=RegularizerConfig(num_projections=32), steps=40, batch_size=32, warmup_steps=5,
        log_every=5, eval_every=1000, ckpt_every=10, rollout_steps=3,
    )
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def ds():
    return make_fake_dataset(num_episodes=16, steps=60, seed=0)


def read_metrics(run):
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_cli_train_reduces_loss_writes_run_and_inspects(tmp_path, capsys):
    data = tmp_path / "data"
    save_fake_dataset(data, num_episodes=16, steps=60)
    run = tmp_path / "run"
    train_main([
        "--data", str(data), "--run", str(run), "--quiet", "--steps", "60", "--batch-size", "32",
        "--model.latent-dim", "8", "--model.encoder-hidden", "64", "--model.projector-hidden", "64",
        "--model.predictor-hidden", "64", "--reg.num-projections", "32", "--warmup-steps", "5",
        "--log-every", "5", "--eval-every", "1000",
    ])
    train_lines = [m for m in read_metrics(run) if m["split"] == "train"]
    first, last = train_lines[0], train_lines[-1]
    assert last["step"] == 60 and last["tf_loss"] < first["tf_loss"]
    assert last["tf_copy_ratio"] < 1.0  # predictor beats copy-last on training windows
    saved = json.loads((run / "config.json").read_text())
    assert saved["train"]["steps"] == 60 and saved["train"]["model"]["latent_dim"] == 8
    assert set(json.loads((run / "norm_stats.json").read_text())) >= {"state_mean", "state_std"}
    wm = load_world_model(run)
    assert wm.step == 60 and wm.latent_dim == 8 and wm.obs_key == "state"
    assert wm.action_dim == 2 * wm.action_block  # preset: blocks of env actions, concatenated
    z = jax.jit(wm.encode)(np.zeros((5, 4), np.float32))
    assert jax.jit(wm.rollout)(z[0], np.zeros((6, wm.action_dim), np.float32)).shape == (6, 8)

    from jepa_mpc.diagnostics import InspectArgs, inspect_main

    capsys.readouterr()
    inspect_main(InspectArgs(run=str(run)))
    out = capsys.readouterr().out
    assert "effective rank" in out and "R^2" in out and "copy-last" in out

    # resuming with a different model config: one-line ConfigError, nothing overwritten
    before = (run / "config.json").read_text()
    with pytest.raises(ConfigError, match="latent_dim"):
        train_main(["--data", str(data), "--run", str(run), "--quiet", "--model.latent-dim", "16"])
    assert (run / "config.json").read_text() == before


def test_none_collapses_sigreg_does_not(tmp_path, ds):
    out = {}
    for kind in ("none", "sigreg"):
        cfg = tiny_cfg(reg=RegularizerConfig(kind=kind, num_projections=32), steps=120, ckpt_every=1000)
        out[kind] = train(cfg, tmp_path / kind, dataset=ds, progress=False, tensorboard=False).last_eval
    assert out["none"]["latent_std_mean"] < 0.3 * out["sigreg"]["latent_std_mean"]
    assert out["sigreg"]["latent_std_min"] > 0.2
    assert out["none"]["active_dims"] < out["sigreg"]["active_dims"]


def test_resume_after_signal_matches_uninterrupted_run(tmp_path, ds):
    cfg = tiny_cfg(steps=20, ckpt_every=100)
    full = train(cfg, tmp_path / "full", dataset=ds, progress=False, tensorboard=False)

    def interrupt(step, batch):
        if step == 9:
            os.kill(os.getpid(), signal.SIGINT)  # handled: checkpoint after this step, then stop
        return batch

    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "part", dataset=ds, progress=False, tensorboard=False, batch_hook=interrupt)
    assert (tmp_path / "part" / "checkpoints" / "10").is_dir()
    resumed = train(cfg, tmp_path / "part", dataset=ds, progress=False, tensorboard=False)
    assert resumed.step == full.step == 20
    for a, b in zip(jax.tree.leaves(full.params), jax.tree.leaves(resumed.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    steps = [m["step"] for m in read_metrics(tmp_path / "part") if m["split"] == "train"]
    assert steps == sorted(set(steps))  # no duplicated lines after resume


def test_nan_loss_stops_with_one_line_error_and_keeps_checkpoint(tmp_path, ds):
    cfg = tiny_cfg(steps=30, ckpt_every=10)

    def poison(step, batch):
        if step == 14:
            batch = dict(batch, state=np.full_like(batch["state"], np.nan))
        return batch

    run = tmp_path / "run"
    with pytest.raises(TrainingDiverged) as err:
        train(cfg, run, dataset=ds, progress=False, tensorboard=False, batch_hook=poison)
    msg = str(err.value)
    assert "\n" not in msg and "non-finite loss" in msg and "step 15" in msg
    assert (run / "checkpoints" / "10").is_dir() and (run / "checkpoints" / "14").is_dir()
    wm = load_world_model(run)
    assert wm.step == 14
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(wm.state))


def test_bad_inputs_are_one_line_user_errors(tmp_path, ds):
    with pytest.raises(DatasetError):
        train(tiny_cfg(), tmp_path / "r", data_path=str(tmp_path / "missing"), progress=False)
    with pytest.raises(ConfigError, match="pixels"):  # pixel preset on a state-only dataset
        train(tiny_cfg(model=ModelConfig(obs_key="pixels")), tmp_path / "r", dataset=ds, progress=False)
    with pytest.raises(ConfigError, match="regulariser"):
        train(tiny_cfg(reg=RegularizerConfig(kind="bogus")), tmp_path / "r", dataset=ds, progress=False)
    with pytest.raises(ConfigError, match="preset"):
        parse_train_cli(["--preset", "nope", "--data", "d", "--run", "r"])
    assert not (tmp_path / "r" / "config.json").exists()
    args = parse_train_cli(["--preset", "tworoom-pixels", "--data", "d", "--run", "r", "--reg.kind", "none"])
    assert args.config.model.obs_key == "pixels" and args.config.reg.kind == "none"


def test_inverse_dynamics_loss_is_learned_and_needs_its_head(tmp_path, ds):
    import dataclasses

    with pytest.raises(ConfigError, match="inverse-hidden"):
        train(tiny_cfg(inverse_weight=1.0), tmp_path / "bad", dataset=ds, progress=False)
    cfg = tiny_cfg(model=dataclasses.replace(TINY, inverse_hidden=32), inverse_weight=1.0, steps=120,
                   ckpt_every=1000)
    run = tmp_path / "inv"
    train(cfg, run, dataset=ds, progress=False, tensorboard=False)
    losses = [m["inverse_loss"] for m in read_metrics(run) if "inverse_loss" in m]
    assert len(losses) > 5 and np.isfinite(losses).all()
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3])  # the head learns which action was taken
    model = load_world_model(str(run))  # the head is part of the checkpoint
    from flax import nnx

    wm = nnx.merge(model.graphdef, model.state)
    z = wm.encode(np.asarray(ds.arrays["state"][0, :2], np.float32))
    assert wm.infer_action(z[:1], z[1:]).shape == (1, cfg.model.action_dim)
