"""OGBench adapter (envs/ogbench_adapter.py): `ogbench:<dataset>` env ids.

The first tests run without the optional extra (the error names the install command); the rest
skip when `ogbench` is not installed (`pip install -e '.[ogbench]'`).
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import subprocess
import sys

import numpy as np
import pytest

from jepa_mpc.errors import ConfigError, TaskFileError
from jepa_mpc_envs import ogbench_adapter, registry
from jepa_mpc_envs.registry import get_family

ENV_ID = "ogbench:pointmaze-medium-navigate-v0"


@pytest.fixture
def no_ogbench(monkeypatch):
    """`import ogbench` fails (as without the extra); the spec cache is cleared around the test."""
    monkeypatch.setitem(sys.modules, "ogbench", None)
    registry.ogbench_family.cache_clear()
    yield
    registry.ogbench_family.cache_clear()


@pytest.mark.parametrize("env_id", [ENV_ID, "ogbench:", "ogbench:nope-v0"])
def test_without_ogbench_the_error_is_one_line_naming_the_install_command(no_ogbench, env_id):
    with pytest.raises(ConfigError) as err:
        get_family(env_id)
    msg = str(err.value)
    assert "\n" not in msg and "pip install -e '.[ogbench]'" in msg


def test_cli_without_ogbench_exits_2_with_one_line():
    code = ("import sys; sys.modules['ogbench'] = None; from jepa_mpc.cli import main; "
            f"sys.argv = ['jepa-mpc', 'collect', '--env', '{ENV_ID}', '--out', '/nonexistent/x']; main()")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip() and "Warning" not in line]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and "pip install -e '.[ogbench]'" in lines[0], proc.stderr


def test_task_plan_is_round_robin_over_the_five_tasks():
    plan = ogbench_adapter.eval_task_plan(250)
    assert [t for t, _ in plan[:6]] == [1, 2, 3, 4, 5, 1]
    assert all(sum(t == k for t, _ in plan) == 50 for k in range(1, 6))


# ------------------------------------------------------------------ with ogbench installed


@pytest.fixture(scope="module")
def spec():
    pytest.importorskip("ogbench")
    registry.ogbench_family.cache_clear()
    return get_family(ENV_ID)


def test_unknown_ogbench_env_is_one_line_config_error(spec):
    with pytest.raises(ConfigError) as err:
        get_family("ogbench:pointmaze-nowhere-v0")
    msg = str(err.value)
    assert "\n" not in msg and "'ogbench:pointmaze-nowhere-v0'" in msg and ENV_ID in msg


def test_spec_follows_the_state_convention(spec):
    assert spec.env_id == ENV_ID and spec.state_dim == 4 and spec.action_dim == 2 and spec.goal_dim == 2
    assert spec.default_tolerance == 1.0 and spec.default_max_steps == 1000
    layout = spec.default_layout()
    assert spec.layout_from_dict(layout.to_dict()) == layout
    starts = spec.sample_start_states(layout, np.random.default_rng(0), 16)
    assert starts.shape == (16, 4) and np.all(starts[:, 2:] == 0)


def test_reset_and_step_through_the_adapter(spec):
    suite = spec.generate_suite(0, 5)
    env = spec.make_env(layout=suite.layout, obs_type="state", frame_skip=5)
    task = suite.tasks[0]
    obs, info = env.reset(options={"task": task})
    assert obs.shape == (4,) and obs.dtype == np.float32
    np.testing.assert_allclose(obs, task.start, atol=1e-5)  # the suite recorded what this seed gives
    np.testing.assert_allclose(info["goal"], task.goal, atol=1e-5)
    assert set(info) >= {"success", "violation", "distance_to_goal", "state", "goal"}
    assert info["distance_to_goal"] == pytest.approx(np.linalg.norm(obs[:2] - info["goal"][:2]), abs=1e-4)
    obs2, _, terminated, truncated, info2 = env.step(np.array([1.0, 0.0], np.float32))
    assert obs2[0] == pytest.approx(obs[0] + 0.2, abs=1e-3)  # OGBench: qpos += 0.2 a
    assert obs2[2] == pytest.approx(0.2 / env.control_dt, rel=1e-2)  # rate = displacement / control period
    assert not terminated and not truncated and info2["success"] is False
    np.testing.assert_array_equal(env.observation_at(task.goal), np.asarray(task.goal, np.float32))
    env.close()


def test_success_is_ogbenchs_signal(spec):
    env = spec.make_env(layout=spec.default_layout())
    task = spec.generate_suite(1, 3).tasks[2]  # task 3: a short one
    obs, _ = env.reset(options={"task": task})
    for _ in range(400):
        step = np.clip((np.asarray(task.goal[:2]) - obs[:2]) / 0.2, -1, 1)
        obs, _, terminated, truncated, info = env.step(step)
        if terminated or truncated:
            break
    inner = env.unwrapped_ogbench
    assert info["success"] == bool(inner.compute_success())
    env.close()


def test_suite_covers_the_five_tasks_and_round_trips(spec, tmp_path):
    from jepa_mpc_envs.suites import save_suite

    suite = spec.generate_suite(0, 10)
    assert [t.task_id for t in suite.tasks] == [1, 2, 3, 4, 5] * 2
    assert len({t.seed for t in suite.tasks}) == 10
    path = save_suite(suite, tmp_path / "s.json")
    back = registry.load_suite(path)
    assert back.env_id == ENV_ID and back.layout == suite.layout and back.tasks == suite.tasks
    bad = tmp_path / "bad.json"
    bad.write_text(path_text := open(path).read().replace('"task_id": 3', '"task_id": 9', 1))
    assert '"task_id": 9' in path_text
    with pytest.raises(TaskFileError) as err:
        registry.load_suite(bad)
    assert "\n" not in str(err.value) and "task_id" in str(err.value)


def test_collector_steps_the_gym_env(spec):
    layout = spec.default_layout()
    starts = spec.sample_start_states(layout, np.random.default_rng(0), 3)
    actions = np.random.default_rng(1).uniform(-1, 1, (3, 7, 2))
    with spec.make_collector(None, 5) as c:
        assert c.env is spec
        out = c.run(starts, actions)
    assert out["state"].shape == (3, 8, 4) and out["qpos"].shape == (3, 8, 2)
    np.testing.assert_allclose(out["state"][:, 0], starts, atol=1e-5)
    np.testing.assert_allclose(out["state"][..., :2], out["qpos"], atol=1e-5)
    step = np.abs(np.diff(out["state"][..., :2], axis=1))
    assert step.max() <= 0.2 + 1e-4  # |qpos change| <= 0.2 |a| per step (walls only shorten it)


def test_collect_writes_a_dataset_through_the_gym_collector(spec, tmp_path):
    from jepa_mpc.config import CollectConfig
    from jepa_mpc.data.collect import collect
    from jepa_mpc.data.store import Dataset

    cfg = CollectConfig(out=str(tmp_path / "d"), env_id=ENV_ID, num_episodes=3, episode_len=6, chunk_episodes=2)
    summary = collect(cfg, progress=False)
    assert summary["complete"] and summary["episodes"] == 3 and summary["steps"] == 18
    ds = Dataset.open(cfg.out)
    assert ds.meta["env_id"] == ENV_ID and ds.arrays["state"].shape == (3, 7, 4)


def test_eval_video_of_a_family_without_renderer_is_refused_before_any_episode(spec, tmp_path):
    from jepa_mpc.control import ControlConfig, RandomActions
    from jepa_mpc.evaluate import EvalArgs, evaluate
    from jepa_mpc_envs.suites import save_suite

    assert not spec.renders
    path = save_suite(spec.generate_suite(0, 2), tmp_path / "s.json")
    with pytest.raises(ConfigError, match="--video 1: .* has no renderer"):
        evaluate(EvalArgs(suite=str(path), out=str(tmp_path / "r"), video=1,
                          control=ControlConfig(planner=RandomActions())))
    assert not (tmp_path / "r" / "batches.jsonl").exists()
