"""The state folder: where it is by default and the one layout every writer uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.opcua_client.pki import ClientPki
from edge.config import parse_config
from edge.core.statedir import StateDir, default_root
from edge.opcua.extensions import history_path
from edge.opcua.security import Pki

HOME = Path("/home/op")


@pytest.mark.parametrize(
    ("env", "uid", "expected"),
    [
        ({"STATE_DIRECTORY": "/var/lib/edgetwin"}, 999, "/var/lib/edgetwin"),
        ({"STATE_DIRECTORY": "/var/lib/edgetwin:/var/lib/other"}, 999, "/var/lib/edgetwin"),  # first of several
        ({"STATE_DIRECTORY": "/srv/s", "XDG_STATE_HOME": "/x"}, 0, "/srv/s"),  # systemd wins
        ({"STATE_DIRECTORY": ""}, 1000, "/home/op/.local/state/edgetwin"),  # empty: as if unset
        ({"XDG_STATE_HOME": "/x/state"}, 1000, "/x/state/edgetwin"),
        ({"XDG_STATE_HOME": "/x/state"}, 0, "/x/state/edgetwin"),  # an explicit XDG_STATE_HOME, also for root
        ({"XDG_STATE_HOME": "relative"}, 1000, "/home/op/.local/state/edgetwin"),  # the XDG spec ignores relative paths
        ({}, 0, "/var/lib/edgetwin"),  # root without systemd
        ({}, 1000, "/home/op/.local/state/edgetwin"),
    ],
)
def test_default_root(env: dict[str, str], uid: int, expected: str) -> None:
    assert default_root(env, uid=uid, home=HOME) == Path(expected)


def test_layout_has_one_place_per_writer() -> None:
    s = StateDir(Path("/s"))
    assert (s.pki_dir, s.client_pki_dir, s.history, s.twin_dir, s.mqtt_dir, s.generated_dir, s.pid_file) == tuple(
        Path(p) for p in ("/s/pki", "/s/pki/client", "/s/history.sqlite", "/s/twin", "/s/mqtt", "/s/generated", "/s/edgetwin.pid")
    )


def test_the_pki_helpers_follow_the_layout() -> None:
    """drivers/ cannot import edge/, so the client PKI's own ``under`` is pinned to the layout here."""
    s = StateDir(Path("/s"))
    assert ClientPki.under(s.root).root == s.client_pki_dir
    pki = Pki.under(s.root)
    assert pki.root == s.pki_dir
    assert [p.relative_to(s.pki_dir).as_posix() for p in (pki.cert.parent.parent, pki.trusted, pki.crl, pki.issuers, pki.issuers_crl, pki.rejected)] == [
        "own",
        "trusted/certs",
        "trusted/crl",
        "issuers/certs",
        "issuers/crl",
        "rejected/certs",
    ]


@pytest.mark.parametrize(
    ("state_dir", "expected"),
    [
        (None, "{xdg}"),  # the default folder (tests/conftest.py points XDG_STATE_HOME at tmp)
        ('"var/state"', "{conf}/var/state"),  # relative: to the config file's folder
        ('"/abs/state"', "/abs/state"),
    ],
)
def test_config_state_folder(tmp_path: Path, isolated_state_dir: Path, state_dir: str | None, expected: str) -> None:
    text = "[gateway]\n" + (f"state_dir = {state_dir}\n" if state_dir else "")
    cfg = parse_config(text, source=str(tmp_path / "conf" / "gw.toml"))
    want = Path(expected.format(xdg=isolated_state_dir, conf=tmp_path / "conf"))
    assert cfg.state_path == cfg.state.root == want
    assert history_path(cfg) == want / "history.sqlite"


def test_history_path_set_explicitly_is_relative_to_the_config(tmp_path: Path) -> None:
    cfg = parse_config('[history]\npath = "db/h.sqlite"\n', source=str(tmp_path / "gw.toml"))
    assert history_path(cfg) == tmp_path / "db" / "h.sqlite"


def test_shipped_configs_keep_state_out_of_the_config_folder(isolated_state_dir: Path) -> None:
    root = Path(__file__).resolve().parents[3]
    for name in ("demo.toml", "production.toml"):
        cfg = parse_config((root / "config" / name).read_text(), source=str(root / "config" / name))
        assert cfg.gateway.state_dir is None, name
        assert not cfg.state_path.is_relative_to(root), name
