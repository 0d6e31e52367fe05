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
