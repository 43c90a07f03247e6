"""``edgetwin certs``: list, trust and remove certificates made the way the server makes them,
on disk and against a running server (a client refused, trusted by thumbprint, removed again)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from asyncua import Client, ua
from asyncua.crypto import security_policies as sp
from cryptography.hazmat.primitives import serialization

from drivers.opcua_client.pki import ClientPki, file_name, load_certificate, thumbprint
from edge.cli import main
from edge.core.registry import TagInfo, TagRegistry
from edge.opcua.certstore import CertStoreError, TrustFolders, find, match, normalize_thumbprint, read_folder
from edge.opcua.security import Pki, SecuritySettings, ensure_server_certificate, generate_certificate
from edge.opcua.server import OpcUaServer
from edge.opcua.users import Role, UserDirectory

SERVER_URI = "urn:plant-pc:edgetwin:gw"


class Ident:
    """A client certificate and key, made like the server's own (edge.opcua.security.generate_certificate)."""

    def __init__(self, root: Path, name: str, uri: str) -> None:
        self.key = root / f"{name}.pem"
        self.cert = root / f"{name}.der"
        self.uri = uri
        self.x509 = generate_certificate(self.key, self.cert, common_name=name, application_uri=uri, hostnames=["scada-1"], days=30, server=False)
        self.thumbprint = thumbprint(self.x509)


@pytest.fixture(scope="module")
def idents(tmp_path_factory) -> dict[str, Ident]:
    root = tmp_path_factory.mktemp("idents")
    return {n: Ident(root, n, f"urn:scada-1:{n}") for n in ("uaexpert", "historian", "mes")}


@pytest.fixture
def state(tmp_path: Path, idents: dict[str, Ident]) -> Path:
    """A state folder as a running server leaves it: its certificate, one trusted and two rejected clients."""
    pki = Pki.under(tmp_path / "state")
    ensure_server_certificate(pki, common_name="edgetwin gw", application_uri=SERVER_URI, hostnames=["plant-pc", "10.0.0.5"], days=365)
    shutil.copy(idents["historian"].cert, pki.trusted / file_name(idents["historian"].x509))
    for n in ("uaexpert", "mes"):
        shutil.copy(idents[n].cert, pki.rejected / file_name(idents[n].x509))
    return tmp_path / "state"


def _certs(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["certs", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_list_shows_the_server_certificate_and_both_lists(state: Path, idents: dict[str, Ident], capsys) -> None:
    code, out, _ = _certs(capsys, "list", "--state-dir", str(state))
    assert code == 0
    server = load_certificate(Pki.under(state).cert)
    assert f"thumbprint   {thumbprint(server)}" in out
    assert f"uri          {SERVER_URI}" in out and "dns          plant-pc" in out and "ip           10.0.0.5" in out
    assert "not after    " in out and "days left" in out
    trusted, rejected = out.split("trusted client certificates (1)")[1].split("rejected client certificates (2)")
    assert idents["historian"].thumbprint in trusted and "urn:scada-1:historian" in trusted and "CN=historian" in trusted
    assert idents["uaexpert"].thumbprint in rejected and idents["mes"].thumbprint in rejected
    assert idents["historian"].thumbprint not in rejected


def test_list_json(state: Path, idents: dict[str, Ident], capsys) -> None:
    code, out, _ = _certs(capsys, "list", "--json", "--state-dir", str(state))
    assert code == 0
    data = json.loads(out)
    assert data["own"]["uris"] == [SERVER_URI] and data["own"]["dns"] == ["plant-pc"] and data["own"]["ips"] == ["10.0.0.5"]
    assert [c["thumbprint"] for c in data["trusted"]] == [idents["historian"].thumbprint]
    assert sorted(c["application_uri"] for c in data["rejected"]) == ["urn:scada-1:mes", "urn:scada-1:uaexpert"]
    assert not data["trusted"][0]["expired"]


def test_trust_by_thumbprint_moves_the_rejected_file(state: Path, idents: dict[str, Ident], capsys) -> None:
    pki = Pki.under(state)
    typed = ":".join(idents["uaexpert"].thumbprint[i : i + 2] for i in range(0, 40, 2)).upper()  # as UaExpert shows it
    code, out, _ = _certs(capsys, "trust", typed, "--state-dir", str(state))
    assert code == 0 and idents["uaexpert"].thumbprint in out
    name = file_name(idents["uaexpert"].x509)
    assert (pki.trusted / name).read_bytes() == idents["uaexpert"].cert.read_bytes()
    assert not (pki.rejected / name).exists()
    assert (pki.rejected / file_name(idents["mes"].x509)).exists()  # the other one stays


def test_trust_a_certificate_file_copies_it_as_der(state: Path, idents: dict[str, Ident], tmp_path: Path, capsys) -> None:
    pem = tmp_path / "mes.pem"
    pem.write_bytes(idents["mes"].x509.public_bytes(serialization.Encoding.PEM))
    code, out, _ = _certs(capsys, "trust", str(pem), "--state-dir", str(state))
    assert code == 0 and "copied from" in out
    assert (Pki.under(state).trusted / file_name(idents["mes"].x509)).read_bytes() == idents["mes"].cert.read_bytes()
    code, out, _ = _certs(capsys, "trust", str(pem), "--state-dir", str(state))
    assert code == 0 and "already trusted" in out


def test_remove_deletes_the_trusted_certificate(state: Path, idents: dict[str, Ident], capsys) -> None:
    code, out, _ = _certs(capsys, "remove", idents["historian"].thumbprint[:10], "--state-dir", str(state))
    assert code == 0 and "removed" in out
    assert list(Pki.under(state).trusted.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("trust", "0123456789abcdef"), "no rejected certificate has thumbprint 0123456789abcdef"),
        (("remove", "zz-not-hex"), "is not a SHA-1 thumbprint"),
        (("remove", "abc"), "is not a SHA-1 thumbprint"),  # too short a prefix
        (("trust", "/no/such/file.der"), "/no/such/file.der: no such certificate file"),
        (("trust", "uaexpert.pem"), "uaexpert.pem: no such certificate file"),
    ],
)
def test_bad_requests_exit_1_with_one_line(state: Path, capsys, args: tuple[str, ...], message: str) -> None:
    before = sorted(p.name for p in Pki.under(state).root.rglob("*"))
    code, out, err = _certs(capsys, *args, "--state-dir", str(state))
    assert code == 1 and out == ""
    assert len(err.splitlines()) == 1 and message in err
    assert sorted(p.name for p in Pki.under(state).root.rglob("*")) == before


