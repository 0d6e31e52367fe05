"""Reacher: physics, predicates, rendering, API checks, task suites, collection and the oracle planner."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import copy
import json

import gymnasium as gym
import jax
import numpy as np
import pytest

import jepa_mpc_envs  # noqa: F401  (registers the gym id)
from jepa_mpc.config import CollectConfig
from jepa_mpc.control import ControlConfig, OraclePlannerPolicy, RandomActionsPolicy, mujoco_block_simulator, run_mpc
from jepa_mpc.data import collect as C
from jepa_mpc.data.store import Dataset
from jepa_mpc.errors import ConfigError, TaskFileError
from jepa_mpc.goals import LatentGoal
from jepa_mpc_envs import reacher as R
from jepa_mpc_envs.registry import REACHER
from jepa_mpc_envs.registry import load_suite
from jepa_mpc_envs.suites import Task, save_suite, shipped_suite_path, suite_to_dict

ENV_ID = "jepa_mpc_envs/Reacher-v0"


def task(start, goal, tolerance=0.12, max_steps=100, name="t"):
    s = tuple(start) + (0.0,) * (4 - len(start))
    g = tuple(goal) + (0.0,) * (4 - len(goal))
    return Task(name=name, start=s, goal=g, tolerance=tolerance, max_steps=max_steps)


@pytest.mark.parametrize("obs_type", ["state", "pixels", "both"])
def test_observations_show_the_goal_arm(obs_type):
    env = gym.make(ENV_ID, obs_type=obs_type).unwrapped
    obs, info = env.reset(seed=1)
    assert env.observation_space.contains(obs)
    if obs_type != "state":
        pix = obs if obs_type == "pixels" else obs["pixels"]
        assert pix.shape == (64, 64, 3) and pix.dtype == np.uint8
        goal_pix = env.observation_at(info["goal"])
        goal_pix = goal_pix if obs_type == "pixels" else goal_pix["pixels"]
        assert not np.array_equal(pix, goal_pix)  # the goal is the arm drawn in the goal configuration
    env.close()


def test_torque_limited_speed_and_joint_stops():
    env = R.ReacherEnv()
    env.reset(options={"task": task((0.0, 0.0), (2.0, 2.0))})
    states = []
    for _ in range(60):
        _, _, term, trunc, info = env.step(np.array([1.0, -1.0], np.float32))
        states.append(info["state"])
    s = np.array(states)
    assert np.max(np.abs(s[:, 2:])) <= R.MAX_JOINT_SPEED * 1.2  # terminal speed ~3 rad/s
    assert np.max(np.abs(s[10:30, 2])) > 0.8 * R.MAX_JOINT_SPEED
    (s_lo, s_hi), (e_lo, e_hi) = R.JOINT_LIMITS
    assert s[-1, 0] == pytest.approx(s_hi, abs=0.01) and s[-1, 1] == pytest.approx(e_lo, abs=0.01)  # at the stops
    assert np.all(np.abs(s[-1, 2:]) < 1e-3)


def test_success_predicate_and_termination():
    env = R.ReacherEnv()
    _, info = env.reset(options={"task": task((0.5, -0.3), (0.55, -0.3))})
    assert info["success"] and info["distance_to_goal"] == pytest.approx(0.05, abs=1e-6)
    _, info = env.reset(options={"task": task((0.5, -0.3), (0.5, 0.3), max_steps=3)})
    assert not info["success"] and not info["violation"]
    np.testing.assert_allclose(info["fingertip"], R.fingertip(info["state"]), atol=1e-6)
    for t in range(3):
        _, reward, term, trunc, info = env.step(np.zeros(2, np.float32))
    assert not term and trunc and reward == 0.0


def test_step_rejects_bad_actions():
    env = R.ReacherEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        env.step(np.array([np.nan, 0.0]))


def test_render_rgb_array():
    env = R.ReacherEnv(render_mode="rgb_array", render_size=48)
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (48, 48, 3) and frame.dtype == np.uint8
    env.close()


def test_mjcf_is_our_own_two_link_arm():
    model = R.build_model()
    assert model.nq == 2 and model.nv == 2 and model.nu == 2
    assert all(model.jnt_limited) and np.allclose(model.actuator_ctrlrange, [[-1, 1], [-1, 1]])
    assert "reacher2link" in R.build_mjcf()


# ------------------------------------------------------------------ suites


def test_shipped_heldout_suite_is_the_seeded_generator_output():
    suite = load_suite(shipped_suite_path("reacher_heldout"))
    assert suite.env_id == ENV_ID and len(suite) == 200
    assert suite_to_dict(R.generate_suite(3000, 200, stream="legacy")) == suite_to_dict(suite)
    for t in suite.tasks:
        assert np.linalg.norm(np.subtract(t.goal[:2], t.start[:2])) >= R.MIN_SEPARATION
        assert t.tolerance == R.DEFAULT_TOLERANCE and t.max_steps == R.DEFAULT_MAX_STEPS


def test_generated_suite_round_trips(tmp_path):
    suite = R.generate_suite(7, 5, tolerance=0.2, max_steps=80)
    path = save_suite(suite, tmp_path / "r.json")
    loaded = load_suite(path)
    assert loaded.tasks == suite.tasks and loaded.layout == suite.layout
    with pytest.raises(ConfigError, match="Reacher suites take"):
        R.generate_suite(7, 5, hazards="line")


GOOD = {"env_id": ENV_ID, "tasks": [{"name": "a", "start": [0.1, 0.2], "goal": [1.0, -1.0, 0.0, 0.0]},
                                    {"name": "b", "start": [-2.0, 2.0], "goal": [2.0, -2.0], "tolerance": 0.1}]}


def _set(path, value):
    def edit(doc):
        node = doc
        for k in path[:-1]:
            node = node[k]
        if value is KeyError:
            del node[path[-1]]
        else:
            node[path[-1]] = value
        return doc

    return edit


@pytest.mark.parametrize(
    "edit, task_index, field",
    [
        (_set(["tasks", 0, "start", 0], 3.2), 0, "start[0]"),
        (_set(["tasks", 1, "goal", 1], -2.7), 1, "goal[1]"),
        (_set(["tasks", 0, "goal"], [0.1]), 0, "goal"),
        (_set(["tasks", 0, "start"], [0.1, 0.2, 50.0, 0.0]), 0, "start"),
        (_set(["tasks", 1, "tolerance"], 0.0), 1, "tolerance"),
        (_set(["tasks", 1, "max_steps"], 0), 1, "max_steps"),
        (_set(["tasks", 0, "hazards"], {"type": "circle"}), 0, "hazards"),
        (_set(["tasks", 0, "hazards"], [{"type": "circle", "center": [0, 0], "radius": -0.1}]), 0, "hazards[0].radius"),
        (_set(["tasks", 0, "hazards"], [{"type": "circle", "center": [0.234, 0.0475], "radius": 0.02}]), 0, "start"),
        (_set(["tasks", 0, "speed_limit"], -1.0), 0, "speed_limit"),
        (_set(["tasks", 0, "keep_in"], {"lo": [0, 0], "hi": [1, 1]}), 0, "keep_in"),
        (_set(["tasks", 1, "name"], "a"), 1, "name"),
        (_set(["tasks", 0, "goal"], KeyError), 0, "goal"),
        (_set(["layout"], {"upper_length": -1}), None, "layout"),
        (_set(["tasks"], []), None, "tasks"),
    ],
)
def test_bad_suite_is_one_line_error_naming_task_and_field(tmp_path, edit, task_index, field):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(edit(copy.deepcopy(GOOD))))
    with pytest.raises(TaskFileError) as err:
        load_suite(path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and f"field '{field}'" in msg
    if task_index is not None:
        assert f"task {task_index} " in msg


def test_good_suite_loads(tmp_path):
    path = tmp_path / "good.json"
    path.write_text(json.dumps(GOOD))
    suite = load_suite(path)
    assert suite.tasks[0].start == (0.1, 0.2, 0.0, 0.0) and suite.tasks[1].tolerance == 0.1


# ------------------------------------------------------------------ collection and planning


def test_collection_through_the_same_store(tmp_path):
    cfg = CollectConfig(out=str(tmp_path / "d"), env_id=ENV_ID, num_episodes=6, episode_len=12,
                        chunk_episodes=4, pixels=True, seed=5)
    summary = C.collect(cfg, progress=False)
    assert summary["complete"] and summary["episodes"] == 6 and summary["door_crossing_fraction"] is None
    ds = Dataset.open(cfg.out)
    assert ds.meta["env_id"] == ENV_ID and ds.meta["state_fields"] == ["q1", "q2", "dq1", "dq2"]
    assert ds.arrays["state"].shape == (6, 13, 4) and ds.arrays["pixels"].shape == (6, 13, 64, 64, 3)
    assert np.all(ds.arrays["state"][:, 0, 2:] == 0)
    (s_lo, s_hi), (e_lo, e_hi) = R.JOINT_LIMITS
    q = ds.arrays["state"][..., :2]
    # the stops are soft constraints: a joint at full speed overshoots them by ~0.03 rad
    assert np.all((q[..., 0] >= s_lo - 0.05) & (q[..., 0] <= s_hi + 0.05) & (np.abs(q[..., 1]) <= e_hi + 0.05))
    # the collector replays exactly what the env does
    env = R.ReacherEnv()
    env.reset(options={"task": task(ds.arrays["state"][0, 0], (0.0, 0.0))})
    for a in ds.arrays["action"][0]:
        env.step(a)
    np.testing.assert_allclose(env.state, ds.arrays["state"][0, -1], atol=1e-5)
    # pixels are the env's renders of the recorded states
    np.testing.assert_array_equal(R.ReacherEnv(obs_type="pixels").observation_at(ds.arrays["state"][1, 4]),
                                  ds.arrays["pixels"][1, 4])
    # resuming a finished dataset writes nothing new
    assert C.collect(cfg, progress=False)["new_chunks"] == 0


def test_oracle_planner_solves_reacher_tasks_and_random_does_not():
    tasks = [task((-2.0, 1.5), (1.0, -1.0), name="a"), task((2.5, -2.0), (0.0, 2.0), name="b")]
    cfg = ControlConfig(goal=LatentGoal(), samples=32, iterations=3, action_block=5)
    sim = mujoco_block_simulator(REACHER.build_model(R.ReacherLayout()), 5, cfg.action_block, env=REACHER)
    policy = OraclePlannerPolicy(sim, cfg, None, action_dim=2)
    records = run_mpc([R.ReacherEnv() for _ in tasks], tasks, policy, jax.random.key(0), family=REACHER)
    assert all(r.success for r in records) and all(r.steps < 100 for r in records)
    random = run_mpc([R.ReacherEnv() for _ in tasks], tasks, RandomActionsPolicy(), jax.random.key(0), family=REACHER)
    assert not any(r.success for r in random)
    assert np.mean([r.final_distance for r in random]) > np.mean([r.final_distance for r in records])


def test_video_frames_draw_the_arm():
    from jepa_mpc.video import episode_frames

    path = np.array([[0.0, 0.0], [0.5, 0.2], [1.0, 0.4]], np.float32)
    frames = episode_frames(R.ReacherLayout(), task((0, 0), (1.0, 0.4)), path, size=64, env_id=ENV_ID)
    assert frames.shape == (3, 64, 64, 3) and not np.array_equal(frames[0], frames[-1])
