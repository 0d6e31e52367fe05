"""OGBench cube (envs/ogbench_cube.py via envs/ogbench_adapter.py): `ogbench:cube-single-play-v0`.

The first test runs without the optional extra (the error names the install command); the rest skip
when `ogbench` is not installed (`pip install -e '.[ogbench]'`).
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import json
import sys

import numpy as np
import pytest

from jepa_mpc.errors import ConfigError, TaskFileError
from jepa_mpc_envs import ogbench_adapter, registry
from jepa_mpc_envs.registry import get_family

ENV_ID = "ogbench:cube-single-play-v0"
# OGBench's five cube-single evaluation tasks: target cube positions (its task_infos).
TASK_GOALS = {1: (0.425, -0.1, 0.02), 2: (0.50, 0.0, 0.02), 3: (0.35, 0.0, 0.02), 4: (0.50, 0.2, 0.02),
              5: (0.50, -0.2, 0.02)}


def test_without_ogbench_the_error_is_one_line_naming_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "ogbench", None)
    registry.ogbench_family.cache_clear()
    try:
        with pytest.raises(ConfigError) as err:
            get_family(ENV_ID)
    finally:
        registry.ogbench_family.cache_clear()
    msg = str(err.value)
    assert "\n" not in msg and "pip install -e '.[ogbench]'" in msg


# ------------------------------------------------------------------ with ogbench installed


@pytest.fixture(scope="module")
def spec():
    pytest.importorskip("ogbench")
    registry.ogbench_family.cache_clear()
    return get_family(ENV_ID)


@pytest.fixture(scope="module")
def cube():
    pytest.importorskip("ogbench")
    from jepa_mpc_envs import ogbench_cube

    return ogbench_cube


@pytest.fixture(scope="module")
def suite(spec):
    return spec.generate_suite(0, 5)


@pytest.fixture(scope="module")
def env(spec):
    e = spec.make_env(layout=spec.default_layout(), obs_type="state", frame_skip=5)
    yield e
    e.close()


def test_spec_follows_the_state_convention(spec, cube):
    assert spec.env_id == ENV_ID and spec.state_dim == 27 and spec.action_dim == 5 and spec.goal_dim == 3
    assert spec.state_fields[:3] == ("cube_x", "cube_y", "cube_z") and len(spec.state_fields) == spec.state_dim
    assert spec.default_tolerance == 0.04 and spec.default_max_steps == 200
    layout = spec.default_layout()
    assert spec.layout_from_dict(layout.to_dict()) == layout
    starts = spec.sample_start_states(layout, np.random.default_rng(0), 32)
    assert starts.shape == (32, 27)
    assert np.all((starts[:, :2] >= cube.CUBE_BOUNDS[0]) & (starts[:, :2] <= cube.CUBE_BOUNDS[1]))
    assert np.all(starts[:, 2] == cube.CUBE_REST_Z) and np.all(starts[:, 3:6] == 0)
    np.testing.assert_array_equal(spec.goal_features(starts), starts[:, :3])


def test_suite_is_ogbenchs_five_tasks_and_reset_reproduces_it(spec, suite, env):
    assert [t.task_id for t in suite.tasks] == [1, 2, 3, 4, 5]
    for task in suite.tasks:
        np.testing.assert_allclose(task.goal[:3], TASK_GOALS[task.task_id], atol=2e-3)
        assert np.linalg.norm(np.subtract(task.start[:2], task.goal[:2])) > 0.1  # the cube must travel
    task = suite.tasks[3]
    obs, info = env.reset(options={"task": task})
    assert obs.shape == (27,) and obs.dtype == np.float32
    np.testing.assert_allclose(obs, task.start, atol=1e-5)  # the suite recorded what this seed gives
    np.testing.assert_allclose(info["goal"][:3], task.goal[:3], atol=1e-4)
    assert set(info) >= {"success", "violation", "distance_to_goal", "state", "goal"}
    assert info["success"] is False and info["violation"] is False
    assert info["distance_to_goal"] == pytest.approx(np.linalg.norm(obs[:3] - info["goal"][:3]), abs=1e-5)
    np.testing.assert_array_equal(env.observation_at(task.goal), np.asarray(task.goal, np.float32))


def test_step_moves_the_end_effector_and_keeps_the_convention(env, suite):
    obs, _ = env.reset(options={"task": suite.tasks[0]})
    for _ in range(3):
        obs2, reward, terminated, truncated, info = env.step(np.array([0, 0, -1, 0, 0], np.float32))
    assert obs2.shape == (27,) and reward == 0.0 and not terminated and not truncated
    assert obs2[10] < obs[10] - 0.02  # the end effector went down
    np.testing.assert_allclose(obs2[:3], obs[:3], atol=2e-3)  # the cube (far below) did not move
    np.testing.assert_array_equal(info["state"], obs2)


def test_success_is_ogbenchs_signal(env, suite):
    import mujoco

    task = suite.tasks[1]
    env.reset(options={"task": task})
    u = env.unwrapped_ogbench
    u._data.joint("object_joint_0").qpos[:3] = TASK_GOALS[task.task_id]  # put the cube on its target
    mujoco.mj_forward(u._model, u._data)
    _, _, terminated, truncated, info = env.step(np.zeros(5, np.float32))
    assert info["success"] is True and terminated and not truncated
    assert info["distance_to_goal"] <= 0.04 and bool(u._success)


def test_episode_is_truncated_at_the_tasks_step_limit(spec, suite, env):
    import dataclasses

    task = dataclasses.replace(suite.tasks[2], max_steps=2)
    env.reset(options={"task": task})
    assert env.step(np.zeros(5, np.float32))[3] is False
    assert env.step(np.zeros(5, np.float32))[3] is True


def test_bad_input_is_a_one_line_config_error(spec, env):
    from jepa_mpc_envs.ogbench_cube import OGBenchCubeEnv

    bad = [lambda: env.step(np.zeros(2, np.float32)),
           lambda: env.step(np.full(5, np.nan, np.float32)),
           lambda: env.observation_at(np.zeros(4)),
           lambda: OGBenchCubeEnv(layout=spec.default_layout(), frame_skip=3),
           lambda: OGBenchCubeEnv(layout=spec.default_layout(), obs_type="pixels"),
           lambda: spec.generate_suite(0, 5, tolerance=0.1),
           lambda: spec.generate_suite(0, 5, hazards="line"),
           lambda: spec.generate_suite(0, 0),
           lambda: spec.state_to_mjstate(None, np.zeros(27)),
           lambda: spec.pixel_renderer(None, 64),
           lambda: get_family("ogbench:cube-nowhere-play-v0")]
    for fn in bad:
        with pytest.raises(ConfigError) as err:
            fn()
        assert "\n" not in str(err.value)


def test_suite_round_trips_and_rejects_bad_files(spec, suite, tmp_path):
    from jepa_mpc_envs.suites import save_suite

    path = save_suite(suite, tmp_path / "s.json")
    back = registry.load_suite(path)
    assert back.env_id == ENV_ID and back.layout == suite.layout and back.tasks == suite.tasks
    assert back.tasks[0].tolerance == 0.04 and back.tasks[0].max_steps == 200
    doc = json.loads(open(path).read())

    def check(mutate, field):
        d = json.loads(json.dumps(doc))
        mutate(d)
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(d))
        with pytest.raises(TaskFileError) as err:
            registry.load_suite(bad)
        assert "\n" not in str(err.value) and field in str(err.value) and str(bad) in str(err.value)

    check(lambda d: d["tasks"][0].update(start=d["tasks"][0]["start"][:4]), "start")  # a PointMaze-sized state
    check(lambda d: d["tasks"][1].update(task_id=9), "task_id")
    check(lambda d: d["tasks"][2].update(tolerance=-1), "tolerance")
    check(lambda d: d["tasks"][2].update(color="red"), "color")
    check(lambda d: d.update(layout={"dataset": "pointmaze-medium-navigate-v0"}), "layout")
    # A PointMaze suite still loads with its own 4-number states.
    maze = dict(doc, env_id="ogbench:pointmaze-medium-navigate-v0", layout={"dataset": "pointmaze-medium-navigate-v0"},
                tasks=[{"task_id": 1, "seed": 0, "start": [0, 0, 0, 0], "goal": [1, 1, 0, 0]}])
    (tmp_path / "maze.json").write_text(json.dumps(maze))
    assert registry.load_suite(tmp_path / "maze.json").tasks[0].tolerance == 1.0


def test_collector_explores_the_cube_and_records_what_it_executed(spec, cube):
    layout = spec.default_layout()
    rng = np.random.default_rng(0)
    starts = spec.sample_start_states(layout, rng, 6)
    noise = rng.uniform(-1, 1, (6, 60, 5)).astype(np.float32)
    given = noise.copy()
    with spec.make_collector(None, 5) as c:
        assert c.env is spec
        out = c.run(starts, noise)
    assert out["state"].shape == (6, 61, 27) and out["action"] is noise
    assert np.all(np.abs(noise) <= 1) and not np.array_equal(noise, given)  # the script's actions, in place
    np.testing.assert_allclose(out["state"][:, 0, :3], starts[:, :3], atol=1e-6)
    np.testing.assert_allclose(out["state"][:, 0, 8:11], starts[:, 8:11], atol=1e-3)
    assert cube.cube_moved(out["state"]).sum() >= 3  # the biased exploration touches the cube
    # Replaying the recorded actions from the recorded start gives the recorded states.
    replay = cube.CubeCollector("cube-single-play-v0", 5, spec, script=False)
    try:
        again = replay.run(starts[:2], noise[:2].copy())
    finally:
        replay.close()
    np.testing.assert_allclose(again["state"], out["state"][:2], atol=1e-4)


def test_cube_moved_measures_displacement(cube):
    states = np.zeros((2, 5, 27), np.float32)
    states[1, 3, 0] = 0.05
    assert cube.cube_moved(states).tolist() == [False, True]


def test_state_from_observation_checks_the_shape(cube):
    with pytest.raises(ConfigError):
        cube.state_from_observation(np.zeros(10))
    ob = np.zeros(28)
    ob[19:22] = [1.0, 2.0, 0.2]  # OGBench: (xyz - (0.425, 0, 0)) * 10
    np.testing.assert_allclose(cube.state_from_observation(ob)[:3], [0.525, 0.2, 0.02], atol=1e-6)


def test_collect_writes_a_dataset_through_the_cube_collector(spec, tmp_path):
    from jepa_mpc.config import CollectConfig
    from jepa_mpc.data.collect import collect
    from jepa_mpc.data.store import Dataset

    cfg = CollectConfig(out=str(tmp_path / "d"), env_id=ENV_ID, num_episodes=3, episode_len=6, chunk_episodes=2)
    summary = collect(cfg, progress=False)
    assert summary["complete"] and summary["episodes"] == 3 and summary["steps"] == 18
    ds = Dataset.open(cfg.out)
    assert ds.meta["env_id"] == ENV_ID and ds.arrays["state"].shape == (3, 7, 27)
    assert ds.arrays["action"].shape == (3, 6, 5) and list(ds.meta["state_fields"][:3]) == ["cube_x", "cube_y", "cube_z"]
