"""Output paths, eval results folders (records, resume, refusal) and collect resume by content.

The CLI table runs each bad input in a fresh process and expects one stderr line and exit 2;
the behaviour tests run in-process.
"""

import json
import shutil

import h5py
import numpy as np
import pytest

from conftest import assert_one_line_error, run_cli
from jepa_mpc.config import CollectConfig
from jepa_mpc.control import ControlConfig, EpisodeRecord, RandomActions
from jepa_mpc.data import collect as C
from jepa_mpc.data import store
from jepa_mpc.errors import ConfigError, DatasetError
from jepa_mpc.evaluate import (
    IDENTITY_FILE,
    RECORDS_FILE,
    RESULTS_FILE,
    SUMMARY_FILE,
    EvalArgs,
    episode_from_record,
    episode_record,
    evaluate,
)
from jepa_mpc.paths import output_dir, output_file

RANDOM = ("eval", "planner:random-actions", "--episodes", "2")


def _file(tmp, name="afile"):
    (tmp / name).write_text("not a folder\n")


def _eval_folder_of_another_eval(tmp):
    (tmp / "res").mkdir()
    (tmp / "res" / IDENTITY_FILE).write_text(json.dumps({"digest": "x", "identity": {"args": {"episodes": 7}}}))


def _eval_folder_without_identity(tmp):
    (tmp / "res").mkdir()
    (tmp / "res" / RESULTS_FILE).write_text("{}\n")


def _dir(*parts):
    def make(tmp):
        tmp.joinpath(*parts).mkdir(parents=True)

    return make


def _dataset_meta(num_chunks):
    def make(tmp):
        (tmp / "ds").mkdir()
        (tmp / "ds" / store.META_NAME).write_text(json.dumps({"num_chunks": num_chunks, "num_episodes": 10}))

    return make


# (argv with {tmp} for the test's folder, setup(tmp) or None, text the one error line must contain)
BAD_IO = {
    "eval-safety-buffer-nan": ([*RANDOM, "--control.safety-buffer", "nan", "--out", "{tmp}/r"], None,
                               "--control.safety-buffer must be a finite number"),
    "eval-penalty-weight-inf": ([*RANDOM, "--control.penalty-weight", "inf", "--out", "{tmp}/r"], None,
                                "--control.penalty-weight"),
    "eval-speed-margin-negative": (["eval", "--control.speed-margin", "-1", "--checkpoint", "{tmp}", "--out", "{tmp}/r"], None,
                                   "--control.speed-margin must be >= 0"),
    "eval-within-block-unknown": ([*RANDOM, "--control.within-block", "peak", "--out", "{tmp}/r"], None,
                                  "--control.within-block"),
    "eval-hierarchy-unknown": ([*RANDOM, "--control.hierarchy", "tree", "--out", "{tmp}/r"], None,
                               "--control.hierarchy"),
    "eval-hierarchy-without-planner": ([*RANDOM, "--control.hierarchy", "graph", "--out", "{tmp}/r"], None,
                                       "planner:random-actions does not plan"),
    "eval-hierarchy-without-graph": (["eval", "--control.hierarchy", "graph", "--checkpoint", "{tmp}", "--out",
                                      "{tmp}/r", "goal:latent"], None, "use goal:graph"),
    "eval-subgoal-steps-negative": (["eval", "--control.subgoal-steps", "-5", "--checkpoint", "{tmp}", "--out",
                                     "{tmp}/r"], None, "--control.subgoal-steps must be >= 0"),
    "eval-out-is-a-file": ([*RANDOM, "--out", "{tmp}/afile"], _file, "--out"),
    "eval-out-under-a-file": ([*RANDOM, "--out", "{tmp}/afile/res"], _file, "is a file"),
    "eval-results-json-is-a-dir": ([*RANDOM, "--out", "{tmp}/res"], _dir("res", RESULTS_FILE), "is a directory"),
    "eval-video-negative": ([*RANDOM, "--video", "-1", "--out", "{tmp}/r"], None, "--video"),
    "eval-video-path-is-a-dir": ([*RANDOM, "--video", "1", "--out", "{tmp}/res"], _dir("res", "episodes.mp4"),
                                 "--video"),
    "eval-folder-of-another-eval": ([*RANDOM, "--out", "{tmp}/res"], _eval_folder_of_another_eval, "--overwrite"),
    "eval-folder-without-identity": ([*RANDOM, "--out", "{tmp}/res"], _eval_folder_without_identity,
                                     "without identity.json"),
    "collect-out-is-a-file": (["collect", "--out", "{tmp}/afile"], _file, "not a directory"),
    "collect-out-under-a-file": (["collect", "--out", "{tmp}/afile/ds"], _file, "is a file"),
    "collect-num-episodes-0": (["collect", "--num-episodes", "0", "--out", "{tmp}/ds"], None, "--num-episodes"),
    "collect-chunk-episodes-negative": (["collect", "--chunk-episodes", "-5", "--out", "{tmp}/ds"], None,
                                        "--chunk-episodes"),
    "collect-episode-len-0": (["collect", "--episode-len", "0", "--out", "{tmp}/ds"], None, "--episode-len"),
    "collect-ou-sigma-inf": (["collect", "--ou-sigma", "inf", "--out", "{tmp}/ds"], None, "--ou-sigma must be a finite"),
    "collect-meta-num-chunks-0": (["collect", "--out", "{tmp}/ds"], _dataset_meta(0), "num_chunks"),
    "collect-meta-num-chunks-text": (["collect", "--out", "{tmp}/ds"], _dataset_meta("3"), "positive integer"),
    "train-run-is-a-file": (["train", "--run", "{tmp}/afile", "--data", "{tmp}/nodata"], _file, "--run"),
    "tasks-out-is-a-dir": (["tasks", "--out", "{tmp}/suite"], _dir("suite"), "is a directory"),
    "tasks-out-under-a-file": (["tasks", "--out", "{tmp}/afile/suite.json"], _file, "is a file"),
}


