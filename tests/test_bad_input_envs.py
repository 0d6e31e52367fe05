"""Bad task-suite files given to the CLI: one line on stderr naming the file, exit code 2.

Each case writes a file (or names a path) and runs it through both readers of suite files:
`jepa-mpc tasks --check F` and `jepa-mpc eval --suite F` (random actions: no run needed).
"""

import json

import pytest

from conftest import assert_one_line_error, run_cli

TWOROOM = "jepa_mpc_envs/TwoRoom-v0"
TASK = {"start": [-0.5, 0.5], "goal": [0.5, 0.5]}


def _nested(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


CASES = {  # name -> (file content (bytes or str) or None for "no file", text the one line must contain)
    "non-utf8 bytes": (b'{"env_id": "' + TWOROOM.encode() + b'", "tasks": [\xff\xfe]}', "not a UTF-8 text file"),
    "latin-1 name": (json.dumps({"env_id": TWOROOM, "tasks": [dict(TASK, name="caf\u00e9")]},
                                ensure_ascii=False).encode("latin-1"), "not a UTF-8 text file"),
    "utf-16 file": (json.dumps({"env_id": TWOROOM, "tasks": [TASK]}).encode("utf-16"), "not a UTF-8 text file"),
    "100000 nested lists": (_nested(100_000), "nested too deeply"),
    "100000 nested objects": ('{"a": ' * 100_000 + "1" + "}" * 100_000, "nested too deeply"),
    "deep list as a task": ('{"env_id": "' + TWOROOM + '", "tasks": ' + _nested(100_000) + "}", "nested too deeply"),
    "deep list as a start": (json.dumps({"env_id": TWOROOM, "tasks": [dict(TASK, start="X")]}).replace(
        '"X"', _nested(900)), "start"),
    "empty file": ("", "invalid JSON"),
    "not an object": ("[1, 2]", "expected a JSON object"),
    "unknown env id": (json.dumps({"env_id": "Foo-v0", "tasks": [TASK]}), "unknown env id 'Foo-v0'"),
    "env id not a string": (json.dumps({"env_id": [TWOROOM], "tasks": [TASK]}), "unknown env id"),
    "infinite number": (json.dumps({"env_id": TWOROOM, "tasks": [TASK]}).replace("0.5]", "1e999]", 1), "finite"),
    "missing file": (None, "cannot read task file"),
}


@pytest.mark.parametrize("verb", ["tasks", "eval"])
@pytest.mark.parametrize("case", list(CASES))
def test_bad_suite_file_is_one_line_naming_the_file(tmp_path, case, verb):
    content, needle = CASES[case]
    path = tmp_path / "suite.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    argv = (["tasks", "--check", path] if verb == "tasks"
            else ["eval", "--suite", path, "planner:random-actions", "--out", tmp_path / "results"])
    line = assert_one_line_error(run_cli(*argv, cwd=tmp_path), needle)
    assert str(path) in line
    assert not (tmp_path / "results").exists()


def test_a_directory_as_suite_is_one_line(tmp_path):
    line = assert_one_line_error(run_cli("tasks", "--check", tmp_path), "cannot read task file")
    assert str(tmp_path) in line
