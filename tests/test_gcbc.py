"""GCBC (goal-conditioned behaviour cloning, `train --objective gcbc`, `eval planner:gcbc`): hindsight
relabelling, learning on a toy problem, the eval path end to end, resume, and the one-line errors."""

from __future__ import annotations

import dataclasses
import json
import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import assert_one_line_error, run_cli
from jepa_mpc.config import TRAIN_PRESETS, CollectConfig, GCBCConfig, ModelConfig, TrainConfig
from jepa_mpc.control import GCBC, ControlConfig
from jepa_mpc.data.store import Dataset
from jepa_mpc.errors import ConfigError
from jepa_mpc.gcbc import GoalSampler, goal_mask, goal_offsets, load_gcbc_policy
from jepa_mpc.run import Run
from jepa_mpc.train import train
from jepa_mpc_envs.registry import PUSHT, TWOROOM

SMALL = dict(batch_size=64, warmup_steps=10, log_every=10, eval_every=1000, ckpt_every=1000)


def gcbc_config(obs_dim: int = 4, block: int = 5, steps: int = 200, **kw) -> TrainConfig:
    model = ModelConfig(obs_dim=obs_dim, action_dim=2 * block)
    gcbc = GCBCConfig(hidden=(64, 64), **kw.pop("gcbc", {}))
    return TrainConfig(model=model, objective="gcbc", gcbc=gcbc, action_block=block, steps=steps, **{**SMALL, **kw})


# ---------------------------------------------------------------- hindsight relabelling


@pytest.mark.parametrize("sampling", ["uniform", "geometric"])
def test_goal_offsets_stay_in_the_episode_and_follow_their_law(sampling):
    rng = np.random.default_rng(0)
    remaining = rng.integers(1, 30, size=20000)
    k = goal_offsets(rng, remaining, sampling, 0.2)
    assert k.dtype.kind == "i" and (k >= 1).all() and (k <= remaining).all()
    r20 = goal_offsets(rng, np.full(40000, 20), sampling, 0.2)
    if sampling == "uniform":
        assert set(np.unique(r20)) == set(range(1, 21)) and r20.mean() == pytest.approx(10.5, abs=0.15)
    else:  # truncated Geometric(0.2) on 1..20
        p = 0.2 * 0.8 ** np.arange(20)
        assert r20.mean() == pytest.approx((np.arange(1, 21) * p).sum() / p.sum(), abs=0.1)
        assert np.mean(r20 == 1) == pytest.approx(p[0] / p.sum(), abs=0.01)


def _labelled_dataset(num_episodes: int = 6, steps: int = 40) -> Dataset:
    """state = (episode, time, 0, 0): a batch says which episode and time each observation is from."""
    ep, t = np.meshgrid(np.arange(num_episodes), np.arange(steps + 1), indexing="ij")
    state = np.stack([ep, t, np.zeros_like(t), np.zeros_like(t)], -1).astype(np.float32)
    action = np.zeros((num_episodes, steps, 2), np.float32)
    return Dataset({"state": state, "action": action}, {"env_id": "labelled"})


@pytest.mark.parametrize("sampling", ["uniform", "geometric"])
def test_relabelled_goal_is_later_in_the_same_episode(sampling):
    ds = _labelled_dataset().action_blocks(5)
    cfg = gcbc_config(gcbc={"goal_sampling": sampling, "geom_p": 0.3}, batch_size=512)
    sampler = GoalSampler(ds, cfg, episodes=np.arange(ds.num_episodes))
    for step in range(3):
        b = sampler.batch(step)
        assert b["obs"].shape == (512, 4) and b["goal"].shape == (512, 4) and b["action"].shape == (512, 10)
        assert (b["goal"][:, 0] == b["obs"][:, 0]).all()  # same episode
        np.testing.assert_array_equal(b["goal"][:, 1] - b["obs"][:, 1], 5 * b["goal_offset"])  # k blocks later
        assert (b["goal_offset"] >= 1).all() and (b["goal"][:, 1] <= 40).all()
    np.testing.assert_array_equal(sampler.batch(7)["goal"], sampler.batch(7)["goal"])  # a function of the step


