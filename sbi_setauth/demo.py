"""`sbi-setauth demo`: the whole NF Set flow on 127.0.0.1, from the token request to the producer's
decision, over mutual TLS and HTTP/2, with one scenario for every decision the package makes.

An NRF, a UDM producer and an SCP-like relay are served from a temporary folder; two AMF
instances of one consumer NF Set and one AMF of another set call them through `SbiAuth`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import ssl
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .client import CCA_HEADER, SbiAuth, TokenCache, TokenRequestError, mtls_context
from .examples.nrf import TOKEN_PATH, create_nrf_app
from .examples.udm import create_app
from .serving import BackgroundServer
from .settings import Settings
from .testing import CA, NfCertificate, Nrf, sign_jws

__all__ = ["run_demo", "Scenario", "Outcome"]

AMF_SET = "set1.amfset.5gc.mnc001.mcc001"
OTHER_AMF_SET = "set2.amfset.5gc.mnc001.mcc001"
UDM_INSTANCE_ID = "9f0cd3c4-6a0c-4d0b-8f43-3c9f6bb5f5a1"
SUPI = "imsi-001010000000001"
AM_DATA = f"/nudm-sdm/v2/{SUPI}/am-data"
READ_SCOPES = "nudm-sdm nudm-sdm:am-data:read"
HOLDER_LEASE = 1.0
MAX_RELAYED_BODY = 65536
_RELAYED_HEADERS = ("authorization", "3gpp-sbi-client-credentials", "3gpp-sbi-binding")
_RELAYED_ANSWER_HEADERS = ("content-type", "www-authenticate", "retry-after")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a consumer saw: the status, the rejection cause (or token error), the protocol."""

    status: int
    cause: str | None
    http_version: str
    detail: str = ""

    def summary(self) -> str:
        """`status` and `cause`, as the table shows them."""
        return f"{self.status} {self.cause}" if self.cause else str(self.status)


@dataclass(frozen=True, slots=True)
class Scenario:
    """One step of the demo and what the package is expected to decide."""

    title: str
    expected_status: int
    expected_cause: str | None = None

    @property
    def expected(self) -> str:
        """`status` and `cause` expected, as the table shows them."""
        if self.expected_cause:
            return f"{self.expected_status} {self.expected_cause}"
        return str(self.expected_status)

    def matches(self, outcome: Outcome) -> bool:
        """Whether `outcome` is the expected decision, received over HTTP/2."""
        return (
            outcome.status == self.expected_status
            and outcome.cause == self.expected_cause
            and outcome.http_version == "HTTP/2"
        )


def _outcome(response: httpx.Response) -> Outcome:
    cause: str | None = None
    detail = ""
    content_type = response.headers.get("content-type", "")
    if response.status_code >= 400 and content_type.startswith(
        ("application/json", "application/problem+json")
    ):
        try:
            body = response.json()
        except ValueError:
            body = {}
        if isinstance(body, dict):
            cause = body.get("cause") or body.get("error")
            detail = str(body.get("detail") or body.get("error_description") or "")
    elif response.status_code == 200 and content_type.startswith("application/json"):
        body = response.json()
        if isinstance(body, dict) and "servedTo" in body:
            detail = json.dumps(body["servedTo"], separators=(",", ":"))
    return Outcome(response.status_code, cause, response.http_version, detail)


