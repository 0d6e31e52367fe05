"""State/pixel collection with mujoco.rollout: determinism, resumption, consistency with the env."""

import dataclasses

import numpy as np
import pytest

from jepa_mpc.config import CollectConfig
from jepa_mpc.data import collect as C
from jepa_mpc.data import store
from jepa_mpc.data.store import Dataset
from jepa_mpc.errors import ConfigError, DatasetError

from jepa_mpc_envs.geometry import AGENT_RADIUS, Layout, is_free
from jepa_mpc_envs.tworoom import PixelRenderer, TwoRoomEnv, build_model, set_state


def _cfg(out, **kw):
    base = dict(out=str(out), num_episodes=25, episode_len=20, chunk_episodes=10, seed=3)
    base.update(kw)
    return CollectConfig(**base)


@pytest.fixture(scope="module")
def model():
    return build_model(Layout())


def test_collect_chunk_is_deterministic_and_seeded(model):
    cfg = _cfg("unused")
    with C.StateCollector(model, cfg.frame_skip) as col:
        a = C.collect_chunk(cfg, Layout(), col, 1)
        b = C.collect_chunk(cfg, Layout(), col, 1)
        c = C.collect_chunk(cfg, Layout(), col, 2)
        d = C.collect_chunk(dataclasses.replace(cfg, seed=4), Layout(), col, 1)
    assert a["state"].shape == (10, 21, 4) and a["action"].shape == (10, 20, 2)
    assert a["qpos"].shape == (10, 21, model.nq) and a["qvel"].shape == (10, 21, model.nv)
    np.testing.assert_array_equal(a["episode_index"], np.arange(10, 20))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["state"], c["state"]) and not np.array_equal(a["state"], d["state"])
    # starts are free positions at rest; states stay inside the arena
    assert np.all(is_free(Layout(), a["state"][:, 0, :2], AGENT_RADIUS))
    assert np.all(a["state"][:, 0, 2:] == 0)
    assert np.all(np.abs(a["state"][..., :2]) <= 1.0)
    np.testing.assert_allclose(a["state"][..., :2], a["qpos"][..., :2], atol=1e-6)


def test_collector_matches_env_step(model):
    env = TwoRoomEnv(frame_skip=5)
    env.reset(seed=0)
    start = np.array([-0.5, 0.3, 0.1, -0.2])
    set_state(env.model, env.data, start)
    actions = np.random.default_rng(0).uniform(-1, 1, (1, 30, 2)).astype(np.float32)
    states = [env.state]
    for a in actions[0]:
        env.step(a)
        states.append(env.state)
    with C.StateCollector(model, 5, nthread=1) as col:
        out = col.run(start[None], actions)
    np.testing.assert_allclose(out["state"][0], np.array(states), atol=1e-5)


def test_resume_after_interruption_equals_uninterrupted_run(tmp_path):
    full = C.collect(_cfg(tmp_path / "full"), progress=False)
    assert full["complete"] and full["episodes"] == 25 and full["steps"] == 25 * 20
    out = tmp_path / "resumed"
    part = C.collect(_cfg(out), progress=False, max_chunks=1)
    assert not part["complete"]
    with pytest.raises(DatasetError, match="chunk 1 of 3"):
        Dataset.open(out)
    (out / "chunk_00001.h5.tmp").write_bytes(b"half-written chunk")  # as left by a kill mid-write
    resumed = C.collect(_cfg(out), progress=False)
    assert resumed["complete"] and resumed["resumed_from_chunk"] == 1 and resumed["new_chunks"] == 2
    assert not list(out.glob("*.tmp"))
    for i in range(3):
        assert store.chunk_path(out, i).read_bytes() == store.chunk_path(tmp_path / "full", i).read_bytes()
    a, b = Dataset.open(tmp_path / "full"), Dataset.open(out)
    for k in a.arrays:
        np.testing.assert_array_equal(a.arrays[k], b.arrays[k])
    assert b.meta["status"] == "complete" and b.meta["layout"] == Layout().to_dict()
    assert {"mujoco", "numpy", "h5py"} <= set(b.meta["versions"])
    again = C.collect(_cfg(out), progress=False)  # already complete: nothing to do
    assert again["new_chunks"] == 0


def test_resume_with_different_config_is_one_line_error(tmp_path):
    C.collect(_cfg(tmp_path, num_episodes=10), progress=False, max_chunks=1)
    with pytest.raises(DatasetError) as excinfo:
        C.collect(_cfg(tmp_path, num_episodes=10, seed=4), progress=False)
    msg = str(excinfo.value)
    assert "\n" not in msg and "seed" in msg and "meta.json" in msg


def test_bad_config_is_user_error(tmp_path):
    with pytest.raises(ConfigError, match="policy"):
        C.collect(_cfg(tmp_path, policy="levy"), progress=False)
    with pytest.raises(ConfigError, match="layout"):
        C.collect(_cfg(tmp_path, layout='{"door_width": -1}'), progress=False)


def test_pixels_match_renderer(tmp_path, model):
    s = C.collect(_cfg(tmp_path, num_episodes=3, episode_len=4, pixels=True), progress=False)
    ds = Dataset.open(tmp_path)
    assert ds.arrays["pixels"].shape == (3, 5, 64, 64, 3) and ds.arrays["pixels"].dtype == np.uint8
    assert ds.meta["obs_keys"] == ["state", "pixels"]
    r = PixelRenderer(model, 64)
    try:
        np.testing.assert_array_equal(ds.arrays["pixels"][1], r.render_states(ds.arrays["state"][1]))
    finally:
        r.close()
    assert s["size_bytes"] > 0


def test_ou_crosses_the_door_more_than_uniform(model):
    fractions = {}
    with C.StateCollector(model, 5) as col:
        for policy in ("ou", "uniform"):
            cfg = CollectConfig(num_episodes=200, chunk_episodes=200, episode_len=100, policy=policy, seed=0)
            states = C.collect_chunk(cfg, Layout(), col, 0)["state"]
            fractions[policy] = C.crossed_door(Layout(), states).mean()
    assert fractions["ou"] > 0.05
    assert fractions["ou"] > fractions["uniform"]


def test_cli_collect_and_bench_smoke(tmp_path, capsys):
    from jepa_mpc.cli import main

    main(["collect", "--out", str(tmp_path / "d"), "--num-episodes", "4", "--episode-len", "5", "--chunk-episodes", "2"])
    text = capsys.readouterr().out
    assert "complete" in text and "door crossing" in text and "size on disk" in text
    assert Dataset.open(tmp_path / "d").num_steps == 20
    C.bench_collect_main(C.BenchCollectArgs(num_episodes=8, episode_len=10, render_frames=8, repeats=2))
    text = capsys.readouterr().out
    assert "physics steps/s" in text and "frames/s" in text