@pytest.mark.parametrize("argv, setup, needle", BAD_IO.values(), ids=BAD_IO.keys())
def test_bad_output_paths_and_flags_are_one_line(tmp_path, argv, setup, needle):
    if setup is not None:
        setup(tmp_path)
    proc = run_cli(*(a.replace("{tmp}", str(tmp_path)) for a in argv), cwd=tmp_path)
    assert_one_line_error(proc, needle)


def test_output_helpers_accept_creatable_paths(tmp_path):
    assert output_dir(tmp_path / "a" / "b", "--out") == tmp_path / "a" / "b"
    assert output_file(tmp_path / "new" / "x.json", "--out") == tmp_path / "new" / "x.json"
    (tmp_path / "x.json").write_text("{}")
    assert output_file(tmp_path / "x.json", "--out").name == "x.json"  # replacing a file is fine
    assert not (tmp_path / "a").exists() and not (tmp_path / "new").exists()  # the checks create nothing


# ------------------------------------------------------------------------- eval records and resume


def _args(out, **kw) -> EvalArgs:
    return EvalArgs(**{"control": ControlConfig(planner=RandomActions()), "episodes": 6, "batch": 2, "out": str(out),
                       **kw})


def _comparable(result: dict) -> dict:
    """results.json without the fields that measure time or name the folder."""
    summary = {k: v for k, v in result["summary"].items() if k not in ("wall_time_s", "plan_latency_ms", "time_breakdown_s")}
    args = {k: v for k, v in result["args"].items() if k != "out"}
    return {**{k: v for k, v in result.items() if k not in ("created", "summary", "args")}, "summary": summary,
            "args": args}


def test_killed_eval_resumes_to_the_uninterrupted_results(tmp_path):
    full, out = evaluate(_args(tmp_path / "full"))
    lines = (out / RECORDS_FILE).read_text().splitlines()
    assert [json.loads(line)["batch"] for line in lines] == [0, 1, 2]
    assert json.loads((out / RESULTS_FILE).read_text()) == full

    # A kill during batch 1's line: batch 0 recorded, a torn line after it, no results yet.
    killed = tmp_path / "killed"
    killed.mkdir()
    shutil.copy(out / IDENTITY_FILE, killed / IDENTITY_FILE)
    (killed / RECORDS_FILE).write_text(lines[0] + "\n" + lines[1][:40])
    resumed, _ = evaluate(_args(killed))
    assert _comparable(resumed) == _comparable(full)
    again = (killed / RECORDS_FILE).read_text().splitlines()
    assert again[0] == lines[0]  # batch 0 was read back, not run again
    assert [json.loads(line)["episodes"] for line in again] == [json.loads(line)["episodes"] for line in lines]
    assert (killed / SUMMARY_FILE).read_text().startswith("| run |")

    rerun, _ = evaluate(_args(killed))  # complete: nothing left to run, same results
    assert _comparable(rerun) == _comparable(full)
    assert (killed / RECORDS_FILE).read_text().splitlines() == again


def test_eval_refuses_another_configs_folder_until_overwrite(tmp_path):
    evaluate(_args(tmp_path, episodes=2))
    with pytest.raises(ConfigError, match=r"args\.episodes: 2 -> 4.*--overwrite"):
        evaluate(_args(tmp_path, episodes=4))
    result, out = evaluate(_args(tmp_path, episodes=4, overwrite=True))
    assert result["summary"]["episodes"] == 4
    assert len((out / RECORDS_FILE).read_text().splitlines()) == 2  # the earlier records are gone
    assert json.loads((out / IDENTITY_FILE).read_text())["digest"] == result["identity"]


