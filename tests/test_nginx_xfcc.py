"""Behind nginx: nginx terminates mutual TLS and forwards the client certificate in
`X-Forwarded-Client-Cert`, which the producer believes only when nginx is the peer.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from sbi_setauth import SetAuthMiddleware
from sbi_setauth.forwarded import chain_from_xfcc
from sbi_setauth.testing import CA, NfCertificate

from . import nginx as nginx_module
from .conftest import AM_DATA, AMF_SET, PRODUCER_ID, Pki, bearer, binding
from .nginx import Nginx

UNTRUSTED_ADDRESS = "127.0.0.3"
MISCONFIGURED_PATH = "/nudm-uecm/v1/imsi-001010000000001/registrations"
XFCC = "X-Forwarded-Client-Cert"


class PlainServer:
    """Uvicorn serving an ASGI app over plain HTTP on a loopback port, in a thread of its own.

    `proxy_headers` is off so that `scope["client"]` stays the address of the TCP peer, which
    is what the middleware compares with TRUSTED_PROXIES.
    """

    def __init__(self, app: Any) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.port = int(self.socket.getsockname()[1])
        config = uvicorn.Config(
            app, proxy_headers=False, lifespan="off", log_level="warning", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name="plain-upstream", daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.socket]))

    def __enter__(self) -> PlainServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self.server.started:
            self.__exit__()
            raise RuntimeError("the upstream server did not start")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.socket.close()


@dataclass
class Deployment:
    """nginx in front of a producer with PEER_CERT=xfcc, and what the producer received."""

    pki: Pki
    nginx: Nginx
    upstream: PlainServer
    directory: Path
    seen: list[dict[str, Any]] = field(default_factory=list)
    forwarded: list[list[str]] = field(default_factory=list)

    def via_nginx(self, nf: NfCertificate | None) -> httpx.Client:
        """An HTTP/2 client of nginx that trusts the operator CA and presents `nf`."""
        context = ssl.create_default_context(cafile=str(self.pki.anchors_path))
        if nf is not None:
            certfile, keyfile = nf.write_cert_and_key(self.directory)
            context.load_cert_chain(str(certfile), str(keyfile))
        url = f"https://127.0.0.1:{self.nginx.port}"
        return httpx.Client(verify=context, http2=True, base_url=url, timeout=10)

    def direct(self, local_address: str) -> httpx.Client:
        """A plain HTTP client of the producer itself, connecting from `local_address`."""
        transport = httpx.HTTPTransport(local_address=local_address)
        url = f"http://127.0.0.1:{self.upstream.port}"
        return httpx.Client(transport=transport, base_url=url, timeout=10)


def producer_app(pki: Pki, seen: list[dict[str, Any]], forwarded: list[list[str]]) -> ASGIApp:
    """A UDM app that records what its handler saw and every XFCC value that arrived."""

    async def am_data(request: Request) -> JSONResponse:
        consumer = request.state.consumer
        report = {"nf_instance_id": consumer.nf_instance_id, "nf_set_id": consumer.nf_set_id}
        seen.append(report)
        return JSONResponse(report)

    app = Starlette(
        routes=[
            Route("/nudm-sdm/v2/{supi}/am-data", am_data),
            Route("/nudm-uecm/v1/{supi}/registrations", am_data),
        ]
    )
    settings = pki.settings(peer_cert="xfcc", trusted_proxies="127.0.0.1")
    middleware = SetAuthMiddleware(app, settings=settings)

    async def recording(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            name = XFCC.lower().encode()
            forwarded.append([v.decode("latin-1") for k, v in scope["headers"] if k == name])
        await middleware(scope, receive, send)

    return recording


def nginx_servers(nginx: Nginx, directory: Path, pki: Pki, upstream_port: int) -> str:
    """A TLS server block requiring operator client certificates, forwarding them as XFCC;
    under /nudm-uecm/ it forwards a header whose Cert is not a certificate."""
    udm = pki.ca.issue_nf_certificate(
        PRODUCER_ID, nf_type="UDM", ip_addresses=["127.0.0.1"], extra_dns=["localhost"]
    )
    certfile, keyfile = udm.write_cert_and_key(directory)
    xfcc = r'"Hash=$ssl_client_fingerprint;Cert=\"$ssl_client_escaped_cert\""'
    misconfigured = r'"Hash=$ssl_client_fingerprint;Cert=\"$ssl_client_fingerprint\""'
    return f"""
    server {{
        {nginx.listen_http2()}
        ssl_certificate {certfile};
        ssl_certificate_key {keyfile};
        ssl_client_certificate {pki.anchors_path};
        ssl_verify_client on;
        ssl_verify_depth 3;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {{
            proxy_pass http://127.0.0.1:{upstream_port};
            proxy_http_version 1.1;
            proxy_set_header {XFCC} {xfcc};
        }}
        location /nudm-uecm/ {{
            proxy_pass http://127.0.0.1:{upstream_port};
            proxy_http_version 1.1;
            proxy_set_header {XFCC} {misconfigured};
        }}
    }}