def test_goal_mask_is_the_family_goal_slice():
    np.testing.assert_array_equal(goal_mask(TWOROOM.env_id, 4), [1, 1, 0, 0])
    assert goal_mask(PUSHT.env_id, 12).tolist() == [1.0] * 3 + [0.0] * 9
    assert goal_mask("not-a-family", 4).tolist() == [1.0] * 4  # synthetic data: the whole observation


# ---------------------------------------------------------------- learning a known function


def _straight_lines(num_episodes: int = 200, steps: int = 40, seed: int = 0) -> Dataset:
    """Kinematic point x' = x + 0.05 a with one unit-norm action per episode: the action that leads from
    an observation to any later one is the unit vector towards it, a known function of (obs, goal)."""
    rng = np.random.default_rng(seed)
    angle = rng.uniform(0, 2 * np.pi, num_episodes)
    a = np.stack([np.cos(angle), np.sin(angle)], -1).astype(np.float32)
    start = rng.uniform(-1, 1, (num_episodes, 1, 2))
    pos = start + 0.05 * np.arange(steps + 1)[None, :, None] * a[:, None]
    action = np.repeat(a[:, None], steps, axis=1)
    return Dataset({"state": pos.astype(np.float32), "action": action}, {"env_id": "straight-lines"})


def _reach(act, starts, goals, blocks: int = 12) -> np.ndarray:
    """Final distances after `blocks` blocks of 5 steps of the toy dynamics, acting with act(x, g) -> (B, 10)."""
    x = starts.copy()
    for _ in range(blocks):
        a = np.clip(np.asarray(act(x, goals)).reshape(len(x), 5, 2), -1, 1)
        x = x + 0.05 * a.sum(1)
    return np.linalg.norm(x - goals, axis=-1)


def test_gcbc_learns_the_action_towards_the_goal_and_beats_random(tmp_path):
    cfg = gcbc_config(obs_dim=2, steps=400, lr=3e-3)
    result = train(cfg, tmp_path / "run", dataset=_straight_lines(), progress=False, tensorboard=False)
    log = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if r["split"] == "train"]
    assert losses[-1] < 0.1 * losses[0] and result.last_eval["heldout_action_mse"] < 0.1
    policy = load_gcbc_policy(tmp_path / "run")
    assert policy.step == 400
    rng = np.random.default_rng(1)
    starts, goals = rng.uniform(-0.8, 0.8, (64, 2)), rng.uniform(-0.8, 0.8, (64, 2))
    act = jax.jit(policy.act)
    learned = _reach(lambda x, g: act(jnp.asarray(x, jnp.float32), jnp.asarray(g, jnp.float32)), starts, goals)
    random = _reach(lambda x, g: rng.uniform(-1, 1, (len(x), 10)), starts, goals)
    assert np.mean(learned < 0.15) > 0.5 > np.mean(random < 0.15) + 0.3
    assert np.median(learned) < 0.5 * np.median(random)


def test_policy_actions_stay_in_bounds_and_pixel_presets_train(tmp_path):
    from jepa_mpc.model.fake_data import make_fake_dataset

    cfg = dataclasses.replace(TRAIN_PRESETS["tworoom-pixels"], objective="gcbc", steps=3, batch_size=4,
                              gcbc=GCBCConfig(hidden=(32,)), **{k: v for k, v in SMALL.items() if k != "batch_size"})
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, cnn_channels=(4, 4), encoder_hidden=(16,),
                                                             projector_hidden=16, latent_dim=8))
    train(cfg, tmp_path / "pix", dataset=make_fake_dataset(6, 30, pixels=True), progress=False, tensorboard=False)
    policy = load_gcbc_policy(tmp_path / "pix")
    frames = jnp.asarray(np.random.default_rng(0).integers(0, 255, (3, 64, 64, 3)), jnp.uint8)
    a = np.asarray(policy.act(frames, frames[::-1]))
    assert a.shape == (3, 10) and np.isfinite(a).all() and (np.abs(a) <= 1).all()


