"""The learned-model evaluation path on a tiny world model trained on synthetic data (fast).

One session-scoped run (`tiny_run` in conftest.py: TwoRoom state, 20 x 20-step episodes, 30 steps)
drives LatentPlannerPolicy, eval with a hazard task (the run's probe loaded, constraints counted),
`goal:graph --goal.source explore` through the learned encoder, and results.json's provenance block.
The model is far too small to plan well: these tests check shapes, bounds, counts and digests.
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import jax
import numpy as np
import pytest

from jepa_mpc import provenance
from jepa_mpc.control import ControlConfig, LatentPlannerPolicy, RandomActions, run_mpc
from jepa_mpc.data.store import Dataset
from jepa_mpc.errors import ConfigError
from jepa_mpc.evaluate import EvalArgs, evaluate
from jepa_mpc.goals import GraphGoal, LatentGoal
from jepa_mpc.model import load_world_model
from jepa_mpc.probe import ProbeConfig, load_or_train_probe, load_probe, save_probe
from jepa_mpc_envs.registry import TWOROOM
from jepa_mpc_envs.suites import Task
from jepa_mpc_envs.tworoom import Layout, TwoRoomEnv

from conftest import TINY_RUN_STEPS

pytestmark = pytest.mark.xdist_group("tiny_run")  # `make test` (--dist loadgroup): one worker trains it

# A small budget: each policy below compiles once and plans a few times with 16 samples x 2 iterations.
BUDGET = dict(samples=16, iterations=2, horizon=3)
HAZARD_TASK = {"name": "hazard-line", "start": [-0.8, 0.0], "goal": [-0.2, 0.0], "max_steps": 15,
               "hazards": [{"type": "circle", "center": [-0.5, 0.0], "radius": 0.12}]}
FREE_TASKS = [
    {"name": "open-room", "start": [0.4, -0.6], "goal": [0.6, 0.5], "max_steps": 15},
    {"name": "cross-door", "start": [-0.6, 0.6], "goal": [0.6, -0.6], "max_steps": 15},
    {"name": "left-room", "start": [-0.3, -0.7], "goal": [-0.7, 0.4], "max_steps": 15},
]


def _write_suite(path, tasks):
    path.write_text(json.dumps({"schema_version": 1, "env_id": TWOROOM.env_id, "tasks": tasks}))
    return path


def _eval(run, suite, out, **control):
    return evaluate(EvalArgs(checkpoint=str(run), suite=str(suite), out=str(out), batch=4,
                             control=ControlConfig(**{**BUDGET, **control})))


@pytest.fixture(scope="module")
def hazard_eval(tiny_run, tmp_path_factory):
    """(run, probe sha256, suite, result, results folder) of a constrained eval on a suite with a hazard
    task, in a copy of the tiny run that holds a probe fitted beforehand (linear: fast)."""
    root = tmp_path_factory.mktemp("hazard-eval")
    run = root / "run"
    shutil.copytree(tiny_run[1], run)
    assert not (run / "probe.npz").exists()
    load_or_train_probe(load_world_model(run), cfg=ProbeConfig(kind="linear"))  # what eval calls: fits, saves
    probe_sha = provenance.file_sha256(run / "probe.npz")
    suite = _write_suite(root / "hazards.json", [HAZARD_TASK, *FREE_TASKS])
    result, out = _eval(run, suite, root / "out", goal=LatentGoal(), safety="constrained")
    return run, probe_sha, suite, result, out


def test_latent_planner_policy_returns_blocks_inside_bounds(tiny_run):
    model = load_world_model(tiny_run[1])
    assert model.step == TINY_RUN_STEPS
    cfg = ControlConfig(goal=LatentGoal(), action_block=model.action_block, **BUDGET)
    policy = LatentPlannerPolicy(model, cfg, None)
    tasks = [Task(t["name"], tuple(t["start"]), tuple(t["goal"]), max_steps=t["max_steps"])
             for t in [HAZARD_TASK, *FREE_TASKS]]
    states = np.array([[*t.start, 0.0, 0.0] for t in tasks], np.float32)
    goals = np.array([[*t.goal, 0.0, 0.0] for t in tasks], np.float32)
    policy.start(states, goals, goals, jax.random.key(0))
    block, info = policy.act(states, states, jax.random.key(1), np.arange(len(tasks)))
    assert block.shape == (len(tasks), model.action_block, 2)
    assert np.isfinite(block).all() and np.abs(block).max() <= 1.0
    assert info["final_cost"].shape == (len(tasks),) and np.isfinite(info["final_cost"]).all()
    assert not info["infeasible"].any()  # no probe, no constraints: every plan is feasible

    # ... and as the MPC loop drives it: episodes in lockstep in the real simulator, blocks executed
    records = run_mpc([TwoRoomEnv(Layout()) for _ in tasks], tasks, policy, jax.random.key(2), family=TWOROOM)
    assert [r.task for r in records] == [t.name for t in tasks]
    for r in records:
        assert 1 <= r.steps <= 15 and 1 <= r.plans <= 3 and np.isfinite(r.final_distance)
        assert r.infeasible_plans == 0 and np.abs(np.asarray(r.path)).max() <= 1.0


def test_sliced_batched_plan_equals_planning_all_episodes_at_once(tiny_run):
    """plan_chunk is a speed setting: 4 episodes planned in slices of 1 and 2 give the plans of one vmap."""
    model = load_world_model(tiny_run[1])
    cfg = ControlConfig(goal=LatentGoal(), action_block=model.action_block, **BUDGET)
    rng = np.random.default_rng(0)
    states = np.concatenate([rng.uniform(-0.8, 0.8, (4, 2)), np.zeros((4, 2))], 1).astype(np.float32)
    goals = states[::-1].copy()
    blocks = {}
    for chunk in (4, 2, 1):
        policy = LatentPlannerPolicy(model, cfg, None, chunk=chunk)
        assert policy.chunk == chunk
        policy.start(states, goals, goals, jax.random.key(0))
        blocks[chunk], _ = policy.act(states, states, jax.random.key(1), np.arange(4))
    np.testing.assert_allclose(blocks[2], blocks[4], atol=1e-5)
    np.testing.assert_allclose(blocks[1], blocks[4], atol=1e-5)


EPISODES_ON_TWO_DEVICES = r"""
import json, sys, jax, numpy as np
from jepa_mpc.control import ControlConfig, LatentPlannerPolicy
from jepa_mpc.goals import LatentGoal
from jepa_mpc.model import load_world_model
model = load_world_model(sys.argv[1])
cfg = ControlConfig(goal=LatentGoal(), action_block=model.action_block, samples=16, iterations=2, horizon=3)
rng = np.random.default_rng(0)
states = np.concatenate([rng.uniform(-0.8, 0.8, (3, 2)), np.zeros((3, 2))], 1).astype(np.float32)
blocks = {}
for devices in (1, 2):
    policy = LatentPlannerPolicy(model, cfg, None, chunk=1, devices=devices)
    policy.start(states, states[::-1].copy(), states[::-1].copy(), jax.random.key(0))
    blocks[devices], _ = policy.act(states, states, jax.random.key(1), np.arange(3))