def test_an_ambiguous_prefix_lists_the_candidates(tmp_path: Path, idents: dict[str, Ident]) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    for n in ("uaexpert", "mes"):
        shutil.copy(idents[n].cert, folder / f"{n}.der")
    (folder / "notes.der").write_text("not a certificate")  # reported by list, never matched
    infos, problems = read_folder(folder)
    assert len(infos) == 2 and len(problems) == 1 and "notes.der: not a certificate" in problems[0]
    twins = [replace(infos[0], thumbprint="abcdef01" + "0" * 32), replace(infos[1], thumbprint="abcdef01" + "1" * 32)]
    with pytest.raises(CertStoreError, match="matches several trusted certificates: abcdef0100"):
        match(twins, "abcdef01", what="trusted", folder=folder)
    assert match(twins, "abcdef011", what="trusted", folder=folder) is twins[1]
    assert find(folder, idents["mes"].thumbprint, what="trusted").application_uri == "urn:scada-1:mes"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("AB:CD:EF:01:23:45:67:89", "abcdef0123456789"), (" abcd ef01 2345 ", "abcdef012345"), ("a" * 40, "a" * 40)],
)
def test_normalize_thumbprint(text: str, expected: str) -> None:
    assert normalize_thumbprint(text) == expected


@pytest.mark.parametrize("text", ["", "abcdef1", "a" * 41, "g" * 40, "ab-cd-ef-01-23"])
def test_normalize_thumbprint_refuses(text: str) -> None:
    with pytest.raises(CertStoreError):
        normalize_thumbprint(text)


def test_the_state_folder_of_a_config_and_the_upstream_pki(tmp_path: Path, idents: dict[str, Ident], capsys) -> None:
    conf = tmp_path / "etc"
    conf.mkdir()
    (conf / "gw.toml").write_text('[gateway]\nstate_dir = "../var"\n')
    client = ClientPki.under(tmp_path / "var")
    client.rejected.mkdir(parents=True)
    shutil.copy(idents["mes"].cert, client.rejected / "upstream.der")
    code, out, _ = _certs(capsys, "list", "--upstream", "--config", str(conf / "gw.toml"))
    assert code == 0 and f"state folder  {tmp_path / 'var'}" in out
    assert "rejected upstream server certificates (1)" in out and idents["mes"].thumbprint in out
    assert _certs(capsys, "trust", "--upstream", idents["mes"].thumbprint, "--config", str(conf / "gw.toml"))[0] == 0
    assert (client.trusted / "upstream.der").exists()
    assert TrustFolders.client(client).own == client.cert


def test_a_broken_config_exits_2_with_its_errors(tmp_path: Path, capsys) -> None:
    (tmp_path / "gw.toml").write_text('[gateway]\nstate_dri = "x"\n')
    code, _, err = _certs(capsys, "list", "--config", str(tmp_path / "gw.toml"))
    assert code == 2 and "gateway.state_dri: unknown key" in err


async def test_a_running_server_follows_trust_and_remove(tmp_path: Path, idents: dict[str, Ident], free_port: int, capsys) -> None:
    """Refused -> ``certs trust`` -> connects -> ``certs remove`` -> refused again, without a restart."""
    state = tmp_path / "state"
    reg = TagRegistry()
    reg.add(TagInfo("plc.temp", ("Devices", "plc", "temp"), "float64", "degC", device="plc"))
    security = SecuritySettings(policies=("Basic256Sha256",), modes=("SignAndEncrypt",), state_dir=state, application_uri=SERVER_URI, hostnames=("127.0.0.1",))
    url = f"opc.tcp://127.0.0.1:{free_port}/edgetwin"
    me = idents["uaexpert"]

    async def connect() -> None:
        client = Client(url, timeout=5)
        client.application_uri = me.uri
        await client.set_security(sp.SecurityPolicyBasic256Sha256, str(me.cert), str(me.key), mode=ua.MessageSecurityMode.SignAndEncrypt)
        async with client:
            await client.nodes.server_state.read_value()

    users = UserDirectory([], anonymous_role=Role.VIEWER)
    async with OpcUaServer(reg, endpoint=url, namespace_uri="urn:t", gateway_name="gw", write_handler=None, security=security, users=users):
        with pytest.raises(ua.UaStatusCodeError) as refused:
            await connect()
        assert refused.value.code == ua.StatusCodes.BadCertificateUntrusted
        assert _certs(capsys, "trust", me.thumbprint, "--state-dir", str(state))[0] == 0
        await connect()
        assert _certs(capsys, "remove", me.thumbprint, "--state-dir", str(state))[0] == 0
        with pytest.raises(ua.UaStatusCodeError) as refused_again:
            await connect()
        assert refused_again.value.code == ua.StatusCodes.BadCertificateUntrusted
