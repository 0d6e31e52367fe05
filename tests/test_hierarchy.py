"""Two-level planning (jepa_mpc/hierarchy.py): routes on the goal graph, subgoals along them, and the
subgoal record of an eval."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse

from jepa_mpc import hierarchy
from jepa_mpc.control import ControlConfig, RandomActions, validate_control
from jepa_mpc.errors import ConfigError
from jepa_mpc.goal_graph import NO_ROUTE, GraphConfig, LatentGraph, build_graph, data_pace, goal_routes
from jepa_mpc.goals import GraphGoal, LatentGoal

from test_goal_graph import DOOR, _two_room_walks


def _chain(n: int, gap: int | None = None) -> LatentGraph:
    """Nodes 0..n-1 on a line, 1 apart, each joined to the next (but not across `gap` -> gap + 1)."""
    nodes = np.stack([np.arange(n, dtype=np.float32), np.zeros(n, np.float32)], axis=1)
    pairs = [(i, i + 1) for i in range(n - 1) if i != gap]
    rows, cols = zip(*pairs)
    adjacency = scipy.sparse.coo_matrix((np.ones(len(pairs)), (rows, cols)), shape=(n, n)).tocsr()
    return LatentGraph(nodes=nodes, adjacency=adjacency, pace=0.5)  # 2 env steps per unit


def test_routes_count_env_steps_at_the_datas_pace_and_point_toward_the_goal():
    nxt, steps = goal_routes(_chain(10), np.array([9.0, 0.0]))
    np.testing.assert_array_equal(nxt, [1, 2, 3, 4, 5, 6, 7, 8, 9, 9])
    np.testing.assert_allclose(steps, 2.0 * (9 - np.arange(10)))


def test_subgoal_lies_the_asked_steps_ahead_and_gives_way_to_the_goal_near_it():
    nxt, steps = goal_routes(_chain(10), np.array([9.0, 0.0]))
    route_next, route_steps = nxt[None].repeat(3, 0), steps[None].repeat(3, 0)
    sub = hierarchy.subgoal_nodes(np.array([0, 4, 7]), route_next, route_steps, ahead=6.0)
    # 6 steps = 3 nodes ahead; from node 7 the goal's cell is 4 steps away: plan to the goal itself
    np.testing.assert_array_equal(sub, [3, 7, hierarchy.FINAL_GOAL])


def test_no_route_means_planning_to_the_goal_itself():
    nxt, steps = goal_routes(_chain(10, gap=4), np.array([9.0, 0.0]))
    assert nxt[0] == NO_ROUTE and not np.isfinite(steps[0])
    sub = hierarchy.subgoal_nodes(np.array([0, 6]), nxt[None].repeat(2, 0), steps[None].repeat(2, 0), ahead=2.0)
    np.testing.assert_array_equal(sub, [hierarchy.FINAL_GOAL, 7])


def test_pace_of_a_steady_walk_is_its_speed():
    walk = [np.stack([0.3 * np.arange(40), np.zeros(40)], axis=1) + k for k in range(3)]
    assert data_pace(walk, 10) == pytest.approx(0.3)
    assert data_pace([np.zeros((1, 2))], 10) is None


def test_subgoals_lead_through_the_door_of_a_wall_the_straight_line_crosses():
    """Random walks in two rooms joined by a door at |y| < DOOR: from behind the wall, the first subgoals
    on the way to a goal straight across it lie on the start's side, toward the door, then through it."""
    graph = build_graph(_two_room_walks(), GraphConfig(num_nodes=600))
    start, goal = np.array([-0.3, 0.8], np.float32), np.array([0.3, 0.8], np.float32)
    nxt, steps = goal_routes(graph, goal)
    cell = hierarchy.current_cells(start[None], graph.nodes)
    assert steps[cell[0]] > 2 * np.linalg.norm(goal - start) / graph.pace  # the route goes around the wall
    visited, node = [], int(cell[0])
    while nxt[node] != node:
        node = int(nxt[node])
        visited.append(graph.nodes[node])
    visited = np.asarray(visited)
    crossing = np.flatnonzero(np.diff(np.sign(visited[:, 0])) != 0)
    assert len(crossing) >= 1 and np.all(np.abs(visited[crossing, 1]) < DOOR + 0.15)
    near = hierarchy.subgoal_nodes(cell, nxt[None], steps[None], ahead=0.25 / graph.pace)
    assert graph.nodes[near[0], 0] < 0 and graph.nodes[near[0], 1] < 0.8  # still on the start's side, heading down