print(json.dumps({"devices": policy.devices, "shape": list(blocks[2].shape),
                  "max_diff": float(np.abs(blocks[2] - blocks[1]).max())}))
"""


def test_episodes_split_over_two_devices_get_the_plans_of_one(tiny_run):
    """eval --devices: a plan call's episodes (3, padded to 4) split over 2 host devices plan as on one."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", EPISODES_ON_TWO_DEVICES, str(tiny_run[1])], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["devices"] == 2 and out["shape"][0] == 3
    assert out["max_diff"] < 1e-5, out


def test_eval_with_a_hazard_loads_the_probe_and_counts_consistently(hazard_eval):
    run, probe_sha, _, result, _ = hazard_eval
    assert provenance.file_sha256(run / "probe.npz") == probe_sha  # loaded (its step matches), not refitted
    assert result["provenance"]["probe"] == {"path": str(run / "probe.npz"), "sha256": probe_sha}
    s, eps = result["summary"], result["episodes"]
    assert s["episodes"] == len(eps) == 4 and [e["task"] for e in eps][0] == "hazard-line"
    assert s["infeasible_plans"] == sum(e["infeasible_plans"] for e in eps)
    assert s["episodes_with_infeasible_plans"] == sum(e["infeasible_plans"] > 0 for e in eps)
    assert s["violation_free_rate"] == pytest.approx(np.mean([e["violation_steps"] == 0 for e in eps]))
    for e in eps:
        assert 0 <= e["infeasible_plans"] <= e["plans"] and 0 <= e["violation_steps"] <= e["steps"] <= 15
        assert e["violation_free"] == (e["violation_steps"] == 0)
        if e["task"] != "hazard-line":  # no hazard, no speed limit, no keep-in box: nothing to violate
            assert e["violation_steps"] == 0


