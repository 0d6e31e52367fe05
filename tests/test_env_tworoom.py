"""TwoRoom env: physics (wall, door, speed), predicates, determinism, rendering, API checks."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")


import gymnasium as gym
import mujoco
import mujoco.rollout
import numpy as np
import pytest

import jepa_mpc_envs  # noqa: F401  (registers the gym id)
from jepa_mpc_envs import geometry as G
from jepa_mpc_envs.suites import Task
from jepa_mpc_envs.tworoom import (
    Box,
    Circle,
    Layout,
    PixelRenderer,
    TwoRoomEnv,
    build_mjcf,
    build_model,
    mjstate_to_state,
    state_to_mjstate,
)


def task(start, goal=(0.9, 0.9), hazards=(), tolerance=0.1, max_steps=200):
    s = tuple(start) + (0.0,) * (4 - len(start))
    g = tuple(goal) + (0.0,) * (4 - len(goal))
    return Task(name="t", start=s, goal=g, tolerance=tolerance, hazards=tuple(hazards), max_steps=max_steps)


def run(env, action, n):
    states = []
    for _ in range(n):
        _, _, term, trunc, info = env.step(np.asarray(action, np.float32))
        states.append(info["state"])
        if term or trunc:
            break
    return np.array(states)


def test_wall_blocks_away_from_door():
    env = TwoRoomEnv()
    env.reset(options={"task": task((-0.5, 0.6))})
    xs = run(env, (1.0, 0.0), 150)[:, 0]
    assert np.all(xs < 0.0), "ball crossed the wall"
    assert xs[-1] > -0.1  # it did reach the wall
    assert xs[-1] < -0.02 - G.AGENT_RADIUS + 0.01  # penetration is small


def test_horizontal_wall_blocks_and_door_passes():
    layout = Layout(wall_axis="y", wall_pos=0.2, door_center=-0.4)
    env = TwoRoomEnv(layout=layout)
    env.reset(options={"task": task((0.5, -0.5))})
    assert np.all(run(env, (0.0, 1.0), 120)[:, 1] < 0.2)
    env.reset(options={"task": task((-0.4, -0.3))})
    ys = run(env, (0.0, 1.0), 40)[:, 1]
    assert G.room_of(layout, (-0.4, ys[-1])) == 1


def test_door_passes():
    env = TwoRoomEnv()
    env.reset(options={"task": task((-0.4, 0.0))})
    s = run(env, (1.0, 0.0), 40)
    assert G.room_of(env.layout, s[-1, :2]) == 1
    assert s[-1, 0] > 0.3


def test_speed_crossing_and_stopping():
    env = TwoRoomEnv()
    env.reset(options={"task": task((-0.9, 0.0))})
    s = run(env, (1.0, 0.0), 200)
    steps = int(np.argmax(s[:, 0] > 0.85)) + 1
    assert 40 <= steps * 1.8 / 1.75 <= 80  # crossing 1.8 m of a 2 m arena in ~40-80 steps
    s = run(env, (0.0, 0.0), 4)
    assert np.abs(s[-1, 2:]).max() < 0.05  # stops within a few steps


def test_action_clipping_and_nan():
    a, b = TwoRoomEnv(), TwoRoomEnv()
    a.reset(options={"task": task((-0.5, -0.5))})
    b.reset(options={"task": task((-0.5, -0.5))})
    np.testing.assert_array_equal(run(a, (5.0, -3.0), 10), run(b, (1.0, -1.0), 10))
    with pytest.raises(ValueError):
        a.step(np.array([np.nan, 0.0], np.float32))
    with pytest.raises(ValueError):
        a.step(np.array([0.0, 0.0, 0.0], np.float32))


def test_success_terminates_and_truncation():
    env = TwoRoomEnv()
    _, info = env.reset(options={"task": task((-0.5, -0.5), goal=(-0.3, -0.5), tolerance=0.1)})
    assert not info["success"] and info["distance_to_goal"] == pytest.approx(0.2, abs=1e-6)
    for _ in range(30):
        _, r, term, trunc, info = env.step(np.array([1.0, 0.0], np.float32))
        if term:
            break
    assert term and info["success"] and r == 1.0 and info["distance_to_goal"] <= 0.1
    env.reset(options={"task": task((-0.5, -0.5), goal=(0.5, 0.5), max_steps=7)})
    out = [env.step(np.zeros(2, np.float32))[3] for _ in range(7)]
    assert out == [False] * 6 + [True]


def test_violation_predicate():
    haz = Circle(center=(-0.3, -0.5), radius=0.1)
    env = TwoRoomEnv()
    _, info = env.reset(options={"task": task((-0.6, -0.5), hazards=[haz])})
    assert not info["violation"]
    flags, xs = [], []
    for _ in range(30):
        *_, info = env.step(np.array([1.0, 0.0], np.float32))
        flags.append(info["violation"])
        xs.append(info["state"][0])
    xs = np.array(xs)
    np.testing.assert_array_equal(np.array(flags), np.abs(xs - (-0.3)) <= 0.1)
    assert any(flags)


def test_determinism_under_seed():
    def episode(seed):
        env = TwoRoomEnv(obs_type="both")
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(0)
        out = [obs]
        for _ in range(15):
            out.append(env.step(rng.uniform(-1, 1, 2).astype(np.float32))[0])
        return out

    a, b, c = episode(3), episode(3), episode(4)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["state"], y["state"])
        np.testing.assert_array_equal(x["pixels"], y["pixels"])
    assert not np.array_equal(a[0]["state"], c[0]["state"])


def test_pixels_without_hazards_render_with_them():
    """Observations never show a task's hazards (the data never did); render() for people does."""
    env = TwoRoomEnv(obs_type="pixels", render_mode="rgb_array")
    obs, _ = env.reset(options={"task": task((-0.5, -0.5))})
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    s = np.array([-0.5, -0.5, 0, 0], np.float32)
    plain = env.observation_at(s)
    np.testing.assert_array_equal(plain, obs)
    view_plain = env.render()
    env.reset(options={"task": task((-0.5, -0.5), hazards=[Circle((0.5, 0.5), 0.15), Box((-0.8, 0.3), (-0.4, 0.5))])})
    np.testing.assert_array_equal(env.observation_at(s), plain)
    np.testing.assert_array_equal(env.step(np.zeros(2, np.float32))[0], plain)
    diff = np.any(env.render() != view_plain, axis=-1)
    assert diff.sum() > 50
    # the agent moves in the image
    moved = env.observation_at(np.array([0.5, -0.5, 0, 0], np.float32))
    assert np.any(moved != plain)
    env.close()


