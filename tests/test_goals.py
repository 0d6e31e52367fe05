"""Goal costs as tagged configs: per-step shapes and weights, detours around walls and hazards,
the command line (`goal:KIND --goal.FIELD`, `planner:NAME --planner.FIELD`) and its errors."""

from __future__ import annotations

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import assert_one_line_error, run_cli
from jepa_mpc import costs, safety
from jepa_mpc.cli import parse
from jepa_mpc.config import to_dict
from jepa_mpc.control import ControlConfig, RandomActions
from jepa_mpc.errors import ConfigError, UserError
from jepa_mpc.evaluate import EvalArgs
from jepa_mpc.goal_graph import detour_excess
from jepa_mpc.goals import GOALS, GraphGoal, LatentGoal, StateSpace, goal_weights
from jepa_mpc.planning import CEMConfig, MPPIConfig
from jepa_mpc_envs.geometry import Circle

from test_goal_graph import _two_room_walks

H = 5


def toy_space(episodes):
    """A StateSpace over 2-d points (the oracle's view): goal features = the points themselves."""
    dataset = types.SimpleNamespace(arrays={"state": np.stack(episodes)}, meta={})
    env = types.SimpleNamespace(goal_features=lambda s: np.asarray(s)[..., :2])
    return StateSpace(env, dataset, layout=None)


@pytest.fixture(scope="module")
def walls():
    return toy_space(_two_room_walks(n_episodes=200))


def test_goal_weights_terminal_all_mixed():
    np.testing.assert_array_equal(goal_weights(H, "terminal"), [0, 0, 0, 0, 1])
    np.testing.assert_allclose(goal_weights(H, "all"), [0.2, 0.2, 0.2, 0.2, 1.2], rtol=1e-6)
    np.testing.assert_array_equal(goal_weights(H, "mixed"), goal_weights(H, "all"))
    # the one step-weight function of costs.py serves the goal weights too
    np.testing.assert_array_equal(costs.step_weights(H, "terminal"), goal_weights(H, "terminal"))


@pytest.mark.parametrize("config", [LatentGoal("terminal"), LatentGoal("all"), GraphGoal(mode="terminal", nodes=200),
                                    GraphGoal(mode="all", nodes=200), GraphGoal(mode="mixed", nodes=200)],
                         ids=lambda c: f"{c.kind}-{c.mode}")
def test_every_goal_cost_is_per_step_and_weighted_by_its_mode(config, walls):
    goal = config.build(walls, seed=0)
    goals = np.array([[0.5, 0.8], [-0.5, -0.5]], np.float32)
    goal.set_tasks([None, None])
    ctx = goal.episode_ctx(goals)
    cost = costs.make_cost(goal.terms(H))
    z = jnp.linspace(jnp.array([-0.8, 0.0]), jnp.array([0.4, 0.7]), H)
    row = {"nodes": goal.nodes, **{k: v[0] for k, v in ctx.items()}}
    parts = jax.jit(cost.breakdown)(z, jnp.zeros((H, 2)), row)
    assert parts["goal"].shape == (H,) and np.all(np.isfinite(parts["goal"]))
    straight = np.linalg.norm(np.asarray(z) - goals[0], axis=1) * np.asarray(goal_weights(H, config.mode))
    goal_cost = np.asarray(parts["goal"])
    if config.kind == "latent":  # the straight distance, weighted
        np.testing.assert_allclose(goal_cost, straight, rtol=1e-4)
    elif config.mode == "mixed":  # straight on every block, the graph's detour added at the last
        np.testing.assert_allclose(goal_cost[:-1], straight[:-1], rtol=1e-4)
        assert goal_cost[-1] >= straight[-1] - 1e-4
    else:  # graph distance >= straight distance, zero before the last block when terminal
        assert np.all(goal_cost >= straight - 1e-4)
    if config.mode == "terminal":
        np.testing.assert_array_equal(goal_cost[:-1], 0.0)