def test_constraints_checked_at_every_env_step_by_the_probes_within_block_read_out(hazard_eval, tmp_path):
    run, probe_sha, suite, _, _ = hazard_eval
    probe = load_or_train_probe(load_world_model(run))
    assert probe.within_block == 5 and set(probe.meta["within_block"]["rmse"]) == {"x", "y", "vx", "vy"}
    result, _ = _eval(run, suite, tmp_path / "learned", goal=LatentGoal(), safety="constrained",
                      within_block="learned")
    assert result["summary"]["episodes"] == 4 and result["args"]["control"]["within_block"] == "learned"
    assert provenance.file_sha256(run / "probe.npz") == probe_sha  # the saved one, with its read-out

    bare = tmp_path / "bare"
    shutil.copytree(run, bare)
    save_probe(bare, dataclasses.replace(probe, within=None))
    model = load_world_model(bare)
    cfg = ControlConfig(goal=LatentGoal(), safety="constrained", within_block="learned", action_block=5, **BUDGET)
    with pytest.raises(ConfigError, match="within-block learned.*jepa-mpc probe"):
        LatentPlannerPolicy(model, cfg, None, probe=load_probe(bare))


def test_explore_goal_graph_with_the_learned_encoder(tiny_run, tmp_path):
    suite = _write_suite(tmp_path / "free.json", FREE_TASKS)  # no hazard: no probe is needed (or written)
    result, out = _eval(tiny_run[1], suite, tmp_path / "explore",
                        goal=GraphGoal(source="explore", explore_episodes=4, nodes=16))
    steps = result["summary"]["exploration_env_steps"]
    assert steps > 0
    records = [json.loads(line) for line in (out / "batches.jsonl").read_text().splitlines()]
    assert steps == sum(r["exploration_env_steps"] for r in records)
    assert result["goal_config"]["source"] == "explore" and result["summary"]["episodes"] == len(FREE_TASKS)
    assert result["provenance"]["probe"] is None and not (tiny_run[1] / "probe.npz").exists()