def test_stale_results_are_removed_when_an_eval_starts(tmp_path, monkeypatch):
    from jepa_mpc import evaluate as E

    evaluate(_args(tmp_path, episodes=2))

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(E, "run_mpc", killed)
    with pytest.raises(KeyboardInterrupt):
        evaluate(_args(tmp_path, episodes=4, overwrite=True))
    assert not (tmp_path / RESULTS_FILE).exists() and not (tmp_path / SUMMARY_FILE).exists()
    assert not (tmp_path / RECORDS_FILE).exists() and (tmp_path / IDENTITY_FILE).is_file()


def test_corrupt_records_are_one_line(tmp_path):
    evaluate(_args(tmp_path, episodes=4))
    lines = (tmp_path / RECORDS_FILE).read_text().splitlines()
    (tmp_path / RECORDS_FILE).write_text(lines[1] + "\n" + lines[0] + "\n")  # batches out of order
    with pytest.raises(ConfigError, match=r"line 1 is not batch 0.*--overwrite") as excinfo:
        evaluate(_args(tmp_path, episodes=4))
    assert "\n" not in str(excinfo.value)


def test_episode_records_are_strict_json_and_round_trip():
    unfinished = episode_record(EpisodeRecord(task="t"))  # final distance never measured: NaN
    assert unfinished["final_distance"] is None
    json.dumps(unfinished, allow_nan=False)
    rec = EpisodeRecord(task="v", success=True, steps=2, final_distance=0.25, plans=1,
                        path=[[0.1, 0.2], [0.3, 0.4]],
                        states=[np.array([0.1, 0.2, 0.3, 0.4], np.float32)] * 2,
                        planned_paths=[(0, [[0.5, 0.5]], False)])
    d = json.loads(json.dumps(episode_record(rec, trajectory=True), allow_nan=False))
    back = episode_from_record(d)
    assert back.final_distance == 0.25 and back.violation_free and back.path == rec.path
    np.testing.assert_array_equal(np.asarray(back.states), np.asarray(rec.states))
    assert back.states[0].dtype == np.float32 and back.planned_paths == [[0, [[0.5, 0.5]], False]]


# ------------------------------------------------------------------------- collect resume by content


def _collect_cfg(out, layout, **kw):
    return CollectConfig(out=str(out), layout=str(layout), num_episodes=4, episode_len=10, chunk_episodes=2, **kw)


def test_collect_resume_compares_the_layout_files_content(tmp_path):
    layout = tmp_path / "layout.json"
    layout.write_text(json.dumps({"door_width": 0.4}))
    out = tmp_path / "ds"
    C.collect(_collect_cfg(out, layout), progress=False, max_chunks=1)
    moved = tmp_path / "same-layout.json"  # another file name, the same content: resumes
    moved.write_text(layout.read_text())
    assert C.collect(_collect_cfg(out, moved), progress=False, max_chunks=0)["new_chunks"] == 0
    layout.write_text(json.dumps({"door_width": 0.5}))  # edited in place: refused
    with pytest.raises(DatasetError, match=r"layout\.door_width=0\.4, not 0\.5") as excinfo:
        C.collect(_collect_cfg(out, layout), progress=False)
    assert "\n" not in str(excinfo.value)


@pytest.mark.parametrize("damage", ["flip-bytes", "truncate"])
def test_collect_names_a_corrupt_chunk_instead_of_calling_it_complete(tmp_path, damage):
    cfg = _collect_cfg(tmp_path, "default")
    assert C.collect(cfg, progress=False)["complete"]
    path = store.chunk_path(tmp_path, 1)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        with h5py.File(path, "r") as f:
            info = f["state"].id.get_chunk_info(0)  # where the state array's bytes are stored
        with open(path, "r+b") as fh:
            fh.seek(info.byte_offset + info.size // 2)
            b = fh.read(4)
            fh.seek(info.byte_offset + info.size // 2)
            fh.write(bytes(255 - x for x in b))
    with pytest.raises(DatasetError, match=r"chunk_00001\.h5: chunk 1 .*collect it again") as excinfo:
        C.collect(cfg, progress=False)
    assert "\n" not in str(excinfo.value)


def test_collect_refuses_a_hand_edited_chunk_count(tmp_path):
    cfg = _collect_cfg(tmp_path, "default")
    C.collect(cfg, progress=False, max_chunks=1)
    meta = store.read_meta(tmp_path)
    store.write_meta(tmp_path, {**meta, "num_chunks": 1})  # would make a 1-chunk prefix look complete
    with pytest.raises(DatasetError, match="num_chunks is 1, but its options make 2 chunks"):
        C.collect(cfg, progress=False)
