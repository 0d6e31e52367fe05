"""MPC loop, evaluation statistics, results schema and CLI errors."""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jepa_mpc.control import ControlConfig, OraclePlannerPolicy, RandomActions, RandomActionsPolicy, mujoco_block_simulator, run_mpc
from jepa_mpc.errors import ConfigError
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
    t = s["time_breakdown_s"]  # where the wall time went: parts >= 0 that add up to it
    parts = ("plan", "act_other", "simulate", "reset", "start", "other")
    assert all(t[p] >= 0 for p in parts) and t["plan"] == 0.0  # random actions do not plan
    assert sum(t[p] for p in parts) == pytest.approx(s["wall_time_s"], rel=1e-6, abs=1e-6)
    assert t["simulate"] > 0 and t["episodes_per_s"] == pytest.approx(3 / s["wall_time_s"])
    assert "episodes/s" in (out / "summary.md").read_text()


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


def test_episode_chunk_fits_cpu_cache_and_spans_the_batch_elsewhere():
    from jepa_mpc.control import CPU_CHUNK_ROWS, episode_chunk

    assert episode_chunk(300, backend="cpu") == 8  # 2400 sample rows <= CPU_CHUNK_ROWS
    assert episode_chunk(30, backend="cpu") == 64
    assert episode_chunk(10 * CPU_CHUNK_ROWS, backend="cpu") == 1  # never below one episode
    for samples in (1, 7, 300, 1500):
        chunk = episode_chunk(samples, backend="cpu")
        assert chunk & (chunk - 1) == 0 and (chunk == 1 or chunk * samples <= CPU_CHUNK_ROWS)
    assert episode_chunk(300, backend="gpu") == 0  # all episodes in one vmap
    assert episode_chunk(300, requested=3, backend="cpu") == 3


def test_map_episodes_in_slices_equals_one_vmap():
    from jepa_mpc.control import map_episodes

    def one(x, tree):
        return {"y": jnp.tanh(x @ tree["w"]) + tree["b"], "s": x.sum()}

    x = jnp.arange(7 * 3, dtype=jnp.float32).reshape(7, 3) / 10
    tree = {"w": jnp.ones((7, 3, 2)), "b": jnp.arange(7.0)[:, None] * jnp.ones((7, 2))}
    whole = map_episodes(one, 0, x, tree)
    for chunk in (1, 2, 4, 8):  # 7 episodes: slices plus a remainder
        sliced = map_episodes(one, chunk, x, tree)
        np.testing.assert_allclose(sliced["y"], whole["y"], rtol=1e-6)
        np.testing.assert_allclose(sliced["s"], whole["s"], rtol=1e-6)


def test_eval_refuses_a_negative_plan_chunk(tmp_path):
    with pytest.raises(ConfigError, match="--plan-chunk"):
        evaluate(EvalArgs(checkpoint=str(tmp_path), out=str(tmp_path / "out"), plan_chunk=-1))
    with pytest.raises(ConfigError, match="--devices"):
        evaluate(EvalArgs(checkpoint=str(tmp_path), out=str(tmp_path / "out"), devices=-1))


def test_episode_mesh_refuses_more_devices_than_visible():
    from jepa_mpc.control import episode_mesh

    assert episode_mesh(0) is None and episode_mesh(1) is None  # one CPU device in this process
    with pytest.raises(ConfigError, match="--devices 5: only 1 cpu device"):
        episode_mesh(5)
