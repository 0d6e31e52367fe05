"""Action-block views of a dataset: k control steps per model step, no data lost, split by source."""

import numpy as np

from jepa_mpc.data.store import Dataset, WindowSampler


def _dataset(episodes=6, t=20):
    rng = np.random.default_rng(0)
    state = rng.normal(size=(episodes, t + 1, 4)).astype(np.float32)
    action = rng.uniform(-1, 1, size=(episodes, t, 2)).astype(np.float32)
    return Dataset({"state": state, "action": action})


def test_blocks_concatenate_actions_between_block_states():
    ds = _dataset()
    k = 5
    blocked = ds.action_blocks(k)
    n = (20 - k + 1) // k
    assert blocked.arrays["state"].shape == (6 * k, n + 1, 4)
    assert blocked.arrays["action"].shape == (6 * k, n, 2 * k)
    # row e * k + o is episode e at phase offset o
    e, o = 2, 3
    row = e * k + o
    np.testing.assert_array_equal(blocked.arrays["state"][row, 1], ds.arrays["state"][e, o + k])
    np.testing.assert_array_equal(blocked.arrays["action"][row, 1], ds.arrays["action"][e, o + k : o + 2 * k].reshape(-1))
    batch = WindowSampler(blocked, 8, 3, seed=0, keys=("state", "action")).batch(0)
    assert batch["action"].shape == (8, 2, 2 * k)


def test_split_keeps_phase_copies_of_an_episode_together():
    blocked = _dataset(episodes=10).action_blocks(4)
    train, held = blocked.split(0.3)
    src = blocked.source_episode
    assert set(src[train]).isdisjoint(src[held])
    assert len(train) + len(held) == blocked.num_episodes
    # the same source episodes as the unblocked dataset's split
    src_train, src_held = _dataset(episodes=10).split(0.3)
    assert set(src[held]) == set(src_held) and set(src[train]) == set(src_train)


def test_block_of_one_is_identity():
    ds = _dataset()
    assert ds.action_blocks(1) is ds
