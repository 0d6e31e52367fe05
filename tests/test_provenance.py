"""Provenance helpers: git state of a checkout (on a temporary repository), file and directory digests,
and the record of the code that trained a run."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from jepa_mpc import provenance, train

GIT = shutil.which("git")


def _git(repo, *args):
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=repo,
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.mark.skipif(GIT is None, reason="git is not installed")
def test_git_state_of_a_temporary_repository(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    assert provenance.git_state(plain) == {"git_commit": None, "git_dirty": None}  # not a checkout

    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "code.py").write_text("x = 1\n")
    assert provenance.git_commit(repo) is None and provenance.git_dirty(repo) is None  # no commit yet
    _git(repo, "add", "code.py")
    _git(repo, "commit", "-qm", "first")
    head = _git(repo, "rev-parse", "HEAD")
    assert provenance.git_state(repo) == {"git_commit": head, "git_dirty": False}

    (repo / "notes.txt").write_text("untracked\n")  # untracked files are not the code
    assert provenance.git_dirty(repo) is False
    for doc in ("README.md", "results/x/report.md", "results/x/results.csv"):  # nor documentation and results
        (repo / doc).parent.mkdir(parents=True, exist_ok=True)
        (repo / doc).write_text("first\n")
        _git(repo, "add", doc)
    _git(repo, "commit", "-qm", "docs")
    head = _git(repo, "rev-parse", "HEAD")
    for doc in ("README.md", "results/x/report.md", "results/x/results.csv"):
        (repo / doc).write_text("edited\n")
    assert provenance.git_state(repo) == {"git_commit": head, "git_dirty": False}
    (repo / "results").mkdir(exist_ok=True)
    assert provenance.git_dirty(repo / "results" / "x") is False  # asked from inside an excluded folder
    (repo / "code.py").write_text("x = 2\n")  # a tracked file modified
    assert provenance.git_state(repo) == {"git_commit": head, "git_dirty": True}
    (repo / "sub").mkdir()
    assert provenance.git_dirty(repo / "sub") is True  # asked from any folder of the checkout
    _git(repo, "add", "code.py")  # staged, still not committed
    assert provenance.git_dirty(repo) is True
    _git(repo, "commit", "-qm", "second")
    assert provenance.git_state(repo) == {"git_commit": _git(repo, "rev-parse", "HEAD"), "git_dirty": False}


def test_directory_sha256_is_stable_and_sees_every_file(tmp_path):
    a = tmp_path / "a"
    (a / "params" / "d").mkdir(parents=True)
    (a / "params" / "d" / "x.bin").write_bytes(b"\x00\x01")
    (a / "_METADATA").write_text("{}")
    digest = provenance.directory_sha256(a)
    assert digest is not None and len(digest) == 64

    b = tmp_path / "b"  # the same files written in another order: the same digest
    (b / "params" / "d").mkdir(parents=True)
    (b / "_METADATA").write_text("{}")
    (b / "params" / "d" / "x.bin").write_bytes(b"\x00\x01")
    assert provenance.directory_sha256(b) == digest

    (b / "params" / "d" / "x.bin").write_bytes(b"\x00\x02")  # one byte
    assert provenance.directory_sha256(b) != digest
    (b / "params" / "d" / "x.bin").write_bytes(b"\x00\x01")
    (b / "params" / "d" / "x.bin").rename(b / "params" / "x.bin")  # one name
    assert provenance.directory_sha256(b) != digest
    assert provenance.directory_sha256(tmp_path / "missing") is None
    assert provenance.file_sha256(tmp_path / "missing") is None and provenance.file_sha256(a) is None


def test_training_sessions_record_the_code_that_trained(monkeypatch):
    state = {"git_commit": "a" * 40, "git_dirty": False}
    monkeypatch.setattr(provenance, "git_state", lambda cwd=None: dict(state))
    first = train.training_sessions([], 0, 100)
    assert first == [{"git_commit": "a" * 40, "git_dirty": False, "from_step": 0}]
    assert train.training_sessions(first, 40, 100) == first  # resumed with the same code
    assert train.training_sessions(first, 100, 100) == first  # finished: re-opening changes nothing
    assert train.training_sessions([], 100, 100) == []  # a run from before the record: left as it was
    state["git_dirty"] = True
    assert train.training_sessions(first, 40, 100) == first + [{"git_commit": "a" * 40, "git_dirty": True,
                                                                 "from_step": 40}]

