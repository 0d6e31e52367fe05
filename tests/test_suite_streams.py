"""Validation and test suites come from their own seed streams, never from collection's.

Collection draws chunk i from ``default_rng([seed, i])``; suites from ``suite_rng(seed, stream)``
(envs/suites.py). For every shipped family: no task of its validation or test suites starts, ends
or (TwoRoomLayouts) is set in a room that collection seeds 0..3 draw in their first chunks; the
validation and test suites share no task; each file is what its recorded generator makes; Push-T
goals carry the block pose only. A positive control shows the check finds the collision of the
legacy ``tworoom_layouts_train.json`` (seed 0 = chunk 0 of collect seed 0).

Suite numbers are rounded (4 or 5 decimals), so "equal" is within 1e-4: a rounded copy of a
collected draw is caught, while two independent draws coincide that closely with probability
~1e-8 per pair.
"""

from __future__ import annotations

import functools
import itertools
import json

import numpy as np
import pytest

from jepa_mpc.config import CollectConfig
from jepa_mpc.errors import ConfigError, TaskFileError
from jepa_mpc.tasks_cli import TasksArgs, regenerate, tasks_main
from jepa_mpc_envs import pusht
from jepa_mpc_envs.registry import get_family, load_suite
from jepa_mpc_envs.suites import STREAM_TAGS, STREAMS, shipped_suite_path, suite_rng

TWOROOM, REACHER, PUSHT, LAYOUTS = ("jepa_mpc_envs/TwoRoom-v0", "jepa_mpc_envs/Reacher-v0", "jepa_mpc_envs/PushT-v0",
                                    "jepa_mpc_envs/TwoRoomLayouts-v0")
COLLECT_SEEDS = range(4)
CHUNKS = range(4)
TOL = 1e-4

# family -> its suites as (validation file, test file); every file named here is shipped
SUITES = {
    TWOROOM: [("tworoom_val", "tworoom_test"), ("tworoom_hazards_val", "tworoom_hazards_test"),
              ("tworoom_hazards_hard_val", "tworoom_hazards_hard_test")],
    REACHER: [("reacher_val", "reacher_test")],
    PUSHT: [("pusht_val", "pusht_test")],
    LAYOUTS: [("tworoom_layouts_val", "tworoom_layouts_test"),
              ("tworoom_layouts_indist_val", "tworoom_layouts_indist_test")],
}
FILES = [name for pairs in SUITES.values() for pair in pairs for name in pair]

# the state fields a start sampler draws (what a copied draw would reproduce)
DRAWN = {TWOROOM: [0, 1], REACHER: [0, 1], PUSHT: [0, 1, 2, 6, 7], LAYOUTS: [0, 1, 4, 5, 6]}


@functools.lru_cache(maxsize=None)
def _suite(name: str):
    return load_suite(shipped_suite_path(name))


def _collected_starts(env_id: str) -> np.ndarray:
    """(N, state_dim) start states of chunks `CHUNKS` of collect seeds `COLLECT_SEEDS` (the first draws
    of `collect_chunk`), with the default layout and chunk size."""
    family = get_family(env_id)
    layout = family.default_layout()
    n = CollectConfig.chunk_episodes
    return np.concatenate([family.sample_start_states(layout, np.random.default_rng([seed, i]), n)
                           for seed, i in itertools.product(COLLECT_SEEDS, CHUNKS)])


