"""Owner-only folders and files under any umask."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

from edge.core.private_files import private_dir, private_file, private_sqlite, tighten, write_private


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_created_folders_and_files_are_owner_only_under_umask_000(tmp_path: Path, umask_000: None) -> None:
    d = private_dir(tmp_path / "state" / "pki" / "trusted")
    assert [mode(p) for p in (tmp_path / "state", tmp_path / "state" / "pki", d)] == [0o700] * 3
    f = write_private(d / "x.der", b"abc")
    assert f.read_bytes() == b"abc" and mode(f) == 0o600
    assert mode(private_file(d / "empty")) == 0o600
    assert not list(d.glob(".*.tmp"))


def test_existing_folders_keep_their_mode_unless_below_root(tmp_path: Path) -> None:
    outside = tmp_path / "shared"
    outside.mkdir(mode=0o755)
    os.chmod(outside, 0o755)
    private_dir(outside / "a")
    assert mode(outside) == 0o755
    root = outside / "root"
    root.mkdir()
    os.chmod(root, 0o777)
    (root / "sub").mkdir()
    os.chmod(root / "sub", 0o777)
    private_dir(root / "sub", root=root)
    assert mode(root) == 0o700 and mode(root / "sub") == 0o700 and mode(outside) == 0o755


def test_existing_file_with_wide_bits_is_tightened(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"x")
    os.chmod(f, 0o666)
    write_private(f, b"y")
    assert mode(f) == 0o600 and f.read_bytes() == b"y"
    os.chmod(f, 0o644)
    private_file(f)
    assert mode(f) == 0o600 and f.read_bytes() == b"y"


def test_sqlite_wal_and_shm_follow_the_database_mode(tmp_path: Path, umask_000: None) -> None:
    db = private_sqlite(tmp_path / "h.sqlite")
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("CREATE TABLE t (x)")
    con.execute("INSERT INTO t VALUES (1)")
    con.commit()
    sides = [tmp_path / "h.sqlite-wal", tmp_path / "h.sqlite-shm"]
    assert all(p.exists() for p in sides)
    assert [mode(p) for p in [db, *sides]] == [0o600] * 3
    con.close()


def test_tighten_fixes_a_whole_tree(tmp_path: Path, umask_000: None) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f").write_bytes(b"")
    (tmp_path / "a" / "g").write_bytes(b"")
    assert tighten(tmp_path / "a") == 4
    assert tighten(tmp_path / "a") == 0
    assert mode(tmp_path / "a") == 0o700 and mode(tmp_path / "a" / "b" / "f") == 0o600
