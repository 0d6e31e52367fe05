"""`jepa-mpc bench train`: training throughput and FLOP efficiency of presets on synthetic data."""

from __future__ import annotations

import json
import math

import pytest

from jepa_mpc.bench_train import BenchTrainArgs, bench_train_main
from jepa_mpc.errors import ConfigError


def test_bench_train_times_a_preset_and_counts_its_flops(tmp_path, capsys):
    out = tmp_path / "train.json"
    bench_train_main(BenchTrainArgs(presets=("tworoom-state",), steps=2, repeats=1, json_out=str(out)))
    result = json.loads(out.read_text())
    assert set(result["rows"]) == {"tworoom-state async", "tworoom-state sync"}
    for row in result["rows"].values():
        assert row["batch_size"] == 128 and row["gflop_per_step"] > 0.1  # an MLP world model on 128 windows
        assert math.isfinite(row["steps_per_s"]) and row["steps_per_s"] > 0
        assert 0 < row["efficiency"] < 2
    assert result["matmul_gflops"] > 0
    assert "tworoom-state" in capsys.readouterr().out


@pytest.mark.parametrize("args, needle", [
    (BenchTrainArgs(presets=("nope",)), "unknown preset 'nope'"),
    (BenchTrainArgs(presets=("pusht-state",)), "12-d states"),
    (BenchTrainArgs(presets=("tworoom-state",), steps=0), "--steps"),
])
def test_bench_train_bad_args_are_config_errors(args, needle):
    with pytest.raises(ConfigError, match=needle):
        bench_train_main(args)
