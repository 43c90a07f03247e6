"""Fault patterns of an asset type, and the versioned JSON file they live in.

File format (``<state_dir>/patterns/<library>.json``; docs/diagnosis.md)::

    {
      "format": "edgetwin-fault-patterns",
      "version": 1,
      "library": "heated_tank",
      "patterns": [
        {
          "name": "bearing_wear",
          "description": "...",
          "action": "...",
          "signatures": [<signature>, ...],          # one per episode it was learned from
          "episodes": [{"asset": "tank1", "start": "2026-...Z", "end": "...", "source": "operator", "user": "..."}]
        }
      ]
    }

A pattern's name is unique in its library. Writes are atomic (a temporary file in the same folder,
fsync, rename), so a crash leaves the old file or the new one, never half of either. A file that
cannot be read gives a ``LibraryError`` naming the file and the problem; ``PatternFile`` then keeps
the library it had.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import structlog

from edge.twin.diagnosis.signature import Signature

log = structlog.get_logger("edge.twin.diagnosis")

FORMAT = "edgetwin-fault-patterns"
VERSION = 1
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")
UNKNOWN = "unknown"  # the answer when nothing matches; not a pattern name


class LibraryError(ValueError):
    """A pattern file or pattern that cannot be used, with the reason."""


@dataclass(frozen=True, slots=True)
class Episode:
    """Where a signature came from."""

    asset: str
    start: str  # ISO 8601 UTC
    end: str
    source: str = "operator"  # operator | config | simulator
    user: str = ""

    def to_json(self) -> dict[str, str]:
        return {"asset": self.asset, "start": self.start, "end": self.end, "source": self.source, "user": self.user}


@dataclass(frozen=True, slots=True)
class Pattern:
    name: str
    description: str = ""
    action: str = ""
    signatures: tuple[Signature, ...] = ()
    episodes: tuple[Episode, ...] = ()

    def __post_init__(self) -> None:
        check_name(self.name)
        if not self.signatures:
            raise LibraryError(f"pattern {self.name!r} has no signature")

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "action": self.action,
            "signatures": [s.to_json() for s in self.signatures],
            "episodes": [e.to_json() for e in self.episodes],
        }


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise LibraryError(f"pattern name {name!r} must start with a letter and hold only letters, digits, _ and - (at most 64)")
    if name == UNKNOWN:
        raise LibraryError(f"{UNKNOWN!r} is the answer when nothing matches; it cannot name a pattern")
    return name


@dataclass(frozen=True, slots=True)
class Library:
    name: str
    patterns: tuple[Pattern, ...] = field(default=())

    def get(self, name: str) -> Pattern | None:
        return next((p for p in self.patterns if p.name == name), None)

    def with_pattern(self, pattern: Pattern) -> Library:
        """This library with *pattern* added, or merged into the pattern of the same name (its
        signatures and episodes appended; description and action replaced when given)."""
        old = self.get(pattern.name)
        if old is not None:
            pattern = replace(
                old,
                description=pattern.description or old.description,
                action=pattern.action or old.action,
                signatures=old.signatures + pattern.signatures,
                episodes=old.episodes + pattern.episodes,
            )
        if old is None:
            return replace(self, patterns=(*self.patterns, pattern))
        return replace(self, patterns=tuple(pattern if p.name == pattern.name else p for p in self.patterns))

    def without(self, name: str) -> Library:
        if self.get(name) is None:
            raise LibraryError(f"no pattern {name!r} in library {self.name!r}; it has: {', '.join(p.name for p in self.patterns) or 'none'}")
        return replace(self, patterns=tuple(p for p in self.patterns if p.name != name))

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "library": self.name, "patterns": [p.to_json() for p in self.patterns]}


def parse(data: object, where: str) -> Library:
    """A library from decoded JSON; every problem is a ``LibraryError`` naming *where*."""
    if not isinstance(data, dict):
        raise LibraryError(f"{where}: not a fault-pattern file (expected a JSON object)")
    if data.get("format") != FORMAT:
        raise LibraryError(f"{where}: not a fault-pattern file (format is {data.get('format')!r}, expected {FORMAT!r})")
    version = data.get("version")
    if not isinstance(version, int) or version < 1:
        raise LibraryError(f"{where}: version {version!r} is not a format version")
    if version > VERSION:
        raise LibraryError(f"{where}: written in format version {version}, this edgetwin reads up to version {VERSION}; upgrade edgetwin")
    patterns, seen = [], set()
    raw = data.get("patterns", [])
    if not isinstance(raw, list):
        raise LibraryError(f"{where}: patterns must be a list")
    for k, p in enumerate(raw):
        at = f"{where}: patterns[{k}]"
        if not isinstance(p, dict):
            raise LibraryError(f"{at}: a pattern is an object")
        try:
            name = check_name(p.get("name"))  # type: ignore[arg-type]
            if name in seen:
                raise LibraryError(f"pattern {name!r} appears twice")
            seen.add(name)
            signatures = tuple(Signature.from_json(s) for s in p.get("signatures", []))
            episodes = tuple(Episode(**e) for e in p.get("episodes", []))
            patterns.append(Pattern(name, str(p.get("description", "")), str(p.get("action", "")), signatures, episodes))
        except (ValueError, TypeError) as exc:
            raise LibraryError(f"{at}: {exc}") from None
    return Library(str(data.get("library", "")), tuple(patterns))


def load(path: Path) -> Library:
    try:
        text = path.read_bytes().decode("utf-8")
        data = json.loads(text)
    except FileNotFoundError:
        raise LibraryError(f"{path}: no such pattern file") from None
    except UnicodeDecodeError as exc:
        raise LibraryError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise LibraryError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    except OSError as exc:
        raise LibraryError(f"{path}: cannot read: {exc.strerror}") from None
    return parse(data, str(path))


_SCALAR_LIST = re.compile(r"\[\s+([^\[\]{}\"]*?|(?:\"[^\"]*\",?\s*)*?)\s+\]")


def to_text(library: Library) -> str:
    """The file's text: indented JSON, with each list of numbers or names on one line."""
    text = json.dumps(library.to_json(), indent=2)
    return _SCALAR_LIST.sub(lambda m: "[" + " ".join(m.group(1).split()) + "]", text) + "\n"


