"""Pixel encoder: the dataset's mean frame is computed, saved with the run and subtracted at encode time."""

import json

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jepa_mpc.config import ModelConfig, RegularizerConfig, TrainConfig
from jepa_mpc.model import load_world_model
from jepa_mpc.model.encoders import mean_frame
from jepa_mpc.model.fake_data import make_fake_dataset
from jepa_mpc.model.world_model import init_world_model
from jepa_mpc.train import train

TINY_PIXELS = ModelConfig(
    obs_key="pixels", latent_dim=8, encoder_hidden=(32,), cnn_channels=(4, 4, 8, 8), projector_hidden=32,
    predictor_hidden=32,
)
ACTION_STATS = {"action_mean": np.zeros(2, np.float32), "action_std": np.ones(2, np.float32)}


def test_mean_frame_averages_valid_frames_of_selected_episodes():
    frames = np.zeros((3, 4, 2, 2, 3), np.uint8)
    frames[0] = 255  # all 4 frames valid (length 3)
    frames[1, :2] = 51  # length 1: frames 0..1 valid; frames 2..3 are padding and must not count
    frames[1, 2:] = 255
    frames[2] = 255  # not selected
    m = mean_frame(frames, np.array([3, 1, 3]), episodes=np.array([0, 1]))
    assert m.shape == (2, 2, 3) and m.dtype == np.float32
    np.testing.assert_allclose(m, (4 * 1.0 + 2 * 0.2) / 6, rtol=1e-6)


def test_encoder_subtracts_mean_frame():
    frame = np.full((1, 64, 64, 3), 128, np.uint8)
    plain = init_world_model(TINY_PIXELS, seed=0, stats=ACTION_STATS)
    shifted = init_world_model(
        TINY_PIXELS, seed=0, stats={**ACTION_STATS, "pixel_mean": np.full((64, 64, 3), 128 / 255, np.float32)}
    )
    # The frame equal to the mean frame encodes like an all-black frame without a mean frame.
    np.testing.assert_allclose(
        shifted.encode(jnp.asarray(frame)), plain.encode(jnp.zeros_like(jnp.asarray(frame))), atol=1e-5
    )


def test_pixel_run_saves_mean_frame_and_loads_it(tmp_path):
    ds = make_fake_dataset(num_episodes=6, steps=20, seed=0, pixels=True)
    cfg = TrainConfig(
        model=TINY_PIXELS, reg=RegularizerConfig(num_projections=8), steps=2, batch_size=4, warmup_steps=1,
        log_every=1, eval_every=1000, ckpt_every=2, rollout_steps=2, held_out_fraction=0.2,
    )
    run = tmp_path / "run"
    train(cfg, run, dataset=ds, progress=False, tensorboard=False)
    saved = np.asarray(json.loads((run / "norm_stats.json").read_text())["pixel_mean"], np.float32)
    assert saved.shape == (64, 64, 3)
    assert 0.0 < saved.min() and saved.max() < 1.0  # a blend of background and agent colours
    loaded = load_world_model(run)
    np.testing.assert_allclose(nnx.merge(loaded.graphdef, loaded.state).encoder.pixel_mean[...], saved)


def test_conv4x4s2_equals_xla_strided_conv_with_its_gradients():
    """The encoder's convolution is nnx.Conv's 4x4 stride-2 SAME conv; only its input gradient is
    computed another way (space-to-depth, a stride-1 conv): values and both gradients agree."""
    from jepa_mpc.model.conv import conv4x4s2

    def reference(h, k):
        return jax.lax.conv_general_dilated(h, k, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    keys = jax.random.split(jax.random.key(0), 3)
    for size, c, o in ((16, 3, 8), (8, 5, 4)):
        h = jax.random.normal(keys[0], (2, size, size, c))
        k = jax.random.normal(keys[1], (4, 4, c, o))
        g = jax.random.normal(keys[2], (2, size // 2, size // 2, o))
        out, vjp = jax.vjp(conv4x4s2, h, k)
        ref_out, ref_vjp = jax.vjp(reference, h, k)
        np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-5)
        for got, want in zip(vjp(g), ref_vjp(g)):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_spatial_latent_with_conv_predictor_learns_to_predict(tmp_path):
    """A spatial latent (8 x 8 cells) with the conv predictor trains on pixels: its loss falls."""
    ds = make_fake_dataset(num_episodes=16, steps=20, seed=0, pixels=True)
    model = ModelConfig(obs_key="pixels", latent_dim=128, cnn_channels=(4, 8, 8), projector_hidden=16,
                        latent_channels=2, predictor="conv", predictor_hidden=8)
    cfg = TrainConfig(model=model, reg=RegularizerConfig(num_projections=8), steps=150, batch_size=8, warmup_steps=10,
                      log_every=50, eval_every=150, ckpt_every=1000, rollout_steps=2, held_out_fraction=0.2)
    run = tmp_path / "run"
    train(cfg, run, dataset=ds, progress=False, tensorboard=False)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if r.get("split") == "train"]
    assert len(losses) == 3 and losses[-1] < 0.85 * losses[0]
    assert load_world_model(run).latent_dim == 128
