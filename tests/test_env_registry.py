"""Env registry: one TaskFamily per env id, the pipeline's only way to an environment (the per-family
contract is tests/test_env_contract.py)."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import json
import subprocess
import sys

import pytest

import jepa_mpc_envs  # noqa: F401  (registers the gym ids)
from jepa_mpc.errors import ConfigError, TaskFileError
from jepa_mpc_envs.registry import ENV_IDS, get_family, load_suite
from jepa_mpc_envs.suites import shipped_suite_path


def test_unknown_env_id_is_one_line_config_error_listing_known_ids():
    with pytest.raises(ConfigError) as err:
        get_family("Foo-v0")
    msg = str(err.value)
    assert "\n" not in msg and "'Foo-v0'" in msg
    assert all(env_id in msg for env_id in ENV_IDS)


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
