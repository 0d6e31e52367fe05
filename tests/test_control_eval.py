"""MPC loop, evaluation statistics, results schema and CLI errors."""

import json
import subprocess
import sys

import jax
import numpy as np
import pytest

from jepa_mpc.control import ControlConfig, OraclePlannerPolicy, RandomActions, RandomActionsPolicy, mujoco_block_simulator, run_mpc
from jepa_mpc.evaluate import EvalArgs, evaluate, wilson_interval
from jepa_mpc.goals import LatentGoal
from jepa_mpc_envs.registry import TWOROOM
from jepa_mpc_envs.suites import Task
from jepa_mpc_envs.tworoom import Layout, TwoRoomEnv, build_model


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(180, 200)
    assert lo == pytest.approx(0.8506, abs=1e-3) and hi == pytest.approx(0.9343, abs=1e-3)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0


def test_oracle_mpc_reaches_goal_in_open_room_and_random_does_not():
    layout = Layout()
    tasks = [
        Task(name="a", start=(-0.8, -0.7, 0, 0), goal=(-0.3, 0.6, 0, 0), tolerance=0.1, hazards=(), max_steps=100),
        Task(name="b", start=(0.7, 0.7, 0, 0), goal=(0.3, -0.6, 0, 0), tolerance=0.1, hazards=(), max_steps=100),
    ]
    cfg = ControlConfig(goal=LatentGoal(), samples=32, iterations=3, action_block=5)
    policy = OraclePlannerPolicy(mujoco_block_simulator(build_model(layout), 5, cfg.action_block, env=TWOROOM), cfg, None)
    records = run_mpc([TwoRoomEnv(layout) for _ in tasks], tasks, policy, jax.random.key(0), family=TWOROOM)
    assert all(r.success for r in records)
    assert all(r.steps < 100 for r in records)
    random = run_mpc([TwoRoomEnv(layout) for _ in tasks], tasks, RandomActionsPolicy(), jax.random.key(0), family=TWOROOM)
    assert np.mean([r.final_distance for r in random]) > np.mean([r.final_distance for r in records])


def test_the_family_is_never_defaulted():
    """Without its TaskFamily the loop and the oracle would read another env's path and speed fields."""
    with pytest.raises(TypeError, match="family"):
        run_mpc([TwoRoomEnv(Layout())], [], RandomActionsPolicy(), jax.random.key(0))
    with pytest.raises(TypeError, match="env"):
        mujoco_block_simulator(build_model(Layout()), 5, 5)


def test_results_json_schema(tmp_path):
    result, out = evaluate(EvalArgs(control=ControlConfig(planner=RandomActions()), episodes=3, out=str(tmp_path / "res")))
    saved = json.loads((out / "results.json").read_text())
    assert saved == json.loads(json.dumps(result))
    assert saved["schema_version"] == 1
    for key in ("created", "git_commit", "versions", "args", "suite", "summary", "episodes"):
        assert key in saved
    s = saved["summary"]
    assert s["episodes"] == 3 and 0.0 <= s["success_rate"] <= 1.0
    lo, hi = s["success_ci95"]
    assert 0.0 <= lo <= s["success_rate"] <= hi <= 1.0
    ep = saved["episodes"][0]
    assert set(ep) >= {"task", "success", "steps", "violation_steps", "violation_free", "final_distance", "plans"}
    assert (out / "summary.md").read_text().startswith("| run |")


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["eval", "planner:nope", "--checkpoint", "."], "planner:nope"),
        (["eval", "goal:nope"], "goal:nope"),
        (["eval", "goal:latent", "--goal.mode", "mixed"], "--goal.mode"),
        (["eval", "planner:mppi", "--planner.elites", "3"], "--planner.elites"),
        (["eval", "--checkpoint", "/nonexistent/run"], "no such run directory"),
        (["eval", "planner:random-actions", "--suite", "/nonexistent.json"], "nonexistent.json"),
        (["eval", "--control.horizon", "0", "--checkpoint", "."], "horizon"),
        (["frobnicate"], "unknown command"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(argv, needle):
    proc = subprocess.run([sys.executable, "-m", "jepa_mpc.cli", *argv], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], proc.stderr