def save(library: Library, path: Path) -> None:
    """Write *library* to *path* atomically (owner-only, like every state file)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(to_text(library))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class PatternFile:
    """The library of one asset type on disk, re-read when the file changes (``current``).

    Missing file: the seed library (if any) is written there first; a seed that cannot be read is
    logged (``pattern_seed_unreadable``) and the library starts empty. A file that cannot be read
    keeps the library already loaded, logged once per bad version of the file.
    """

    def __init__(self, path: Path, name: str, seed: Path | None = None) -> None:
        self.path = path
        self.name = name
        self.seed = seed
        self.library = Library(name)
        self.error: str | None = None
        self._stamp: tuple[int, int] | None = None
        if not path.exists() and seed is not None:
            try:
                save(replace(load(seed), name=name), path)
                log.info("pattern_library_seeded", library=name, path=str(path), seed=str(seed))
            except LibraryError as exc:  # diagnosis runs on an empty library ("unknown") rather than not at all
                self.error = str(exc)
                log.error("pattern_seed_unreadable", library=name, error=str(exc))
        self.current()

    def current(self) -> Library:
        """The library, re-read if the file changed since the last call."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return self.library
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return self.library
        self._stamp = stamp
        try:
            self.library = load(self.path)
            self.error = None
            log.info("pattern_library_loaded", library=self.name, patterns=[p.name for p in self.library.patterns])
        except LibraryError as exc:
            self.error = str(exc)
            log.error("pattern_library_unreadable", library=self.name, error=str(exc), kept=[p.name for p in self.library.patterns])
        return self.library

    def update(self, library: Library) -> None:
        """Write *library* and use it from now on."""
        save(library, self.path)
        self.library = library
        self.error = None
        st = self.path.stat()
        self._stamp = (st.st_mtime_ns, st.st_size)