def _relay_app(target_url: str, tls_context: ssl.SSLContext) -> Starlette:
    """An SCP-like relay: forwards SBI requests to the producer with its own client certificate,
    keeping the consumer's access token, CCA and binding headers."""
    clients: dict[str, httpx.AsyncClient] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        clients["producer"] = httpx.AsyncClient(
            base_url=target_url, verify=tls_context, http2=True, timeout=10
        )
        yield
        await clients.pop("producer").aclose()

    async def relay(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_RELAYED_BODY:
            return Response(status_code=413)
        headers = [
            (name, value)
            for name, value in request.headers.items()
            if name in (*_RELAYED_HEADERS, "content-type")
        ]
        answer = await clients["producer"].request(
            request.method, request.url.path, headers=headers, content=body
        )
        kept = {
            name: answer.headers[name]
            for name in _RELAYED_ANSWER_HEADERS
            if name in answer.headers
        }
        return Response(answer.content, status_code=answer.status_code, headers=kept)

    methods = ["GET", "PUT", "POST", "PATCH", "DELETE"]
    return Starlette(routes=[Route("/{path:path}", relay, methods=methods)], lifespan=lifespan)


class _World:
    """The PKI, the servers and the consumers of one demo run, all in `folder`."""

    def __init__(self, folder: Path, stack: contextlib.ExitStack) -> None:
        self.folder = folder
        self.ca = CA(organization="Demo Operator")
        self.nrf = Nrf()
        self.anchors = self.ca.write_pem(folder / "operator-ca.pem")
        jwks = self.nrf.write_jwks(folder / "nrf.jwks")
        operation_scopes = folder / "operation-scopes.json"
        operation_scopes.write_text(
            json.dumps(
                {
                    "GET /nudm-sdm/v2/{supi}/am-data": "nudm-sdm:am-data:read",
                    "PUT /nudm-sdm/v2/{supi}/am-data/sor-ack": "nudm-sdm:am-data:write",
                }
            )
        )

        self.amf1 = self._nf("AMF", AMF_SET)
        self.amf2 = self._nf("AMF", AMF_SET)
        self.amf3 = self._nf("AMF", OTHER_AMF_SET)
        self.scp = self._nf("SCP", None)
        nrf_server = self._nf("NRF", None)
        udm_server = self._nf("UDM", None, UDM_INSTANCE_ID)

        self.environment = {
            "SBI_SETAUTH_NF_TYPE": "UDM",
            "SBI_SETAUTH_NF_INSTANCE_ID": UDM_INSTANCE_ID,
            "SBI_SETAUTH_SERVICES": "nudm-sdm",
            "SBI_SETAUTH_NRF_ISSUERS": self.nrf.nrf_instance_id,
            "SBI_SETAUTH_NRF_KEYS": str(jwks),
            "SBI_SETAUTH_TRUST_ANCHORS": str(self.anchors),
            "SBI_SETAUTH_OPERATION_SCOPES": str(operation_scopes),
            "SBI_SETAUTH_EXEMPT_PATHS": "/health",
            "SBI_SETAUTH_TRUSTED_SCPS": self.scp.nf_instance_id,
            "SBI_SETAUTH_HOLDER_LEASE": str(HOLDER_LEASE),
        }
        settings = Settings.from_env(self.environment)

        nrf_app = create_nrf_app(nrf=self.nrf, trust_anchors=self.anchors)
        self.nrf_server = stack.enter_context(self._server(nrf_app, nrf_server))
        self.udm_server = stack.enter_context(self._server(create_app(settings), udm_server))
        relay = _relay_app(self.udm_server.url, self.tls(self.scp))
        self.scp_server = stack.enter_context(self._server(relay, self.scp))
        self.token_url = self.nrf_server.url + TOKEN_PATH

    def _nf(
        self, nf_type: str, nf_set_id: str | None, nf_instance_id: str | None = None
    ) -> NfCertificate:
        return self.ca.issue_nf_certificate(
            nf_instance_id, nf_type=nf_type, nf_set_id=nf_set_id, ip_addresses=["127.0.0.1"]
        )

    def _server(self, app: Any, certificate: NfCertificate) -> BackgroundServer:
        certfile, keyfile = certificate.write_cert_and_key(self.folder)
        return BackgroundServer(app, certfile=certfile, keyfile=keyfile, ca_certs=self.anchors)

    def tls(self, certificate: NfCertificate) -> ssl.SSLContext:
        """A TLS client context presenting `certificate`."""
        certfile, keyfile = certificate.write_cert_and_key(self.folder)
        return mtls_context(trust_anchors=self.anchors, certfile=certfile, keyfile=keyfile)

    def auth(
        self,
        amf: NfCertificate,
        *,
        nf_set_id: str | None = None,
        scope: str = READ_SCOPES,
        token_cache: TokenCache | None = None,
    ) -> SbiAuth:
        """The `SbiAuth` of `amf`."""
        return SbiAuth(
            token_url=self.token_url,
            nf_instance_id=amf.nf_instance_id,
            nf_type="AMF",
            target_nf_type="UDM",
            scope=scope,
            nf_set_id=nf_set_id,
            certificate=amf,
            tls_context=self.tls(amf),
            token_cache=token_cache,
        )

    def client(self, amf: NfCertificate, auth: SbiAuth | None = None) -> httpx.Client:
        """An HTTP/2 client of `amf` (with `auth`, its requests carry token and CCA)."""
        return httpx.Client(auth=auth, verify=self.tls(amf), http2=True, timeout=10)


class _Runner:
    """Runs scenarios one after the other, printing progress, and keeps their results."""

    def __init__(self, out: TextIO, verbose: bool) -> None:
        self.out = out
        self.verbose = verbose
        self.results: list[tuple[Scenario, Outcome]] = []

    def run(self, scenario: Scenario, attempt: Callable[[], Outcome]) -> None:
        try:
            outcome = attempt()
        except TokenRequestError as error:
            outcome = Outcome(error.status_code, error.error, "-", error.description)
        except (httpx.HTTPError, OSError) as error:
            outcome = Outcome(0, type(error).__name__, "-", str(error)[:200])
        self.results.append((scenario, outcome))
        mark = _mark(scenario, outcome)
        number = f"[{len(self.results):2}]"
        print(
            f"{number} {scenario.title}: {outcome.summary()} over {outcome.http_version} {mark}",
            file=self.out,
            flush=True,
        )
        if self.verbose and outcome.detail:
            print(f"     {outcome.detail}", file=self.out)

    def table(self) -> str:
        rows = [("scenario", "expected", "got", "result")]
        for scenario, outcome in self.results:
            got = f"{outcome.summary()} ({outcome.http_version})"
            rows.append((scenario.title, scenario.expected, got, _mark(scenario, outcome)))
        widths = [max(len(row[column]) for row in rows) for column in range(4)]
        lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                 for row in rows]
        lines.insert(1, "  ".join("-" * width for width in widths))
        return "\n".join(lines)

    @property
    def failures(self) -> int:
        return sum(not scenario.matches(outcome) for scenario, outcome in self.results)


