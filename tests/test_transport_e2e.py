"""End to end over real sockets: a producer served with mutual TLS and HTTP/2, the middleware
reading the client certificate from the TLS session, direct and through an SCP.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sbi_setauth import SetAuthMiddleware
from sbi_setauth.serving import BackgroundServer
from sbi_setauth.testing import CA, NfCertificate

from .conftest import AM_DATA, AMF_SET, OTHER_AMF_SET, PRODUCER_ID, Pki, bearer, binding

SCP_ID = "5c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5"


@dataclass
class Transport:
    """A producer served over mTLS, its PKI, and a record of what its handler saw."""

    pki: Pki
    server: BackgroundServer
    directory: Path
    seen: list[dict[str, Any]] = field(default_factory=list)

    def client(self, nf: NfCertificate | None) -> httpx.Client:
        """An HTTP/2 client that trusts the operator CA and presents `nf`'s certificate."""
        context = ssl.create_default_context(cafile=str(self.pki.anchors_path))
        if nf is not None:
            certfile, keyfile = nf.write_cert_and_key(self.directory)
            context.load_cert_chain(str(certfile), str(keyfile))
        return httpx.Client(verify=context, http2=True, base_url=self.server.url, timeout=10)

    def get(self, nf: NfCertificate, headers: dict[str, str]) -> httpx.Response:
        with self.client(nf) as client:
            return client.get(AM_DATA, headers=headers)


def producer_app(pki: Pki, seen: list[dict[str, Any]]) -> SetAuthMiddleware:
    """A UDM app whose handler reports the consumer the middleware accepted."""

    async def am_data(request: Request) -> JSONResponse:
        consumer = request.state.consumer
        report = {
            "nf_instance_id": consumer.nf_instance_id,
            "nf_set_id": consumer.nf_set_id,
            "via_scp": consumer.via_scp,
            "proof": consumer.nf_instance_id_proof,
            "http_version": request.scope["http_version"],
        }
        seen.append(report)
        return JSONResponse(report)

    app = Starlette(routes=[Route("/nudm-sdm/v2/{supi}/am-data", am_data)])
    settings = pki.settings(peer_cert="tls", trusted_scps=SCP_ID)
    return SetAuthMiddleware(app, settings=settings)


@pytest.fixture(scope="module")
def transport(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Transport]:
    directory = tmp_path_factory.mktemp("transport")
    pki = Pki(directory)
    udm = pki.ca.issue_nf_certificate(
        PRODUCER_ID, nf_type="UDM", ip_addresses=["127.0.0.1"], extra_dns=["localhost"]
    )
    certfile, keyfile = udm.write_cert_and_key(directory)
    seen: list[dict[str, Any]] = []
    with BackgroundServer(
        producer_app(pki, seen),
        certfile=certfile,
        keyfile=keyfile,
        ca_certs=pki.anchors_path,
    ) as server:
        yield Transport(pki, server, directory, seen)


@pytest.fixture
def world(transport: Transport) -> Transport:
    transport.seen.clear()
    return transport


def set_headers(token: str, nf_set_id: str = AMF_SET) -> dict[str, str]:
    return {**bearer(token), "3gpp-Sbi-Binding": binding(nf_set_id)}


def assert_problem(response: httpx.Response, status: int, cause: str) -> None:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert (problem["status"], problem["cause"]) == (status, cause)
    assert problem["title"] and problem["detail"]


def test_http2_request_is_accepted_for_the_client_certificate_instance(world: Transport) -> None:
    amf = world.pki.amf()

    response = world.get(amf, bearer(world.pki.instance_token(amf)))

    assert response.status_code == 200
    assert response.http_version == "HTTP/2"
    assert response.json() == {
        "nf_instance_id": amf.nf_instance_id,
        "nf_set_id": AMF_SET,
        "via_scp": None,
        "proof": "peer_certificate",
        "http_version": "2",
    }


