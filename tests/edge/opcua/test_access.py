"""Pure parts of OPC UA access: password hashes, roles, write validation, settings from the config."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pytest
from asyncua import ua
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.sample import Status
from edge.cli import main as cli_main
from edge.config import parse_config
from edge.core.registry import TagInfo
from edge.opcua.auth import GatewayUser
from edge.opcua.security import SecuritySettings
from edge.opcua.settings import server_options, state_dir
from edge.opcua.users import (
    Principal,
    Role,
    UserDirectory,
    UserEntry,
    current_principal,
    current_role,
    hash_password,
    parse_password_hash,
    role_of,
    verify_password,
)
from edge.opcua.writes import check_value

FAST = {"n": 1024}  # the lowest cost the config accepts: keeps these tests quick


@settings(max_examples=15, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_a_hash_verifies_its_password_and_no_other(password: str) -> None:
    stored = parse_password_hash(hash_password(password, **FAST))
    assert verify_password(password, stored)
    assert not verify_password(password + "x", stored)


def test_hashes_are_salted_and_self_describing() -> None:
    a, b = hash_password("same", **FAST), hash_password("same", **FAST)
    assert a != b
    assert a.startswith("scrypt$1024$8$1$")
    assert str(parse_password_hash(a)) == a


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hunter2", "plain-text passwords are not accepted"),
        ("", "not a password hash"),
        ("pbkdf2$1000$abc$def", "not a password hash"),
        ("scrypt$1000$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 44, "power of two"),
        ("scrypt$1048576$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 44, "memory limit"),
        ("scrypt$1024$8$1$AAAA$" + "A" * 44, "salt must be >= 16 bytes"),
        ("scrypt$1024$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAA", "hash >= 32 bytes"),
    ],
)
def test_anything_but_a_sound_hash_is_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_password_hash(text)


def test_directory_authenticates_users_and_anonymous_only_when_allowed() -> None:
    entry = UserEntry("otto", parse_password_hash(hash_password("pw", **FAST)), Role.OPERATOR)
    closed = UserDirectory([entry])
    assert closed.authenticate("otto", "pw") == Principal("otto", Role.OPERATOR)
    assert closed.authenticate("otto", "wrong") is None
    assert closed.authenticate("nobody", "pw") is None
    assert closed.anonymous() is None and not closed.allows_anonymous
    open_ = UserDirectory(anonymous_role=Role.VIEWER)
    assert open_.anonymous() == Principal("anonymous", Role.VIEWER, anonymous=True)
    assert not open_.has_users


def test_role_ladder_and_role_of() -> None:
    assert Role.VIEWER < Role.OPERATOR < Role.ADMIN
    assert Role.parse("operator") is Role.OPERATOR and Role.ADMIN.label == "admin"
    p = Principal("ada", Role.ADMIN)
    user = GatewayUser(name="ada", principal=p)

    class Session:
        def __init__(self, user):
            self.user = user

    assert role_of(p) is role_of(user) is role_of(Session(user)) is Role.ADMIN
    assert role_of(None) is None and role_of(Session(None)) is None and role_of(object()) is None


def test_current_role_is_none_outside_a_request() -> None:
    assert current_role() is None
    token = current_principal.set(Principal("otto", Role.OPERATOR))
    try:
        assert current_role() is Role.OPERATOR
    finally:
        current_principal.reset(token)


SP = TagInfo("plc.sp", ("Devices", "plc", "sp"), "float64", "%", 0.0, 100.0, writable=True)
COUNT = TagInfo("plc.n", ("Devices", "plc", "n"), "uint16", low=0.0, high=3.0, writable=True)
RUN = TagInfo("plc.run", ("Devices", "plc", "run"), "bool", writable=True)
OPEN = TagInfo("plc.free", ("Devices", "plc", "free"), "float32", writable=True)
D, U16, B, F = ua.VariantType.Double, ua.VariantType.UInt16, ua.VariantType.Boolean, ua.VariantType.Float


@pytest.mark.parametrize(
    ("info", "variant", "status"),
    [
        (SP, ua.Variant(0.0, D), Status.Good),
        (SP, ua.Variant(100.0, D), Status.Good),
        (SP, ua.Variant(100.01, D), Status.BadOutOfRange),
        (SP, ua.Variant(-1e-9, D), Status.BadOutOfRange),
        (SP, ua.Variant(math.nan, D), Status.BadOutOfRange),
        (SP, ua.Variant(math.inf, D), Status.BadOutOfRange),
        (SP, ua.Variant(50, ua.VariantType.Int32), Status.BadTypeMismatch),
        (SP, ua.Variant(None, ua.VariantType.Null), Status.BadTypeMismatch),
        (SP, None, Status.BadTypeMismatch),
        (COUNT, ua.Variant(3, U16), Status.Good),
        (COUNT, ua.Variant(4, U16), Status.BadOutOfRange),
        (RUN, ua.Variant(True, B), Status.Good),
        (RUN, ua.Variant(1.0, D), Status.BadTypeMismatch),
        (OPEN, ua.Variant(1e30, F), Status.Good),  # no limits configured: only the type is checked
    ],
)
def test_write_validation_table(info: TagInfo, variant: ua.Variant | None, status: int) -> None:
    got, reason = check_value(info, variant)
    assert got == status
    assert bool(reason) == (status != Status.Good)


def test_security_settings_map_policies_and_modes_to_endpoints(tmp_path: Path) -> None:
    s = SecuritySettings(policies=("None", "Basic256Sha256", "Aes256_Sha256_RsaPss"), modes=("SignAndEncrypt",), state_dir=tmp_path)
    assert s.policy_types() == [
        ua.SecurityPolicyType.NoSecurity,
        ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
        ua.SecurityPolicyType.Aes256Sha256RsaPss_SignAndEncrypt,
    ]
    assert SecuritySettings().policy_types() == [ua.SecurityPolicyType.NoSecurity] and not SecuritySettings().secure
    with pytest.raises(ValueError, match="state_dir"):
        SecuritySettings(policies=("Basic256Sha256",))


def test_server_options_from_config(tmp_path: Path) -> None:
    h = hash_password("pw", **FAST)
    text = f'[gateway]\nstate_dir = "var/state"\n[opcua]\nallow_anonymous = true\n[[opcua.users]]\nname = "ada"\npassword_hash = "{h}"\nrole = "admin"\n'
    path = tmp_path / "conf" / "gw.toml"
    path.parent.mkdir()
    path.write_text(text)
    from edge.config import load_config

    cfg = load_config(path)
    assert state_dir(cfg) == tmp_path / "conf" / "var" / "state"
    opts = server_options(cfg)
    assert opts["security"].policies == ("Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss")
    assert opts["security"].modes == ("Sign", "SignAndEncrypt")
    assert opts["users"].authenticate("ada", "pw") == Principal("ada", Role.ADMIN)
    assert opts["users"].anonymous() == Principal("anonymous", Role.VIEWER, anonymous=True)


def test_defaults_are_secure() -> None:
    """No [opcua] section: no None endpoint, no anonymous login."""
    cfg = parse_config("")
    assert "None" not in cfg.opcua.security_policies
    assert cfg.opcua.allow_anonymous is False and cfg.opcua.users == []


def test_hash_password_command_reads_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse\n"))
    assert cli_main(["hash-password"]) == 0
    out = capsys.readouterr().out.strip()
    assert verify_password("correct horse", parse_password_hash(out))
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert cli_main(["hash-password"]) == 1
    assert "empty password" in capsys.readouterr().err


def test_shipped_production_config_has_no_unsecured_endpoint_and_no_anonymous_login() -> None:
    from edge.config import load_config

    cfg = load_config(Path(__file__).resolve().parents[3] / "config" / "production.toml")
    assert "None" not in cfg.opcua.security_policies and cfg.opcua.allow_anonymous is False
    assert {u.role for u in cfg.opcua.users} == {"viewer", "operator", "admin"}
    assert all(parse_password_hash(u.password_hash).n >= 2**14 for u in cfg.opcua.users)
    demo = load_config(Path(__file__).resolve().parents[3] / "config" / "demo.toml")
    assert demo.opcua.security_policies == ["None"] and demo.opcua.allow_anonymous  # the loopback demo, explicitly


def test_audit_log_values_are_cut_to_a_bounded_length() -> None:
    """A client cannot fill the log with one write: long strings and arrays are cut and say their length."""
    from edge.core.writes import LOG_VALUE_CHARS, loggable

    assert loggable(42.5) == 42.5 and loggable(None) is None and loggable(True) is True
    assert loggable("short") == "short" and loggable([1.0, 2.0]) == [1.0, 2.0]
    cut = loggable("x" * 60_000_000)
    assert cut.startswith("x" * LOG_VALUE_CHARS) and cut.endswith("(60000000 characters)") and len(cut) < LOG_VALUE_CHARS + 40
    assert loggable(list(range(10_000))).endswith(f"({len(repr(list(range(10_000))))} characters)")
