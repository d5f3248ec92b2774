"""`SbiAuth` against the example NRF and producers, over mutual TLS and HTTP/2."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sbi_setauth.client import NfCredentials, SbiAuth, TokenCache, TokenRequestError, mtls_context
from sbi_setauth.examples import udm, udm_fastapi
from sbi_setauth.examples.nrf import create_nrf_app
from sbi_setauth.serving import BackgroundServer
from sbi_setauth.settings import Settings
from sbi_setauth.testing import CA, NfCertificate, Nrf

AMF_SET = "set1.amfset.5gc.mnc001.mcc001"
UDM_ID = "9f0cd3c4-6a0c-4d0b-8f43-3c9f6bb5f5a1"
AM_DATA = "/nudm-sdm/v2/imsi-001010000000001/am-data"
SMF_SELECT_DATA = "/nudm-sdm/v2/imsi-001010000000001/smf-select-data"


class Network:
    """An NRF and a UDM served on 127.0.0.1, and AMFs that call them."""

    def __init__(self, directory: Path, stack: contextlib.ExitStack, **options: Any) -> None:
        self.directory = directory
        self.ca = CA()
        self.nrf = Nrf()
        self.anchors = self.ca.write_pem(directory / "ca.pem")
        self.scopes_file = directory / "scopes.json"
        self.scopes_file.write_text(
            json.dumps({"GET /nudm-sdm/v2/{supi}/am-data": "nudm-sdm:am-data:read"})
        )
        self.environment = {
            "SBI_SETAUTH_NF_TYPE": "UDM",
            "SBI_SETAUTH_NF_INSTANCE_ID": UDM_ID,
            "SBI_SETAUTH_SERVICES": "nudm-sdm",
            "SBI_SETAUTH_NRF_ISSUERS": self.nrf.nrf_instance_id,
            "SBI_SETAUTH_NRF_KEYS": str(self.nrf.write_jwks(directory / "nrf.jwks")),
            "SBI_SETAUTH_TRUST_ANCHORS": str(self.anchors),
            "SBI_SETAUTH_OPERATION_SCOPES": str(self.scopes_file),
            "SBI_SETAUTH_EXEMPT_PATHS": "/health",
            "SBI_SETAUTH_CLOCK_SKEW": "0",
        }
        nrf_app = create_nrf_app(
            nrf=self.nrf,
            trust_anchors=self.anchors,
            token_lifetime=options.get("token_lifetime", 600),
        )
        producer = options.get("producer", udm).create_app(Settings.from_env(self.environment))
        self.nrf_server = stack.enter_context(self.serve(nrf_app, "NRF"))
        self.udm_server = stack.enter_context(self.serve(producer, "UDM"))
        self.token_url = self.nrf_server.url + "/oauth2/token"

    def serve(self, app: Any, nf_type: str) -> BackgroundServer:
        certificate = self.ca.issue_nf_certificate(nf_type=nf_type, ip_addresses=["127.0.0.1"])
        certfile, keyfile = certificate.write_cert_and_key(self.directory)
        return BackgroundServer(app, certfile=certfile, keyfile=keyfile, ca_certs=self.anchors)

    def amf(self, nf_set_id: str | None = AMF_SET) -> NfCertificate:
        return self.ca.issue_nf_certificate(nf_type="AMF", nf_set_id=nf_set_id)

    def tls(self, amf: NfCertificate) -> Any:
        certfile, keyfile = amf.write_cert_and_key(self.directory)
        return mtls_context(trust_anchors=self.anchors, certfile=certfile, keyfile=keyfile)

    def auth(self, amf: NfCertificate, **options: Any) -> SbiAuth:
        options.setdefault("scope", "nudm-sdm nudm-sdm:am-data:read")
        return SbiAuth(
            token_url=self.token_url,
            nf_instance_id=amf.nf_instance_id,
            nf_type="AMF",
            target_nf_type="UDM",
            certificate=amf,
            tls_context=self.tls(amf),
            **options,
        )


@pytest.fixture
def stack() -> Iterator[contextlib.ExitStack]:
    with contextlib.ExitStack() as stack:
        yield stack


@pytest.fixture
def network(tmp_path: Path, stack: contextlib.ExitStack) -> Network:
    return Network(tmp_path, stack)


def test_set_token_request_is_accepted_over_http2(network: Network) -> None:
    amf = network.amf()
    auth = network.auth(amf, nf_set_id=AMF_SET)
    with httpx.Client(auth=auth, verify=network.tls(amf), http2=True) as client:
        first = client.get(network.udm_server.url + AM_DATA)
        second = client.get(network.udm_server.url + AM_DATA)
    auth.close()

    assert (first.status_code, second.status_code) == (200, 200)
    assert first.http_version == "HTTP/2"
    served = first.json()["servedTo"]
    assert served["nfInstanceId"] == amf.nf_instance_id
    assert served["nfSetId"] == AMF_SET
    assert served["setToken"] is True
    assert "cca" in served["setProvenBy"] and "request" in served["setProvenBy"]
    assert auth.token_requests == 1


async def test_async_client_uses_the_same_auth(network: Network) -> None:
    amf = network.amf()
    auth = network.auth(amf)
    async with httpx.AsyncClient(auth=auth, verify=network.tls(amf), http2=True) as client:
        response = await client.get(network.udm_server.url + AM_DATA)
    await auth.aclose()

    assert response.status_code == 200
    assert response.http_version == "HTTP/2"
    assert response.json()["servedTo"]["setToken"] is False


def test_token_is_requested_again_once_within_the_refresh_margin(network: Network) -> None:
    now = [time.time()]
    amf = network.amf()
    auth = network.auth(amf, refresh_margin=30, clock=lambda: now[0])
    with httpx.Client(auth=auth, verify=network.tls(amf), http2=True) as client:
        client.get(network.udm_server.url + AM_DATA)
        now[0] += 600 - 31
        client.get(network.udm_server.url + AM_DATA)
        assert auth.token_requests == 1
        now[0] += 2
        response = client.get(network.udm_server.url + AM_DATA)
    auth.close()

    assert response.status_code == 200
    assert auth.token_requests == 2


def test_expired_token_rejected_by_producer_is_replaced_and_retried(
    tmp_path: Path, stack: contextlib.ExitStack
) -> None:
    network = Network(tmp_path, stack, token_lifetime=1)
    amf = network.amf()

    def lagging_clock() -> float:
        return time.time() - 120

    auth = network.auth(amf, refresh_margin=0, clock=lagging_clock)
    with httpx.Client(auth=auth, verify=network.tls(amf), http2=True) as client:
        assert client.get(network.udm_server.url + AM_DATA).status_code == 200
        requested = auth.token_requests
        time.sleep(1.1)
        response = client.get(network.udm_server.url + AM_DATA)
    auth.close()

    assert response.status_code == 200
    assert auth.token_requests == requested + 1


def test_instances_sharing_a_cache_share_the_set_token(network: Network) -> None:
    cache = TokenCache()
    first, second = network.amf(), network.amf()
    tokens = []
    for amf in (first, second):
        auth = network.auth(amf, nf_set_id=AMF_SET, token_cache=cache)
        tokens.append(auth.get_access_token())
        auth.close()
    assert tokens[0] == tokens[1]


def test_nrf_refusal_raises_token_request_error(network: Network) -> None:
    amf = network.amf(nf_set_id=None)
    auth = network.auth(amf, nf_set_id=AMF_SET)
    with httpx.Client(auth=auth, verify=network.tls(amf), http2=True) as client:
        with pytest.raises(TokenRequestError) as raised:
            client.get(network.udm_server.url + AM_DATA)
    auth.close()
    assert raised.value.status_code == 400
    assert raised.value.error == "invalid_client"


def test_credentials_loaded_from_pem_files_sign_accepted_ccas(network: Network) -> None:
    amf = network.amf()
    certfile, keyfile = amf.write_cert_and_key(network.directory)
    credentials = NfCredentials.from_pem_files(certfile, keyfile)
    auth = SbiAuth(
        token_url=network.token_url,
        nf_instance_id=amf.nf_instance_id,
        nf_type="AMF",
        target_nf_type="UDM",
        scope="nudm-sdm nudm-sdm:am-data:read",
        nf_set_id=AMF_SET,
        certificate=credentials,
        tls_context=network.tls(amf),
    )
    tls = network.tls(amf)
    with httpx.Client(auth=auth, verify=tls, http2=True) as client:
        response = client.get(network.udm_server.url + AM_DATA)
    auth.close()
    assert response.status_code == 200
    assert "cca_signer_certificate" in response.json()["servedTo"]["setProvenBy"]


def test_auth_needs_a_way_to_reach_the_nrf() -> None:
    with pytest.raises(ValueError):
        SbiAuth(
            token_url="https://127.0.0.1:1/oauth2/token",
            nf_instance_id="9f0cd3c4-6a0c-4d0b-8f43-3c9f6bb5f5a2",
            nf_type="AMF",
            target_nf_type="UDM",
            scope="nudm-sdm",
            send_cca=False,
        )


def test_fastapi_route_without_its_scope_answers_insufficient_scope(
    tmp_path: Path, stack: contextlib.ExitStack
) -> None:
    network = Network(tmp_path, stack, producer=udm_fastapi)
    amf = network.amf()
    auth = network.auth(amf)
    with httpx.Client(auth=auth, verify=network.tls(amf), http2=True) as client:
        allowed = client.get(network.udm_server.url + AM_DATA)
        refused = client.get(network.udm_server.url + SMF_SELECT_DATA)
        health = client.get(network.udm_server.url + "/health")
    auth.close()

    assert allowed.status_code == 200
    assert allowed.json()["servedTo"]["nfInstanceId"] == amf.nf_instance_id
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["cause"] == "INSUFFICIENT_SCOPE"
    challenge = refused.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="nudm-sdm:smf-select-data:read"' in challenge
    assert health.status_code == 200