def test_pixel_renderer_batch_matches_env():
    model = build_model(Layout())
    r = PixelRenderer(model, size=64)
    states = np.array([[-0.5, -0.5, 0, 0], [0.5, 0.3, 0.1, 0], [0.2, -0.7, 0, 0]], np.float32)
    frames = r.render_states(states)
    assert frames.shape == (3, 64, 64, 3) and frames.dtype == np.uint8
    env = TwoRoomEnv(obs_type="pixels")
    env.reset()
    for s, f in zip(states, frames):
        np.testing.assert_array_equal(env.observation_at(s), f)
    r.close()


def test_image_orientation():
    """Image row 0 is the top (+y), column 0 is the left (-x)."""
    r = PixelRenderer(build_model(Layout()), size=64)
    f = r.render_states(np.array([[0.6, 0.8, 0, 0]]))[0]
    red = np.argwhere((f[..., 0] > 150) & (f[..., 1] < 80) & (f[..., 2] < 80))
    row, col = red.mean(0)
    assert row < 16 and col > 40


def test_mjstate_roundtrip_and_rollout_matches_env():
    env = TwoRoomEnv()
    env.reset(options={"task": task((-0.5, 0.1))})
    model = env.model
    states = np.array([[-0.5, 0.1, 0, 0], [0.3, -0.4, 0.2, -0.1]], np.float32)
    ms = state_to_mjstate(model, states)
    assert ms.shape == (2, mujoco.mj_stateSize(model, mujoco.mjtState.mjSTATE_FULLPHYSICS))
    np.testing.assert_array_equal(mjstate_to_state(model, ms), states)
    actions = np.random.default_rng(0).uniform(-1, 1, (12, 2))
    ctrl = np.repeat(actions, env.frame_skip, axis=0)[None]  # (1, 12*5, 2)
    out_state, _ = mujoco.rollout.rollout(model, mujoco.MjData(model), ms[:1], ctrl)
    traj = mjstate_to_state(model, out_state[0])[env.frame_skip - 1 :: env.frame_skip]
    sim = run(env, actions[0], 1)
    for a in actions[1:]:
        sim = np.concatenate([sim, run(env, a, 1)])
    np.testing.assert_allclose(traj, sim, atol=1e-5)