def test_hierarchy_needs_the_goal_graph_and_a_non_negative_reach():
    with pytest.raises(ConfigError, match="goal:graph"):
        validate_control(ControlConfig(hierarchy="graph", goal=LatentGoal()))
    with pytest.raises(ConfigError, match="--control.subgoal-steps"):
        validate_control(ControlConfig(hierarchy="graph", subgoal_steps=-1))
    with pytest.raises(ConfigError, match="probe's positions"):
        validate_control(ControlConfig(hierarchy="graph", goal=GraphGoal(source="probe")))
    with pytest.raises(ConfigError, match="planner:random-actions does not plan"):
        validate_control(ControlConfig(hierarchy="graph", planner=RandomActions()))
    validate_control(ControlConfig(hierarchy="graph", goal=GraphGoal()))


@pytest.mark.xdist_group("tiny_run")
def test_eval_records_the_subgoal_sequence_of_every_episode(tiny_run, tmp_path):
    from test_learned_path import FREE_TASKS, _eval, _write_suite

    suite = _write_suite(tmp_path / "free.json", FREE_TASKS)
    result, out = _eval(tiny_run[1], suite, tmp_path / "hier", hierarchy="graph", subgoal_steps=2,
                        goal=GraphGoal(nodes=32))
    assert result["summary"]["episodes"] == len(FREE_TASKS)
    nodes = 32
    for ep in result["episodes"]:
        subgoals = ep["subgoals"]
        steps = [s[0] for s in subgoals]
        assert steps[0] == 0 and steps == sorted(steps) and steps[-1] <= ep["steps"]
        assert all(-1 <= s[1] < nodes for s in subgoals)
        assert all(a[1] != b[1] for a, b in zip(subgoals, subgoals[1:]))  # recorded at each change
        assert all((s[2] is None) == (s[1] == -1) for s in subgoals)
    batches = [json.loads(line) for line in (out / "batches.jsonl").read_text().splitlines()]
    assert [e["subgoals"] for b in batches for e in b["episodes"]] == [e["subgoals"] for e in result["episodes"]]


def test_video_frames_mark_the_current_subgoal():
    from jepa_mpc.video import SUBGOAL_RGB, episode_frames
    from jepa_mpc_envs.suites import Task
    from jepa_mpc_envs.tworoom import Layout

    task = Task(name="t", start=(-0.6, 0.6, 0.0, 0.0), goal=(0.6, -0.6, 0.0, 0.0), tolerance=0.1, max_steps=10)
    path = np.linspace([-0.6, 0.6], [-0.2, 0.1], 6).astype(np.float32)
    subgoals = [(0, 3, [-0.1, 0.05]), (3, -1, None)]  # a node, then the goal itself from step 3 on
    frames = episode_frames(Layout(), task, path, size=64, subgoals=subgoals)
    marked = [bool(np.all(f == SUBGOAL_RGB, axis=-1).any()) for f in frames]
    assert marked == [True, True, True, False, False, False]


def test_an_agent_whose_node_has_no_route_starts_from_the_nearest_node_that_has_one():
    nodes = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 0.0]], np.float32)
    keys = np.array([[0.1, 0.0], [0.1, 0.0]], np.float32)
    reachable = np.array([[False, True, True], [False, False, False]])
    np.testing.assert_array_equal(hierarchy.current_cells(keys, nodes, reachable), [1, 0])  # none: all nodes
    per_episode = np.stack([nodes, nodes[::-1]])
    np.testing.assert_array_equal(hierarchy.current_cells(keys, per_episode), [0, 2])


def test_routes_go_around_blocked_nodes_and_priced_edges():
    """A ring of 8 nodes: the short way from node 0 to node 3 passes nodes 1-2; blocking node 1 (or pricing
    its edges out) sends the route the long way round, and its step count says so."""
    angles = np.arange(8) * 2 * np.pi / 8
    nodes = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    rows, cols = np.arange(8), (np.arange(8) + 1) % 8
    adjacency = scipy.sparse.coo_matrix((np.full(8, 1.0), (np.minimum(rows, cols), np.maximum(rows, cols))),
                                        shape=(8, 8)).tocsr()
    graph = LatentGraph(nodes=nodes, adjacency=adjacency, pace=1.0)
    nxt, steps = goal_routes(graph, nodes[3])
    assert nxt[0] == 1 and steps[0] == pytest.approx(3.0)
    blocked = np.zeros(8, bool)
    blocked[1] = True
    nxt, steps = goal_routes(graph, nodes[3], blocked=blocked)
    assert nxt[0] == 7 and steps[0] == pytest.approx(5.0) and nxt[1] == NO_ROUTE
    from jepa_mpc.goal_graph import edges

    a, b = edges(graph)
    factor = np.where((a == 1) | (b == 1), np.inf, 1.0)
    nxt, steps = goal_routes(graph, nodes[3], edge_factor=factor)
    assert nxt[0] == 7 and steps[0] == pytest.approx(5.0)
