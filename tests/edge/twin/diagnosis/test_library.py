"""The pattern library file: round trip, versions, corrupted files, seeding, live re-reading."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from edge.twin.diagnosis.library import Episode, Library, LibraryError, Pattern, PatternFile, load, save
from edge.twin.diagnosis.signature import Signature

SIG = Signature(("a", "b"), (5.0, 0.0), (1.0, 0.0), (0.0, -1.0), ("", "stuck"))


def lib(*names: str) -> Library:
    out = Library("pumps")
    for n in names:
        out = out.with_pattern(Pattern(n, f"{n} text", f"fix {n}", (SIG,), (Episode("p1", "2026-01-01T00:00:00+00:00", "2026-01-01T00:05:00+00:00"),)))
    return out


def test_round_trip_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "patterns" / "pumps.json"
    save(lib("wear", "leak"), path)
    assert load(path) == lib("wear", "leak")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["version"] == 1


def test_recording_the_same_name_adds_an_episode_and_keeps_the_order() -> None:
    merged = lib("wear", "leak").with_pattern(Pattern("wear", signatures=(SIG,), episodes=(Episode("p2", "s", "e"),)))
    assert [p.name for p in merged.patterns] == ["wear", "leak"]
    wear = merged.get("wear")
    assert wear is not None and len(wear.signatures) == 2 and wear.action == "fix wear"
    assert [p.name for p in merged.without("wear").patterns] == ["leak"]
    with pytest.raises(LibraryError, match=r"no pattern 'nope'.*wear, leak"):
        merged.without("nope")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", r"pumps.json:1: not valid JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[]", "not a fault-pattern file"),
        (b'{"format": "other"}', "format is 'other'"),
        (b'{"format": "edgetwin-fault-patterns", "version": 9}', "version 9, this edgetwin reads up to version 1"),
        (b'{"format": "edgetwin-fault-patterns", "version": 1, "patterns": [{"name": "x y"}]}', r"patterns\[0\]: pattern name 'x y'"),
        (b'{"format": "edgetwin-fault-patterns", "version": 1, "patterns": [{"name": "x"}]}', "has no signature"),
        (b'{"format": "edgetwin-fault-patterns", "version": 1, "patterns": [{"name": "unknown", "signatures": []}]}', "cannot name a pattern"),
    ],
)
def test_a_bad_file_is_a_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "pumps.json"
    path.write_bytes(content)
    with pytest.raises(LibraryError, match=message):
        load(path)


def test_a_corrupted_file_keeps_the_previous_library_until_it_is_fixed(tmp_path: Path) -> None:
    path = tmp_path / "pumps.json"
    save(lib("wear"), path)
    pf = PatternFile(path, "pumps")
    assert [p.name for p in pf.current().patterns] == ["wear"]
    path.write_text('{"format": "edgetwin-fault-patterns", "version": 1, "patterns": [')
    assert [p.name for p in pf.current().patterns] == ["wear"]
    assert pf.error is not None and "not valid JSON" in pf.error
    save(lib("wear", "leak"), path)
    os.utime(path, ns=(1, 1))  # a new stamp even within one mtime tick
    assert [p.name for p in pf.current().patterns] == ["wear", "leak"]
    assert pf.error is None


def test_a_missing_library_starts_from_the_seed_and_updates_are_atomic(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    save(lib("wear"), seed)
    path = tmp_path / "state" / "patterns" / "pumps.json"
    pf = PatternFile(path, "pumps", seed)
    assert path.exists() and [p.name for p in pf.library.patterns] == ["wear"]
    pf.update(pf.current().with_pattern(Pattern("leak", signatures=(SIG,))))
    assert [p.name for p in load(path).patterns] == ["wear", "leak"]
    assert [p.name for p in tmp_path.joinpath("state", "patterns").iterdir()] == ["pumps.json"]  # no temporary left
    save(lib("other"), seed)
    assert [p.name for p in PatternFile(path, "pumps", seed).library.patterns] == ["wear", "leak"]  # an existing library is kept