def _matches(points: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """(len(points),) bool: the point equals some draw within TOL in every coordinate."""
    return np.array([np.any(np.max(np.abs(draws - p), axis=1) < TOL) for p in points])


def _task_states(suite, which: str) -> np.ndarray:
    return np.array([getattr(t, which) for t in suite.tasks], np.float64)


@pytest.fixture(scope="module")
def collected():
    return {env_id: _collected_starts(env_id) for env_id in SUITES}


# ------------------------------------------------------------------ the streams


def test_suite_streams_never_replay_a_collection_chunk():
    first = lambda rng: rng.integers(2**63, size=4).tolist()  # noqa: E731
    chunks = {tuple(first(np.random.default_rng([s, i]))) for s in range(8) for i in range(64)}
    for stream, seed in itertools.product(STREAM_TAGS, range(8)):
        assert tuple(first(suite_rng(seed, stream))) not in chunks
    assert first(suite_rng(3, "validation")) != first(suite_rng(3, "test"))
    # the legacy stream is the plain seed: chunk 0 of the collection with that seed (why it is legacy)
    assert first(suite_rng(5, "legacy")) == first(np.random.default_rng([5, 0]))


def test_suite_rng_refuses_an_unknown_stream_and_a_bad_seed():
    with pytest.raises(ConfigError, match=r"^--stream train: expected one of validation, test, legacy$"):
        suite_rng(0, "train")
    for seed in (-1, 2**32, 1.5, True):
        with pytest.raises(ConfigError, match=r"^--seed .*: a suite seed is an integer in \[0, 2\*\*32\)$"):
            suite_rng(seed, "test")


def test_the_collision_check_finds_the_legacy_in_distribution_rooms(collected):
    """Positive control: the legacy TwoRoomLayouts 'train' suite (plain seed 0) reuses the rooms of
    collect seed 0's first 20 training episodes; the check below must see that."""
    legacy = _task_states(_suite("tworoom_layouts_train"), "start")[:, 4:7]
    draws = collected[LAYOUTS][:, 4:7]
    assert _matches(np.unique(legacy, axis=0), draws).all()


# ------------------------------------------------------------------ the shipped suites


@pytest.mark.parametrize("env_id", list(SUITES))
def test_suite_tasks_do_not_reproduce_collection_draws(env_id, collected):
    draws = collected[env_id][:, DRAWN[env_id]]
    for name in (n for pair in SUITES[env_id] for n in pair):
        suite = _suite(name)
        assert suite.env_id == env_id and len(suite) == 200
        for which in ("start", "goal"):
            states = _task_states(suite, which)
            assert not _matches(states[:, DRAWN[env_id]], draws).any(), f"{name}: a {which} is a collected start"
        if env_id == LAYOUTS:  # no room of the suite is a collected episode's room
            rooms = np.unique(_task_states(suite, "start")[:, 4:7], axis=0)
            assert not _matches(rooms, collected[env_id][:, 4:7]).any(), f"{name}: a room was collected"


@pytest.mark.parametrize("env_id", list(SUITES))
def test_suites_of_a_family_share_no_task(env_id):
    names = [n for pair in SUITES[env_id] for n in pair]
    states = {n: np.concatenate([_task_states(_suite(n), "start"), _task_states(_suite(n), "goal")], 1) for n in names}
    for a, b in itertools.combinations(names, 2):
        assert not _matches(states[a], states[b]).any(), f"{a} and {b} share a task"


@pytest.mark.parametrize("name", FILES)
def test_shipped_suite_is_what_its_recorded_generator_makes(name):
    suite = _suite(name)
    g = suite.generator
    assert g is not None and g["n"] == 200 and g["stream"] == ("validation" if name.endswith("_val") else "test")
    again = regenerate(g)
    assert again.tasks == suite.tasks and again.layout == suite.layout
    assert all(f"-{g['stream']}-s{g['seed']}-" in t.name for t in suite.tasks)


def test_suite_compositions_match_the_legacy_suites():
    for name in ("tworoom_val", "tworoom_test", "tworoom_hazards_val", "tworoom_hazards_test"):
        suite = _suite(name)
        assert suite.door_crossing_fraction() == pytest.approx(0.6)
        assert sum(len(t.hazards) for t in suite.tasks) == (200 if "hazards" in name else 0)
    layouts = get_family(LAYOUTS).default_layout()
    for name in ("tworoom_layouts_val", "tworoom_layouts_test", "tworoom_layouts_indist_val",
                 "tworoom_layouts_indist_test"):
        starts = _task_states(_suite(name), "start")
        rooms, counts = np.unique(starts[:, 4:7], axis=0, return_counts=True)
        assert len(rooms) == 20 and np.all(counts == 10)
        gap = layouts.gap_to_heldout(rooms)
        # held-out suites: the family's held-out rooms; in-distribution: rooms drawn like collection's
        assert np.allclose(gap, 0.0, atol=1e-3) if "indist" not in name else np.all(gap >= layouts.min_gap)


def test_pusht_goals_carry_the_block_pose_only():
    for name in ("pusht_val", "pusht_test"):
        suite = _suite(name)
        starts, goals = _task_states(suite, "start"), _task_states(suite, "goal")
        np.testing.assert_array_equal(goals[:, 6:8], starts[:, 6:8])  # the pusher stays where it started
        assert np.all(goals[:, [3, 4, 5, 8, 9]] == 0.0)
        assert np.all(pusht.distance_to_t(suite.layout, goals[:, 6:8], goals[:, :3]) >= suite.layout.pusher_radius)
        shift, turn = pusht.block_pose_error(goals, starts)
        assert np.all((shift >= pusht.MIN_GOAL_SHIFT) | (turn >= pusht.MIN_GOAL_TURN))
    _, info = pusht.PushTEnv().reset(seed=0)  # a task-free reset's goal is neutral too
    np.testing.assert_allclose(info["goal"][6:8], info["state"][6:8], atol=1e-6)
    legacy = _suite("pusht_heldout")  # the legacy suite kept the scripted pusher's end (a hint)
    assert not np.array_equal(_task_states(legacy, "goal")[:, 6:8], _task_states(legacy, "start")[:, 6:8])


# ------------------------------------------------------------------ the CLI


def test_tasks_cli_records_the_generator_and_check_reports_it(tmp_path, capsys):
    out = tmp_path / "s.json"
    tasks_main(TasksArgs(env=REACHER, seed=4, n=5, stream="test", out=str(out)))
    doc = json.loads(out.read_text())
    assert doc["generator"] == {"env": REACHER, "seed": 4, "n": 5, "stream": "test", "split": "", "hazards": "none",
                                "tolerance": None, "max_steps": None}
    assert regenerate(doc["generator"]).tasks == load_suite(out).tasks
    tasks_main(TasksArgs(check=str(out)))
    assert capsys.readouterr().out.splitlines()[-1].endswith(f"env {REACHER}, test stream, seed 4")
    tasks_main(TasksArgs(env=REACHER, seed=4, n=5, out=str(out)))  # default stream: validation
    assert json.loads(out.read_text())["generator"]["stream"] == "validation"


def test_tasks_cli_refuses_an_unknown_stream(tmp_path):
    with pytest.raises(ConfigError, match=r"^--stream heldout: expected one of validation, test, legacy$"):
        tasks_main(TasksArgs(env=LAYOUTS, stream="heldout", out=str(tmp_path / "s.json")))
    assert not (tmp_path / "s.json").exists()
    assert STREAMS == ("validation", "test", "legacy")


def test_a_generator_that_is_not_an_object_is_a_one_line_error():
    doc = json.loads(open(shipped_suite_path("reacher_val")).read())
    doc["generator"] = "jepa-mpc tasks"
    with pytest.raises(TaskFileError, match=r"^f.json: field 'generator': expected an object"):
        get_family(REACHER).suite_from_dict(doc, "f.json")
    del doc["generator"]  # optional: a hand-written suite has none
    assert get_family(REACHER).suite_from_dict(doc, "f.json").generator is None
