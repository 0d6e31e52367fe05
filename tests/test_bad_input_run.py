"""Bad runs, checkpoints, probes and datasets: every verb that reads a run ends with one line, exit 2.

One tiny TwoRoom run (4 training steps on 8 collected episodes) is built once; each case damages a
copy of it (or of its dataset) and runs the CLI in a fresh process, so tracebacks that Orbax's
background threads would print after the error are seen too.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest

from conftest import assert_one_line_error, run_cli
from jepa_mpc.config import CollectConfig
from jepa_mpc.errors import CheckpointError, ConfigError, DatasetError
from jepa_mpc.run import Run

TINY = ["--quiet", "--model.latent-dim", "8", "--model.encoder-hidden", "16", "--model.projector-hidden", "16",
        "--model.predictor-hidden", "16", "--reg.num-projections", "8", "--batch-size", "8", "--warmup-steps", "1",
        "--eval-every", "1000", "--ckpt-every", "2"]
EVAL = ["planner:cem", "goal:latent", "--episodes", "1", "--batch", "1", "--control.samples", "8",
        "--control.iterations", "1"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """{"data": TwoRoom dataset, "reacher": Reacher dataset, "nan": TwoRoom dataset with a NaN, "run": run}."""
    from jepa_mpc.data.collect import collect
    from jepa_mpc.data.store import read_chunk, write_chunk, write_meta, read_meta
    from jepa_mpc.train import train_main

    root = tmp_path_factory.mktemp("badrun")
    small = dict(num_episodes=8, episode_len=30, chunk_episodes=8)
    collect(CollectConfig(out=str(root / "data"), **small), progress=False)
    collect(CollectConfig(out=str(root / "reacher"), env_id="jepa_mpc_envs/Reacher-v0", **small), progress=False)
    (root / "nan").mkdir()
    arrays = read_chunk(root / "data" / "chunk_00000.h5", 0)
    arrays["state"][3, 7, 1] = np.nan  # stored with a valid checksum: only the values are wrong
    write_chunk(root / "nan", 0, arrays)
    write_meta(root / "nan", read_meta(root / "data"))
    train_main(["--data", str(root / "data"), "--run", str(root / "run"), *TINY, "--steps", "4"])
    return {k: root / k for k in ("data", "reacher", "nan", "run")}


# ---------------------------------------------------------------- ways to damage a copy of the run


def _truncate_arrays(run: Path) -> None:
    for f in (run / "checkpoints" / "4" / "params" / "ocdbt.process_0" / "d").iterdir():
        f.write_bytes(f.read_bytes()[:10])


def _truncate_train_item(run: Path) -> None:
    for f in (run / "checkpoints" / "4" / "train" / "ocdbt.process_0" / "d").iterdir():
        f.write_bytes(f.read_bytes()[:10])


def _truncate_metadata(run: Path) -> None:
    path = run / "checkpoints" / "4" / "params" / "_METADATA"
    path.write_bytes(path.read_bytes()[:5])


def _latent_16(run: Path) -> None:
    path = run / "config.json"
    record = json.loads(path.read_text())
    record["train"]["model"]["latent_dim"] = 16
    path.write_text(json.dumps(record))


def _nan_stats(run: Path) -> None:
    path = run / "norm_stats.json"
    stats = json.loads(path.read_text())
    stats["state_std"][0] = float("nan")
    path.write_text(json.dumps(stats))  # bare NaN, as the old writer produced


def _probe(latent: int, truncate: bool):
    def damage(run: Path) -> None:
        from jepa_mpc.probe import ProbeConfig, fit_probe, save_probe

        rng = np.random.default_rng(0)
        z, y = rng.normal(size=(64, latent)).astype(np.float32), rng.normal(size=(64, 4)).astype(np.float32)
        path = save_probe(run, fit_probe(z, y, z, y, ProbeConfig(kind="linear"), meta={"step": 4}))
        if truncate:
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    return damage


def _other_digest(run: Path) -> None:
    path = run / "config.json"
    record = json.loads(path.read_text())
    record["dataset"]["digest"] = "0" * 64  # as if the dataset at that path was collected again
    path.write_text(json.dumps(record))


def _config_not_utf8(run: Path) -> None:
    (run / "config.json").write_bytes(b"\xff\xfe{}")


def _keep(run: Path) -> None:
    pass


# (verb, damage, extra argv, needle, file the message must name)
CASES = {
    "eval-truncated-checkpoint": ("eval", _truncate_arrays, EVAL, "corrupt or truncated checkpoint", "checkpoints/4"),
    "inspect-truncated-metadata": ("inspect", _truncate_metadata, [], "corrupt or truncated checkpoint", "_METADATA"),
    "probe-latent-size-changed": ("probe", _latent_16, ["--probe.steps", "5"], "does not match config.json",
                                  "checkpoints/4"),
    "eval-latent-size-changed": ("eval", _latent_16, EVAL, "does not match config.json", "checkpoints/4"),
    "train-resume-truncated": ("train", _truncate_arrays, ["--steps", "6"], "corrupt or truncated checkpoint",
                               "checkpoints/4"),
    "train-resume-truncated-opt-state": ("train", _truncate_train_item, ["--steps", "6"],
                                         "corrupt or truncated checkpoint", "checkpoints/4"),
    "eval-truncated-probe": ("eval", _probe(8, truncate=True), [*EVAL, "--control.safety", "penalty"],
                             "unreadable probe", "probe.npz"),
    "eval-probe-of-other-latent": ("eval", _probe(5, truncate=False), [*EVAL, "--control.safety", "penalty"],
                                   "probe reads 5-d latents", "probe.npz"),
    "eval-nan-norm-stats": ("eval", _nan_stats, EVAL, "non-finite", "norm_stats.json"),
    "inspect-nan-norm-stats": ("inspect", _nan_stats, [], "non-finite", "norm_stats.json"),
    "train-resume-nan-norm-stats": ("train", _nan_stats, ["--steps", "6"], "non-finite", "norm_stats.json"),
    "inspect-config-not-utf8": ("inspect", _config_not_utf8, [], "unreadable run config", "config.json"),
    "inspect-dataset-changed": ("inspect", _other_digest, [], "run was trained on dataset", "config.json"),
    "eval-action-block-disagrees": ("eval", _keep, [*EVAL, "--control.action-block", "3"],
                                    "predicts blocks of 5 env steps", "--control.action-block 3"),
    "probe-nan-lr": ("probe", _keep, ["--probe.lr", "nan"], "must be a finite number", "--probe.lr"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_damaged_run_is_one_line_exit_2(case, base, tmp_path):
    verb, damage, extra, needle, names = CASES[case]
    run = tmp_path / "run"
    shutil.copytree(base["run"], run)
    damage(run)
    if verb == "train":
        argv = ["train", "--data", base["data"], "--run", run, *TINY, *extra]
    elif verb == "eval":
        argv = ["eval", "--checkpoint", run, *extra]
    else:
        argv = [verb, run, *extra]
    line = assert_one_line_error(run_cli(*argv), needle)
    assert names in line


TRAIN_CASES = {
    "resume-on-reacher-data": ("reacher", "run", ["--steps", "6"], "run was trained on dataset", "Reacher-v0"),
    "nan-in-dataset": ("nan", "new", [], "non-finite values", "chunk_00000.h5"),
    "lr-nan": ("data", "new", ["--lr", "nan"], "--lr must be a finite number", "--lr"),
    "lr-negative": ("data", "new", ["--lr", "-1"], "--lr must be > 0", "--lr"),
    "grad-clip-nan": ("data", "new", ["--grad-clip", "nan"], "--grad-clip must be a finite number", "--grad-clip"),
    "negative-weight": ("data", "new", ["--rollout-weight", "-0.5"], "--rollout-weight must be >= 0", "-0.5"),
}


@pytest.mark.parametrize("case", list(TRAIN_CASES))
def test_bad_training_input_is_one_line_exit_2(case, base, tmp_path):
    data, run_name, extra, needle, names = TRAIN_CASES[case]
    run = tmp_path / "run"
    if run_name == "run":
        shutil.copytree(base["run"], run)
    before = sorted(p.name for p in run.rglob("*")) if run.exists() else None
    line = assert_one_line_error(run_cli("train", "--data", base[data], "--run", run, *TINY, *extra), needle)
    assert names in line
    after = sorted(p.name for p in run.rglob("*")) if run.exists() else None
    assert after == before  # refused before anything was written


def test_inspect_on_a_dataset_with_nan_names_chunk_and_array(base):
    line = assert_one_line_error(run_cli("inspect", base["run"], "--data", base["nan"]), "non-finite")
    assert "chunk_00000.h5" in line and "'state'" in line


# ---------------------------------------------------------------- in-process: NaN guard, the Run API


def test_divergence_keeps_only_finite_checkpoints(base, tmp_path):
    """`--lr 1e6 --grad-clip 1e9` blows up within a few steps; every checkpoint left behind is finite."""
    from jepa_mpc.model import load_world_model
    from jepa_mpc.train import TrainingDiverged, train_main

    run = tmp_path / "run"
    argv = ["--data", str(base["data"]), "--run", str(run), *TINY, "--steps", "40", "--ckpt-every", "1",
            "--keep-checkpoints", "100", "--lr", "1e6", "--grad-clip", "1e9"]
    with pytest.raises(TrainingDiverged, match="non-finite"):
        train_main(argv)
    steps = sorted(int(p.name) for p in (run / "checkpoints").iterdir())
    assert steps
    for step in steps:  # load_world_model refuses non-finite parameters
        model = load_world_model(run, step)
        assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(model.state))
    with pytest.raises(TrainingDiverged):  # resuming from the kept state diverges again, cleanly
        train_main(argv)


def test_run_api_reads_what_made_the_run(base):
    from jepa_mpc.data.store import Dataset

    run = Run.open(base["run"])
    ds = Dataset.open(base["data"])
    assert run.config.model.latent_dim == 8 and run.action_block == 5 and run.frame_skip == 5
    assert run.env_id == "jepa_mpc_envs/TwoRoom-v0" and run.data_path == str(base["data"])
    assert run.dataset_digest == ds.digest == ds.action_blocks(5).digest
    assert run.load_world_model().step == 4  # the latest checkpoint
    assert not run.probe_path.exists()
    assert set(run.norm_stats()) >= {"state_mean", "state_std"}
    view = run.training_view(run.dataset())
    assert view.arrays["action"].shape[-1] == 10
    with pytest.raises(ConfigError, match="Reacher-v0"):
        run.check_same_dataset(Dataset.open(base["reacher"]), str(base["reacher"]))
    with pytest.raises(ConfigError, match="no such run directory"):
        Run.open(base["run"] / "nope")


def test_probe_of_other_state_fields_is_refit_or_refused(base, tmp_path):
    """A probe whose 4 outputs were fitted to other state fields (one saved when they were state[:4]: for
    Push-T bx, by, th, bvx) at the same checkpoint step is not reused: eval refits it, a plain read refuses it."""
    from jepa_mpc.probe import ProbeConfig, fit_probe, load_or_train_probe, load_run_probe, save_probe

    run = tmp_path / "run"
    shutil.copytree(base["run"], run)
    rng = np.random.default_rng(0)
    z, y = rng.normal(size=(64, 8)).astype(np.float32), rng.normal(size=(64, 4)).astype(np.float32)
    meta = {"step": 4, "state_fields": ["bx", "by", "th", "bvx"]}
    save_probe(run, fit_probe(z, y, z, y, ProbeConfig(kind="linear"), meta=meta))
    with pytest.raises(ConfigError, match=r"probe\.npz: probe reads state fields \(bx, by, th, bvx\), the run's env "
                                          r"declares \(x, y, vx, vy\); rerun `jepa-mpc probe "):
        load_run_probe(Run.open(run))
    probe = load_or_train_probe(Run.open(run).load_world_model(), cfg=ProbeConfig(kind="linear"))
    assert probe.meta["state_fields"] == ["x", "y", "vx", "vy"] and probe.meta["step"] == 4
    assert load_run_probe(Run.open(run)).meta["state_fields"] == ["x", "y", "vx", "vy"]  # the refit was saved


def test_dataset_digest_is_content_identity(base, tmp_path):
    from jepa_mpc.data.store import Dataset

    copy = tmp_path / "copy"
    shutil.copytree(base["data"], copy)
    assert Dataset.open(copy).digest == Dataset.open(base["data"]).digest  # content, not path
    assert Dataset.open(base["reacher"]).digest != Dataset.open(base["data"]).digest
    with pytest.raises(DatasetError, match=r"chunk_00000\.h5.*'state'.*non-finite"):
        Dataset.open(base["nan"])


def test_checkpoint_errors_are_checkpoint_errors(base, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(base["run"], run)
    _truncate_arrays(run)
    with pytest.raises(CheckpointError, match="checkpoints/4"):
        Run.open(run).load_world_model()


def test_strict_json_writer_names_the_non_finite_value(tmp_path):
    from jepa_mpc.atomic import NonFiniteJSONError, write_json_atomic

    path = tmp_path / "r.json"
    with pytest.raises(NonFiniteJSONError, match=r"r\.json.*summary\.episodes\[1\]\.d"):
        write_json_atomic(path, {"summary": {"episodes": [{"d": 1.0}, {"d": np.float32("nan")}]}})
    assert not path.exists()
    write_json_atomic(path, {"d": None, "x": np.arange(3)})
    assert json.loads(path.read_text()) == {"d": None, "x": [0, 1, 2]}


def test_eval_refuses_a_suite_in_another_room_than_the_data(base):
    import dataclasses

    from jepa_mpc.control import ControlConfig
    from jepa_mpc.evaluate import DEFAULT_SUITE, _check_suite_matches, _load_suite
    from jepa_mpc.goals import GraphGoal, LatentGoal

    suite = _load_suite(DEFAULT_SUITE)
    meta = Run.open(base["run"]).dataset_meta
    _check_suite_matches(suite, meta, "run", ControlConfig())  # the suite's room is the data's
    other = {**meta, "layout": {**meta["layout"], "door_width": 0.4}}
    with pytest.raises(ConfigError, match=r"door_width=0\.3.*collected with 0\.4"):
        _check_suite_matches(suite, other, "run", ControlConfig())
    explore = dataclasses.replace(ControlConfig(), goal=GraphGoal(source="explore"))
    _check_suite_matches(suite, other, "run", explore)  # a new room on purpose: its graph is explored
    _check_suite_matches(suite, other, "run", dataclasses.replace(ControlConfig(), goal=LatentGoal()))  # no graph


def _edited_run(base, tmp_path, name: str, edit) -> Path:
    """A copy of the base run whose config.json record `edit` changes in place."""
    run = tmp_path / name
    shutil.copytree(base["run"], run)
    record = json.loads((run / "config.json").read_text())
    edit(record)
    (run / "config.json").write_text(json.dumps(record))
    return run


def test_eval_takes_frame_skip_and_action_block_from_the_run(base, tmp_path):
    import dataclasses

    from jepa_mpc.control import ControlConfig, RandomActions
    from jepa_mpc.evaluate import DEFAULT_SUITE, EvalArgs, _load_suite, with_run_settings

    suite = _load_suite(DEFAULT_SUITE)
    run4 = _edited_run(base, tmp_path, "run4", lambda r: r["train"].update(action_block=4))
    args = lambda run, block=None, **kw: EvalArgs(checkpoint=str(run), control=ControlConfig(action_block=block), **kw)  # noqa: E731
    got, settings = with_run_settings(args(base["run"]), suite)
    assert got.control.action_block == 5 and settings == {"frame_skip": 5, "action_block": 5,
                                                          "run_env_id": "jepa_mpc_envs/TwoRoom-v0"}
    assert with_run_settings(args(run4), suite)[1]["action_block"] == 4  # None: the run's
    with pytest.raises(ConfigError, match=r"--control.action-block 5: run .*run4 predicts blocks of 4"):
        with_run_settings(args(run4, 5), suite)  # an explicit 5 (the old default) is compared too
    assert with_run_settings(args(run4, 5, dynamics="oracle"), suite)[1]["action_block"] == 5  # used as given
    random = lambda run, block=None: dataclasses.replace(  # noqa: E731
        args(run, block), control=ControlConfig(planner=RandomActions(), action_block=block))
    assert with_run_settings(random(tmp_path / "norun"), suite)[1] == {"frame_skip": 5, "action_block": 5,
                                                                      "run_env_id": None}  # the family's
    assert with_run_settings(random(tmp_path / "norun", 3), suite)[1]["action_block"] == 3


def test_random_actions_evals_of_runs_with_other_frame_skips_do_not_share_a_folder(base, tmp_path):
    fs10 = _edited_run(base, tmp_path, "fs10", lambda r: r["dataset_meta"].update(frame_skip=10))
    out = tmp_path / "res"
    random = ["eval", "planner:random-actions", "--episodes", "2", "--batch", "1", "--out", str(out)]
    proc = run_cli(*random, "--checkpoint", str(base["run"]), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "results.json").read_text())
    assert result["frame_skip"] == 5 and result["action_block"] == 5
    proc = run_cli(*random, "--checkpoint", str(fs10), cwd=tmp_path)
    assert_one_line_error(proc, "run_settings.frame_skip: 5 -> 10")


def test_eval_checks_the_suite_against_the_meta_the_run_recorded(base, tmp_path):
    from jepa_mpc.control import ControlConfig
    from jepa_mpc.evaluate import DEFAULT_SUITE, EvalArgs, _load_suite, build_policy, with_run_settings

    suite = _load_suite(DEFAULT_SUITE)
    moved = _edited_run(base, tmp_path, "door4", lambda r: r["dataset_meta"]["layout"].update(door_width=0.4))
    args, settings = with_run_settings(EvalArgs(checkpoint=str(moved), control=ControlConfig()), suite)
    with pytest.raises(ConfigError, match=r"door_width=0\.3.*collected with 0\.4"):  # not the data's meta.json
        build_policy(args, suite, settings["frame_skip"])
