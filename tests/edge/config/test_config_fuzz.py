"""Property tests of the config loader: random and mutated configs give a config or located errors,
never a traceback. The seeds are the shipped configs and the drivers' sample configs."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.config import ConfigError, GatewayConfig, parse_config

ROOT = Path(__file__).resolve().parents[3]
SEEDS = [p.read_text() for p in sorted((ROOT / "config").glob("*.toml")) + sorted((ROOT / "drivers").glob("**/sample.toml"))]
LOCATED = re.compile(r"^\S+?:(\d+|\?): \S")

# values TOML can hold, including the ones a config never means (non-finite numbers, deep nesting)
scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=20),
)
names = st.from_regex(r"[a-z_]{1,8}", fullmatch=True)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(names, inner, max_size=3)), max_leaves=12)
keys = st.sampled_from(
    ["name", "driver", "host", "port", "unit_id", "address", "type", "scale", "offset", "low", "high", "tags", "signals", "tag", "input", "poll_interval_s",
     "timeout_s", "endpoint", "state_dir", "alarm_high", "alarm_low", "max_db_mb", "historize", "units", "word_order", "byte_order", "length", "x"]
)  # fmt: skip


def toml_value(v: object) -> str:
    """*v* as a TOML value (inline tables for dicts)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v != v:
            return "nan"
        if v in (float("inf"), float("-inf")):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return '"' + "".join(c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}" for c in v) + '"'
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    assert isinstance(v, dict)
    return "{" + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + "}"


def check(text: str) -> None:
    try:
        cfg = parse_config(text, "fuzz.toml")
    except ConfigError as exc:
        assert exc.problems, "a ConfigError lists at least one problem"
        for line in exc.problems:
            assert LOCATED.match(line), f"not located: {line!r}"
    else:
        assert isinstance(cfg, GatewayConfig)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(SEEDS), data=st.data())
def test_a_value_replaced_anywhere_gives_a_config_or_located_errors(seed: str, data: st.DataObject) -> None:
    lines = seed.splitlines()
    assignments = [i for i, line in enumerate(lines) if re.match(r"^\s*[A-Za-z_]+\s*=", line)]
    for i in data.draw(st.lists(st.sampled_from(assignments), min_size=1, max_size=3)):
        key = lines[i].split("=", 1)[0]
        lines[i] = f"{key}= {toml_value(data.draw(values))}"
    check("\n".join(lines))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(SEEDS), data=st.data())
def test_lines_deleted_duplicated_or_added_give_a_config_or_located_errors(seed: str, data: st.DataObject) -> None:
    lines = seed.splitlines()
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(lines) - 1))
        action = data.draw(st.sampled_from(["delete", "duplicate", "add", "garbage"]))
        if action == "delete":
            del lines[i]
        elif action == "duplicate":
            lines.insert(i, lines[i])
        elif action == "add":
            lines.insert(i, f"{data.draw(keys)} = {toml_value(data.draw(values))}")
        else:
            lines.insert(i, data.draw(st.text(max_size=30)))
        if not lines:
            lines = [""]
    check("\n".join(lines))


@settings(max_examples=60, deadline=None)
@given(
    sections=st.dictionaries(
        st.sampled_from(["gateway", "opcua", "history", "simulator", "devices", "assets", "other"]),
        st.one_of(st.dictionaries(keys, values, max_size=5), st.lists(st.dictionaries(keys, values, max_size=6), max_size=3), values),
        max_size=4,
    )
)
def test_random_documents_give_a_config_or_located_errors(sections: dict) -> None:
    out = []
    for name, body in sections.items():
        if isinstance(body, dict):
            out.append(f"[{name}]")
            out += [f"{k} = {toml_value(v)}" for k, v in body.items()]
        elif isinstance(body, list) and all(isinstance(b, dict) for b in body):
            for item in body:
                out.append(f"[[{name}]]")
                out += [f"{k} = {toml_value(v)}" for k, v in item.items()]
        else:
            out.insert(0, f"{name} = {toml_value(body)}")
    check("\n".join(out))
