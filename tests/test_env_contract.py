"""The env contract, checked for every registered task family (generated from the registry).

Each family in `registry.FAMILIES` (and the OGBench families when `ogbench` is installed) must:
declare position / velocity / goal slices inside its state; pass Gymnasium's `check_env`; reset and
step with observations in its spaces and the info keys the pipeline reads; sample starts inside its
arena; round-trip its layout, its states through MuJoCo (where `mujoco.rollout` can step it) and a
generated suite through save/load; render frames of the asked size. Family-specific behaviour is
tested in the per-family files (test_env_<family>.py).
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import importlib.util
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import jepa_mpc_envs
from jepa_mpc_envs.errors import ConfigError
from jepa_mpc_envs.family import TaskFamily
from jepa_mpc_envs.registry import FAMILIES, get_family, load_suite
from jepa_mpc_envs.suites import save_suite

HAS_OGBENCH = importlib.util.find_spec("ogbench") is not None
OGBENCH_IDS = ("ogbench:pointmaze-medium-navigate-v0", "ogbench:cube-single-play-v0")
ENV_IDS = [f.env_id for f in FAMILIES] + [
    pytest.param(i, marks=pytest.mark.skipif(not HAS_OGBENCH, reason="ogbench is not installed")) for i in OGBENCH_IDS]
INFO_KEYS = {"success", "violation", "distance_to_goal", "state", "goal"}


@pytest.fixture(scope="module", params=ENV_IDS)
def family(request) -> TaskFamily:
    return get_family(request.param)


def _pixels(family: TaskFamily) -> bool:
    return not family.env_id.startswith("ogbench:")  # the OGBench adapter is state-only


def test_declared_slices_lie_in_the_state(family):
    assert isinstance(family, TaskFamily) and len(family.state_fields) == family.state_dim
    for which, size in ((family.position, 2), (family.velocity, 2), (family.goal, family.goal_dim)):
        fields = family.field_names(which)
        assert len(fields) == size >= 1 and set(fields) <= set(family.state_fields)
    assert not set(family.field_names(family.position)) & set(family.field_names(family.velocity))
    states = np.arange(3 * family.state_dim, dtype=np.float32).reshape(3, family.state_dim)
    assert family.positions(states).shape == (3, 2) and family.velocities(states).shape == (3, 2)
    assert family.goal_features(states).shape == (3, family.goal_dim)
    assert family.default_tolerance > 0 and family.default_max_steps >= 1


def test_builtin_families_have_their_gym_id():
    assert set(jepa_mpc_envs.GYM_ENTRY_POINTS) == {f.env_id for f in FAMILIES}
    for f in FAMILIES:
        assert gym.registry[f.env_id].entry_point == f.entry_point == jepa_mpc_envs.GYM_ENTRY_POINTS[f.env_id]
        assert type(gym.make(f.env_id).unwrapped) is type(f.make_env(layout=f.default_layout()))


@pytest.mark.parametrize("obs_type", ["state", "pixels", "both"])
def test_check_env(family, obs_type):
    if obs_type != "state" and not _pixels(family):
        pytest.skip("state observations only")
    render = {"render_mode": "rgb_array"} if _pixels(family) else {}
    env = (gym.make(family.env_id, obs_type=obs_type, **render).unwrapped if family.env_id in gym.registry
           else family.make_env(layout=family.default_layout(), obs_type=obs_type, frame_skip=5))
    if not isinstance(env, gym.Env):
        env.close()
        pytest.skip("the OGBench adapter's envs wrap OGBench's env without subclassing gymnasium.Env")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any checker warning fails the test
        check_env(env, skip_render_check=not render)
    env.close()


def test_reset_and_step_shapes(family):
    env = family.make_env(layout=family.default_layout(), obs_type="state", frame_skip=5)
    assert env.observation_space.shape == (family.state_dim,) and env.action_space.shape == (family.action_dim,)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs) and INFO_KEYS <= set(info)
    assert info["state"].shape == info["goal"].shape == (family.state_dim,)
    dist = np.linalg.norm(family.goal_features(info["state"]) - family.goal_features(info["goal"]))
    assert dist == pytest.approx(info["distance_to_goal"], abs=1e-5)  # the goal features are what success compares
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs) and INFO_KEYS <= set(info) and reward in (0.0, 1.0)
    assert np.all(np.isfinite(info["state"])) and isinstance(terminated, bool) and isinstance(truncated, bool)
    env.close()


def test_make_env_defaults_to_the_family_frame_skip(family):
    assert family.default_frame_skip >= 1 and family.default_action_block >= 1
    env = family.make_env(layout=family.default_layout())  # the OGBench envs refuse a frame skip not their own
    assert getattr(env, "frame_skip", family.default_frame_skip) == family.default_frame_skip
    env.close()


def test_starts_lie_in_the_arena_and_layout_round_trips(family):
    layout = family.default_layout()
    assert family.layout_from_dict(layout.to_dict()) == layout
    starts = family.sample_start_states(layout, np.random.default_rng(0), 7)
    assert starts.shape == (7, family.state_dim) and np.all(np.isfinite(starts))
    assert np.all(np.abs(family.positions(starts)) <= layout.arena_half)
    again = family.sample_start_states(layout, np.random.default_rng(0), 7)
    np.testing.assert_array_equal(starts, again)  # a pure function of the generator
    assert family.feature_to_world(family.goal_features(starts), layout).shape == (7, 2)
    assert family.view_half(layout) > 0


def test_mjstate_round_trip(family):
    layout = family.default_layout()
    model = family.build_model(layout)
    starts = family.sample_start_states(layout, np.random.default_rng(1), 5)
    if family.env_id.startswith("ogbench:"):  # stepped by OGBench's own Python step, not mujoco.rollout
        with pytest.raises(ConfigError):
            family.state_to_mjstate(model, starts)
        return
    back = family.mjstate_to_state(model, family.state_to_mjstate(model, starts))
    room = family.room_of(starts)  # a room is not MuJoCo state: the family's collector appends it
    width = family.state_dim - (0 if room is None else np.shape(room)[-1])
    np.testing.assert_allclose(back, starts[:, :width], atol=1e-6)
    with family.make_collector(model, 5) as collector:
        out = collector.run(starts[:2], np.zeros((2, 3, family.action_dim), np.float32))
    assert out["state"].shape == (2, 4, family.state_dim)


def test_generated_suite_round_trips(family, tmp_path):
    suite = family.generate_suite(0, 3)
    assert suite.env_id == family.env_id and len(suite) == 3
    back = load_suite(save_suite(suite, tmp_path / "suite.json"))
    assert back.env_id == suite.env_id and back.layout == suite.layout
    assert [t.to_dict() for t in back.tasks] == [t.to_dict() for t in suite.tasks]
    assert all(t.tolerance == family.default_tolerance and t.max_steps == family.default_max_steps for t in back.tasks)
    with pytest.raises(ConfigError):
        family.generate_suite(0, 3, split="no-such-split")


def test_renderer_frames(family):
    layout = family.default_layout()
    model = family.build_model(layout)
    if not _pixels(family):
        with pytest.raises(ConfigError):
            family.pixel_renderer(model, 32)
        return
    starts = family.sample_start_states(layout, np.random.default_rng(2), 3)
    renderer = family.pixel_renderer(model, 32)
    frames = renderer.render_states(starts)
    one = renderer.render_state(starts[0])
    renderer.close()
    assert frames.shape == (3, 32, 32, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames[0], one)
    assert not np.array_equal(frames[0], frames[1])  # the frame depends on the state
