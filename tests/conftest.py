"""Shared fixtures: an operator PKI, an NRF and a protected producer app, made fresh per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sbi_setauth import SetAuthMiddleware, Settings
from sbi_setauth.testing import CA, AsgiAnswer, NfCertificate, Nrf, asgi_request

PRODUCER_ID = "9f0cd3c4-6a0c-4d0b-8f43-3c9f6bb5f5a1"
AMF_SET = "set1.amfset.5gc.mnc001.mcc001"
OTHER_AMF_SET = "set2.amfset.5gc.mnc001.mcc001"
AM_DATA = "/nudm-sdm/v2/imsi-001010000000001/am-data"


@dataclass(frozen=True, slots=True)
class Answer(AsgiAnswer):
    """What a consumer sees of one request, and whether the producer's handler ran."""

    handler_ran: bool = False


@dataclass
class Producer:
    """A UDM-like Starlette app behind the middleware, called straight through ASGI."""

    middleware: SetAuthMiddleware
    calls: list[Request] = field(default_factory=list)
    consumers: list[Any] = field(default_factory=list)

    async def request(
        self,
        path: str = AM_DATA,
        *,
        method: str = "GET",
        headers: Iterable[tuple[str, str]] | Mapping[str, str] = (),
        peer: NfCertificate | list[str] | None = None,
        client: tuple[str, int] = ("127.0.0.1", 40000),
        query: bytes = b"",
        raw_headers: list[tuple[bytes, bytes]] | None = None,
    ) -> Answer:
        items = list(headers.items() if isinstance(headers, Mapping) else headers)
        before = len(self.calls)
        answer = await asgi_request(
            self.middleware,
            path,
            method=method,
            headers=items + (raw_headers or []),
            peer=peer,
            client=client,
            query=query,
            host="udm.example.org",
        )
        handler_ran = len(self.calls) > before
        if not handler_ran:
            assert not answer.body_read, "the middleware read the body of a rejected request"
        return Answer(answer.status, answer.headers, answer.body, answer.body_read, handler_ran)


class Pki:
    """An operator CA, an NRF and the files the settings point at."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca = CA()
        self.nrf = Nrf()
        self.jwks_path = self.nrf.write_jwks(directory / "nrf.jwks")
        self.anchors_path = self.ca.write_pem(directory / "anchors.pem")

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = dict(
            nf_type="UDM",
            nf_instance_id=PRODUCER_ID,
            services="nudm-sdm,nudm-uecm",
            nrf_issuers=self.nrf.nrf_instance_id,
            nrf_keys=str(self.jwks_path),
            trust_anchors=str(self.anchors_path),
            exempt_paths="/health",
        )
        values.update(overrides)
        return Settings(**values)

    def amf(self, nf_set_id: str | None = AMF_SET, **options: Any) -> NfCertificate:
        return self.ca.issue_nf_certificate(nf_type="AMF", nf_set_id=nf_set_id, **options)

    def instance_token(self, amf: NfCertificate, **options: Any) -> str:
        options.setdefault("aud", "UDM")
        options.setdefault("scope", "nudm-sdm")
        return self.nrf.access_token(sub=amf.nf_instance_id, **options)

    def set_token(self, amf: NfCertificate, nf_set_id: str = AMF_SET, **options: Any) -> str:
        return self.instance_token(amf, nf_set_id=nf_set_id, **options)


def build_producer(settings: Settings, **middleware_options: Any) -> Producer:
    calls: list[Request] = []
    consumers: list[Any] = []

    async def am_data(request: Request) -> JSONResponse:
        calls.append(request)
        consumers.append(request.state.consumer)
        return JSONResponse({"ok": True, "consumer": request.state.consumer.nf_instance_id})

    async def health(request: Request) -> JSONResponse:
        calls.append(request)
        return JSONResponse({"status": "up"})

    app = Starlette(
        routes=[
            Route("/nudm-sdm/v2/{supi}/am-data", am_data, methods=["GET", "PUT"]),
            Route("/nudm-uecm/v1/{supi}/registrations", am_data, methods=["GET"]),
            Route("/nudm-ee/v1/{supi}", am_data),
            Route("/health", health),
        ]
    )
    middleware = SetAuthMiddleware(app, settings=settings, **middleware_options)
    return Producer(middleware, calls, consumers)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


@pytest.fixture
def producer(pki: Pki) -> Producer:
    return build_producer(pki.settings())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def binding(nf_set_id: str) -> str:
    return f"bl=nf-set; nfset={nf_set_id}"


def random_instance_id() -> str:
    return str(uuid.uuid4())
