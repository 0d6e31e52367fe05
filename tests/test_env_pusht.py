"""Push-T: physics, success predicate, rendering, API checks, task suites, collection and the oracle."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import copy
import json
import math

import gymnasium as gym
import jax
import mujoco
import numpy as np
import pytest

import jepa_mpc_envs  # noqa: F401  (registers the gym id)
from jepa_mpc.config import CollectConfig
from jepa_mpc.control import ControlConfig, OraclePlannerPolicy, RandomActionsPolicy, mujoco_block_simulator, run_mpc
from jepa_mpc.data import collect as C
from jepa_mpc.data.store import Dataset
from jepa_mpc.errors import TaskFileError
from jepa_mpc.goals import LatentGoal
from jepa_mpc_envs import pusht as P
from jepa_mpc_envs.registry import PUSHT, get_family, load_suite
from jepa_mpc_envs.suites import save_suite, shipped_suite_path, suite_to_dict

ENV_ID = "jepa_mpc_envs/PushT-v0"
LAYOUT = P.PushTLayout()


def state(bx, by, th, px, py):
    return P.full_state(np.array([bx, by, th, px, py]), np.zeros(5))


def task(start, goal, name="t", **kw):
    return P.PushTTask(name=name, start=tuple(map(float, start)), goal=tuple(map(float, goal)), **kw)


def run_actions(env, actions):
    for a in actions:
        env.step(a)
    return env.state


@pytest.mark.parametrize("obs_type", ["state", "pixels", "both"])
def test_reset_step_render(obs_type):
    env = gym.make(ENV_ID, obs_type=obs_type, render_mode="rgb_array").unwrapped
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    assert {"success", "violation", "distance_to_goal", "position_error", "angle_error", "state", "goal"} <= set(info)
    assert info["state"].shape == (P.STATE_DIM,) and not info["success"]
    obs2, reward, terminated, truncated, info2 = env.step(np.array([0.5, -0.5], np.float32))
    assert env.observation_space.contains(obs2) and reward in (0.0, 1.0)
    frame = env.render()
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8 and frame.std() > 0
    env.close()


def test_state_round_trip_and_derived_angle_fields():
    model = P.build_model(LAYOUT)
    s = P.full_state(np.array([0.05, -0.03, 4.0, -0.1, 0.12]), np.array([0.1, 0.2, 0.3, -0.1, 0.05]))
    assert s[10] == pytest.approx(math.cos(4.0), abs=1e-6) and s[11] == pytest.approx(math.sin(4.0), abs=1e-6)
    back = P.mjstate_to_state(model, P.state_to_mjstate(model, s[None]))[0]
    np.testing.assert_allclose(back, s, atol=1e-6)  # the angle is kept unwrapped (4.0, not 4 - 2 pi)
    np.testing.assert_allclose(P.state_to_mjstate(model, s[[0, 1, 2, 6, 7]]), P.state_to_mjstate(model, state(0.05, -0.03, 4.0, -0.1, 0.12)))


def test_pushing_moves_the_block_and_it_stops_when_released():
    env = P.PushTEnv()
    env.reset(options={"task": task(state(0, 0, 0, -0.09, 0.0), state(0.1, 0, 0, 0.05, 0))})
    s = run_actions(env, [np.array([1.0, 0.0])] * 20)
    assert s[0] > 0.08 and abs(s[1]) < 0.01  # pushed ~10 cm along +x
    assert s[6] < s[0]  # the pusher stays behind the block
    s = run_actions(env, [np.zeros(2)] * 3)
    assert np.abs(s[3:6]).max() < 1e-3 and np.abs(s[8:10]).max() < 1e-3  # both at rest (floor friction)
    # the pusher is a velocity servo: free motion at PUSHER_SPEED, stopped by the walls
    env.reset(options={"task": task(state(0.15, 0.15, 0, -0.1, -0.1), state(0.15, 0.15, 0, -0.1, -0.1))})
    s = run_actions(env, [np.array([-1.0, 0.0])] * 2)
    assert s[8] == pytest.approx(-P.PUSHER_SPEED, rel=0.05)
    s = run_actions(env, [np.array([-1.0, 0.0])] * 40)
    assert s[6] >= -LAYOUT.arena_half + LAYOUT.pusher_radius - 2e-3 and abs(s[8]) < 0.01


def test_random_actions_keep_physics_finite_and_in_the_arena():
    env = P.PushTEnv()
    rng = np.random.default_rng(0)
    for seed in range(3):
        env.reset(seed=seed)
        s = run_actions(env, rng.uniform(-1, 1, (100, 2)))
        assert np.all(np.isfinite(s))
        assert P.t_inside_arena(LAYOUT, s[:3], -0.005)
        assert np.all(np.abs(s[6:8]) <= LAYOUT.arena_half)


def test_success_needs_position_and_wrapped_angle():
    goal = state(0.0, 0.0, 0.5, 0.1, 0.1)
    cases = [
        (state(0.01, 0.01, 0.5 + 0.3, -0.1, -0.1), True),  # 1.4 cm and 0.3 rad: both inside
        (state(0.03, 0.0, 0.5, -0.1, -0.1), False),  # position 3 cm > 2 cm
        (state(0.0, 0.0, 0.5 + 0.4, -0.1, -0.1), False),  # angle 0.4 rad > pi / 9
        (state(0.0, 0.0, 0.5 + 2 * math.pi + 0.1, -0.1, -0.1), True),  # same pose one turn later
    ]
    env = P.PushTEnv()
    for start, ok in cases:
        _, info = env.reset(options={"task": task(start, goal)})
        assert info["success"] is ok, (start[:3], info)
    _, info = env.reset(options={"task": task(cases[2][0], goal, angle_tolerance=0.5)})
    assert info["success"]


def test_step_rejects_bad_actions():
    env = P.PushTEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        env.step(np.array([np.nan, 0.0]))


def test_goal_observation_renders_the_goal_pose():
    env = P.PushTEnv(obs_type="pixels")
    t = task(state(-0.1, -0.1, 0.0, -0.1, 0.05), state(0.1, 0.1, 1.0, 0.1, -0.03))
    obs, _ = env.reset(options={"task": t})
    goal_obs = env.observation_at(t.goal)
    assert goal_obs.shape == obs.shape and not np.array_equal(goal_obs, obs)
    np.testing.assert_array_equal(goal_obs, env.observation_at(state(0.1, 0.1, 1.0 + 2 * math.pi, 0.1, -0.03)))
    assert np.array_equal(P.PushTEnv(obs_type="state").observation_at(t.goal), np.asarray(t.goal, np.float32))


def test_mjcf_is_our_own_push_t():
    xml = P.build_mjcf(LAYOUT)
    model = P.build_model(LAYOUT)
    assert 'model="pusht"' in xml and model.nq == 5 and model.nu == 2
    names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, i) for i in range(model.njnt)]
    assert names == ["block_x", "block_y", "block_th", "pusher_x", "pusher_y"]
    assert abs(LAYOUT.com_offset) > 0  # the block frame sits at the T's centre of mass


def test_start_sampler_puts_the_pusher_next_to_the_block():
    s = P.sample_start_states(LAYOUT, np.random.default_rng(0), 200)
    d = P.distance_to_t(LAYOUT, s[:, 6:8], s[:, :3])
    assert np.all(d >= LAYOUT.pusher_radius) and np.all(d <= LAYOUT.pusher_radius + 0.035)
    assert np.all(P.t_inside_arena(LAYOUT, s[:, :3]))


def test_shipped_heldout_suite_is_the_seeded_generator_output():
    suite = load_suite(shipped_suite_path("pusht_heldout"))
    assert suite.env_id == ENV_ID and len(suite) == 200
    regenerated = P.generate_suite(2026, 10, stream="legacy")
    assert [t.to_dict() for t in suite.tasks[:10]] == [t.to_dict() for t in regenerated.tasks]
    shift, turn = np.array([P.block_pose_error(t.goal, t.start) for t in suite.tasks]).T
    assert np.all((shift >= P.MIN_GOAL_SHIFT) | (turn >= P.MIN_GOAL_TURN))
    assert np.all(shift <= P.MAX_GOAL_SHIFT + 1e-6) and np.all(turn <= P.MAX_GOAL_TURN + 1e-6)


def test_generated_goals_are_reached_by_the_scripted_push():
    """Reachability by construction: replaying the scripted push from the start reaches the goal."""
    model = P.build_model(LAYOUT)
    starts = P.sample_start_states(LAYOUT, np.random.default_rng(5), 4)
    finals, actions = P.scripted_push(model, starts, np.random.default_rng(6), return_actions=True)
    env = P.PushTEnv()
    for start, final, acts in zip(starts, finals, actions):
        _, info = env.reset(options={"task": task(start, final)})
        for a in acts:
            _, _, terminated, _, info = env.step(a)
            if terminated:
                break
        assert info["success"]


def test_generated_suite_round_trips(tmp_path):
    suite = P.generate_suite(3, 5, max_steps=80)
    path = save_suite(suite, tmp_path / "s.json")
    again = load_suite(path)
    assert [t.to_dict() for t in again.tasks] == [t.to_dict() for t in suite.tasks]
    assert all(isinstance(t, P.PushTTask) and t.max_steps == 80 for t in again.tasks)


def _doc():
    return suite_to_dict(P.generate_suite(0, 2))


@pytest.mark.parametrize(
    "edit, task_index, field",
    [
        (lambda d: d["tasks"][1]["start"].__setitem__(0, 0.3), 1, "start"),  # T outside the arena
        (lambda d: d["tasks"][0]["goal"].__setitem__(6, d["tasks"][0]["goal"][0]), 0, "goal"),  # pusher in the T
        (lambda d: d["tasks"][0].__setitem__("angle_tolerance", 0.0), 0, "angle_tolerance"),
        (lambda d: d["tasks"][1].__setitem__("hazards", {"type": "circle"}), 1, "hazards"),
        (lambda d: d["tasks"][1].__setitem__("hazards", [{"type": "circle", "center": d["tasks"][1]["start"][:2],
                                                          "radius": 0.01}]), 1, "start"),  # on the block
        (lambda d: d["tasks"][1].__setitem__("speed_limit", 0.0), 1, "speed_limit"),
        (lambda d: d["tasks"][0].__setitem__("start", [0.0, 0.0, 0.0]), 0, "start"),
        (lambda d: d["tasks"][0]["start"].__setitem__(2, float("nan")), 0, "start[2]"),
    ],
)
def test_bad_suite_is_one_line_error_naming_task_and_field(tmp_path, edit, task_index, field):
    d = copy.deepcopy(_doc())
    edit(d)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d))
    with pytest.raises(TaskFileError) as err:
        load_suite(path)
    msg = str(err.value)
    assert "\n" not in msg and f"task {task_index} " in msg and f"'{field}" in msg, msg


def test_declared_features_are_the_block_pose_and_its_velocity():
    family = get_family(ENV_ID)
    assert family is PUSHT and family.state_dim == P.STATE_DIM
    assert family.field_names(family.goal) == ["bx", "by", "th"]
    assert family.field_names(family.position) == ["bx", "by"]
    assert family.field_names(family.velocity) == ["bvx", "bvy"]  # not the angle (index 2)


def test_probe_and_oracle_read_the_declared_block_fields():
    from jepa_mpc.control import oracle_features
    from jepa_mpc.probe import state_layout

    states = np.arange(2 * P.STATE_DIM, dtype=np.float32).reshape(2, P.STATE_DIM)
    layout = state_layout({"env_id": ENV_ID})
    assert layout.names == ("bx", "by", "bvx", "bvy", "px", "py", "pvx", "pvy", "cos_th", "sin_th")
    read = [0, 1, 3, 4, 6, 7, 8, 9, 10, 11]  # block position and velocity first, then pusher, then cos/sin
    np.testing.assert_array_equal(layout.targets(states), states[:, read])
    np.testing.assert_array_equal(oracle_features(PUSHT, states), states[:, [0, 1, 2] + read])


def test_collection_through_the_registry_moves_the_block(tmp_path):
    cfg = CollectConfig(out=str(tmp_path / "d"), env_id=ENV_ID, num_episodes=60, episode_len=30, chunk_episodes=30)
    C.collect(cfg, progress=False)
    ds = Dataset.open(tmp_path / "d")
    s = ds.arrays["state"]
    assert s.shape == (60, 31, P.STATE_DIM) and ds.meta["state_fields"] == list(P.STATE_FIELDS)
    moving = (np.linalg.norm(np.diff(s[..., :2], axis=1), axis=-1) > 1e-4) | (np.abs(np.diff(s[..., 2], axis=1)) > 1e-3)
    assert moving.any(axis=1).mean() > 0.6  # most episodes touch the T (random-walk pusher: ~45 %)


def test_oracle_planner_solves_push_t_tasks_and_random_does_not():
    suite = load_suite(shipped_suite_path("pusht_heldout"))
    tasks = [suite.tasks[1], suite.tasks[6]]  # solved by the oracle in 17 and 16 steps at this budget
    cfg = ControlConfig(goal=LatentGoal(), samples=64, iterations=4, action_block=5)
    sim = mujoco_block_simulator(PUSHT.build_model(LAYOUT), 5, cfg.action_block, env=PUSHT)
    policy = OraclePlannerPolicy(sim, cfg, None, action_dim=2, goal_dim=3)
    records = run_mpc([P.PushTEnv() for _ in tasks], tasks, policy, jax.random.key(0), family=PUSHT)
    assert all(r.success for r in records), [(r.final_distance, r.steps) for r in records]
    random = run_mpc([P.PushTEnv() for _ in tasks], tasks, RandomActionsPolicy(), jax.random.key(0), family=PUSHT)
    assert not any(r.success for r in random)


def test_video_renders_the_recorded_full_states():
    """Videos draw the T at its recorded angle and the pusher where it was, not at angle 0 / the origin."""
    from jepa_mpc.video import episode_frames

    layout = P.PushTLayout()
    s0, s1 = state(0.0, 0.0, 0.0, 0.15, 0.15), state(0.0, 0.0, 1.0, -0.15, 0.15)
    path = np.array([s0[:2], s1[:2]], np.float32)  # same block position: only angle and pusher differ
    frames = episode_frames(layout, task(s0, s1), path, size=64, env_id=P.ENV_ID, states=np.stack([s0, s1]))
    assert frames.shape == (2, 64, 64, 3) and np.abs(frames[0].astype(int) - frames[1]).sum() > 0
    blind = episode_frames(layout, task(s0, s1), path, size=64, env_id=P.ENV_ID)
    assert np.array_equal(blind[0], blind[1])  # without the states both frames look alike
