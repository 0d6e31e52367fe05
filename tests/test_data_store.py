"""Dataset store: round trip, corruption detection, splits, and the window sampler."""

import os

import h5py
import numpy as np
import pytest

from jepa_mpc.data import store
from jepa_mpc.data.store import Dataset, WindowSampler
from jepa_mpc.errors import DatasetError

T = 12


def _chunk_arrays(first: int, num: int, lengths=None, pixels=False) -> dict:
    """Episodes whose state encodes (episode index, time step), so windows are easy to check."""
    e = np.arange(first, first + num)
    t = np.arange(T + 1)
    state = np.zeros((num, T + 1, 4), np.float32)
    state[..., 0] = e[:, None]
    state[..., 1] = t[None, :]
    state[..., 2] = np.sin(e[:, None] + t[None, :])
    action = np.stack([np.broadcast_to(e[:, None], (num, T)), np.broadcast_to(t[None, :T], (num, T))], -1).astype(np.float32)
    arrays = {
        "state": state,
        "action": action,
        "qpos": state[..., :2].astype(np.float64),
        "qvel": state[..., 2:].astype(np.float64),
        "episode_length": np.full(num, T, np.int32) if lengths is None else np.asarray(lengths, np.int32),
        "episode_index": e.astype(np.int64),
    }
    if pixels:
        arrays["pixels"] = np.broadcast_to(state[..., :1, None, None].astype(np.uint8), (num, T + 1, 8, 8, 3)).copy()
    return arrays


def _write_dataset(path, chunks=((0, 5), (5, 4)), lengths=None, pixels=False):
    parts = []
    for i, (first, num) in enumerate(chunks):
        ln = None if lengths is None else lengths[first : first + num]
        parts.append(_chunk_arrays(first, num, ln, pixels))
        store.write_chunk(path, i, parts[-1])
    store.write_meta(path, {"num_chunks": len(chunks), "num_episodes": sum(n for _, n in chunks)})
    return parts


def test_round_trip(tmp_path):
    parts = _write_dataset(tmp_path, pixels=True)
    assert not list(tmp_path.glob("*.tmp"))
    ds = Dataset.open(tmp_path)
    assert ds.num_episodes == 9 and ds.num_steps == 9 * T and ds.episode_len == T
    for key in ("state", "action", "qpos", "qvel", "pixels"):
        np.testing.assert_array_equal(ds.arrays[key], np.concatenate([p[key] for p in parts]))
    ep = ds.episodes[6]
    assert ep["state"].shape == (T + 1, 4) and ep["action"].shape == (T, 2) and ep["pixels"].shape == (T + 1, 8, 8, 3)
    np.testing.assert_array_equal(ep["state"], parts[1]["state"][1])
    stats = ds.stats()
    np.testing.assert_allclose(stats["state_mean"], ds.arrays["state"].reshape(-1, 4).mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats["action_std"], ds.arrays["action"].reshape(-1, 2).std(0), rtol=1e-5)
    assert all(v.dtype == np.float32 for v in stats.values())


