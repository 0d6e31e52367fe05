"""Env registry: one EnvSpec per env id, the pipeline's only way to an environment."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import json
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

import jepa_mpc_envs  # noqa: F401  (registers the gym ids)
from jepa_mpc.errors import ConfigError, TaskFileError
from jepa_mpc_envs.registry import ENV_IDS, REGISTRY, get_env_spec
from jepa_mpc_envs.tasks import load_suite, shipped_suite_path


def test_unknown_env_id_is_one_line_config_error_listing_known_ids():
    with pytest.raises(ConfigError) as err:
        get_env_spec("Foo-v0")
    msg = str(err.value)
    assert "\n" not in msg and "'Foo-v0'" in msg
    assert all(env_id in msg for env_id in ENV_IDS)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_spec_is_consistent_with_its_env(env_id):
    spec = get_env_spec(env_id)
    assert spec.env_id == env_id and len(spec.state_fields) == spec.state_dim >= 2 * spec.goal_dim
    env = gym.make(env_id).unwrapped
    assert type(env) is type(spec.make_env(layout=spec.default_layout(), obs_type="state", frame_skip=5))
    assert env.observation_space.shape == (spec.state_dim,) and env.action_space.shape == (spec.action_dim,)
    _, info = env.reset(seed=0)
    # goal features are what success compares, and the state's first goal_dim fields
    dist = np.linalg.norm(spec.goal_features(info["state"]) - spec.goal_features(info["goal"]))
    assert dist == pytest.approx(info["distance_to_goal"], abs=1e-5)
    # start states and the mjstate round trip
    layout = spec.default_layout()
    model = spec.build_model(layout)
    starts = spec.sample_start_states(layout, np.random.default_rng(0), 7)
    assert starts.shape == (7, spec.state_dim)
    back = spec.mjstate_to_state(model, spec.state_to_mjstate(model, starts))
    if spec.room_of is not None:  # the room is not MuJoCo state: its collector appends it
        assert back.shape[-1] == spec.state_dim - spec.room_of(starts).shape[-1]
        starts_agent = starts[:, : back.shape[-1]]
    else:
        starts_agent = starts
    np.testing.assert_allclose(back, starts_agent, atol=1e-6)
    # layouts round-trip through the dataset meta's dict
    assert spec.layout_from_dict(layout.to_dict()) == layout
    # the renderer shows something that depends on the state
    r = spec.pixel_renderer(model, 32)
    a, b = r.render_state(starts[0]), r.render_state(starts[1])
    r.close()
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8 and not np.array_equal(a, b)
    assert spec.feature_to_world(spec.goal_features(starts), layout).shape == (7, 2)
    env.close()


def test_every_registered_env_has_a_gym_id():
    for env_id, spec in REGISTRY.items():
        assert env_id in gym.registry and gym.registry[env_id].entry_point == spec.entry_point


def test_suites_are_loaded_by_their_env_id(tmp_path):
    assert load_suite(shipped_suite_path("tworoom_heldout")).env_id == "jepa_mpc_envs/TwoRoom-v0"
    assert load_suite(shipped_suite_path("reacher_heldout")).env_id == "jepa_mpc_envs/Reacher-v0"
    p = tmp_path / "s.json"
    p.write_text(json.dumps({"env_id": "Foo-v0", "tasks": [{"start": [0, 0], "goal": [1, 1]}]}))
    with pytest.raises(TaskFileError) as err:
        load_suite(p)
    assert "env_id" in str(err.value) and "jepa_mpc_envs/Reacher-v0" in str(err.value)


@pytest.mark.parametrize("argv", [["collect", "--env", "Foo-v0", "--out", "/nonexistent/x"],
                                  ["tasks", "--env", "Foo-v0", "--out", "/nonexistent/x.json"]])
def test_cli_unknown_env_is_one_line_exit_2(argv):
    proc = subprocess.run([sys.executable, "-m", "jepa_mpc.cli", *argv], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "unknown env id 'Foo-v0'" in lines[0], proc.stderr