def test_results_json_provenance_names_every_input_by_content(tiny_run, hazard_eval, tmp_path):
    data = tiny_run[0]
    run, probe_sha, suite, result, out = hazard_eval
    saved = json.loads((out / "results.json").read_text())
    prov = saved["provenance"]
    assert prov == result["provenance"]
    assert set(prov) == {"git_commit", "git_dirty", "dataset", "checkpoint", "probe", "suite_sha256"}
    assert prov["git_commit"] == saved["git_commit"] == provenance.git_commit()
    assert prov["git_dirty"] in (True, False)  # tests run from a checkout
    assert prov["suite_sha256"] == saved["suite"]["sha256"] == provenance.file_sha256(suite)
    dataset = Dataset.open(data)
    assert prov["dataset"] == {"path": str(data), "digest": dataset.digest}
    assert dataset.meta["git_commit"] == prov["git_commit"] and dataset.meta["git_dirty"] in (True, False)
    assert prov["probe"] == {"path": str(run / "probe.npz"), "sha256": probe_sha}

    record = json.loads((run / "config.json").read_text())
    ckpt = prov["checkpoint"]
    assert ckpt["run"] == str(run) and ckpt["step"] == TINY_RUN_STEPS == saved["checkpoint"]["step"]
    assert ckpt["digest"] == provenance.directory_sha256(run / "checkpoints" / str(TINY_RUN_STEPS))
    assert ckpt["digest"] == provenance.directory_sha256(tiny_run[1] / "checkpoints" / str(TINY_RUN_STEPS))
    assert ckpt["config_sha256"] == provenance.file_sha256(run / "config.json")
    assert ckpt["train_config"] == record["train"] and ckpt["train_config"]["steps"] == TINY_RUN_STEPS
    # train recorded the code that trained the run, and eval read it back
    assert record["trained_by"] == ckpt["trained_by"] == [{**provenance.git_state(), "from_step": 0}]
    assert ckpt["train_commit"] == provenance.git_commit() and ckpt["train_dirty"] == prov["git_dirty"]
    assert "provenance" not in json.loads((out / "identity.json").read_text())["identity"]

    # random actions use no run: the code and the suite only
    rnd, _ = evaluate(EvalArgs(checkpoint=str(run), suite=str(suite), out=str(tmp_path / "random"),
                               control=ControlConfig(planner=RandomActions())))
    nothing = dict.fromkeys(("dataset", "checkpoint", "probe"))
    assert {k: rnd["provenance"][k] for k in nothing} == nothing
    assert rnd["provenance"]["suite_sha256"] == prov["suite_sha256"]


def test_safety_rollout_margin_grows_with_the_probes_measured_error_ahead(hazard_eval, tmp_path):
    """--control.safety-rollout K adds K x the probe's error of latents predicted t blocks ahead to block t's
    margin (the last measured block's beyond); a probe without that measurement is a one-line error."""
    run = hazard_eval[0]
    probe = load_or_train_probe(load_world_model(run))
    roll = probe.meta["rollout_position_rmse"]
    model = load_world_model(run)
    cfg = ControlConfig(goal=LatentGoal(), safety="constrained", safety_rollout=2.0, action_block=5,
                        **{**BUDGET, "horizon": len(roll) + 2})
    reserve = np.asarray(LatentPlannerPolicy(model, cfg, None, probe=probe).rollout_reserve)
    np.testing.assert_allclose(reserve, 2.0 * np.array(roll + [roll[-1]] * 2), rtol=1e-6)
    off = LatentPlannerPolicy(model, dataclasses.replace(cfg, safety_rollout=0.0), None, probe=probe)
    assert off.rollout_reserve is None
    bare = dataclasses.replace(probe, meta={k: v for k, v in probe.meta.items() if k != "rollout_position_rmse"})
    with pytest.raises(ConfigError, match="safety-rollout needs the probe's error"):
        LatentPlannerPolicy(model, cfg, None, probe=bare)


def test_probe_measures_errors_ahead_of_a_model_without_a_history(tiny_run, hazard_eval):
    """A history-1 model has no past blocks: the speed and position errors ahead are numbers (the probe
    stored an error message for them while an empty past could not be reshaped)."""
    from jepa_mpc.probe import rollout_position_rmse, rollout_speed_rmse

    run = hazard_eval[0]
    model, probe = load_world_model(run), load_probe(run)
    ds = Dataset.open(tiny_run[0])
    speed = rollout_speed_rmse(model, probe, ds, blocks=2)  # episodes of 20 steps hold 2 windows of 2 blocks
    assert set(speed) >= {"line"} and all(len(v) == 2 and np.isfinite(v).all() for v in speed.values())
    position = rollout_position_rmse(model, probe, ds, blocks=2)
    assert len(position) == 2 and np.isfinite(position).all()
