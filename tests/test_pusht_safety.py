"""Safety for Push-T: keep-out regions for the block (points on the T's centre lines) and the pusher, speed
limits on both; the read-out the probe fits, the env's violation check and the hard suites' witness."""

import jax.numpy as jnp
import numpy as np
import pytest

from jepa_mpc import safety
from jepa_mpc.control import family_geometry, oracle_features
from jepa_mpc_envs import pusht as P
from jepa_mpc_envs.geometry import Circle
from jepa_mpc_envs.registry import PUSHT
from jepa_mpc_envs.suites import Task

LAYOUT = P.PushTLayout()


def _state(bx=0.0, by=0.0, th=0.0, px=0.15, py=0.15, bv=(0.0, 0.0), pv=(0.0, 0.0)):
    return P.full_state(np.array([bx, by, th, px, py]), np.array([*bv, 0.0, *pv]))


def test_geometry_puts_points_on_the_t_and_the_pusher_and_reads_both_speeds():
    s = _state(0.05, -0.02, 0.7, bv=(0.3, 0.4), pv=(0.0, 0.2))
    points, speeds = PUSHT.safety_geometry(PUSHT.safety_readout(s), LAYOUT)
    assert points.shape == (10, 2) and speeds == pytest.approx([0.5, 0.2], abs=1e-5)
    np.testing.assert_allclose(points[-1], [0.15, 0.15], atol=1e-6)
    assert np.all(P.distance_to_t(LAYOUT, points[:-1], s[:3]) < 1e-6)  # every block point lies on the T
    # jax and numpy agree; a probe's cos/sin need not be unit length
    r = PUSHT.safety_readout(s)
    jp, js = family_geometry(PUSHT, LAYOUT)(jnp.asarray(r * np.r_[np.ones(8), 1.3, 1.3], jnp.float32))
    np.testing.assert_allclose(np.asarray(jp), points, atol=1e-5)
    np.testing.assert_allclose(np.asarray(js), speeds, atol=1e-5)


def test_env_and_planner_terms_flag_the_block_the_pusher_and_speed():
    on_bar = PUSHT.safety_points(_state(), LAYOUT)[1]  # the bar's left end
    task = Task("t", tuple(_state(0.1, 0.1)), tuple(_state(0.1, 0.1)), hazards=(Circle(tuple(on_bar), 0.01),),
                speed_limit=0.2)
    assert PUSHT.step_violation(_state(), task, LAYOUT)  # the block's bar end is in the disc
    assert not PUSHT.step_violation(_state(0.1, 0.1), task, LAYOUT)
    assert PUSHT.step_violation(_state(0.1, 0.1, px=on_bar[0], py=on_bar[1]), task, LAYOUT)  # the pusher
    assert PUSHT.step_violation(_state(0.1, 0.1, pv=(0.25, 0.0)), task, LAYOUT)  # pusher faster than 0.2
    hz = {k: jnp.asarray(v[0]) for k, v in safety.hazard_arrays([task], LAYOUT).items()}
    readouts = jnp.asarray(np.stack([PUSHT.safety_readout(_state()), PUSHT.safety_readout(_state(0.1, 0.1))]),
                           jnp.float32)
    g = np.asarray(safety.constraint_values(*family_geometry(PUSHT, LAYOUT)(readouts), hz, 0.0))
    assert g[0, 0] > 0 > g[1, 0]
    env = P.PushTEnv()
    info = env.reset(options={"task": P.PushTTask("e", tuple(_state(0.1, 0.1)), tuple(_state(-0.1, -0.1)),
                                                  hazards=(Circle((0.15, 0.15), 0.03),))})[1]
    assert info["violation"]  # the start's pusher sits in the disc (a hand-made env task, not a parsed file)


def test_oracle_reads_the_declared_read_out():
    s = _state(0.05, -0.02, 0.7, bv=(0.3, 0.4), pv=(0.0, 0.2))
    out = oracle_features(PUSHT, s[None])[0]
    np.testing.assert_allclose(out[:3], s[:3])
    np.testing.assert_allclose(out[3:], s[list(P.SAFETY_FIELDS)])


def test_hard_suites_keep_the_scripted_push_clear_and_pass_close_to_it(monkeypatch):
    drawn = []  # (scripted push, its discs) of every draw the generator made
    original = P._hard_hazards
    monkeypatch.setattr(P, "_hard_hazards", lambda *a: drawn.append((a[3], original(*a))) or drawn[-1][1])
    suite = PUSHT.generate_suite(2, 6, hazards="hard", stream="validation")
    kinds = [t.name.split("-")[3] for t in suite.tasks]
    assert kinds == ["beside"] * 2 + ["corridor"] * 2 + ["goal"] * 2
    assert [len(t.hazards) for t in suite.tasks] == [1, 1, 2, 2, 3, 3]
    kept = {hz: push for push, hz in drawn if hz is not None}
    for t in suite.tasks:
        push = kept[t.hazards]
        np.testing.assert_allclose(push[0], t.start, atol=1e-4)  # the witness starts at the task's start
        witness = PUSHT.safety_points(push, LAYOUT).reshape(-1, 2)
        for h in t.hazards:
            gap = np.min(np.linalg.norm(witness - np.asarray(h.center), axis=1)) - h.radius
            assert P.HAZARD_CLEARANCE - 2e-4 <= gap < 0.09  # clear of the safe push, and close to it
    with pytest.raises(Exception, match="Push-T suites take"):
        PUSHT.generate_suite(2, 3, hazards="door")


def test_goal_graph_points_of_block_poses_are_the_t_without_a_pusher():
    from jepa_mpc.goals import position_points

    pose = np.array([[0.05, -0.02, 0.7]])
    pts = position_points(PUSHT, LAYOUT, pose)
    assert pts.shape == (1, 9, 2) and np.all(P.distance_to_t(LAYOUT, pts[0], pose[0]) < 1e-6)
    np.testing.assert_allclose(position_points(PUSHT, LAYOUT, pose[:, :2]), [[[0.05, -0.02]]])
