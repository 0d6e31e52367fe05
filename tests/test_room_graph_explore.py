"""Exploring a task's room for its goal graph (`goal:graph --goal.source explore`).

By default (`--goal.explore-start task-start`) every exploration episode begins at the task's own
start state and the agent moves only by the data's reward-free actions: no teleport between
consecutive states, a graph per task start, its env steps counted. `--goal.explore-start reset`
keeps the older resettable-simulator behaviour (uniform free positions of the true room) by name.
Both the oracle (StateSpace) and the learned-model (LatentSpace) paths go through it.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import types

import numpy as np
import pytest

from conftest import assert_one_line_error, run_cli
from jepa_mpc import room_graph
from jepa_mpc.cli import parse
from jepa_mpc.config import CollectConfig
from jepa_mpc.evaluate import EvalArgs
from jepa_mpc.goals import GraphGoal, LatentSpace, StateSpace
from jepa_mpc_envs import tworoom_layouts as TL
from jepa_mpc_envs.registry import TWOROOM_LAYOUTS
from jepa_mpc_envs.suites import Task

FAMILY = TL.LayoutFamily()
ROOM = tuple(float(v) for v in FAMILY.heldout_rooms()[0])
TOP_SPEED = 0.8  # m/s per axis, the agent's terminal speed at full thrust (envs/tworoom.py)
EPISODES, STEPS = 12, 40


def task(start_xy, room=ROOM, name="t"):
    return Task(name=name, start=(*start_xy, 0.0, 0.0, *room), goal=(0.5, 0.0, 0.0, 0.0, *room), max_steps=200)


def explore_cfg(**kw):
    return CollectConfig(env_id=TL.ENV_ID, num_episodes=EPISODES, episode_len=STEPS, seed=3, **kw)


def control_dt(cfg: CollectConfig) -> float:
    return float(TL.build_model(FAMILY).opt.timestep) * cfg.frame_skip


def assert_moved_only_by_steps(states: np.ndarray, cfg: CollectConfig) -> None:
    """Consecutive states of an episode are one simulated step apart: no jump beyond top speed x dt
    per axis (x2: a contact at a wall corner can briefly push the agent faster than its motors; a
    reset to a uniform free position jumps ~0.5 m, more than 10 times this bound)."""
    jumps = np.abs(np.diff(TWOROOM_LAYOUTS.positions(states), axis=1))  # per axis (one motor each)
    assert jumps.max() <= 2 * TOP_SPEED * control_dt(cfg), jumps.max()
    assert np.all(states[..., 4:] == states[:, :1, 4:])  # the room never changes


def test_task_start_exploration_begins_at_the_start_and_moves_only_by_actions():
    cfg, t = explore_cfg(), task((-0.6, 0.3))
    states = room_graph.explore_room(TWOROOM_LAYOUTS, FAMILY, ROOM, cfg, start=t.start)
    assert states.shape == (EPISODES, STEPS + 1, 7)
    np.testing.assert_allclose(states[:, 0], np.broadcast_to(t.start, (EPISODES, 7)), atol=1e-6)
    assert_moved_only_by_steps(states, cfg)
    # it does explore: the episodes fan out from the start
    ends = TWOROOM_LAYOUTS.positions(states[:, -1])
    assert np.linalg.norm(ends - np.array(t.start[:2]), axis=-1).mean() > 0.1
    assert len(np.unique(np.round(ends, 4), axis=0)) == EPISODES
    # deterministic in (seed, room, start); another start draws other actions
    np.testing.assert_array_equal(states, room_graph.explore_room(TWOROOM_LAYOUTS, FAMILY, ROOM, cfg, start=t.start))


def test_reset_exploration_is_what_its_name_says_uniform_free_starts_of_the_true_room():
    cfg = explore_cfg()
    states = room_graph.explore_room(TWOROOM_LAYOUTS, FAMILY, ROOM, cfg)
    starts = TWOROOM_LAYOUTS.positions(states[:, 0])
    assert len(np.unique(np.round(starts, 4), axis=0)) == EPISODES  # every episode teleported elsewhere
    wall = FAMILY.room(np.asarray(ROOM)).wall_pos
    assert np.any(starts[:, 0] < wall) and np.any(starts[:, 0] > wall)  # on both sides of the wall
    assert_moved_only_by_steps(states, cfg)  # within an episode it still only steps


def recording_embed(seen: list):
    def embed(states):
        seen.append(np.array(states))
        return TWOROOM_LAYOUTS.goal_features(states)

    return embed


def test_room_graphs_explore_each_task_start_once_and_count_the_steps():
    seen: list = []
    graphs = room_graph.RoomGraphs(TWOROOM_LAYOUTS, FAMILY, recording_embed(seen), explore_cfg(), num_nodes=50)
    assert graphs.start == "task-start"
    a, b = task((-0.6, 0.3), name="a"), task((-0.4, -0.5), name="b")
    g = graphs.graph_for(a)
    assert graphs.graph_for(a) is g and graphs.explored_steps == EPISODES * STEPS
    assert graphs.graph_for(b) is not g and graphs.explored_steps == 2 * EPISODES * STEPS
    for states, t in zip(seen, (a, b)):
        np.testing.assert_allclose(states[:, 0], np.broadcast_to(t.start, (EPISODES, 7)), atol=1e-6)
    reset = room_graph.RoomGraphs(TWOROOM_LAYOUTS, FAMILY, TWOROOM_LAYOUTS.goal_features, explore_cfg(),
                                  num_nodes=50, start="reset")
    assert reset.graph_for(a) is reset.graph_for(b) and reset.explored_steps == EPISODES * STEPS  # one per room
    with pytest.raises(ValueError, match="start"):
        room_graph.RoomGraphs(TWOROOM_LAYOUTS, FAMILY, TWOROOM_LAYOUTS.goal_features, explore_cfg(), 50, start="teleport")


DATASET = types.SimpleNamespace(meta={"config": {"env_id": TL.ENV_ID, "episode_len": STEPS}})


@pytest.mark.parametrize("space", ["oracle", "learned"])
def test_explore_goal_cost_starts_from_the_task_start_for_the_oracle_and_a_learned_model(space, monkeypatch):
    explored: list = []
    real = room_graph.explore_room

    def spy(*args, **kwargs):
        explored.append(real(*args, **kwargs))
        return explored[-1]

    monkeypatch.setattr(room_graph, "explore_room", spy)
    encoded: list = []

    def encode(obs):  # a stand-in encoder on states: (N, 7) -> (N, 3)
        encoded.append(np.array(obs))
        return np.asarray(obs)[:, :3] * 2.0

    where = (StateSpace(TWOROOM_LAYOUTS, DATASET, FAMILY) if space == "oracle"
             else LatentSpace(encode, "state", DATASET, TWOROOM_LAYOUTS, FAMILY))
    t = task((0.5, -0.4))
    for start, episodes in (("task-start", 6), ("reset", 5)):
        explored.clear()
        cost = GraphGoal(source="explore", explore_episodes=episodes, explore_start=start).build(where, seed=1)
        assert cost.room_graphs.start == start
        cost.set_tasks([t])
        goal_point = np.asarray(encode(np.asarray([t.goal], np.float32))) if space == "learned" else np.array([[0.5, 0.0]])
        ctx = cost.episode_ctx(goal_point)
        assert ctx["nodes"].shape[0] == 1 and cost.explored_steps == episodes * STEPS
        (states,) = explored
        at_start = np.all(np.abs(states[:, 0] - np.asarray(t.start)) < 1e-6, axis=-1)
        assert at_start.all() if start == "task-start" else not at_start.any()
        if space == "learned":  # the encoder saw the explored states, first of each episode the start
            first = encoded[-2].reshape(episodes, STEPS + 1, 7)[:, 0]
            np.testing.assert_allclose(first, states[:, 0], atol=1e-6)


def test_explore_start_flag_parses_and_says_what_reset_is():
    assert GraphGoal().explore_start == "task-start"
    args = parse(EvalArgs, ["goal:graph", "--goal.source", "explore", "--goal.explore-start", "reset"], "eval")
    assert args.control.goal == GraphGoal(source="explore", explore_start="reset")
    proc = run_cli("eval", "goal:graph", "--help")
    assert proc.returncode == 0 and "--goal.explore-start" in proc.stdout
    assert "resettable simulator" in " ".join(proc.stdout.replace("│", " ").split())
    assert_one_line_error(run_cli("eval", "goal:graph", "--goal.explore-start", "teleport"), "explore-start")
