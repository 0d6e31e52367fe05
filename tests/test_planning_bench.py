"""`bench plan` runs end to end (tiny budget) and reports sane figures; the fast noise is Gaussian."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jepa_mpc.bench_plan import BenchPlanArgs, bench_plan_main, step_flops
from jepa_mpc.errors import ConfigError
from jepa_mpc.planning.common import hash_normal, hash_uniform


def test_reference_model_flops_match_design():
    # 64+10 -> 256 -> 256 -> 64 at 300 samples x 30 iterations x horizon 5 is 9.1 GFLOP per plan
    assert abs(step_flops(64, 10, 256) * 300 * 30 * 5 / 1e9 - 9.08) < 0.01


@pytest.mark.parametrize("rollout", ["scan", "vmap"])
def test_bench_plan_smoke(tmp_path, capsys, rollout):
    out = tmp_path / "bench.json"
    args = BenchPlanArgs(
        planners=("cem", "random-shooting"), episodes=(1, 2), iterations=2, repeats=1,
        rollout=rollout, json_out=str(out),
    )
    bench_plan_main(args)
    text = capsys.readouterr().out
    assert "cem x1" in text and "cem x2" in text and "random-shooting x1" in text
    result = json.loads(out.read_text())
    assert result["matmul_gflops"] > 0
    for row in result["rows"].values():
        assert row["min_s"] > 0 and row["median_s"] >= row["min_s"] and 0 < row["efficiency"]
    assert result["rows"]["cem x2"]["gflop"] == pytest.approx(2 * result["rows"]["cem x1"]["gflop"])


def test_bench_plan_bad_args():
    with pytest.raises(ConfigError, match="unknown planner"):
        bench_plan_main(BenchPlanArgs(planners=("beam",)))
    with pytest.raises(ConfigError, match="rollout"):
        bench_plan_main(BenchPlanArgs(rollout="loop"))
    with pytest.raises(ConfigError, match="NAME=VALUE"):
        bench_plan_main(BenchPlanArgs(planners=("cem",), compiler_options=("oops",), iterations=1))


def test_hash_noise_statistics():
    key = jax.random.PRNGKey(3)
    u = np.asarray(hash_uniform(key, (200_000,)))
    assert 0.0 < u.min() and u.max() < 1.0 and abs(u.mean() - 0.5) < 0.005
    x = np.asarray(hash_normal(key, (200, 1000)))
    assert np.all(np.isfinite(x))
    assert abs(x.mean()) < 0.01 and abs(x.std() - 1.0) < 0.01
    assert abs(np.mean(np.abs(x) > 1.96) - 0.05) < 0.003
    # different keys -> different (uncorrelated) streams; same key -> same stream
    y = np.asarray(hash_normal(jax.random.PRNGKey(4), (200, 1000)))
    assert abs(np.corrcoef(x.ravel(), y.ravel())[0, 1]) < 0.01
    jitted = np.asarray(jax.jit(hash_normal, static_argnums=1)(key, (200, 1000)))
    np.testing.assert_allclose(x, jitted, rtol=1e-5, atol=1e-5)
    # inside vmap (batched episodes) each key gets its own stream
    keys = jax.random.split(key, 3)
    z = jax.vmap(lambda k: hash_normal(k, (4,)))(keys)
    assert len({tuple(np.asarray(r)) for r in z}) == 3
    assert jnp.asarray(z).dtype == jnp.float32