"""


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    directory = tmp_path_factory.mktemp("behind-nginx")
    pki = Pki(directory)
    seen: list[dict[str, Any]] = []
    forwarded: list[list[str]] = []
    with PlainServer(producer_app(pki, seen, forwarded)) as upstream:
        with Nginx(
            directory / "nginx",
            lambda nginx: nginx_servers(nginx, directory, pki, upstream.port),
        ) as nginx:
            yield Deployment(pki, nginx, upstream, directory, seen, forwarded)


@pytest.fixture
def world(deployment: Deployment) -> Deployment:
    deployment.seen.clear()
    deployment.forwarded.clear()
    return deployment


def set_headers(token: str) -> dict[str, str]:
    return {**bearer(token), "3gpp-Sbi-Binding": binding(AMF_SET)}


def nginx_xfcc(nf: NfCertificate) -> str:
    """The header value nginx's configuration above produces for `nf` (Hash left out)."""
    return 'Cert="' + quote(nf.cert_pem.decode("ascii"), safe="") + '"'


def assert_problem(response: httpx.Response, status: int, cause: str) -> str:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert (problem["status"], problem["cause"]) == (status, cause)
    return str(problem["detail"])


def test_set_token_request_through_nginx_is_accepted(world: Deployment) -> None:
    amf = world.pki.amf()

    with world.via_nginx(amf) as client:
        response = client.get(AM_DATA, headers=set_headers(world.pki.set_token(world.pki.amf())))

    assert response.status_code == 200
    assert response.http_version == "HTTP/2"
    assert response.json() == {"nf_instance_id": amf.nf_instance_id, "nf_set_id": AMF_SET}


def test_producer_parses_exactly_what_nginx_forwards(world: Deployment) -> None:
    amf = world.pki.amf()

    with world.via_nginx(amf) as client:
        client.get(AM_DATA, headers=bearer(world.pki.instance_token(amf)))

    [values] = world.forwarded
    assert len(values) == 1
    assert values[0].startswith("Hash=") and ';Cert="-----BEGIN%20CERTIFICATE-----%0A' in values[0]
    assert chain_from_xfcc(values) == [amf.chain_der[0]]


def test_xfcc_sent_by_the_client_is_replaced_by_nginx(world: Deployment) -> None:
    attacker, victim = world.pki.amf(), world.pki.amf()
    headers = {**bearer(world.pki.instance_token(victim)), XFCC: nginx_xfcc(victim)}

    with world.via_nginx(attacker) as client:
        response = client.get(AM_DATA, headers=headers)

    assert_problem(response, 403, "PEER_CERTIFICATE_INVALID")
    assert chain_from_xfcc(world.forwarded[0]) == [attacker.chain_der[0]]
    assert world.seen == []


@pytest.mark.parametrize("presented", ["none", "other_ca"])
def test_nginx_refuses_a_client_without_an_operator_certificate(
    world: Deployment, presented: str
) -> None:
    nf = CA().issue_nf_certificate(nf_type="AMF") if presented == "other_ca" else None

    with world.via_nginx(nf) as client:
        response = client.get(AM_DATA, headers=bearer("x.y.z"))

    assert response.status_code == 400
    assert response.http_version == "HTTP/2"
    assert world.forwarded == []


def test_xfcc_from_an_address_that_is_not_a_trusted_proxy_does_not_count(
    world: Deployment,
) -> None:
    amf = world.pki.amf()
    headers = {**bearer(world.pki.instance_token(amf)), XFCC: nginx_xfcc(amf)}

    with world.direct(UNTRUSTED_ADDRESS) as client:
        untrusted = client.get(AM_DATA, headers=headers)
    with world.direct("127.0.0.1") as client:
        trusted = client.get(AM_DATA, headers=headers)

    detail = assert_problem(untrusted, 403, "PEER_CERTIFICATE_INVALID")
    assert "without a peer certificate" in detail
    assert trusted.status_code == 200
    assert world.seen == [{"nf_instance_id": amf.nf_instance_id, "nf_set_id": AMF_SET}]


def test_malformed_xfcc_from_nginx_is_rejected_not_ignored(world: Deployment) -> None:
    amf = world.pki.amf()

    with world.via_nginx(amf) as client:
        response = client.get(MISCONFIGURED_PATH, headers=bearer(world.pki.instance_token(amf)))

    detail = assert_problem(response, 403, "PEER_CERTIFICATE_INVALID")
    assert "forwarded client certificate" in detail
    assert world.seen == []


@pytest.mark.parametrize(
    "value",
    [
        'Cert="-----BEGIN%20CERTIFICATE-----',
        'Cert="%ZZ"',
        "Cert=",
        'Hash=00;Hash=11;Cert="x"',
        'Unknown="x"',
        "Hash=00",
    ],
    ids=["truncated", "bad-percent", "empty", "repeated-key", "unknown-key", "no-cert"],
)
def test_malformed_xfcc_from_the_trusted_address_is_rejected(
    world: Deployment, value: str
) -> None:
    amf = world.pki.amf()
    headers = {**bearer(world.pki.instance_token(amf)), XFCC: value}

    with world.direct("127.0.0.1") as client:
        response = client.get(AM_DATA, headers=headers)

    detail = assert_problem(response, 403, "PEER_CERTIFICATE_INVALID")
    assert "forwarded client certificate" in detail
    assert world.seen == []


def test_missing_nginx_fails_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(nginx_module, "_SEARCH_PATH", str(tmp_path))

    missing = "nginx not installed: apt-get install nginx"
    with pytest.raises(nginx_module.NginxError, match=missing):
        Nginx(tmp_path, lambda nginx: "")