def test_graph_goal_routes_around_the_wall_and_latent_goal_does_not(walls):
    goal_xy = np.array([[0.5, 0.8]], np.float32)
    behind, free = jnp.array([[-0.1, 0.8]]), jnp.array([[0.1, 0.8]])

    def last_cost(config, point):
        built = config.build(walls, seed=0)
        built.set_tasks([None])
        ctx = {"nodes": built.nodes, **{k: v[0] for k, v in built.episode_ctx(goal_xy).items()}}
        z = jnp.repeat(point, H, axis=0)
        return float(costs.make_cost(built.terms(H)).breakdown(z, jnp.zeros((H, 2)), ctx)["goal"][-1])

    graph, latent = GraphGoal(mode="terminal", nodes=400), LatentGoal("terminal")
    assert last_cost(latent, behind) == pytest.approx(0.6, abs=1e-4)  # straight through the wall
    assert last_cost(graph, behind) > 1.4  # the way through the door
    assert abs(last_cost(graph, free) - 0.4) < 0.1  # same room: about the straight distance


def test_blocked_nodes_detour_like_walls(walls):
    graph = GraphGoal(nodes=400).build(walls, seed=0).graph
    goal = np.array([0.5, 0.8], np.float32)
    free = detour_excess(graph, goal)
    np.testing.assert_array_equal(detour_excess(graph, goal, np.zeros(graph.num_nodes, bool)), free)
    door = np.abs(graph.nodes[:, 1]) < 0.15  # block the door: the left room is cut off from the goal
    door &= np.abs(graph.nodes[:, 0]) < 0.25
    blocked = detour_excess(graph, goal, door)
    left = graph.nodes[:, 0] < -0.3
    assert np.all(blocked[left] >= free[left]) and np.all(blocked[left] > 1.0)
    right = (graph.nodes[:, 0] > 0.3) & ~door
    np.testing.assert_allclose(blocked[right], free[right], atol=0.3)


def test_priced_edges_keep_a_cut_graph_passable(walls):
    """Pricing the edges through a narrowed door makes it cost more without cutting the graph (removing
    them leaves one flat, capped cost behind it, which pulls the agent at the wall)."""
    from jepa_mpc.goal_graph import edges

    graph = GraphGoal(nodes=400).build(walls, seed=0).graph
    goal = np.array([0.5, 0.8], np.float32)
    free = detour_excess(graph, goal)
    rows, cols = edges(graph)
    np.testing.assert_allclose(detour_excess(graph, goal, edge_factor=np.ones(len(rows))), free)
    door = (np.abs(graph.nodes[:, 1]) < 0.15) & (np.abs(graph.nodes[:, 0]) < 0.25)
    through = door[rows] | door[cols]
    left = graph.nodes[:, 0] < -0.3
    cut = detour_excess(graph, goal, edge_factor=np.where(through, np.inf, 1.0))
    assert np.ptp(cut[left]) < 1e-6  # one capped excess for the whole cut-off room
    priced = detour_excess(graph, goal, edge_factor=np.where(through, 20.0, 1.0))
    assert np.all(priced[left] > free[left] + 0.1)
    # still a slope towards the door: the nearer a left-room node is to it, the less it costs
    via = priced[left] + np.linalg.norm(graph.nodes[left] - goal, axis=1)
    assert np.corrcoef(via, np.linalg.norm(graph.nodes[left], axis=1))[0, 1] > 0.8


def test_clearance_weights_ramp_from_the_margin():
    clearance = np.array([np.inf, 0.5, 0.1, 0.075, 0.05, 0.02, -0.1])
    w = safety.clearance_weights(clearance, margin=0.05, widen=2.0, inside=20.0)
    np.testing.assert_allclose(w, [1.0, 1.0, 1.0, 10.5, 20.0, 20.0, 20.0])
    np.testing.assert_allclose(safety.clearance_weights(clearance, 0.05, widen=1.0, inside=np.inf),
                               [1, 1, 1, 1, 1, np.inf, np.inf])
    hz = safety.hazard_arrays([types.SimpleNamespace(name="t", hazards=(Circle(center=(0.0, 0.0), radius=0.2),))],
                              types.SimpleNamespace(arena_half=1.0))
    c = safety.hazard_clearance(np.array([[[0.5, 0.0]], [[0.0, 0.1]]]), {k: v[0] for k, v in hz.items()})
    np.testing.assert_allclose(c, [0.3, -0.1], atol=1e-5)
    pair = safety.hazard_clearance(np.array([[[0.5, 0.0], [0.0, 0.1]]]), {k: v[0] for k, v in hz.items()})
    np.testing.assert_allclose(pair, [-0.1], atol=1e-5)  # a set of points: the closest one's clearance
    none = safety.hazard_arrays([types.SimpleNamespace(name="t", hazards=())], types.SimpleNamespace(arena_half=1.0))
    assert np.all(np.isinf(safety.hazard_clearance(np.zeros((3, 1, 2)), {k: v[0] for k, v in none.items()})))


