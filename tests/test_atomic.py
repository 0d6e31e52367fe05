"""Atomic writes: a reader sees the old file or the whole new one; a failed write leaves nothing behind."""

import pytest

from jepa_mpc.atomic import atomic_path, write_bytes_atomic


@pytest.mark.parametrize("keep_suffix,tmp_name", [(False, "out.npz.tmp"), (True, "out.tmp.npz")])
def test_a_raising_block_leaves_the_old_file_and_no_temp_file(tmp_path, keep_suffix, tmp_name):
    path = tmp_path / "out.npz"
    write_bytes_atomic(path, b"old")
    with pytest.raises(RuntimeError, match="writer failed"):
        with atomic_path(path, keep_suffix=keep_suffix) as tmp:
            assert tmp.name == tmp_name
            tmp.write_bytes(b"half")
            raise RuntimeError("writer failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npz"]
    assert path.read_bytes() == b"old"


def test_a_block_that_raises_before_writing_still_reraises(tmp_path):
    with pytest.raises(KeyError):
        with atomic_path(tmp_path / "x.json"):
            raise KeyError("x")
    assert list(tmp_path.iterdir()) == []


def test_a_finished_block_replaces_the_file(tmp_path):
    path = tmp_path / "out.bin"
    write_bytes_atomic(path, b"old")
    with atomic_path(path) as tmp:
        tmp.write_bytes(b"new")
    assert path.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
