"""Safety for Reacher: keep-out regions for the fingertip (forward kinematics of the joint angles the probe
reads) and joint-speed limits, in task files, the env's violation check, the planner's terms and the hard
suites."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jepa_mpc import safety
from jepa_mpc.control import ControlConfig, OraclePlannerPolicy, family_geometry, mujoco_block_simulator, run_mpc
from jepa_mpc.goals import LatentGoal
from jepa_mpc.probe import state_layout
from jepa_mpc_envs import reacher as R
from jepa_mpc_envs.errors import TaskFileError
from jepa_mpc_envs.geometry import Box, Circle
from jepa_mpc_envs.registry import REACHER
from jepa_mpc_envs.suites import Task

LAYOUT = R.ReacherLayout()


def _doc(**task):
    return {"env_id": R.ENV_ID, "tasks": [{"start": [-1.0, 1.0], "goal": [1.0, -1.0], **task}]}


def test_geometry_is_the_fingertip_and_joint_speeds_in_numpy_and_jax():
    rng = np.random.default_rng(0)
    readout = np.concatenate([R.sample_angles(rng, 16), rng.normal(0, 2, (16, 2))], axis=1)
    points, speeds = REACHER.safety_geometry(readout, LAYOUT)
    assert points.shape == (16, 1, 2) and speeds.shape == (16, 2)
    np.testing.assert_allclose(points[:, 0], R.fingertip(readout, LAYOUT))
    np.testing.assert_allclose(speeds, np.abs(readout[:, 2:]))
    jp, js = family_geometry(REACHER, LAYOUT)(jnp.asarray(readout, jnp.float32))
    np.testing.assert_allclose(np.asarray(jp), points, atol=1e-5)
    np.testing.assert_allclose(np.asarray(js), speeds, atol=1e-5)
    # the probe's targets are (q1, q2, dq1, dq2) and its error is measured on the fingertip
    layout = state_layout({"env_id": R.ENV_ID})
    assert layout.names == ("q1", "q2", "dq1", "dq2")
    np.testing.assert_allclose(layout.points(readout), points)


def test_task_files_take_fingertip_hazards_and_joint_speed_limits():
    suite = R.suite_from_dict(_doc(hazards=[{"type": "circle", "center": [0.0, 0.24], "radius": 0.03}],
                                   speed_limit=1.5))
    assert isinstance(suite.tasks[0].hazards[0], Circle) and suite.tasks[0].speed_limit == 1.5
    tip = R.fingertip((-1.0, 1.0), LAYOUT)
    with pytest.raises(TaskFileError, match=r"task 0 field 'start'.*inside hazards\[0\]"):
        R.suite_from_dict(_doc(hazards=[{"type": "circle", "center": list(tip), "radius": 0.02}]))
    with pytest.raises(TaskFileError, match="speed_limit.*> 0"):
        R.suite_from_dict(_doc(speed_limit=0))
    # two thin boxes along the x axis split the fingertip's workspace into an upper and a lower half
    wall = [{"type": "box", "lo": [-0.3, -0.005], "hi": [0.3, 0.005]}]
    start, goal = (1.2, 0.3), (-1.2, -0.3)  # fingertip above / below the x axis
    assert R.fingertip(start, LAYOUT)[1] > 0 > R.fingertip(goal, LAYOUT)[1]
    with pytest.raises(TaskFileError, match="no hazard-free path"):
        R.suite_from_dict({"env_id": R.ENV_ID, "tasks": [{"start": list(start), "goal": list(goal), "hazards": wall}]})


def test_env_reports_fingertip_and_speed_violations():
    env = R.ReacherEnv()
    tip = R.fingertip((0.0, 0.0), LAYOUT)
    inside = Task("in", (0.5, 0.0, 0.0, 0.0), (0.0, 1.5, 0.0, 0.0), hazards=(Circle(tuple(tip), 0.01),))
    assert not env.reset(options={"task": inside})[1]["violation"]
    assert REACHER.step_violation((0.0, 0.0, 0.0, 0.0), inside, LAYOUT)
    assert not REACHER.step_violation((0.5, 0.0, 0.0, 0.0), inside, LAYOUT)
    fast = Task("fast", (0.5, 0.0, 0.0, 0.0), (0.0, 1.5, 0.0, 0.0), speed_limit=1.0)
    assert REACHER.step_violation((0.5, 0.0, 0.0, 1.2), fast, LAYOUT)
    assert not REACHER.step_violation((0.5, 0.0, 0.9, -0.9), fast, LAYOUT)
    env.reset(options={"task": fast})
    assert not env.step(np.zeros(2, np.float32))[4]["violation"]  # at rest
    info = [env.step(np.array([1.0, 1.0], np.float32))[4] for _ in range(5)]
    assert info[-1]["violation"] and np.max(np.abs(info[-1]["state"][2:])) > 1.0  # full torque passes 1 rad/s
    boxed = Task("box", (0.5, 0.0, 0.0, 0.0), (0.0, 1.5, 0.0, 0.0), hazards=(Box((0.2, -0.05), (0.3, 0.05)),))
    assert REACHER.step_violation((0.0, 0.0, 0.0, 0.0), boxed, LAYOUT)  # fingertip at (0.24, 0)


def test_constrained_oracle_keeps_the_fingertip_out_of_a_disc_on_its_way():
    """A disc over the outer part of the fingertip's straight sweep: bending the elbow a little more passes
    inside it; without constraints the planner sweeps straight through."""
    start, goal = np.array([-1.0, 1.0]), np.array([1.0, 1.0])
    mid = R.fingertip((start + goal) / 2, LAYOUT)  # 0.21 m from the base
    task = Task("disc", (*start, 0.0, 0.0), (*goal, 0.0, 0.0), tolerance=0.12, max_steps=100,
                hazards=(Circle(tuple(mid / np.linalg.norm(mid) * 0.25), 0.05),))
    runs = {}
    for mode in ("none", "constrained"):
        c = ControlConfig(safety=mode, goal=LatentGoal(), samples=64, iterations=4, action_block=5, safety_buffer=0.01)
        sim = mujoco_block_simulator(REACHER.build_model(LAYOUT), 5, c.action_block, env=REACHER)
        policy = OraclePlannerPolicy(sim, c, None, action_dim=2, geometry=family_geometry(REACHER, LAYOUT))
        runs[mode] = run_mpc([R.ReacherEnv()], [task], policy, jax.random.key(0), family=REACHER)[0]
    assert runs["none"].violation_steps > 0 and runs["none"].success
    assert runs["constrained"].violation_free and runs["constrained"].success


def test_hard_suites_cross_a_hazard_keep_a_path_and_differ_by_stream():
    val = REACHER.generate_suite(2, 8, hazards="hard", max_steps=150, stream="validation")
    test = REACHER.generate_suite(2, 8, hazards="hard", max_steps=150, stream="test")
    assert [t.name.split("-")[3] for t in val.tasks] == ["path"] * 2 + ["gap"] * 2 + ["goal"] * 2 + ["speed"] * 2
    assert {t.start for t in val.tasks}.isdisjoint({t.start for t in test.tasks})
    for t in val.tasks:
        assert R.joint_path_exists(LAYOUT, t.hazards, t.start[:2], t.goal[:2], clearance=R.PATH_CLEARANCE)
        crossed = np.min(R._hazard_clearance(LAYOUT, t.hazards, R._straight_tips(LAYOUT, t.start[:2], t.goal[:2])))
        assert crossed == 0 or "goal-ring" in t.name
        assert (t.speed_limit is not None) == ("speed" in t.name)
    with pytest.raises(Exception, match="Reacher suites take"):
        REACHER.generate_suite(2, 4, hazards="door")


def test_hazard_arrays_reach_the_planner_in_the_fingertip_plane():
    task = Task("t", (0.5, 0.0, 0.0, 0.0), (0.0, 1.5, 0.0, 0.0), hazards=(Circle((0.24, 0.0), 0.02),), speed_limit=2.0)
    hz = {k: jnp.asarray(v[0]) for k, v in safety.hazard_arrays([task], LAYOUT).items()}
    points, speeds = family_geometry(REACHER, LAYOUT)(jnp.array([[0.0, 0.0, 0.0, 2.5], [0.5, 0.0, 1.0, 0.0]]))
    g = np.asarray(safety.constraint_values(points, speeds, hz, 0.0))
    assert g[0, 0] == pytest.approx(0.02, abs=1e-4) and g[0, 3] == pytest.approx(0.5, abs=1e-4)
    assert g[1, 0] < 0 and g[1, 3] < 0 and np.all(g[:, 2] < 0)  # keep-in (the joint-space box) never binds


def test_episode_counts_speed_violations_as_the_env_defines_them():
    """Per joint (max |dq|), not the norm of the joint velocity: the planner's terms, the env and the episode
    record agree."""
    from jepa_mpc.control import RandomActionsPolicy

    task = Task("fast", (-1.0, 0.5, 0.0, 0.0), (1.0, -0.5, 0.0, 0.0), max_steps=60, speed_limit=2.0)
    rec = run_mpc([R.ReacherEnv()], [task], RandomActionsPolicy(), jax.random.key(3), family=REACHER)[0]
    dq = np.abs(np.asarray(rec.states)[1:, 2:4])
    assert rec.violation_steps == int(np.sum(dq.max(axis=1) > 2.0))
    assert np.sum(np.hypot(dq[:, 0], dq[:, 1]) > 2.0) > rec.violation_steps  # the norm would count more