def _mark(scenario: Scenario, outcome: Outcome) -> str:
    return "ok" if scenario.matches(outcome) else "FAIL"


def _scenarios(world: _World, runner: _Runner, stack: contextlib.ExitStack) -> None:
    udm = world.udm_server.url
    scp = world.scp_server.url
    set_cache = TokenCache()
    instance_auth = stack.enter_context(contextlib.closing(world.auth(world.amf1)))
    narrow_auth = stack.enter_context(
        contextlib.closing(world.auth(world.amf1, scope="nudm-sdm"))
    )
    amfs = {"amf1": world.amf1, "amf2": world.amf2, "amf3": world.amf3}
    set_auths = {
        name: world.auth(amf, nf_set_id=AMF_SET, token_cache=set_cache)
        for name, amf in amfs.items()
    }
    for auth in set_auths.values():
        stack.enter_context(contextlib.closing(auth))
    plain = {name: stack.enter_context(world.client(amf)) for name, amf in amfs.items()}
    amf1 = stack.enter_context(world.client(world.amf1, instance_auth))
    amf1_narrow = stack.enter_context(world.client(world.amf1, narrow_auth))
    amf1_set = stack.enter_context(world.client(world.amf1, set_auths["amf1"]))
    amf2_set = stack.enter_context(world.client(world.amf2, set_auths["amf2"]))
    amf3_set = stack.enter_context(world.client(world.amf3, set_auths["amf3"]))

    def get(client: httpx.Client, url: str, headers: Mapping[str, str] | None = None) -> Outcome:
        return _outcome(client.get(url, headers=headers))

    def without_binding() -> Outcome:
        token = set_auths["amf1"].get_access_token()
        headers = {"Authorization": f"Bearer {token}", CCA_HEADER: set_auths["amf1"].sign_cca()}
        return get(plain["amf1"], udm + AM_DATA, headers)

    def forged_cca() -> Outcome:
        token = instance_auth.get_access_token()
        now = int(time.time())
        claims = {"sub": world.amf1.nf_instance_id, "aud": ["UDM"], "iat": now, "exp": now + 60}
        forged = sign_jws(
            claims,
            world.amf2.private_key,
            header={"x5c": [base64.b64encode(der).decode() for der in world.amf1.chain_der]},
        )
        headers = {"Authorization": f"Bearer {token}", CCA_HEADER: forged}
        return get(plain["amf1"], udm + AM_DATA, headers)

    def expired_token() -> Outcome:
        token = world.nrf.access_token(
            sub=world.amf1.nf_instance_id,
            aud="UDM",
            scope=READ_SCOPES,
            iat=int(time.time()) - 3600,
            lifetime=600,
        )
        return get(plain["amf1"], udm + AM_DATA, {"Authorization": f"Bearer {token}"})

    def token_of_amf1_from_amf2() -> Outcome:
        token = instance_auth.get_access_token()
        return get(plain["amf2"], udm + AM_DATA, {"Authorization": f"Bearer {token}"})

    def nrf_refuses_foreign_set() -> Outcome:
        auth = set_auths["amf3"]
        response = plain["amf3"].post(
            world.token_url,
            data=auth.token_request_form(),
            headers={CCA_HEADER: auth.sign_cca(["NRF"])},
        )
        return _outcome(response)

    def foreign_set_presents_token() -> Outcome:
        set_auths["amf1"].get_access_token()
        return get(amf3_set, udm + AM_DATA)

    def via_scp(cca: bool, auth: SbiAuth) -> Callable[[], Outcome]:
        def attempt() -> Outcome:
            headers = {"Authorization": f"Bearer {auth.get_access_token()}"}
            if auth.nf_set_id:
                headers["3gpp-Sbi-Binding"] = f"bl=nf-set; nfset={auth.nf_set_id}"
            if cca:
                headers[CCA_HEADER] = set_auths["amf2"].sign_cca()
            return get(plain["amf2"], scp + AM_DATA, headers)

        return attempt

    runner.run(Scenario("instance token from AMF 1", 200), lambda: get(amf1, udm + AM_DATA))
    runner.run(Scenario("health check without a token (exempt)", 200),
               lambda: get(plain["amf3"], udm + "/health"))
    runner.run(Scenario("no access token", 401, "ACCESS_TOKEN_MISSING"),
               lambda: get(plain["amf1"], udm + AM_DATA))
    runner.run(Scenario("expired access token", 401, "ACCESS_TOKEN_INVALID"), expired_token)
    runner.run(Scenario("token without nudm-sdm:am-data:read", 403, "INSUFFICIENT_SCOPE"),
               lambda: get(amf1_narrow, udm + AM_DATA))
    runner.run(Scenario("PUT with a read-only token (body never read)", 403,
                        "INSUFFICIENT_SCOPE"),
               lambda: _outcome(amf1.put(udm + AM_DATA + "/sor-ack", json={"ack": "x" * 4096})))
    runner.run(Scenario("CCA signed with another key", 403, "CCA_VERIFICATION_FAILURE"),
               forged_cca)
    runner.run(Scenario("AMF 1's instance token sent by AMF 2", 403, "PEER_CERTIFICATE_INVALID"),
               token_of_amf1_from_amf2)
    runner.run(Scenario("NRF: AMF of set 2 asks for a set 1 token", 400, "invalid_client"),
               nrf_refuses_foreign_set)
    runner.run(Scenario("set token from AMF 1 (takes the lease)", 200),
               lambda: get(amf1_set, udm + AM_DATA))
    runner.run(Scenario("set token without the NF Set ID in the request", 403,
                        "NF_SET_ID_MISSING"), without_binding)
    runner.run(Scenario("set 1 token presented by an AMF of set 2", 403, "NF_SET_ID_MISMATCH"),
               foreign_set_presents_token)
    runner.run(Scenario("set token from AMF 2 while AMF 1 holds it", 403, "SET_TOKEN_IN_USE"),
               lambda: get(amf2_set, udm + AM_DATA))
    time.sleep(HOLDER_LEASE + 0.2)
    runner.run(Scenario(f"AMF 2 takes over after {HOLDER_LEASE:g} s idle", 200),
               lambda: get(amf2_set, udm + AM_DATA))
    runner.run(Scenario("AMF 1 back while AMF 2 holds it", 403, "SET_TOKEN_IN_USE"),
               lambda: get(amf1_set, udm + AM_DATA))
    runner.run(Scenario("via SCP: set token with AMF 2's CCA", 200),
               via_scp(True, set_auths["amf2"]))
    runner.run(Scenario("via SCP: set token without a CCA", 403, "CCA_VERIFICATION_FAILURE"),
               via_scp(False, set_auths["amf2"]))
    runner.run(Scenario("via SCP: AMF 1's instance token, AMF 2's CCA", 403,
                        "TOKEN_CCA_MISMATCH"), via_scp(True, instance_auth))


def run_demo(*, verbose: bool = False, out: TextIO | None = None) -> int:
    """Run every scenario, print a table of expected and actual decisions, and return 0 when
    all matched (1 otherwise). Nothing outlives the call: servers stop, files are removed."""
    out = out or sys.stdout
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sbi-setauth-demo-") as directory:
        os.chmod(directory, 0o700)
        runner = _Runner(out, verbose)
        with contextlib.ExitStack() as stack:
            print("starting an NRF, a UDM and an SCP on 127.0.0.1 (mutual TLS, HTTP/2)", file=out)
            world = _World(Path(directory), stack)
            print(f"  NRF  {world.token_url}", file=out)
            print(f"  UDM  {world.udm_server.url}", file=out)
            print(f"  SCP  {world.scp_server.url}", file=out)
            if verbose:
                for name, value in world.environment.items():
                    print(f"  {name}={value}", file=out)
            print(file=out, flush=True)
            _scenarios(world, runner, stack)

    print(file=out)
    print(runner.table(), file=out)
    elapsed = time.monotonic() - started
    total = len(runner.results)
    print(f"\n{total - runner.failures} of {total} scenarios as expected in {elapsed:.1f} s",
          file=out)
    return 1 if runner.failures else 0
