"""Per-request cost of SetAuthMiddleware, called straight through ASGI with no network.

Each case is timed against the bare Starlette app measured in the same run, and printed as
microseconds per request and as a ratio to that baseline. Run from the repository root:

    python -m benchmarks.bench_requests [--requests N] [--repeats R]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from sbi_setauth import SetAuthMiddleware, Settings
from sbi_setauth.testing import CA, Nrf, NfCertificate

PRODUCER_ID = "9f0cd3c4-6a0c-4d0b-8f43-3c9f6bb5f5a1"
AMF_SET = "set1.amfset.5gc.mnc001.mcc001"
AM_DATA = "/nudm-sdm/v2/imsi-001010000000001/am-data"


@dataclass(frozen=True)
class Case:
    """One kind of request: its headers, the peer certificate chain and the expected status."""

    name: str
    headers: list[tuple[bytes, bytes]]
    peer_chain: list[str] | None
    status: int


class Operator:
    """An operator CA, an NRF, and the files a producer's settings point at."""

    def __init__(self, directory: Path) -> None:
        self.ca = CA()
        self.nrf = Nrf()
        self.jwks_path = self.nrf.write_jwks(directory / "nrf.jwks")
        self.anchors_path = self.ca.write_pem(directory / "anchors.pem")
        self.amf: NfCertificate = self.ca.issue_nf_certificate(nf_type="AMF", nf_set_id=AMF_SET)

    def settings(self, **overrides: Any) -> Settings:
        """Settings of a UDM that serves nudm-sdm, with `overrides` applied."""
        values: dict[str, Any] = {
            "nf_type": "UDM",
            "nf_instance_id": PRODUCER_ID,
            "services": "nudm-sdm",
            "nrf_issuers": self.nrf.nrf_instance_id,
            "nrf_keys": str(self.jwks_path),
            "trust_anchors": str(self.anchors_path),
        }
        values.update(overrides)
        return Settings(**values)

    def instance_token(self) -> str:
        """An access token bound to the AMF instance."""
        return self.nrf.access_token(sub=self.amf.nf_instance_id, aud="UDM", scope="nudm-sdm")

    def set_token(self) -> str:
        """An access token for the AMF's whole NF Set."""
        return self.nrf.access_token(
            sub=self.amf.nf_instance_id, aud="UDM", scope="nudm-sdm", nf_set_id=AMF_SET
        )


def bare_app() -> Starlette:
    """The producer's own app, without any verification."""

    async def am_data(request: Request) -> JSONResponse:
        consumer = getattr(request.state, "consumer", None)
        return JSONResponse({"consumer": consumer.nf_instance_id if consumer else None})

    return Starlette(routes=[Route("/nudm-sdm/v2/{supi}/am-data", am_data)])


def protected_app(settings: Settings) -> SetAuthMiddleware:
    """The producer's app behind the middleware."""
    return SetAuthMiddleware(bare_app(), settings=settings)


def bearer(token: str) -> tuple[bytes, bytes]:
    """An Authorization header carrying `token`."""
    return (b"authorization", f"Bearer {token}".encode())


def binding(nf_set_id: str) -> tuple[bytes, bytes]:
    """A 3gpp-Sbi-Binding header naming the consumer NF Set."""
    return (b"3gpp-sbi-binding", f"bl=nf-set; nfset={nf_set_id}".encode())


def _scope(case: Case) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "2",
        "method": "GET",
        "scheme": "https",
        "path": AM_DATA,
        "raw_path": AM_DATA.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"udm.example.org"), *case.headers],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 443),
        "extensions": {},
    }
    if case.peer_chain is not None:
        scope["extensions"]["tls"] = {"client_cert_chain": case.peer_chain}
    return scope


async def call(app: ASGIApp, case: Case) -> int:
    """Send one request for `case` through `app` and return the response status."""
    template = _scope(case)
    scope = dict(template, extensions={k: dict(v) for k, v in template["extensions"].items()})
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def microseconds_per_request(
    app: ASGIApp, case: Case, *, requests: int, repeats: int
) -> float:
    """The median over `repeats` runs of the mean time of `requests` calls, in microseconds."""
    status = await call(app, case)
    if status != case.status:
        raise RuntimeError(f"{case.name}: status {status}, expected {case.status}")
    for _ in range(min(requests, 200)):
        await call(app, case)

    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(requests):
            await call(app, case)
        runs.append((time.perf_counter() - started) / requests * 1e6)
    return statistics.median(runs)


def print_table(title: str, rows: list[tuple[str, float]], baseline: float) -> None:
    """Print µs per request and the ratio to `baseline` for each row."""
    width = max(len(name) for name, _ in rows)
    print(title)
    print(f"  {'case':<{width}}  {'us/request':>10}  {'x baseline':>10}")
    for name, micros in rows:
        print(f"  {name:<{width}}  {micros:>10.1f}  {micros / baseline:>10.2f}")


def request_cases(operator: Operator) -> list[tuple[Case, Callable[[], ASGIApp]]]:
    """The measured cases, each with the app that serves it."""
    peer = operator.amf.chain_pem + [operator.ca.cert_pem.decode()]
    set_headers = [bearer(operator.set_token()), binding(AMF_SET)]
    forged = Nrf(operator.nrf.nrf_instance_id, kid=operator.nrf.kid).access_token(
        sub=operator.amf.nf_instance_id, aud="UDM", scope="nudm-sdm"
    )
    protected = protected_app(operator.settings())
    return [
        (Case("bare Starlette app (baseline)", [], None, 200), bare_app),
        (
            Case("instance token, cached verify", [bearer(operator.instance_token())], peer, 200),
            lambda: protected,
        ),
        (Case("set token with peer cert", set_headers, peer, 200), lambda: protected),
        (
            Case(
                "set token + CCA",
                [*set_headers, (b"3gpp-sbi-client-credentials", operator.amf.cca().encode())],
                peer,
                200,
            ),
            lambda: protected,
        ),
        (Case("rejection: no token", [], peer, 401), lambda: protected),
        (
            Case("rejection: bad signature (uncached)", [bearer(forged)], peer, 401),
            lambda: protected,
        ),
    ]


async def main(requests: int, repeats: int) -> None:
    """Measure every case and print the table."""
    with tempfile.TemporaryDirectory() as directory:
        operator = Operator(Path(directory))
        rows = []
        for case, app in request_cases(operator):
            micros = await microseconds_per_request(
                app(), case, requests=requests, repeats=repeats
            )
            rows.append((case.name, micros))
    print_table(
        f"SetAuthMiddleware per request through ASGI ({requests} requests x {repeats} runs, "
        "median; EXCLUSIVE_USE with the memory store)",
        rows,
        rows[0][1],
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per run")
    parser.add_argument("--repeats", type=int, default=5, help="runs per case")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.requests, arguments.repeats))
