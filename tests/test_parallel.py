"""Data-parallel and multi-process training (jepa_mpc/parallel.py, `jepa-mpc train --devices/--distributed`).

A process sees one CPU device unless XLA_FLAGS asks for more before JAX starts, so the several-device
checks run in subprocesses: 4 host devices in one process, and 2 processes of one device each joined by
`jax.distributed` (Gloo on CPU). Each compares with the single-device computation on the same global batch.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from conftest import assert_one_line_error, run_cli
from jepa_mpc import parallel
from jepa_mpc.errors import ConfigError

SETUP = r"""
import json, jax, numpy as np, tempfile
from jepa_mpc import parallel
from jepa_mpc.config import ModelConfig, RegularizerConfig, TrainConfig
from jepa_mpc.model.fake_data import make_fake_dataset
from jepa_mpc.train import init_train_state, make_sampler, train

ds = make_fake_dataset(num_episodes=16, steps=60, seed=0)
model = ModelConfig(latent_dim=8, encoder_hidden=(32,), projector_hidden=32, predictor_hidden=32)
out = {"devices": len(jax.devices()), "kinds": {}}
def maxdiff(a, b):  # largest difference of any leaf, relative to the largest magnitude of any leaf
    xs, ys = [np.asarray(x) for x in jax.tree.leaves(a)], [np.asarray(y) for y in jax.tree.leaves(b)]
    return max(float(np.max(np.abs(x - y))) for x, y in zip(xs, ys)) / max(float(np.max(np.abs(y))) for y in ys)
"""

# Loss, gradients and one step of the sharded train step vs the single-device step, for each regulariser
# with batch statistics (they would differ if computed per device).
FOUR_DEVICE_STEP = SETUP + r"""
for kind in KINDS:
    cfg = TrainConfig(model=model, reg=RegularizerConfig(kind=kind, num_projections=16), batch_size=32,
                      rollout_steps=3, steps=20, warmup_steps=2)
    ds_b = ds.action_blocks(cfg.action_block)
    stats = ds_b.stats(np.arange(16))
    batch = make_sampler(ds_b, cfg, np.arange(16)).batch(3)
    one, ts = init_train_state(cfg, stats)
    mesh = parallel.data_mesh(0)
    many, _ = init_train_state(cfg, stats, mesh)
    ts4, batch4 = parallel.replicate(ts, mesh), parallel.global_batch(batch, mesh, 32)
    assert len(batch4["state"].sharding.device_set) == 4
    (loss1, m1), g1 = jax.jit(one.grads_fn)(ts, batch)
    whole, split = parallel.replicated(mesh), parallel.batch_sharding(mesh)
    (loss4, m4), g4 = jax.jit(many.grads_fn, in_shardings=(whole, split), out_shardings=whole)(ts4, batch4)
    s1, _ = one.step_fn(ts, batch)
    s4, _ = many.step_fn(ts4, batch4)
    # the same regulariser on each device's quarter of the batch alone: what a per-device bug computes
    quarter = {k: v[:8] for k, v in batch.items()}
    (_, mq), _ = jax.jit(one.grads_fn)(ts, quarter)
    out["kinds"][kind] = {"loss": [float(loss1), float(loss4)], "reg": [float(m1["reg"]), float(m4["reg"]), float(mq["reg"])],
                          "grad_rel_diff": maxdiff(g4, g1), "step_rel_diff": maxdiff(s4["params"], s1["params"])}
print(json.dumps(out))
"""

# 12 steps of `train` (checkpoint, log, held-out check) on 4 devices vs 1; then the 4-device run resumed
# from its step-6 checkpoint (restored onto the 4 devices) to step 12 again.
FOUR_DEVICE_TRAIN = SETUP + r"""
import pathlib, shutil
cfg = TrainConfig(model=model, reg=RegularizerConfig(num_projections=16), batch_size=32, rollout_steps=3,
                  steps=12, warmup_steps=2, log_every=4, eval_every=1000, ckpt_every=6)
runs = {}
for n in (1, 4):
    with tempfile.TemporaryDirectory() as d:
        runs[n] = train(cfg, d, dataset=ds, progress=False, tensorboard=False, devices=n)
        if n == 4:
            shutil.rmtree(pathlib.Path(d) / "checkpoints" / "12")
            runs["resumed"] = train(cfg, d, dataset=ds, progress=False, tensorboard=False, devices=n)
