"""Safety: constraints at every planned step, constrained / penalty / augmented-Lagrangian handling."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jepa_mpc import safety
from jepa_mpc.control import ControlConfig, EpisodeRecord, OraclePlannerPolicy, mujoco_block_simulator, run_mpc
from jepa_mpc.errors import ConfigError
from jepa_mpc.evaluate import summarize, wilson_interval
from jepa_mpc.goals import LatentGoal
from jepa_mpc.planning import get_planner, make_config
from jepa_mpc_envs.family import plane_geometry
from jepa_mpc_envs.geometry import Box, Circle, Layout
from jepa_mpc_envs.registry import TWOROOM
from jepa_mpc_envs.suites import Task
from jepa_mpc_envs.tworoom import TwoRoomEnv, build_model

LAYOUT = Layout()
# open room (left), hazard disc right on the straight line start -> goal
TASK = Task("line", start=(-0.8, 0.0, 0.0, 0.0), goal=(-0.2, 0.0, 0.0, 0.0), tolerance=0.08,
            hazards=(Circle((-0.5, 0.0), 0.12),), max_steps=80)


def _oracle_run(mode: str, seed: int = 0):
    cfg = ControlConfig(goal=LatentGoal(), samples=64, iterations=4, safety=mode, action_block=5)
    policy = OraclePlannerPolicy(mujoco_block_simulator(build_model(LAYOUT), 5, cfg.action_block, env=TWOROOM), cfg, None)
    return run_mpc([TwoRoomEnv(LAYOUT)], [TASK], policy, jax.random.key(seed), family=TWOROOM)[0]


def test_constrained_oracle_avoids_hazard_on_straight_line():
    rec = _oracle_run("constrained")
    assert rec.violation_free and rec.success, (rec.violation_steps, rec.final_distance)
    path = np.asarray(rec.path)
    assert np.min(np.linalg.norm(path - np.array([-0.5, 0.0]), axis=1)) > 0.12


def test_unconstrained_oracle_walks_through_hazard():
    """The check above is meaningful: without constraints the greedy planner crosses the disc."""
    assert _oracle_run("none").violation_steps > 0


def test_constraint_values_circles_boxes_keep_in_speed():
    tasks = [Task("t", (0.5, 0.5), (0.6, 0.6), hazards=(Circle((0.0, 0.0), 0.2), Box((0.5, -0.5), (0.7, -0.3))))]
    hz = {k: jnp.asarray(v[0]) for k, v in safety.hazard_arrays(tasks, LAYOUT, speed_limit=0.5).items()}
    pos = jnp.array([[0.0, 0.1], [0.6, -0.4], [0.95, 0.0], [-0.5, 0.5]])
    vel = jnp.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.6, 0.0]])
    g = np.asarray(safety.constraint_values(pos[:, None], jnp.linalg.norm(vel, axis=-1, keepdims=True), hz, 0.05))
    assert g[0, 0] == pytest.approx(0.15, abs=1e-4)  # 0.1 inside the disc + margin
    assert g[1, 1] == pytest.approx(0.15, abs=1e-4)  # 0.1 deep in the box + margin
    assert g[2, 2] == pytest.approx(0.0, abs=1e-4)  # at the keep-in bound 1 - margin
    assert g[3, 3] == pytest.approx(0.1, abs=1e-4)  # 0.1 m/s over the limit
    assert np.all(g[3, :3] < 0)  # far from everything


def test_task_keep_in_and_speed_limit_reach_the_constraints():
    """A task's keep_in box and speed_limit (lower than the planner's) become its per-step terms."""
    task = Task("k", (0.5, 0.5), (0.6, 0.6), speed_limit=0.2, keep_in=Box((0.2, 0.2), (0.9, 1.5)))
    hz = safety.hazard_arrays([task, TASK], LAYOUT, speed_limit=0.5)
    np.testing.assert_allclose(hz["keep_in"][0], [0.2, 0.2, 0.9, 1.0])  # clipped to the arena
    np.testing.assert_allclose(hz["keep_in"][1], [-1.0, -1.0, 1.0, 1.0])
    np.testing.assert_allclose(hz["speed"], [0.2, 0.5])
    hz0 = {k: jnp.asarray(v[0]) for k, v in hz.items()}
    pos = jnp.array([[0.1, 0.5], [0.5, 0.5], [0.5, 0.5]])
    vel = jnp.array([[0.0, 0.0], [0.0, 0.0], [0.3, 0.0]])
    g = np.asarray(safety.constraint_values(pos[:, None], jnp.linalg.norm(vel, axis=-1, keepdims=True), hz0, 0.0))
    assert g[0, 2] == pytest.approx(0.1, abs=1e-4) and g[1, 2] < 0  # 0.1 m outside the box / inside
    assert g[2, 3] == pytest.approx(0.1, abs=1e-4)  # 0.1 m/s above the task's 0.2


def test_hazard_arrays_padding_and_bad_input():
    many = Task("m", (0.5, 0.5), (0.6, 0.6), hazards=tuple(Circle((-0.5, -0.9 + 0.2 * i), 0.05) for i in range(9)))
    with pytest.raises(ConfigError):
        safety.hazard_arrays([many], LAYOUT)
    nan = Task("n", (0.5, 0.5), (0.6, 0.6), hazards=(Circle((float("nan"), 0.0), 0.1),))
    with pytest.raises(ConfigError):
        safety.hazard_arrays([nan], LAYOUT)
    hz = safety.hazard_arrays([TASK, dataclasses.replace(TASK, hazards=())], LAYOUT)
    assert hz["circles"].shape == (2, safety.MAX_CIRCLES, 3) and hz["circle_mask"].sum() == 1


def test_interpolation_catches_a_hazard_crossed_between_block_ends():
    hz = {k: jnp.asarray(v[0]) for k, v in safety.hazard_arrays([TASK], LAYOUT).items()}
    xyv0 = jnp.array([-0.8, 0.0, 0.0, 0.0])
    ends = jnp.array([[-0.2, 0.0, 0.0, 0.0]])  # one block jumps over the disc
    g_end = safety.block_constraints(*plane_geometry(safety.interpolate_blocks(xyv0, ends, 1), None, jnp), hz, 0.0)
    g_mid = safety.block_constraints(*plane_geometry(safety.interpolate_blocks(xyv0, ends, 4), None, jnp), hz, 0.0)
    assert g_end[0, 0] < 0 < g_mid[0, 0]


def _toy_objective(a):
    """2-D point, position = cumulative sum of actions; goal (1, 0); keep-out disc at (0.5, 0) r 0.25."""
    pos = jnp.cumsum(0.25 * a, axis=0)
    cost = jnp.sum(jnp.square(pos[-1] - jnp.array([1.0, 0.0])))
    g = 0.25 - jnp.linalg.norm(pos - jnp.array([0.5, 0.0]), axis=-1)
    return cost, g[:, None], pos


@pytest.mark.parametrize("planner", ["gradient", "cem-gd"])
def test_auglag_reduces_violation_on_toy_problem(planner):
    pcfg = make_config(planner, horizon=8, samples=16 if planner == "cem-gd" else 4, iterations=30)
    init = jnp.zeros((8, 2))
    plain, _ = safety.plan_safely(get_planner(planner), _toy_objective, init, jax.random.key(0), pcfg,
                                  safety.SafetyConfig("none"))
    al, info = safety.plan_safely(get_planner(planner), _toy_objective, init, jax.random.key(0), pcfg,
                                  safety.SafetyConfig("auglag", rounds=3))
    v_plain = float(safety.violation(_toy_objective(plain)[1]))
    assert v_plain > 0.05
    assert float(info["violation"]) < 0.1 * v_plain
    assert float(_toy_objective(al)[0]) < 0.2  # still reaches (near) the goal


def test_constrained_ranking_prefers_feasible_then_least_violation():
    cost = jnp.array([5.0, 1.0, 0.0])
    g = jnp.array([[[-1.0]], [[0.1]], [[0.5]]])
    keys = jax.vmap(safety.ranked_cost)(cost, g)
    assert list(np.argsort(np.asarray(keys))) == [0, 1, 2]


def test_infeasible_plan_is_flagged_not_silent():
    # goal inside nothing, but the whole keep-in region is violated by a huge margin: no feasible plan
    def objective(a):
        c, g, p = _toy_objective(a)
        return c, g + 10.0, p

    pcfg = make_config("cem", horizon=8, samples=32, iterations=3)
    _, info = safety.plan_safely(get_planner("cem"), objective, jnp.zeros((8, 2)), jax.random.key(0), pcfg,
                                 safety.SafetyConfig("constrained"))
    assert bool(info["infeasible"]) and int(info["violating_steps"]) == 8


def test_episode_metrics_on_hand_made_records():
    recs = [EpisodeRecord("a", success=True, steps=10, violation_steps=0),
            EpisodeRecord("b", success=False, steps=20, violation_steps=3, infeasible_plans=2),
            EpisodeRecord("c", success=True, steps=30, violation_steps=0)]
    assert [r.violation_free for r in recs] == [True, False, True]
    s = summarize(recs, [0.01], [3], 1.0)
    assert s["violation_free_rate"] == pytest.approx(2 / 3)
    assert s["violation_free_ci95"] == pytest.approx(list(wilson_interval(2, 3)))
    lo, hi = wilson_interval(2, 3)
    assert 0.20 < lo < 0.21 and 0.93 < hi < 0.95  # Wilson 95 % for 2/3: [0.208, 0.939]
    assert s["episodes_with_infeasible_plans"] == 1 and s["infeasible_plans"] == 2


def test_motion_margin_widens_with_predicted_travel():
    """Per-block margins: base + per_metre * distance moved; a fast block near a hazard violates, a slow one not."""
    m = np.asarray(safety.motion_margin(jnp.zeros((1, 2)), jnp.array([[[0.1, 0.0]], [[0.1, 0.2]], [[0.1, 0.2]]]), 0.04, 0.25))
    np.testing.assert_allclose(m, [0.065, 0.09, 0.04], atol=1e-5)
    hz = {k: jnp.asarray(v[0]) for k, v in safety.hazard_arrays(
        [Task("t", (0.5, 0.5), (0.6, 0.6), hazards=(Circle((0.0, 0.0), 0.1),))], LAYOUT).items()}
    pos = jnp.array([[[[0.17, 0.0]]], [[[0.17, 0.0]]]])  # both blocks (1 check point, 1 point) end 0.07 m from the disc edge
    g = np.asarray(safety.block_constraints(pos, jnp.zeros((2, 1, 1)), hz, jnp.array([0.04, 0.09])))
    assert g[0, 0] < 0 < g[1, 0]