def test_mjcf_has_layout_and_hazards():
    xml = build_mjcf(Layout(), [Circle((0.5, 0.5), 0.1)])
    assert 'name="hazard0"' in xml and 'contype="0"' in xml
    m = build_model(Layout(), (Circle((0.5, 0.5), 0.1),))
    assert m.nq == 2 and m.nu == 2
    np.testing.assert_array_equal(m.actuator_ctrlrange, [[-1, 1], [-1, 1]])


def test_geometry_predicates():
    L = Layout()
    assert G.in_wall(L, (0.0, 0.6)) and G.in_wall(L, (-0.06, 0.6)) and not G.in_wall(L, (-0.08, 0.6))
    assert not G.in_wall(L, (0.0, 0.0))  # door centre
    assert G.outside_arena(L, (0.97, 0.0)) and not G.outside_arena(L, (0.9, 0.0))
    assert G.room_of(L, (-0.3, 0.2)) == -1 and G.room_of(L, (0.3, 0.2)) == 1
    assert G.needs_door_crossing(L, (-0.5, 0.5), (0.5, 0.5))
    assert not G.needs_door_crossing(L, (-0.5, 0.5), (-0.5, -0.5))
    pts = np.array([[-0.5, 0.5], [0.0, 0.6]])
    np.testing.assert_array_equal(G.in_wall(L, pts), [False, True])
    c, b = Circle((0.2, 0.2), 0.1), Box((-0.5, -0.5), (-0.3, -0.2))
    assert G.in_hazard(c, (0.25, 0.2)) and G.in_hazard(c, (0.3, 0.2)) and not G.in_hazard(c, (0.31, 0.2))
    assert G.in_hazard(b, (-0.4, -0.3)) and not G.in_hazard(b, (-0.2, -0.3))
    assert G.door_blocked_by([Circle((0.0, 0.0), 0.15)], L)
    assert G.door_blocked_by([Box((-0.1, -0.2), (0.1, 0.2))], L)
    assert not G.door_blocked_by([Circle((0.2, 0.0), 0.1)], L)
    assert not G.door_blocked_by([], L)
    # two half-door hazards together close it
    assert G.door_blocked_by([Box((-0.1, -0.2), (0.1, 0.01)), Box((-0.1, 0.0), (0.1, 0.2))], L)
    assert G.path_exists(L, [], (-0.5, 0.5), (0.5, 0.5))
    assert not G.path_exists(L, [Circle((0.0, 0.0), 0.2)], (-0.5, 0.5), (0.5, 0.5))


def test_layout_validation_and_dict():
    L = Layout(wall_axis="y", wall_pos=0.1)
    assert Layout.from_dict(L.to_dict()) == L
    with pytest.raises(ValueError, match="door_width"):
        Layout(door_width=0.08)
    with pytest.raises(ValueError, match="wall_axis"):
        Layout(wall_axis="z")