out["train_rel_diff"] = maxdiff(runs[4].params, runs[1].params)
out["resume_rel_diff"] = maxdiff(runs["resumed"].params, runs[4].params)
out["train_loss"] = [runs[1].last_metrics["loss"], runs[4].last_metrics["loss"]]
print(json.dumps(out))
"""


def run_python(code: str, env: dict, timeout: float = 300) -> dict:
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


FOUR_HOST_DEVICES = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}


@pytest.mark.parametrize("kind", [
    "sigreg",  # the default regulariser stays in the fast suite; VICReg's compile-bound twin is slow
    pytest.param("vicreg", marks=pytest.mark.slow),
])
def test_sharded_step_equals_single_device_step_on_the_global_batch(kind):
    out = run_python(f"KINDS = ({kind!r},)\n" + FOUR_DEVICE_STEP, FOUR_HOST_DEVICES)
    assert out["devices"] == 4 and set(out["kinds"]) == {kind}
    r = out["kinds"][kind]
    assert abs(r["loss"][0] - r["loss"][1]) < 1e-5 * max(1.0, abs(r["loss"][0])), (kind, r)
    assert abs(r["reg"][0] - r["reg"][1]) < 1e-5 * max(1.0, abs(r["reg"][0])), (kind, r)
    assert r["grad_rel_diff"] < 1e-4 and r["step_rel_diff"] < 1e-4, (kind, r)
    # a statistic of a quarter of the batch differs: the check can fail
    assert abs(r["reg"][2] - r["reg"][0]) > 1e-3 * max(1.0, abs(r["reg"][0])), (kind, r["reg"])


@pytest.mark.slow  # a compile-bound subprocess (the 4-device step equality stays fast): `make test-slow`
def test_training_on_four_devices_ends_where_one_device_does():
    out = run_python(FOUR_DEVICE_TRAIN, FOUR_HOST_DEVICES)
    assert out["devices"] == 4
    assert out["train_rel_diff"] < 1e-3, out
    assert out["resume_rel_diff"] < 1e-6, out
    assert abs(out["train_loss"][0] - out["train_loss"][1]) < 1e-3 * abs(out["train_loss"][0])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TRAIN_FLAGS = ("--quiet", "--steps", "12", "--batch-size", "32", "--model.latent-dim", "8",
               "--model.encoder-hidden", "32", "--model.projector-hidden", "32", "--model.predictor-hidden", "32",
               "--reg.num-projections", "16", "--warmup-steps", "2", "--log-every", "4", "--eval-every", "1000",
               "--ckpt-every", "6", "--rollout-steps", "3")


def _params(run) -> list[np.ndarray]:
    from jepa_mpc.model import load_world_model

    return [np.asarray(x) for x in jax.tree.leaves(load_world_model(run).state)]


@pytest.mark.slow  # a compile-bound subprocess (the 4-device step equality stays fast): `make test-slow`
def test_two_processes_train_to_the_parameters_of_one(tmp_path):
    from jepa_mpc.model.fake_data import save_fake_dataset

    data = tmp_path / "data"
    save_fake_dataset(data, num_episodes=16, steps=60)
    single = run_cli("train", "--data", data, "--run", tmp_path / "one", *TRAIN_FLAGS)
    assert single.returncode == 0, single.stderr[-2000:]

    port, run = _free_port(), tmp_path / "two"
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
           "JAX_NUM_PROCESSES": "2", "XLA_FLAGS": ""}
    argv = [sys.executable, "-m", "jepa_mpc.cli", "train", "--distributed", "--data", str(data), "--run", str(run),
            *TRAIN_FLAGS]
    procs = [subprocess.Popen(argv, env={**env, "JAX_PROCESS_ID": str(i)}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    assert "trained 12 steps" in outs[0][0] and "trained" not in outs[1][0]  # only process 0 reports
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines if m["split"] == "train"] == [4, 8, 12]  # one writer: no duplicate lines
    one, two = _params(tmp_path / "one"), _params(run)
    assert len(one) == len(two)
    for a, b in zip(one, two):
        assert np.allclose(a, b, rtol=1e-3, atol=1e-5), float(np.max(np.abs(a - b)))


def test_one_device_mesh_and_rows():
    mesh = parallel.data_mesh(0)
    assert mesh.devices.size == len(jax.devices())
    assert parallel.process_rows(32) == slice(0, 32)
    parallel.check_batch_divides(32, parallel.data_mesh(1))
    with pytest.raises(ConfigError, match="--devices 99: only"):
        parallel.data_mesh(99)
    with pytest.raises(ConfigError, match="--devices must be >= 0"):
        parallel.data_mesh(-1)


def test_sampler_rows_are_that_part_of_the_global_batch():
    from jepa_mpc.data.store import WindowSampler
    from jepa_mpc.model.fake_data import make_fake_dataset

    ds = make_fake_dataset(num_episodes=8, steps=30, seed=1)
    full = WindowSampler(ds, 16, 4, seed=3).batch(5)
    part = WindowSampler(ds, 16, 4, seed=3)
    part.rows = slice(8, 16)
    for key, value in part.batch(5).items():
        np.testing.assert_array_equal(value, full[key][8:16])


def test_train_devices_errors_are_one_line(tmp_path):
    from jepa_mpc.model.fake_data import save_fake_dataset

    data = tmp_path / "data"
    save_fake_dataset(data, num_episodes=4, steps=20)
    proc = run_cli("train", "--data", data, "--run", tmp_path / "run", "--devices", "7", "--steps", "1")
    assert_one_line_error(proc, "--devices 7: only 1")


def test_distributed_without_a_coordinator_is_one_line_error(tmp_path):
    from jepa_mpc.model.fake_data import save_fake_dataset

    data = tmp_path / "data"
    save_fake_dataset(data, num_episodes=4, steps=20)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_COORDINATOR", "JAX_NUM_PROC", "JAX_PROCESS",
                                                                     "SLURM", "OMPI"))}
    proc = subprocess.run([sys.executable, "-m", "jepa_mpc.cli", "train", "--distributed", "--data", str(data),
                           "--run", str(tmp_path / "run"), "--steps", "1"],
                          env={**env, "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "x"}, capture_output=True, text=True,
                          timeout=120)
    assert_one_line_error(proc, "$JAX_PROCESS_ID='x'")
    proc = subprocess.run([sys.executable, "-m", "jepa_mpc.cli", "train", "--distributed", "--data", str(data),
                           "--run", str(tmp_path / "run"), "--steps", "1"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert_one_line_error(proc, "--distributed: could not join the run")
