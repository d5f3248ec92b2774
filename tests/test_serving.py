"""Mutual-TLS HTTP/2 serving: the app sees the verified client certificate chain."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import queue
import re
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sbi_setauth import serving
from sbi_setauth.cli import main
from sbi_setauth.serving import BackgroundServer, build_ssl_context

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Issued:
    """A certificate and key written as PEM files."""

    certfile: Path
    keyfile: Path
    pem: str


@dataclass
class Pki:
    """Files of a test PKI: trusted CA, server, client, and a client from another CA."""

    ca_file: Path
    server: Issued
    client: Issued
    foreign_client: Issued


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Operator"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return certificate, key


def _issue(
    directory: Path,
    stem: str,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    names: list[x509.GeneralName],
    usage: x509.ObjectIdentifier,
) -> Issued:
    issuer_certificate, issuer_key = issuer
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(stem))
        .issuer_name(issuer_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=12))
        .add_extension(x509.SubjectAlternativeName(names), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
        .sign(issuer_key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    certfile = directory / f"{stem}.pem"
    keyfile = directory / f"{stem}.key"
    certfile.write_text(pem)
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Issued(certfile, keyfile, pem)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = _ca("Operator CA")
    foreign_ca = _ca("Foreign CA")
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca[0].public_bytes(serialization.Encoding.PEM))

    server = _issue(
        directory,
        "server",
        ca,
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
        ExtendedKeyUsageOID.SERVER_AUTH,
    )
    client_names: list[x509.GeneralName] = [
        x509.UniformResourceIdentifier(f"urn:uuid:{uuid.uuid4()}"),
        x509.DNSName("amf1.example.3gppnetwork.org"),
    ]
    client = _issue(directory, "client", ca, client_names, ExtendedKeyUsageOID.CLIENT_AUTH)
    foreign = _issue(
        directory, "foreign", foreign_ca, client_names, ExtendedKeyUsageOID.CLIENT_AUTH
    )
    return Pki(ca_file, server, client, foreign)


class RecordingApp:
    """ASGI app that remembers every HTTP scope and answers with its TLS extension."""

    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        self.scopes.append(scope)
        chain = scope["extensions"]["tls"]["client_cert_chain"]
        body = f"{len(chain)}".encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def recording_app() -> RecordingApp:
    return RecordingApp()


@pytest.fixture(scope="module")
def server(pki: Pki, recording_app: RecordingApp) -> Iterator[BackgroundServer]:
    with BackgroundServer(
        recording_app,
        certfile=pki.server.certfile,
        keyfile=pki.server.keyfile,
        ca_certs=pki.ca_file,
    ) as running:
        yield running


@pytest.fixture
def app(recording_app: RecordingApp) -> RecordingApp:
    recording_app.scopes.clear()
    return recording_app


def _client_context(pki: Pki, client: Issued | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    if client is not None:
        context.load_cert_chain(str(client.certfile), str(client.keyfile))
    return context


def _same_certificate(pem_a: str, pem_b: str) -> bool:
    return ssl.PEM_cert_to_DER_cert(pem_a) == ssl.PEM_cert_to_DER_cert(pem_b)


def test_http2_request_carries_verified_client_chain(
    server: BackgroundServer, app: RecordingApp, pki: Pki
) -> None:
    with httpx.Client(verify=_client_context(pki, pki.client), http2=True) as client:
        response = client.get(f"{server.url}/nudm-sdm/v2/imsi-001")

    assert response.status_code == 200
    assert response.http_version == "HTTP/2"
    tls = app.scopes[0]["extensions"]["tls"]
    assert _same_certificate(tls["client_cert_chain"][0], pki.client.pem)
    assert _same_certificate(tls["client_cert_chain"][-1], pki.ca_file.read_text())
    assert tls["client_cert_name"] == "CN=client,O=Operator,C=DE"
    assert tls["tls_version"] == 0x0304
    assert isinstance(tls["cipher_suite"], int)
    assert tls["server_cert"] is None


def test_http11_fallback_carries_client_chain(
    server: BackgroundServer, app: RecordingApp, pki: Pki
) -> None:
    with httpx.Client(verify=_client_context(pki, pki.client), http1=True) as client:
        response = client.get(f"{server.url}/nudm-sdm/v2/imsi-001")

    assert response.http_version == "HTTP/1.1"
    assert response.text == "2"
    chain = app.scopes[0]["extensions"]["tls"]["client_cert_chain"]
    assert _same_certificate(chain[0], pki.client.pem)


def test_tls12_client_is_served_with_chain(
    server: BackgroundServer, app: RecordingApp, pki: Pki
) -> None:
    context = _client_context(pki, pki.client)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with httpx.Client(verify=context, http2=True) as client:
        response = client.get(f"{server.url}/nudm-sdm/v2/imsi-001")

    assert response.http_version == "HTTP/2"
    tls = app.scopes[0]["extensions"]["tls"]
    assert tls["tls_version"] == 0x0303
    assert _same_certificate(tls["client_cert_chain"][0], pki.client.pem)


def test_requests_on_one_connection_each_carry_the_chain(
    server: BackgroundServer, app: RecordingApp, pki: Pki
) -> None:
    with httpx.Client(verify=_client_context(pki, pki.client), http2=True) as client:
        first = client.get(f"{server.url}/nudm-sdm/v2/first")
        second = client.get(f"{server.url}/nudm-sdm/v2/second")

    assert first.text == second.text == "2"
    assert app.scopes[0]["client"] == app.scopes[1]["client"]
    assert app.scopes[0] is not app.scopes[1]
    for scope in app.scopes:
        chain = scope["extensions"]["tls"]["client_cert_chain"]
        assert _same_certificate(chain[0], pki.client.pem)


def test_app_changing_its_chain_does_not_leak_into_next_request(
    server: BackgroundServer, app: RecordingApp, pki: Pki
) -> None:
    with httpx.Client(verify=_client_context(pki, pki.client), http2=True) as client:
        client.get(f"{server.url}/nudm-sdm/v2/first")
        app.scopes[0]["extensions"]["tls"]["client_cert_chain"].clear()
        second = client.get(f"{server.url}/nudm-sdm/v2/second")

    assert second.text == "2"


def test_client_without_certificate_is_refused(
    server: BackgroundServer, app: RecordingApp, pki: Pki
) -> None:
    with httpx.Client(verify=_client_context(pki, None), http2=True) as client:
        with pytest.raises(httpx.TransportError):
            client.get(f"{server.url}/nudm-sdm/v2/imsi-001")

    assert app.scopes == []


def test_client_certificate_from_other_ca_is_refused(
    server: BackgroundServer, app: RecordingApp, pki: Pki
) -> None:
    with httpx.Client(verify=_client_context(pki, pki.foreign_client), http2=True) as client:
        with pytest.raises(httpx.TransportError):
            client.get(f"{server.url}/nudm-sdm/v2/imsi-001")

    assert app.scopes == []


def test_optional_client_certificate_gives_empty_chain_when_absent(pki: Pki) -> None:
    app = RecordingApp()
    with BackgroundServer(
        app,
        certfile=pki.server.certfile,
        keyfile=pki.server.keyfile,
        ca_certs=pki.ca_file,
        require_client_cert=False,
    ) as running:
        with httpx.Client(verify=_client_context(pki, None), http2=True) as client:
            response = client.get(f"{running.url}/nudm-sdm/v2/imsi-001")

    assert response.text == "0"
    tls = app.scopes[0]["extensions"]["tls"]
    assert tls["client_cert_chain"] == []
    assert tls["client_cert_name"] is None


def test_tls12_handshake_without_client_certificate_fails(
    server: BackgroundServer, pki: Pki
) -> None:
    context = _client_context(pki, None)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection((server.host, server.port), timeout=5) as raw:
        with pytest.raises(ssl.SSLError):
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.recv(1)


def test_ssl_context_requires_verified_client_certificates(pki: Pki) -> None:
    context = build_ssl_context(pki.server.certfile, pki.server.keyfile, pki.ca_file)

    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    with pytest.raises(ValueError):
        build_ssl_context(pki.server.certfile, pki.server.keyfile, None)


def test_serve_refuses_hypercorn_without_expected_internals(
    monkeypatch: pytest.MonkeyPatch, pki: Pki
) -> None:
    monkeypatch.delattr(serving.hypercorn_run, "TCPServer")

    with pytest.raises(RuntimeError, match="hypercorn"):
        asyncio.run(
            serving.serve(
                RecordingApp(),
                host="127.0.0.1",
                port=0,
                certfile=pki.server.certfile,
                keyfile=pki.server.keyfile,
                ca_certs=pki.ca_file,
            )
        )


def test_stopped_server_no_longer_accepts(pki: Pki) -> None:
    running = BackgroundServer(
        RecordingApp(),
        certfile=pki.server.certfile,
        keyfile=pki.server.keyfile,
        ca_certs=pki.ca_file,
    ).start()
    address = (running.host, running.port)
    running.stop()

    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=5).close()


def test_cli_reports_bad_import_string(pki: Pki, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "serve", "no_such_module_for_serving:app", "--host", "127.0.0.1", "--port", "0",
            "--certfile", str(pki.server.certfile), "--keyfile", str(pki.server.keyfile),
            "--ca-certs", str(pki.ca_file),
        ]
    )

    assert code != 0
    assert "no_such_module_for_serving" in capsys.readouterr().err


def _stderr_lines(process: subprocess.Popen[str]) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _wait_for_port(lines: queue.Queue[str], timeout: float = 10.0) -> int:
    seen: list[str] = []
    while True:
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("server did not report its port: " + "".join(seen)) from None
        seen.append(line)
        match = re.search(r"serving on https://127\.0\.0\.1:(\d+)", line)
        if match:
            return int(match.group(1))


def test_cli_serve_runs_app_with_client_chain(pki: Pki, tmp_path: Path) -> None:
    (tmp_path / "producer_app.py").write_text(
        textwrap.dedent(
            """
            async def app(scope, receive, send):
                if scope["type"] != "http":
                    return
                chain = scope["extensions"]["tls"]["client_cert_chain"]
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": chain[0].encode()})
            """
        )
    )
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO_ROOT)]))
    command = [
        sys.executable, "-m", "sbi_setauth", "serve", "producer_app:app",
        "--host", "127.0.0.1", "--port", "0",
        "--certfile", str(pki.server.certfile), "--keyfile", str(pki.server.keyfile),
        "--ca-certs", str(pki.ca_file),
    ]
    process = subprocess.Popen(
        command, cwd=tmp_path, env=environment, stderr=subprocess.PIPE, text=True
    )
    try:
        port = _wait_for_port(_stderr_lines(process))
        with httpx.Client(verify=_client_context(pki, pki.client), http2=True) as client:
            response = client.get(f"https://127.0.0.1:{port}/nudm-sdm/v2/imsi-001")
    finally:
        process.terminate()
        code = process.wait(timeout=10)

    assert response.http_version == "HTTP/2"
    assert _same_certificate(response.text, pki.client.pem)
    assert code == 0


@pytest.mark.parametrize("size", [0, 10, 200_000])
def test_answer_before_the_body_keeps_the_http2_connection(
    server: BackgroundServer, app: RecordingApp, pki: Pki, size: int
) -> None:
    with httpx.Client(verify=_client_context(pki, pki.client), http2=True) as client:
        unread = client.put(f"{server.url}/nudm-sdm/v2/imsi-001", content=b"x" * size)
        after = client.get(f"{server.url}/nudm-sdm/v2/imsi-001")

    assert unread.status_code == 200 and unread.http_version == "HTTP/2"
    assert after.status_code == 200
    assert len(app.scopes) == 2
