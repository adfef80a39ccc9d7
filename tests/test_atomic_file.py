"""Files are written whole or not at all, with the mode open() would give, and the process
umask is never touched (threads creating files meanwhile would see it change)."""

import os
import stat
import threading

import pytest

from convir import atomic_file
from convir.atomic_file import atomic_write, write_bytes, write_text
from convir.errors import InputError


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    path = tmp_path / "deep" / "run.jsonl"
    write_text(path, "old\n")
    with pytest.raises(RuntimeError), atomic_write(path) as handle:
        handle.write("half a li")
        raise RuntimeError("killed")
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["run.jsonl"]
    write_bytes(path, b"new")
    assert path.read_bytes() == b"new"
    with pytest.raises(InputError, match="is a folder"):
        write_text(tmp_path, "x")


def test_modes_follow_the_old_file_or_the_umask_read_without_setting_it(tmp_path, monkeypatch):
    old = os.umask(0o027)
    try:
        assert atomic_file._umask() == 0o027
        fresh = write_text(tmp_path / "fresh.txt", "x")
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o640
        os.chmod(fresh, 0o600)
        write_text(fresh, "y")
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o600  # kept, like open(path, "w")
    finally:
        os.umask(old)
    calls = []
    monkeypatch.setattr(os, "umask", lambda *a: calls.append(a) or 0)
    threads = [
        threading.Thread(target=write_text, args=(tmp_path / f"t{i}.txt", str(i))) for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not calls and len(list(tmp_path.glob("t*.txt"))) == 8
