"""TLS with a CA generated here, and a refused login with a clear log line, against a real Mosquitto."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from structlog.testing import capture_logs

from drivers.base import LinkState
from tests.edge.mqtt.broker import Mosquitto, Recorder
from tests.edge.mqtt.conftest import Plant, running_sink, settings


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_pki(folder: Path) -> dict[str, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it (PEM files in *folder*)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("edgetwin test CA"))
        .issuer_name(_name("edgetwin test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = {"ca": folder / "ca.pem", "cert": folder / "server.pem", "key": folder / "server.key"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return paths


async def test_tls_with_ca_and_password(tmp_path: Path, free_port_factory: Any, plant: Plant) -> None:
    """mqtts:// with the CA file and a password file: the births arrive over TLS."""
    pki = make_pki(tmp_path)
    broker = Mosquitto(tmp_path, free_port_factory(), passwords={"line3": "s3cret", "test": "t"}, tls=pki, tls_port=free_port_factory())
    broker.start()
    try:
        (tmp_path / "mqtt.pw").write_text("s3cret\n")
        cfg = settings(f"mqtts://127.0.0.1:{broker.tls_port}", username="line3", password_file=str(tmp_path / "mqtt.pw"), ca_file=str(tmp_path / "ca.pem"))
        plant.link(LinkState.CONNECTED)
        async with Recorder(broker.port, username="test", password="t") as rec, running_sink(plant, tmp_path, cfg) as sink:
            await rec.wait_for(lambda: len(rec.of("DBIRTH")) == 2)
            await rec.wait_for(lambda: sink.stats.link_state == "online")
    finally:
        broker.stop()


async def test_tls_refuses_an_unknown_ca(tmp_path: Path, free_port_factory: Any, plant: Plant) -> None:
    """Without the broker's CA the TLS handshake fails, and the error says why."""
    pki = make_pki(tmp_path)
    broker = Mosquitto(tmp_path, free_port_factory(), tls=pki, tls_port=free_port_factory())
    broker.start()
    try:
        other = tmp_path / "other"
        other.mkdir()
        make_pki(other)
        cfg = settings(f"mqtts://127.0.0.1:{broker.tls_port}", ca_file=str(other / "ca.pem"))
        with capture_logs() as logs:
            async with Recorder(broker.port) as rec, running_sink(plant, tmp_path, cfg) as sink:
                await rec.wait_for(lambda: any(e["event"] == "mqtt_unreachable" for e in logs), timeout=10)
                assert "CERTIFICATE_VERIFY_FAILED" in sink.stats.last_error
                assert sink.stats.link_state != "online"
    finally:
        broker.stop()


async def test_wrong_password_is_refused_with_a_clear_log_line(tmp_path: Path, free_port_factory: Any, plant: Plant) -> None:
    """A wrong password: one mqtt_connect_refused line naming the broker, the user and the reason; no births."""
    broker = Mosquitto(tmp_path, free_port_factory(), passwords={"line3": "s3cret", "test": "t"})
    broker.start()
    try:
        (tmp_path / "mqtt.pw").write_text("wrong\n")
        cfg = settings(broker.url, username="line3", password_file=str(tmp_path / "mqtt.pw"))
        with capture_logs() as logs:
            async with Recorder(broker.port, username="test", password="t") as rec, running_sink(plant, tmp_path, cfg) as sink:
                await rec.wait_for(lambda: sink.stats.last_error, timeout=10)
                import asyncio

                await asyncio.sleep(1.5)  # a few more attempts: still one log line
                assert rec.of("NBIRTH") == []
        refused = [e for e in logs if e["event"] == "mqtt_connect_refused"]
        assert len(refused) == 1
        assert refused[0]["username"] == "line3" and refused[0]["broker"] == broker.url
        assert "not authorized" in refused[0]["reason"].lower() or "bad user name" in refused[0]["reason"].lower()
    finally:
        broker.stop()
