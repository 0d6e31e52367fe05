"""`bench plan --peer`: one-line errors without the extra; with it, peer rows beside ours on the same
problem, and a torch predictor that computes what the jnp reference model computes."""

from __future__ import annotations

import importlib.util
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jepa_mpc import cli
from jepa_mpc.bench_plan import ACTIVATIONS, BenchPlanArgs, batched_goal_cost, bench_plan_main, init_reference_model, predictor_step
from jepa_mpc.errors import ConfigError


def _cli_error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_unknown_peer_is_one_line_error(capsys):
    err = _cli_error(["bench", "plan", "--peer", "mujoco-mpc", "--repeats", "1"], capsys)
    assert "--peer: unknown 'mujoco-mpc'" in err and "stable-worldmodel" in err


@pytest.mark.parametrize("missing", ["stable_worldmodel", "torch"])
def test_missing_extra_names_it(monkeypatch, capsys, missing):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == missing else real_find_spec(name, *a))
    err = _cli_error(["bench", "plan", "--peer", "stable-worldmodel", "--repeats", "1"], capsys)
    assert "not installed" in err and missing in err.split("not installed")[0]
    assert "pip install 'jepa-mpc[peers]'" in err and "make peers" in err


def test_broken_peer_import_is_one_line_error(monkeypatch):
    pytest.importorskip("torch")
    if importlib.util.find_spec("stable_worldmodel") is None:
        pytest.skip("stable-worldmodel not installed")
    from jepa_mpc import bench_peer

    monkeypatch.setitem(__import__("sys").modules, "stable_worldmodel.solver.cem", None)
    with pytest.raises(ConfigError, match=r"cannot import its CEM solver .*jepa-mpc\[peers\]"):
        bench_peer.load_cem_solver()


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_torch_predictor_matches_jnp(activation):
    torch = pytest.importorskip("torch")
    from jepa_mpc import bench_peer

    params = init_reference_model(jax.random.PRNGKey(1), 64, 10, 256)
    kz, ka = jax.random.split(jax.random.PRNGKey(2))
    z = jax.random.normal(kz, (3, 7, 64))
    a = jax.random.normal(ka, (3, 7, 10))
    mlp = bench_peer.torch_mlp(params, activation)
    with torch.inference_mode():
        got = bench_peer.torch_step(mlp, torch.from_numpy(np.array(z)), torch.from_numpy(np.array(a))).numpy()
    want = np.asarray(predictor_step(params, z, a, ACTIVATIONS[activation]))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_peer_goal_cost_matches_ours():
    torch = pytest.importorskip("torch")
    from jepa_mpc import bench_peer

    params = init_reference_model(jax.random.PRNGKey(1), 64, 10, 256)
    kz, kg, ka = jax.random.split(jax.random.PRNGKey(3), 3)
    z0, goal = jax.random.normal(kz, (64,)), jax.random.normal(kg, (64,))
    actions = 2.0 * jax.random.normal(ka, (50, 5, 10))  # many outside [-1, 1]: both clip
    model = bench_peer.GoalCostModel(bench_peer.torch_mlp(params, "gelu"), -1.0, 1.0)
    info = {"z0": torch.from_numpy(np.array(z0)).expand(1, 50, 64),
            "goal": torch.from_numpy(np.array(goal)).expand(1, 50, 64)}
    with torch.inference_mode():
        got = model.get_cost(info, torch.from_numpy(np.array(actions))[None]).numpy()[0]
    want = np.asarray(batched_goal_cost(params, z0, goal, jax.nn.gelu)(jnp.clip(actions, -1.0, 1.0)))
    np.testing.assert_allclose(got, want, rtol=1e-4)


def test_bench_plan_with_peer(tmp_path, capsys):
    pytest.importorskip("torch")
    if importlib.util.find_spec("stable_worldmodel") is None:
        pytest.skip("stable-worldmodel not installed (make peers)")
    out = tmp_path / "bench.json"
    bench_plan_main(BenchPlanArgs(planners=("cem",), episodes=(1, 2), iterations=3, repeats=1,
                                  activation="relu", peer="stable-worldmodel", json_out=str(out)))
    text = capsys.readouterr().out
    assert "stable-worldmodel cem x1" in text and "ours/peer time" in text
    assert "CEM solve time" not in text  # the peer's per-call print is silenced
    result = json.loads(out.read_text())
    for n in (1, 2):
        ours, peer = result["rows"][f"cem x{n}"], result["rows"][f"stable-worldmodel cem x{n}"]
        assert peer["gflop"] == pytest.approx(ours["gflop"])
        assert math.isfinite(peer["min_s"]) and peer["min_s"] > 0 and peer["cpu_efficiency"] > 0
        compare = result["peer"]["compare"][str(n)]
        assert compare["ours_over_peer"] == pytest.approx(ours["min_s"] / peer["min_s"])
        # same problem: both plans lower the zero plan's goal cost
        assert compare["ours_final_cost"] < compare["initial_cost"]
        assert compare["peer_final_cost"] < compare["initial_cost"]
    assert result["peer"]["version"] == "0.1.1" and result["peer"]["torch_threads"] >= 1