def test_instance_token_of_another_instance_is_rejected(world: Transport) -> None:
    amf, other = world.pki.amf(), world.pki.amf()

    response = world.get(amf, bearer(world.pki.instance_token(other)))

    assert_problem(response, 403, "PEER_CERTIFICATE_INVALID")
    assert response.http_version == "HTTP/2"
    assert world.seen == []


@pytest.mark.parametrize("presented", ["none", "other_ca"])
def test_client_without_an_operator_certificate_fails_the_handshake(
    world: Transport, presented: str
) -> None:
    nf = CA().issue_nf_certificate(nf_type="AMF") if presented == "other_ca" else None

    with world.client(nf) as client:
        with pytest.raises(httpx.TransportError):
            client.get(AM_DATA, headers=bearer(world.pki.instance_token(world.pki.amf())))

    assert world.seen == []


def test_set_token_is_accepted_from_an_instance_of_the_set(world: Transport) -> None:
    amf = world.pki.amf()
    token = world.pki.set_token(world.pki.amf())

    response = world.get(amf, set_headers(token))

    assert response.status_code == 200
    assert response.http_version == "HTTP/2"
    assert response.json()["nf_instance_id"] == amf.nf_instance_id
    assert response.json()["nf_set_id"] == AMF_SET


def test_set_token_from_an_instance_of_another_set_is_rejected(world: Transport) -> None:
    intruder = world.pki.amf(OTHER_AMF_SET)
    token = world.pki.set_token(world.pki.amf())

    response = world.get(intruder, set_headers(token, OTHER_AMF_SET))
    assert_problem(response, 403, "NF_SET_ID_MISMATCH")

    response = world.get(intruder, set_headers(token))
    assert_problem(response, 403, "NF_SET_ID_MISMATCH")
    assert world.seen == []


def test_second_instance_of_the_set_is_rejected_while_the_first_holds_the_lease(
    world: Transport,
) -> None:
    first, second = world.pki.amf(), world.pki.amf()
    headers = set_headers(world.pki.set_token(first))

    assert world.get(first, headers).status_code == 200
    assert_problem(world.get(second, headers), 403, "SET_TOKEN_IN_USE")
    assert world.get(first, headers).status_code == 200
    assert [report["nf_instance_id"] for report in world.seen] == [first.nf_instance_id] * 2


def test_request_relayed_by_scp_with_consumer_cca_is_accepted(world: Transport) -> None:
    scp = world.pki.ca.issue_nf_certificate(SCP_ID, nf_type="SCP")
    amf = world.pki.amf()
    headers = set_headers(world.pki.set_token(world.pki.amf()))
    headers["3gpp-Sbi-Client-Credentials"] = amf.cca()

    response = world.get(scp, headers)

    assert response.status_code == 200
    assert response.http_version == "HTTP/2"
    assert response.json() == {
        "nf_instance_id": amf.nf_instance_id,
        "nf_set_id": AMF_SET,
        "via_scp": SCP_ID,
        "proof": "cca",
        "http_version": "2",
    }


def test_request_relayed_by_scp_without_cca_is_rejected(world: Transport) -> None:
    scp = world.pki.ca.issue_nf_certificate(SCP_ID, nf_type="SCP")

    response = world.get(scp, set_headers(world.pki.set_token(world.pki.amf())))

    assert_problem(response, 403, "CCA_VERIFICATION_FAILURE")
    assert world.seen == []


def test_scp_not_in_trusted_scps_is_treated_as_the_consumer(world: Transport) -> None:
    rogue_scp = world.pki.ca.issue_nf_certificate(nf_type="SCP")
    amf = world.pki.amf()
    headers = set_headers(world.pki.set_token(world.pki.amf()))
    headers["3gpp-Sbi-Client-Credentials"] = amf.cca()

    response = world.get(rogue_scp, headers)

    assert_problem(response, 403, "CCA_VERIFICATION_FAILURE")
    assert world.seen == []
