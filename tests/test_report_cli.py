"""`jepa-mpc report` bad input: one stderr line naming the folder or file, exit code 2."""

from __future__ import annotations

import json
import types

import pytest

from conftest import assert_one_line_error, run_cli
from jepa_mpc import cli
from test_report_build import axes, eval_job, results_json, write_experiment


def _experiment(root, result=None):
    job = eval_job("eval-cem-s0", axes("model", "cem", "300x30", 0), 9000, None)
    return write_experiment(root / "exp", "exp", [(job, result)])


def _in_process(argv, capsys) -> types.SimpleNamespace:
    """cli.main in this process, as a CompletedProcess-like object (returncode, stderr)."""
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    return types.SimpleNamespace(returncode=exit_.value.code, stderr=capsys.readouterr().err)


def test_missing_folder_and_corrupt_results_in_a_fresh_process(tmp_path):
    assert_one_line_error(run_cli("report", tmp_path / "nope"), f"{tmp_path / 'nope'}: no such folder")
    folder = _experiment(tmp_path, results_json("cem", 300, 30, 40, 0))
    (folder / "evals" / "eval-cem-s0" / "results.json").write_text('{"schema_version": 1, "summary": ')
    assert_one_line_error(run_cli("report", folder), "evals/eval-cem-s0/results.json: not valid JSON")


def _no_results(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    return [str(tmp_path / "empty")], "empty: no results"


def _plan_without_results(tmp_path):
    return [str(_experiment(tmp_path))], "no results yet (1 eval job(s) in plan.json"


def _corrupt_plan(tmp_path):
    folder = _experiment(tmp_path)
    (folder / "plan.json").write_text("not json")
    return [str(folder)], "plan.json: not valid JSON"


def _unknown_results_schema(tmp_path):
    result = results_json("cem", 300, 30, 40, 0)
    result["schema_version"] = 7
    return [str(_experiment(tmp_path, result))], "results.json: unknown schema_version 7"


def _unknown_plan_schema(tmp_path):
    folder = _experiment(tmp_path)
    plan = json.loads((folder / "plan.json").read_text())
    (folder / "plan.json").write_text(json.dumps({**plan, "schema_version": 2}))
    return [str(folder)], "plan.json: unknown schema_version 2"


def _results_missing_field(tmp_path):
    result = results_json("cem", 300, 30, 40, 0)
    del result["summary"]["successes"]
    return [str(_experiment(tmp_path, result))], "results.json: missing field summary.successes"


def _plain_folder_corrupt(tmp_path):
    (tmp_path / "plain" / "a").mkdir(parents=True)
    (tmp_path / "plain" / "a" / "results.json").write_text("[1, 2")
    return [str(tmp_path / "plain")], "plain/a/results.json: not valid JSON"


def _axes_missing(tmp_path):
    folder = _experiment(tmp_path)
    plan = json.loads((folder / "plan.json").read_text())
    del plan["jobs"][0]["axes"]["budget"]
    (folder / "plan.json").write_text(json.dumps(plan))
    return [str(folder)], "axes lack budget"


def _no_dirs(tmp_path):
    return [], "give at least one results folder"


@pytest.mark.parametrize("case", [_no_results, _plan_without_results, _corrupt_plan, _unknown_results_schema,
                                  _unknown_plan_schema, _results_missing_field, _plain_folder_corrupt, _axes_missing,
                                  _no_dirs])
def test_bad_input_is_one_line_exit_2(case, tmp_path, capsys):
    argv, needle = case(tmp_path)
    assert_one_line_error(_in_process(["report", *argv], capsys), needle)
    assert not (tmp_path / "exp" / "report.md").exists()
