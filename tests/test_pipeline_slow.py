"""End to end on a small budget: collect -> train -> plan on held-out tasks (slow; `make test-slow`)."""

from dataclasses import replace

import pytest

from jepa_mpc.config import TRAIN_PRESETS, CollectConfig
from jepa_mpc.control import ControlConfig, RandomActions
from jepa_mpc.data.collect import collect
from jepa_mpc.evaluate import EvalArgs, evaluate
from jepa_mpc.goals import GraphGoal
from jepa_mpc.train import train


@pytest.mark.slow
def test_collect_train_plan_beats_random(tmp_path):
    data, run = tmp_path / "data", tmp_path / "run"
    collect(CollectConfig(out=str(data), num_episodes=200), progress=False)
    cfg = TRAIN_PRESETS["tworoom-state"]
    result = train(type(cfg)(**{**cfg.__dict__, "steps": 1000, "eval_every": 1000}), run, str(data), progress=False)
    assert result.last_eval["pred_copy_ratio"] < 0.5
    control = ControlConfig(iterations=5, goal=GraphGoal(nodes=500))
    common = dict(checkpoint=str(run), episodes=20, batch=20)
    cem, _ = evaluate(EvalArgs(control=control, out=str(tmp_path / "cem"), **common))
    rnd, _ = evaluate(EvalArgs(control=replace(control, planner=RandomActions()), out=str(tmp_path / "rnd"), **common))
    assert cem["summary"]["success_rate"] >= 0.5
    assert cem["summary"]["success_rate"] > rnd["summary"]["success_rate"]
