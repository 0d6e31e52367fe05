"""TwoRoomLayouts: a room per episode (physics, pixels, held-out split, suites, collection) and goal
graphs from exploring the task's own room."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import json

import gymnasium as gym
import jax
import numpy as np
import pytest

import jepa_mpc_envs  # noqa: F401  (registers the gym id)
from jepa_mpc import room_graph
from jepa_mpc.config import CollectConfig
from jepa_mpc.control import ControlConfig, OraclePlannerPolicy, RandomActionsPolicy, mujoco_block_simulator, run_mpc
from jepa_mpc.data import collect as C
from jepa_mpc.data.store import Dataset
from jepa_mpc.errors import TaskFileError
from jepa_mpc.goals import GraphGoal, GraphGoalCost
from jepa_mpc_envs import tworoom_layouts as TL
from jepa_mpc_envs.registry import TWOROOM_LAYOUTS, get_family, load_suite
from jepa_mpc_envs.suites import Task, shipped_suite_path

ENV_ID = TL.ENV_ID
FAMILY = TL.LayoutFamily()


def task(start_xy, goal_xy, room, name="t", max_steps=200):
    room = tuple(float(v) for v in room)
    return Task(name=name, start=(*start_xy, 0.0, 0.0, *room), goal=(*goal_xy, 0.0, 0.0, *room), max_steps=max_steps)


# ------------------------------------------------------------------ the family and its held-out rooms


def test_training_rooms_keep_away_from_the_heldout_rooms():
    held = FAMILY.heldout_rooms()
    assert held.shape == (FAMILY.heldout, 3)
    rooms = FAMILY.sample_training_rooms(np.random.default_rng(0), 5000)
    assert np.all(FAMILY.gap_to_heldout(rooms) >= FAMILY.min_gap)
    assert np.all((rooms >= FAMILY.lows) & (rooms <= FAMILY.lows + FAMILY.spans))
    for r in held:  # every held-out room is a valid TwoRoom layout
        FAMILY.room(r)
    assert TL.LayoutFamily.from_dict(json.loads(json.dumps(FAMILY.to_dict()))) == FAMILY


def test_bad_family_is_one_line_error():
    with pytest.raises(ValueError, match="door_width_range"):
        TL.LayoutFamily(door_width_range=(0.4, 0.3))
    with pytest.raises(ValueError, match="door"):
        TL.LayoutFamily(door_center_range=(-0.95, 0.95))  # a door leaving the arena


# ------------------------------------------------------------------ env


@pytest.mark.parametrize("obs_type", ["state", "pixels"])
def test_observations_carry_the_room(obs_type):
    env = gym.make(ENV_ID, obs_type=obs_type).unwrapped
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    assert info["state"].shape == (7,) and np.all(info["state"][4:] == info["goal"][4:])
    env.close()


def test_each_room_has_its_own_wall():
    left_of_wall = (-0.6, 0.8)  # far from both doors below
    for room in ((-0.2, -0.5, 0.25), (0.25, -0.5, 0.25)):
        env = TL.TwoRoomLayoutsEnv()
        env.reset(options={"task": task(left_of_wall, (0.8, -0.5), room)})
        for _ in range(60):
            _, _, _, _, info = env.step(np.array([1.0, 0.0]))
        x = info["state"][0]
        assert x < room[0] - FAMILY.wall_thickness / 2 - 0.04 and x > room[0] - 0.2  # stopped at this room's wall
        assert np.allclose(info["state"][4:], room)


def test_pixels_show_the_room():
    env = TL.TwoRoomLayoutsEnv(obs_type="pixels")
    a = env.observation_at(np.array([0.8, 0.8, 0, 0, -0.2, 0.0, 0.3], np.float32))
    b = env.observation_at(np.array([0.8, 0.8, 0, 0, 0.2, 0.0, 0.3], np.float32))
    c = env.observation_at(np.array([0.8, 0.8, 0, 0, 0.2, 0.3, 0.3], np.float32))
    assert not np.array_equal(a, b) and not np.array_equal(b, c)
    states = np.array([[0.8, 0.8, 0, 0, -0.2, 0.0, 0.3], [0.8, 0.8, 0, 0, 0.2, 0.3, 0.3]], np.float32)
    batch = TL.RoomRenderer(TL.build_model(FAMILY)).render_states(states)
    np.testing.assert_array_equal(batch[0], a)
    np.testing.assert_array_equal(batch[1], c)
    with pytest.raises(ValueError, match="7 numbers"):
        env.observation_at(np.zeros(4))


# ------------------------------------------------------------------ suites


def test_shipped_suites_split_the_rooms():
    train = load_suite(shipped_suite_path("tworoom_layouts_train"))
    held = load_suite(shipped_suite_path("tworoom_layouts_heldout"))
    assert len(train) == len(held) == 200 and train.env_id == held.env_id == ENV_ID
    train_rooms = np.unique([t.start[4:] for t in train.tasks], axis=0)
    held_rooms = np.unique([t.start[4:] for t in held.tasks], axis=0)
    assert len(train_rooms) == len(held_rooms) == 20
    assert np.all(FAMILY.gap_to_heldout(train_rooms) >= FAMILY.min_gap)
    np.testing.assert_allclose(np.sort(held_rooms, axis=0), np.sort(FAMILY.heldout_rooms(), axis=0))
    for suite in (train, held):
        for t in suite.tasks:
            room = FAMILY.room(t.start[4:])
            crosses = jepa_mpc_envs.geometry.room_of(room, np.array(t.start[:2])) != \
                jepa_mpc_envs.geometry.room_of(room, np.array(t.goal[:2]))
            assert crosses == (int(t.name[-4:]) % 10 < 6)


@pytest.mark.parametrize("edit,field", [
    (lambda t: t.update(goal=t["goal"][:4] + [0.1, 0.0, 0.3]), "goal"),
    (lambda t: t.update(start=[t["start"][4]] + t["start"][1:]), "start"),  # the agent inside its wall
    (lambda t: t.update(start=t["start"][:4]), "start"),
    (lambda t: t.update(hazards=[{"type": "circle", "center": [0, 0], "radius": 0.1}]), "hazards"),
])
def test_bad_task_is_one_line_error(tmp_path, edit, field):
    doc = json.loads(open(shipped_suite_path("tworoom_layouts_heldout")).read())
    edit(doc["tasks"][2])
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(TaskFileError, match=rf"task 2.*{field}") as e:
        load_suite(path)
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------ collection


def test_collection_gives_every_episode_its_own_room(tmp_path):
    cfg = CollectConfig(out=str(tmp_path / "d"), env_id=ENV_ID, num_episodes=6, episode_len=20, chunk_episodes=3,
                        pixels=True, seed=2)
    assert C.collect(cfg, progress=False)["complete"]
    ds = Dataset.open(cfg.out)
    s = ds.arrays["state"]
    assert s.shape == (6, 21, 7) and ds.meta["state_fields"] == list(TL.STATE_FIELDS)
    assert np.all(s[:, :, 4:] == s[:, :1, 4:]) and len(np.unique(s[:, 0, 4:], axis=0)) == 6
    assert np.all(FAMILY.gap_to_heldout(s[:, 0, 4:]) >= FAMILY.min_gap)
    env = TL.TwoRoomLayoutsEnv(obs_type="pixels")  # the env replays the collector's physics and frames
    env.reset(options={"task": task(s[4, 0, :2], (0.0, 0.0), s[4, 0, 4:])})
    for a in ds.arrays["action"][4]:
        obs, *_ = env.step(a)
    np.testing.assert_allclose(env.state, s[4, -1], atol=1e-5)
    np.testing.assert_array_equal(obs, ds.arrays["pixels"][4, -1])


# ------------------------------------------------------------------ goal graphs from exploring the room


def test_exploration_graph_is_per_room_and_cached():
    # start="reset": one graph per room (the default, "task-start", explores per task start:
    # tests/test_room_graph_explore.py)
    cfg = CollectConfig(env_id=ENV_ID, num_episodes=8, episode_len=30)
    graphs = room_graph.RoomGraphs(TWOROOM_LAYOUTS, FAMILY, TWOROOM_LAYOUTS.goal_features, cfg, num_nodes=500,
                                   start="reset")
    held = FAMILY.heldout_rooms()
    t0, t1 = task((-0.5, 0.0), (0.5, 0.0), held[0]), task((-0.5, 0.0), (0.5, 0.0), held[1])
    g0 = graphs.graph_for(t0)
    assert graphs.graph_for(t0) is g0 and graphs.graph_for(t1) is not g0
    assert graphs.graph_for(task((0.5, 0.5), (0.5, 0.0), held[0])) is g0  # another start, same room
    assert g0.nodes.shape == (8 * 31 // room_graph.MIN_POINTS_PER_NODE, 2)
    assert graphs.explored_steps == 2 * 8 * 30
    states = room_graph.explore_room(TWOROOM_LAYOUTS, FAMILY, tuple(held[0]), cfg)
    assert states.shape == (8, 31, 7) and np.allclose(states[..., 4:], held[0], atol=1e-6)


def test_oracle_with_explored_room_graph_goes_through_an_unseen_door_and_random_does_not():
    room = FAMILY.heldout_rooms()[0]
    layout = FAMILY.room(room)
    wall, door = layout.wall_pos, layout.door_center
    far = float(np.clip(door + (0.7 if door < 0 else -0.7), -0.85, 0.85))  # start away from the door's height
    tasks = [task((wall - 0.4, far), (wall + 0.4, far), room, name="a", max_steps=120)]
    cfg = ControlConfig(samples=64, iterations=3, goal=GraphGoal(source="explore", explore_episodes=32), action_block=5)
    sim = mujoco_block_simulator(TL.build_model(FAMILY), 5, cfg.action_block, env=TWOROOM_LAYOUTS)
    graphs = room_graph.RoomGraphs(TWOROOM_LAYOUTS, FAMILY, TWOROOM_LAYOUTS.goal_features,
                                   CollectConfig(env_id=ENV_ID, num_episodes=32, seed=1), num_nodes=300)
    policy = OraclePlannerPolicy(sim, cfg, GraphGoalCost("mixed", room_graphs=graphs), action_dim=2)
    records = run_mpc([TL.TwoRoomLayoutsEnv() for _ in tasks], tasks, policy, jax.random.key(0), family=TWOROOM_LAYOUTS)
    assert all(r.success for r in records)
    random = run_mpc([TL.TwoRoomLayoutsEnv() for _ in tasks], tasks, RandomActionsPolicy(), jax.random.key(0), family=TWOROOM_LAYOUTS)
    assert not any(r.success for r in random)


def test_registry_knows_the_env_and_its_room():
    assert get_family(ENV_ID) is TWOROOM_LAYOUTS and TWOROOM_LAYOUTS.state_dim == 7
    state = np.array([0.1, 0.2, 0.0, 0.0, 0.05, -0.1, 0.3])
    np.testing.assert_array_equal(TWOROOM_LAYOUTS.room_of(state), state[4:])  # the room is not a goal feature
    assert TWOROOM_LAYOUTS.field_names(TWOROOM_LAYOUTS.goal) == ["x", "y"]