def test_chunk_files_are_byte_identical_for_identical_content(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    store.write_chunk(a, 0, _chunk_arrays(0, 3))
    store.write_chunk(b, 0, _chunk_arrays(0, 3))
    assert store.chunk_path(a, 0).read_bytes() == store.chunk_path(b, 0).read_bytes()


def _assert_one_line_error(excinfo, *fragments):
    msg = str(excinfo.value)
    assert "\n" not in msg
    for f in fragments:
        assert f in msg, msg


def test_flipped_bytes_in_chunk_are_detected(tmp_path):
    _write_dataset(tmp_path)
    path = store.chunk_path(tmp_path, 1)
    with h5py.File(path, "r") as f:
        info = f["state"].id.get_chunk_info(0)
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset + info.size // 2)
        b = fh.read(4)
        fh.seek(info.byte_offset + info.size // 2)
        fh.write(bytes(x ^ 0xFF for x in b))
    with pytest.raises(DatasetError) as excinfo:
        Dataset.open(tmp_path)
    _assert_one_line_error(excinfo, "chunk_00001.h5", "chunk 1", "corrupt")


def test_truncated_chunk_is_detected(tmp_path):
    _write_dataset(tmp_path)
    path = store.chunk_path(tmp_path, 0)
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(size // 2)
    with pytest.raises(DatasetError) as excinfo:
        Dataset.open(tmp_path)
    _assert_one_line_error(excinfo, "chunk_00000.h5", "chunk 0")


def test_missing_pieces_are_one_line_errors(tmp_path):
    with pytest.raises(DatasetError) as excinfo:
        Dataset.open(tmp_path / "nope")
    _assert_one_line_error(excinfo, "not found")
    with pytest.raises(DatasetError) as excinfo:
        Dataset.open(tmp_path)
    _assert_one_line_error(excinfo, "meta.json")
    _write_dataset(tmp_path)
    os.remove(store.chunk_path(tmp_path, 1))
    with pytest.raises(DatasetError) as excinfo:
        Dataset.open(tmp_path)
    _assert_one_line_error(excinfo, "chunk 1 of 2", "missing")
    (tmp_path / "meta.json").write_text("{not json")
    with pytest.raises(DatasetError) as excinfo:
        Dataset.open(tmp_path)
    _assert_one_line_error(excinfo, "meta.json", "invalid JSON")


def test_stale_tmp_removal(tmp_path):
    (tmp_path / "chunk_00003.h5.tmp").write_bytes(b"partial")
    removed = store.remove_stale_tmp(tmp_path)
    assert [p.name for p in removed] == ["chunk_00003.h5.tmp"] and not list(tmp_path.iterdir())


def test_split_is_deterministic_disjoint_and_complete(tmp_path):
    _write_dataset(tmp_path, chunks=((0, 20), (20, 20)))
    ds = Dataset.open(tmp_path)
    train, held = ds.split(0.1, seed=0)
    assert len(held) == 4 and len(train) == 36
    assert set(train).isdisjoint(held) and set(train) | set(held) == set(range(40))
    t2, h2 = ds.split(0.1, seed=0)
    np.testing.assert_array_equal(held, h2)


def test_sampler_windows_stay_inside_episodes(tmp_path):
    lengths = np.array([T, 3, T, 5, 2, T, T, 4, T])  # some short (padded) episodes
    _write_dataset(tmp_path, lengths=lengths)
    ds = Dataset.open(tmp_path)
    window = 4
    sampler = WindowSampler(ds, batch_size=64, window=window, seed=1, keys=("state", "action", "qpos"))
    seen = set()
    for step in range(50):
        b = sampler.batch(step)
        assert b["state"].shape == (64, window, 4) and b["state"].dtype == np.float32
        assert b["action"].shape == (64, window - 1, 2) and b["qpos"].shape == (64, window, 2)
        ep, t = b["state"][..., 0], b["state"][..., 1]
        assert np.all(ep == ep[:, :1])  # one episode per window
        assert np.all(np.diff(t, axis=1) == 1)  # consecutive steps
        assert np.all(t[:, -1] <= lengths[ep[:, 0].astype(int)])  # never past the episode's end
        np.testing.assert_array_equal(b["action"][..., 0], ep[:, :-1])  # actions from the same episode
        np.testing.assert_array_equal(b["action"][..., 1], t[:, :-1])  # action t sits between state t and t+1
        seen |= set(ep[:, 0].astype(int))
    assert 4 not in seen  # length 2 < window - 1: no valid window
    assert seen == {0, 1, 2, 3, 5, 6, 7, 8}


def test_sampler_is_deterministic_per_step_and_prefetch_matches(tmp_path):
    _write_dataset(tmp_path)
    ds = Dataset.open(tmp_path)
    s1 = WindowSampler(ds, batch_size=8, window=3, seed=7)
    s2 = WindowSampler(ds, batch_size=8, window=3, seed=7)
    for step in (0, 5, 123):
        a, b = s1.batch(step), s2.batch(step)
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(s1.batch(1)["state"], s1.batch(2)["state"])
    assert not np.array_equal(s1.batch(1)["state"], WindowSampler(ds, 8, 3, seed=8).batch(1)["state"])
    got = list(s1.iterate(start_step=10, num_steps=5))
    assert [s for s, _ in got] == list(range(10, 15))
    for step, batch in got:
        np.testing.assert_array_equal(batch["state"], s2.batch(step)["state"])
    it = s1.iterate(0)  # endless iterator closed early: the prefetch thread stops
    next(it)
    it.close()


def test_sampler_restricted_to_episode_subset(tmp_path):
    _write_dataset(tmp_path)
    ds = Dataset.open(tmp_path)
    train, held = ds.split(0.3, seed=0)
    sampler = WindowSampler(ds, batch_size=32, window=3, seed=0, episodes=held)
    eps = {int(e) for step in range(10) for e in sampler.batch(step)["state"][:, 0, 0]}
    assert eps <= set(held.tolist())


def test_sampler_bad_requests(tmp_path):
    _write_dataset(tmp_path)
    ds = Dataset.open(tmp_path)
    with pytest.raises(DatasetError, match="pixels"):
        WindowSampler(ds, 4, 3, keys=("pixels", "action"))
    with pytest.raises(DatasetError, match="long enough"):
        WindowSampler(ds, 4, T + 5)