def test_bottleneck_is_the_widest_way_between_two_nodes():
    import scipy.sparse

    from jepa_mpc.goal_graph import LatentGraph, bottleneck_clearance, edges

    # 0 - 1 - 2 - 3 - 7 (narrow: edge 1-2 at 0.02) and 0 - 4 - 5 - 6 - 7 (wider: edge 5-6 at 0.05); node 8 alone
    pairs = [(0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 7)]
    i, j = np.array(pairs).T
    graph = LatentGraph(nodes=np.zeros((9, 2), np.float32),
                        adjacency=scipy.sparse.coo_matrix((np.ones(len(pairs)), (i, j)), shape=(9, 9)).tocsr())
    rows, cols = edges(graph)
    width = {(1, 2): 0.02, (5, 6): 0.05, (0, 1): -0.1, (3, 7): -0.2}  # edges at start 0 and goal 7 are exempt
    clearance = np.array([width.get((r, c), 0.3) for r, c in zip(rows, cols)])
    assert bottleneck_clearance(graph, clearance, 0, 7) == pytest.approx(0.05)
    clearance[(rows == 5) & (cols == 6)] = 0.01
    assert bottleneck_clearance(graph, clearance, 0, 7) == pytest.approx(0.02)
    assert bottleneck_clearance(graph, np.full(len(rows), np.inf), 0, 7) == np.inf
    assert bottleneck_clearance(graph, clearance, 0, 8) == -np.inf


def test_fitted_margin_shrinks_only_where_hazards_narrow_every_way(walls):
    """A hazard that narrows the door to a 4 cm-clear passage: the episode's margin fits it; elsewhere not."""
    built = GraphGoal(nodes=400).build(walls, seed=0)
    door = types.SimpleNamespace(name="d", hazards=(Circle(center=(0.0, 0.2), radius=0.16),
                                                    Circle(center=(0.0, -0.2), radius=0.16)))
    aside = types.SimpleNamespace(name="a", hazards=(Circle(center=(0.5, 0.5), radius=0.1),))
    hz = safety.hazard_arrays([door, aside], types.SimpleNamespace(arena_half=1.0))
    goals, starts = np.array([[0.5, 0.0], [0.5, -0.6]], np.float32), np.array([[-0.5, 0.0], [-0.5, -0.6]], np.float32)
    ctx = built.episode_ctx(goals, hz, margin=0.08, starts=starts, min_margin=0.01)
    m = np.asarray(ctx["margin"])
    assert 0.01 <= m[0] < 0.06 and m[1] == pytest.approx(0.08)
    fixed = built.episode_ctx(goals, hz, margin=0.08)
    assert "margin" not in fixed
    left = built.graph.nodes[:, 0] < -0.3
    cut = np.asarray(fixed["excess"][0])[left]
    assert np.ptp(cut) < 1e-6  # at the full margin the door is cut: a flat cost behind it
    assert np.ptp(np.asarray(ctx["excess"][0])[left]) > 0.1  # at the fitted one it leads to the door


def test_hazards_reshape_the_graph_goal_only_with_safety_on(walls):
    built = GraphGoal(nodes=400).build(walls, seed=0)
    task = types.SimpleNamespace(name="t", hazards=(Circle(center=(0.0, 0.0), radius=0.25),))
    hz = safety.hazard_arrays([task], types.SimpleNamespace(arena_half=1.0))
    goal = np.array([[0.5, 0.8]], np.float32)
    free = np.asarray(built.episode_ctx(goal)["excess"][0])
    around = np.asarray(built.episode_ctx(goal, hz, margin=0.05)["excess"][0])
    left = built.graph.nodes[:, 0] < -0.3
    assert np.all(around[left] >= free[left] - 1e-5) and np.mean(around[left] - free[left]) > 0.5
    off = GraphGoal(nodes=400, avoid_hazards=False).build(walls, seed=0)
    np.testing.assert_array_equal(off.episode_ctx(goal, hz, margin=0.05)["excess"], free[None])


def test_graph_goal_needs_data_and_checks_its_fields():
    with pytest.raises(ConfigError, match="goal:graph needs"):
        GraphGoal().build(None)
    with pytest.raises(ConfigError, match="--goal.mode"):
        LatentGoal(mode="mixed").validate()
    with pytest.raises(ConfigError, match="--goal.nodes"):
        GraphGoal(nodes=1).validate()
    with pytest.raises(ConfigError, match="--goal.source"):
        GraphGoal(source="maze").validate()
    assert set(GOALS) == {"graph", "latent"}


