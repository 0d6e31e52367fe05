"""Bad flags and values on the command line: one stderr line naming the flag, exit 2, for every verb.

`train` parses its own arguments (preset first, then the overrides) through the same
`jepa_mpc.cli.parse` as the other verbs, so its errors are one line too; `--help` still prints help.
Each case runs in a fresh process.
"""

import pytest

from conftest import assert_one_line_error, run_cli

DIRS = ("--data", "d", "--run", "r")

# name -> (argv, what the one line must name)
BAD_FLAGS = {
    "train-preset-unknown": (["train", "--preset", "nope", *DIRS], "--preset"),
    "train-preset-without-value": (["train", *DIRS, "--preset"], "--preset"),
    "train-steps-not-an-int": (["train", "--steps", "abc", *DIRS], "--steps"),
    "train-lr-without-value": (["train", *DIRS, "--lr"], "--lr"),
    "train-nested-flag-without-value": (["train", *DIRS, "--reg.kind"], "--reg.kind"),
    "train-unknown-flag": (["train", "--unknown-flag", "1", *DIRS], "--unknown-flag"),
    "train-missing-run": (["train", "--data", "d"], "--run"),
    "collect-num-episodes-not-an-int": (["collect", "--num-episodes", "abc"], "--num-episodes"),
    "eval-batch-not-an-int": (["eval", "--batch", "abc"], "--batch"),
    "probe-unknown-flag": (["probe", "r", "--nope"], "--nope"),
    "probe-missing-run": (["probe", "--nope"], "run"),
    "unknown-verb": (["nope"], "unknown command"),
}


@pytest.mark.parametrize("argv, needle", BAD_FLAGS.values(), ids=BAD_FLAGS.keys())
def test_bad_flags_are_one_line(argv, needle):
    assert_one_line_error(run_cli(*argv), needle)


@pytest.mark.parametrize("argv, shown", [
    (["train", "--help"], "state | pixels (default: state)"),
    (["train", "--preset", "tworoom-pixels", "--help"], "state | pixels (default: pixels)"),  # the preset's defaults
    (["eval", "--help"], "--batch"),
])
def test_help_still_prints_and_exits_0(argv, shown):
    proc = run_cli(*argv)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(f"usage: jepa-mpc {argv[0]}")
    assert shown in proc.stdout
    assert not proc.stderr.strip()