@pytest.mark.slow  # the same resume machinery as the world model's (test_train_loop): `make test-slow`
def test_gcbc_resume_ends_where_an_uninterrupted_run_does(tmp_path):
    from jepa_mpc.model.fake_data import make_fake_dataset

    ds = make_fake_dataset(10, 40)
    cfg = gcbc_config(steps=30, ckpt_every=100)
    full = train(cfg, tmp_path / "full", dataset=ds, progress=False, tensorboard=False)

    def interrupt(step, batch):
        if step == 14:
            os.kill(os.getpid(), signal.SIGINT)  # handled: checkpoint after this step, then stop
        return batch

    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "half", dataset=ds, progress=False, tensorboard=False, batch_hook=interrupt)
    assert (tmp_path / "half" / "checkpoints" / "15").is_dir()
    resumed = train(cfg, tmp_path / "half", dataset=ds, progress=False, tensorboard=False)
    assert resumed.step == 30
    for x, y in zip(jax.tree.leaves(full.params), jax.tree.leaves(resumed.params)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="objective"):  # a world-model config cannot resume a GCBC run
        train(dataclasses.replace(cfg, objective="jepa"), tmp_path / "half", dataset=ds, progress=False,
              tensorboard=False)


# ---------------------------------------------------------------- eval through planner:gcbc, and errors

TINY_JEPA = ["--quiet", "--model.latent-dim", "8", "--model.encoder-hidden", "16", "--model.projector-hidden", "16",
             "--model.predictor-hidden", "16", "--reg.num-projections", "8", "--batch-size", "8", "--steps", "2"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{"data": tiny TwoRoom dataset, "gcbc": a GCBC run of 300 steps on it, "jepa": a 2-step world model}."""
    from jepa_mpc.data.collect import collect
    from jepa_mpc.train import train_main

    root = tmp_path_factory.mktemp("gcbc")
    collect(CollectConfig(out=str(root / "data"), num_episodes=20, episode_len=50, chunk_episodes=20), progress=False)
    train_main(["--data", str(root / "data"), "--run", str(root / "gcbc"), "--objective", "gcbc", "--quiet",
                "--steps", "300", "--gcbc.hidden", "64", "64", "--eval-every", "1000"])
    train_main(["--data", str(root / "data"), "--run", str(root / "jepa"), *TINY_JEPA])
    return {k: root / k for k in ("data", "gcbc", "jepa")}


def test_eval_planner_gcbc_end_to_end_and_resumes(runs, tmp_path):
    from jepa_mpc.evaluate import EvalArgs, evaluate

    args = EvalArgs(checkpoint=str(runs["gcbc"]), control=ControlConfig(planner=GCBC()), episodes=4, batch=2,
                    out=str(tmp_path / "ev"))
    result, out = evaluate(args)
    s = result["summary"]
    assert s["episodes"] == 4 and 0.0 <= s["success_rate"] <= 1.0 and s["plan_latency_ms"]["calls"] > 0
    assert result["planner_config"] == {"kind": "gcbc"} and result["goal_config"] is None
    assert result["checkpoint"]["step"] == 300 and result["action_block"] == 5 and result["label"] == "gcbc"
    assert all(e["plans"] >= 1 and e["steps"] <= 5 * e["plans"] for e in result["episodes"])
    again, _ = evaluate(args)  # complete folder: resumed at its end, same episodes
    assert again["episodes"] == result["episodes"]
    with pytest.raises(ConfigError, match="no world model"):
        Run.open(runs["gcbc"]).load_world_model()  # inspect / probe refuse it in one line


def test_eval_of_mismatched_run_and_planner_is_one_line(runs, tmp_path):
    line = assert_one_line_error(run_cli("eval", "--checkpoint", runs["jepa"], "planner:gcbc", "--episodes", "1",
                                         "--out", tmp_path / "a"), "--objective gcbc")
    assert str(runs["jepa"]) in line and "--objective jepa" in line
    line = assert_one_line_error(run_cli("eval", "--checkpoint", runs["gcbc"], "planner:cem", "--episodes", "1",
                                         "--out", tmp_path / "b"), "planner:gcbc")
    assert str(runs["gcbc"]) in line and "no world model" in line
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_unknown_objective_is_one_line(runs, tmp_path):
    assert_one_line_error(run_cli("train", "--data", runs["data"], "--run", tmp_path / "r", "--objective", "bc"),
                          "--objective 'bc'")
    assert_one_line_error(run_cli("train", "--data", runs["data"], "--run", tmp_path / "r", "--objective", "gcbc",
                                  "--gcbc.goal-sampling", "future"), "--gcbc.goal-sampling")
