"""ufmtheory._io: atomic writes replace only regular files, follow links, respect the umask."""

from __future__ import annotations

import os
import stat

import pytest

from ufmtheory._io import atomic_write_bytes, check_output_dir, check_output_file


def test_new_file_gets_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "a.json", b"{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
    assert (tmp_path / "a.json").read_bytes() == b"{}"


def test_replaced_file_keeps_its_mode(tmp_path):
    path = tmp_path / "a.json"
    path.write_bytes(b"old")
    path.chmod(0o600)
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new" and stat.S_IMODE(path.stat().st_mode) == 0o600


def test_symlink_to_regular_file_is_followed(tmp_path):
    target = tmp_path / "real.json"
    target.write_bytes(b"old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    atomic_write_bytes(link, b"new")
    assert link.is_symlink() and target.read_bytes() == b"new"


def test_refuses_folder_and_device(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(ValueError, match="folder"):
        atomic_write_bytes(tmp_path / "d", b"x")
    if os.path.exists("/dev/null"):
        with pytest.raises(ValueError, match="not a regular file"):
            atomic_write_bytes("/dev/null", b"x")
        assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_parent_that_is_a_file_is_refused_before_writing(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(ValueError, match="not a folder"):
        check_output_dir(blocker / "out", "out")
    with pytest.raises(ValueError, match="not a folder"):
        check_output_file(blocker / "out" / "x.json")
    with pytest.raises(ValueError):
        atomic_write_bytes(blocker / "x.json", b"x")
    assert check_output_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"


def test_no_temporary_left_after_a_failed_write(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(tmp_path / "a.json", b"x")
    assert list(tmp_path.iterdir()) == []
