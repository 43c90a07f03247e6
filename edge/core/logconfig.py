"""structlog configuration: readable console output on a terminal, JSON lines otherwise.

This is the only module that configures logging; every other module only calls
``structlog.get_logger(...)`` with its module name and binds its context.

* Levels: one default level and optional levels per component (``edge.core.loglevels``); they apply
  to the daemon's structlog loggers and to the standard-library loggers of libraries (asyncua,
  pymodbus), which are otherwise kept at WARNING.
* JSON (when the stream is not a terminal, e.g. under systemd): one object per line, always valid
  JSON: NaN and infinite floats anywhere in an event, nested ones included, are written as the
  strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``. Library log records go through the same
  renderer, so every line of the stream parses.
* journald: when the stream is the journal (``$JOURNAL_STREAM`` names it), each line starts with
  the ``<N>`` syslog priority of its level, which journald strips and stores as the entry's
  priority (``journalctl -p warning`` works); the stored message is the JSON object.
"""

from __future__ import annotations

import json as jsonlib
import logging
import math
import numbers
import os
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import structlog

from edge.core.loglevels import level_for, numeric_level

# syslog priorities of the levels (sd-daemon(3) prefixes)
_PRIORITY = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2, "exception": 3}


def json_safe(value: Any) -> Any:
    """*value* with every non-finite float (at any depth) replaced by "NaN", "Infinity" or "-Infinity"."""
    if isinstance(value, float):
        return value if math.isfinite(value) else _non_finite(value)
    if isinstance(value, str | int | bool) or value is None:
        return value
    if isinstance(value, Mapping):
        return {k if isinstance(k, str) else str(json_safe(k)): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):  # NumPy float32 and the like
        f = float(value)
        return f if math.isfinite(f) else _non_finite(f)
    return value


def _non_finite(f: float) -> str:
    return "NaN" if math.isnan(f) else ("Infinity" if f > 0 else "-Infinity")


def dumps(obj: Any, **kw: Any) -> str:
    """JSON of a log event; never NaN or Infinity literals, never an exception."""
    kw.pop("default", None)  # structlog passes its own fallback; repr() is ours
    try:
        return jsonlib.dumps(json_safe(obj), allow_nan=False, default=repr, **kw)
    except (TypeError, ValueError) as exc:  # a value whose repr() itself fails, or a float hidden behind default
        return jsonlib.dumps({"event": "log_encoding_failed", "error": repr(exc), "logged": repr(obj)}, default=repr)


def writes_to_journal(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """True if *stream* is the journal's stream (``$JOURNAL_STREAM`` is ``<device>:<inode>`` of it)."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    try:
        st = os.fstat(stream.fileno())
        return (st.st_dev, st.st_ino) == (int(device), int(inode))
    except (ValueError, OSError, AttributeError):  # no such variable, or not a real file
        return False


class _NamedPrintLogger(structlog.PrintLogger):
    """A PrintLogger that knows the name it was created with (the component of its events)."""

    def __init__(self, file: TextIO, name: str) -> None:
        super().__init__(file)
        self.name = name


class _NamedPrintLoggerFactory:
    def __init__(self, file: TextIO) -> None:
        self._file = file

    def __call__(self, *args: Any) -> _NamedPrintLogger:
        return _NamedPrintLogger(self._file, str(args[0]) if args else "")


def configure_logging(
    level: str = "info",
    *,
    levels: Mapping[str, str] | None = None,
    json: bool | None = None,
    stream: TextIO | None = None,
) -> None:
    """Configure structlog and the stdlib root logger (asyncua and pymodbus log through it).

    *level* is the default; *levels* maps components (logger names or dotted prefixes) to their own level.
    """
    stream = stream or sys.stderr
    if json is None:
        json = not stream.isatty()
    default = numeric_level(level)
    per_component = {name: numeric_level(lv) for name, lv in (levels or {}).items()}
    lowest = min([default, *per_component.values()])
    journal = json and writes_to_journal(stream)

    def by_component(logger: Any, method_name: str, event_dict: structlog.typing.EventDict) -> structlog.typing.EventDict:
        name = getattr(logger, "name", "") or ""
        if per_component and level_for(name, default, per_component) > _NUMERIC.get(method_name, logging.INFO):
            raise structlog.DropEvent
        if name:
            event_dict.setdefault("logger", name)
        return event_dict

    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    if json:
        renderer = structlog.processors.JSONRenderer(serializer=dumps)
        if journal:
            renderer = _with_priority(renderer)
        chain = [*shared, structlog.processors.format_exc_info, renderer]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
        chain = [*shared, renderer]
    structlog.configure(
        processors=[by_component, *chain],
        wrapper_class=structlog.make_filtering_bound_logger(lowest),
        logger_factory=_NamedPrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )

    # Libraries log through the stdlib: the same renderer (JSON lines stay JSON), their level
    # WARNING unless a component level says otherwise.
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *([structlog.processors.format_exc_info] if json else []), renderer],
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared, structlog.stdlib.ExtraAdder()],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(default, logging.WARNING))
    for name, numeric in per_component.items():
        if name.partition(".")[0] not in ("edge", "drivers", "kernels"):
            logging.getLogger(name).setLevel(numeric)


_NUMERIC = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "warn": logging.WARNING, "error": logging.ERROR}
_NUMERIC |= {"critical": logging.CRITICAL, "exception": logging.ERROR, "fatal": logging.CRITICAL, "msg": logging.INFO}


def _with_priority(renderer: Any) -> Any:
    """Wrap *renderer* so each line starts with the syslog priority of its level (``<4>{...}``)."""

    def render(logger: Any, method_name: str, event_dict: structlog.typing.EventDict) -> str:
        level = str(event_dict.get("level", method_name)).lower()
        return f"<{_PRIORITY.get(level, 6)}>" + renderer(logger, method_name, event_dict)

    return render