def test_tagged_configs_parse_from_the_command_line():
    default = parse(EvalArgs, [], "eval")
    assert default.control.planner == CEMConfig() and default.control.goal == GraphGoal()
    assert default.planner == "cem"
    args = parse(EvalArgs, ["--planner.elites", "10", "--control.iterations", "4"], "eval")
    assert args.control.planner == CEMConfig(elites=10) and args.control.planner_config().iterations == 4
    args = parse(EvalArgs, ["planner:mppi", "--planner.temperature", "0.2", "goal:latent", "--goal.mode", "terminal",
                            "--episodes", "3"], "eval")
    assert args.control.planner == MPPIConfig(temperature=0.2) and args.control.goal == LatentGoal("terminal")
    assert args.episodes == 3 and args.planner == "mppi"
    args = parse(EvalArgs, ["goal:graph", "--goal.source", "explore", "--goal.explore-episodes", "32"], "eval")
    assert args.control.goal == GraphGoal(source="explore", explore_episodes=32)
    assert isinstance(parse(EvalArgs, ["planner:random-actions"], "eval").control.planner, RandomActions)
    with pytest.raises(UserError, match="goal:nope"):
        parse(EvalArgs, ["goal:nope"], "eval")


def test_results_record_the_kind_of_every_tagged_config():
    saved = to_dict(EvalArgs(control=ControlConfig(planner=MPPIConfig(temperature=0.2), goal=LatentGoal())))
    assert saved["control"]["planner"] == {"kind": "mppi", **{k: v for k, v in to_dict(MPPIConfig()).items()
                                                               if k != "kind"}, "temperature": 0.2}
    assert saved["control"]["goal"] == {"kind": "latent", "mode": "all"}
    assert to_dict(ControlConfig(planner=RandomActions()))["planner"] == {"kind": "random-actions"}


@pytest.mark.parametrize("argv, needle", [
    (["eval", "goal:nope"], "goal:nope"),
    (["eval", "planner:nope"], "planner:nope"),
    (["eval", "goal:latent", "--goal.mode", "mixed"], "--goal.mode"),
    (["eval", "planner:mppi", "--planner.temperature", "-1", "--checkpoint", "."], "temperature"),
    (["eval", "planner:mppi", "--planner.temperature", "nan", "--checkpoint", "."], "--planner.temperature must be"),
    (["eval", "--goal.nodes", "1", "--checkpoint", "."], "--goal.nodes"),
])
def test_unknown_or_bad_goal_and_planner_variants_are_one_line_errors(argv, needle):
    assert_one_line_error(run_cli(*argv), needle)


def test_new_goal_and_safety_flags_enter_the_eval_identity_only_when_set():
    """Evals recorded before these flags existed keep their identity (and their cached results)."""
    from jepa_mpc.evaluate import identity_flags

    flags = identity_flags(EvalArgs())
    assert "safety_min_margin" not in flags["control"]
    assert not {"within_block", "speed_margin", "hierarchy", "subgoal_steps", "safety_rollout"} & set(flags["control"])
    set_ = identity_flags(EvalArgs(control=ControlConfig(hierarchy="graph", subgoal_steps=25, speed_margin=2.0)))
    assert (set_["control"]["hierarchy"], set_["control"]["subgoal_steps"], set_["control"]["speed_margin"]) == \
        ("graph", 25, 2.0)
    assert not {"hazard_widen", "hazard_weight", "split_cells"} & set(flags["control"]["goal"])
    goal = GraphGoal(split_cells=0.06, hazard_widen=2.0)
    flags = identity_flags(EvalArgs(control=ControlConfig(goal=goal, safety_min_margin=0.02)))
    assert flags["control"]["safety_min_margin"] == 0.02
    assert flags["control"]["goal"]["split_cells"] == 0.06 and flags["control"]["goal"]["hazard_widen"] == 2.0
    assert "hazard_weight" not in flags["control"]["goal"]
    with pytest.raises(ConfigError, match="--goal.split-cells"):
        GraphGoal(split_cells=-1.0).validate()
    with pytest.raises(ConfigError, match="--goal.hazard-widen"):
        GraphGoal(hazard_weight=0.5).validate()
