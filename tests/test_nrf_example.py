"""The example NRF token endpoint: AccessTokenRsp for authenticated requesters, AccessTokenErr
for each way a request can be refused."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sbi_setauth.client import mtls_context
from sbi_setauth.examples.nrf import MAX_FORM_SIZE, create_nrf_app
from sbi_setauth.jws import load_json_object, parse_compact
from sbi_setauth.serving import BackgroundServer
from sbi_setauth.testing import CA, NfCertificate, Nrf

AMF_SET = "set1.amfset.5gc.mnc001.mcc001"
OTHER_AMF_SET = "set2.amfset.5gc.mnc001.mcc001"
CCA_HEADER = "3gpp-Sbi-Client-Credentials"


class World:
    """An operator CA, an NRF and its token endpoint, reachable through ASGI."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca = CA()
        self.nrf = Nrf()
        self.anchors = self.ca.write_pem(directory / "ca.pem")
        self.app = create_nrf_app(nrf=self.nrf, trust_anchors=self.anchors, token_lifetime=120)
        self.amf = self.ca.issue_nf_certificate(nf_type="AMF", nf_set_id=AMF_SET)

    def form(self, amf: NfCertificate | None = None, **fields: str | None) -> dict[str, str]:
        amf = amf or self.amf
        form = {
            "grant_type": "client_credentials",
            "nfInstanceId": amf.nf_instance_id,
            "nfType": "AMF",
            "targetNfType": "UDM",
            "scope": "nudm-sdm",
        }
        for name, value in fields.items():
            if value is None:
                form.pop(name, None)
            else:
                form[name] = value
        return form

    async def post(
        self,
        *,
        peer: NfCertificate | None,
        data: dict[str, str] | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        async def with_peer(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "http" and peer is not None:
                scope.setdefault("extensions", {})["tls"] = {"client_cert_chain": peer.chain_pem}
            await self.app(scope, receive, send)

        transport = httpx.ASGITransport(app=with_peer)
        async with httpx.AsyncClient(transport=transport, base_url="https://nrf") as client:
            if content is not None:
                return await client.post("/oauth2/token", content=content, headers=headers)
            return await client.post(
                "/oauth2/token", data=data if data is not None else self.form(), headers=headers
            )


def claims_of(response: httpx.Response) -> dict[str, Any]:
    token = response.json()["access_token"]
    return load_json_object(parse_compact(token, max_size=8192).payload)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


@pytest.fixture
def served(world: World) -> Iterator[BackgroundServer]:
    nrf_certificate = world.ca.issue_nf_certificate(nf_type="NRF", ip_addresses=["127.0.0.1"])
    certfile, keyfile = nrf_certificate.write_cert_and_key(world.directory)
    with BackgroundServer(
        world.app, certfile=certfile, keyfile=keyfile, ca_certs=world.anchors
    ) as server:
        yield server


def test_instance_token_over_mutual_tls_and_http2(world: World, served: BackgroundServer) -> None:
    certfile, keyfile = world.amf.write_cert_and_key(world.directory)
    context = mtls_context(trust_anchors=world.anchors, certfile=certfile, keyfile=keyfile)
    with httpx.Client(verify=context, http2=True) as client:
        response = client.post(served.url + "/oauth2/token", data=world.form())

    assert response.status_code == 200
    assert response.http_version == "HTTP/2"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 120
    assert body["scope"] == "nudm-sdm"
    claims = claims_of(response)
    assert claims["iss"] == world.nrf.nrf_instance_id
    assert claims["sub"] == world.amf.nf_instance_id
    assert claims["aud"] == "UDM"
    assert claims["exp"] - claims["iat"] == 120
    assert "consumerNfSetId" not in claims


async def test_set_token_when_the_peer_certificate_carries_the_set(world: World) -> None:
    response = await world.post(peer=world.amf, data=world.form(requesterNfSetId=AMF_SET.upper()))

    assert response.status_code == 200
    claims = claims_of(response)
    assert claims["consumerNfSetId"] == AMF_SET
    assert claims["jti"]


async def test_set_token_when_the_cca_signer_carries_the_set(world: World) -> None:
    producer = str(uuid.uuid4())
    form = world.form(requesterNfSetId=AMF_SET, targetNfInstanceId=producer)
    response = await world.post(
        peer=None, data=form, headers={CCA_HEADER: world.amf.cca(aud=["NRF"])}
    )

    assert response.status_code == 200
    claims = claims_of(response)
    assert claims["consumerNfSetId"] == AMF_SET
    assert claims["aud"] == [producer]


async def test_cca_in_client_assertion_form_field_is_accepted(world: World) -> None:
    form = world.form(
        requesterNfSetId=AMF_SET,
        client_assertion=world.amf.cca(aud=["NRF"]),
        client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    )
    response = await world.post(peer=None, data=form)
    assert response.status_code == 200
    assert claims_of(response)["consumerNfSetId"] == AMF_SET


async def test_set_claim_name_is_configurable(world: World) -> None:
    world.app = create_nrf_app(
        nrf=world.nrf, trust_anchors=world.anchors, set_field="nfSetId", set_claim="setOfNf"
    )
    response = await world.post(peer=world.amf, data=world.form(nfSetId=AMF_SET))
    assert claims_of(response)["setOfNf"] == AMF_SET


REFUSALS = {
    "wrong grant type": ({"grant_type": "password"}, "unsupported_grant_type"),
    "no grant type": ({"grant_type": None}, "invalid_request"),
    "no nfInstanceId": ({"nfInstanceId": None}, "invalid_request"),
    "nfInstanceId not a UUID": ({"nfInstanceId": "amf-1"}, "invalid_request"),
    "no targetNfType": ({"targetNfType": None}, "invalid_request"),
    "malformed set": ({"requesterNfSetId": "set1.amfset.5gc.mnc01.mcc001"}, "invalid_request"),
    "malformed scope": ({"scope": "nudm-sdm  nudm-uecm"}, "invalid_scope"),
    "scope of another NF type": ({"scope": "nudm-sdm nsmf-pdusession"}, "invalid_scope"),
    "nfType not in certificate": ({"nfType": "SMF"}, "invalid_client"),
    "another instance": ({"nfInstanceId": str(uuid.uuid4())}, "invalid_client"),
    "set not in certificate": ({"requesterNfSetId": OTHER_AMF_SET}, "invalid_client"),
}


@pytest.mark.parametrize("case", list(REFUSALS), ids=list(REFUSALS))
async def test_refused_requests_get_access_token_err(world: World, case: str) -> None:
    changes, error = REFUSALS[case]
    response = await world.post(peer=world.amf, data=world.form(**changes))

    assert response.status_code == 400
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["error"] == error
    assert "access_token" not in response.json()


async def test_requester_without_certificate_or_cca_is_invalid_client(world: World) -> None:
    response = await world.post(peer=None)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client"


async def test_cca_signed_by_another_instance_is_invalid_client(world: World) -> None:
    other = world.ca.issue_nf_certificate(nf_type="AMF", nf_set_id=AMF_SET)
    response = await world.post(peer=None, headers={CCA_HEADER: other.cca(aud=["NRF"])})
    assert response.json()["error"] == "invalid_client"


async def test_cca_for_another_audience_is_invalid_client(world: World) -> None:
    response = await world.post(peer=None, headers={CCA_HEADER: world.amf.cca(aud=["UDM"])})
    assert response.json()["error"] == "invalid_client"


async def test_cca_naming_another_set_than_requested_is_invalid_client(world: World) -> None:
    cca = world.amf.cca(aud=["NRF"], nf_set_id=OTHER_AMF_SET)
    form = world.form(requesterNfSetId=AMF_SET)
    response = await world.post(peer=None, data=form, headers={CCA_HEADER: cca})
    assert response.json()["error"] == "invalid_client"


async def test_certificate_of_another_operator_is_invalid_client(world: World) -> None:
    stranger = CA().issue_nf_certificate(world.amf.nf_instance_id, nf_type="AMF")
    response = await world.post(peer=stranger)
    assert response.json()["error"] == "invalid_client"


async def test_body_that_is_not_a_form_is_invalid_request(world: World) -> None:
    response = await world.post(
        peer=world.amf,
        content=json.dumps(world.form()).encode(),
        headers={"content-type": "application/json"},
    )
    assert response.json()["error"] == "invalid_request"


async def test_duplicated_field_is_invalid_request(world: World) -> None:
    body = "grant_type=client_credentials&grant_type=client_credentials&scope=nudm-sdm"
    response = await world.post(
        peer=world.amf,
        content=body.encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.json()["error"] == "invalid_request"


async def test_oversized_body_is_refused_before_parsing(world: World) -> None:
    body = "scope=" + "a" * MAX_FORM_SIZE
    response = await world.post(
        peer=world.amf,
        content=body.encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert "larger" in response.json()["error_description"]
