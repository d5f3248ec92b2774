"""Properties that hold for every request a consumer can send: the answer is the application's own
or a documented rejection, never an exception, and nothing the middleware holds leaks out.

Random requests stay shallow, so nearly valid ones (a real token with one byte changed, a real
CCA with a segment swapped, a real binding header with junk appended) carry the search into the
signature, claim and cross-match checks. The fuzz target's per-input check runs here too.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import string
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sbi_setauth import SetAuthMiddleware
from sbi_setauth.credentials import CredentialReader, RawCredentials
from sbi_setauth.middleware import CONSUMER_SCOPE_KEY
from sbi_setauth.operations import OperationScopes
from sbi_setauth.rejections import (
    ALL_REJECTIONS,
    CcaVerificationFailure,
    InvalidRequest,
    PeerCertificateInvalid,
)
from sbi_setauth.testing import NfCertificate

from .conftest import AM_DATA, AMF_SET, OTHER_AMF_SET, Pki, binding

DOCUMENTED = {(kind.status, kind.cause) for kind in ALL_REJECTIONS}
HOSTILE = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
CREDENTIAL_NAMES = [
    b"authorization", b"3gpp-sbi-client-credentials", b"3gpp-sbi-binding", b"x-consumer-set",
    b"host", b":authority", b"x-forwarded-client-cert", b"client-cert", b"client-cert-chain",
    b"AUTHORIZATION", b"Authorization", b"3gpp-Sbi-Client-Credentials",
]
FUZZ_TARGET = Path(__file__).resolve().parent.parent / "fuzz" / "fuzz_middleware.py"


@dataclass
class Outcome:
    """The middleware's answer to one request, and what happened around it."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    app_called: bool
    body_read: bool
    scope: dict[str, Any]
    log: str

    @property
    def problem(self) -> dict[str, Any]:
        return json.loads(self.body)


class LogCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@dataclass(repr=False)
class World:
    """One PKI, its valid credentials, and producers configured in the ways that matter."""

    pki: Pki
    amf: NfCertificate
    plain: NfCertificate
    producers: dict[str, SetAuthMiddleware]
    set_token: str
    instance_token: str
    cca: str
    other_cca: str
    loop: asyncio.AbstractEventLoop
    calls: list[dict[str, Any]] = field(default_factory=list)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text("World(...)")

    @property
    def secrets(self) -> list[str]:
        parts = []
        for value in (self.set_token, self.instance_token, self.cca, self.other_cca):
            parts.extend(value.split(".")[1:])
        return parts

    def call(self, producer: str, scope: dict[str, Any]) -> Outcome:
        sent: list[dict[str, Any]] = []
        body_read = False

        async def receive() -> dict[str, Any]:
            nonlocal body_read
            body_read = True
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        logger = logging.getLogger("sbi_setauth")
        collector, level = LogCollector(), logger.level
        logger.addHandler(collector)
        logger.setLevel(logging.DEBUG)
        before = len(self.calls)
        try:
            self.loop.run_until_complete(self.producers[producer](scope, receive, send))
        finally:
            logger.removeHandler(collector)
            logger.setLevel(level)
        starts = [m for m in sent if m["type"] == "http.response.start"]
        assert len(starts) == 1
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return Outcome(
            starts[0]["status"], list(starts[0]["headers"]), body, len(self.calls) > before,
            body_read, scope, "\n".join(collector.lines),
        )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    pki = Pki(Path(tmp_path_factory.mktemp("hostile")))
    scopes = pki.directory / "scopes.json"
    scopes.write_text(json.dumps({"PUT /nudm-sdm/v2/{supi}/am-data": "nudm-sdm:am-data:write"}))
    calls: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        calls.append(scope)
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"from the app"})

    def producer(**overrides: Any) -> SetAuthMiddleware:
        return SetAuthMiddleware(app, settings=pki.settings(**overrides))

    amf = pki.amf()
    plain = pki.amf(None)
    loop = asyncio.new_event_loop()
    yield World(
        pki=pki,
        amf=amf,
        plain=plain,
        producers={
            "tls": producer(),
            "no-peer, CCA required": producer(peer_cert="none", require_cca=True),
            "xfcc": producer(peer_cert="xfcc", trusted_proxies="127.0.0.1,::1"),
            "client-cert": producer(peer_cert="client-cert", trusted_proxies="10.0.0.0/8"),
            "custom set header, operation scopes": producer(
                set_header="x-consumer-set", operation_scopes=str(scopes), exclusive_use=False
            ),
        },
        set_token=pki.set_token(amf),
        instance_token=pki.instance_token(plain),
        cca=amf.cca(),
        other_cca=plain.cca(),
        loop=loop,
        calls=calls,
    )
    loop.close()


def assert_sound(world: World, outcome: Outcome) -> None:
    """The invariant every answer obeys."""
    if outcome.app_called:
        assert (outcome.status, outcome.body) == (299, b"from the app")
        path = outcome.scope["path"]
        exempt = path == "/health" or path.startswith("/health/")
        assert CONSUMER_SCOPE_KEY in outcome.scope or exempt
    else:
        assert not outcome.body_read
        headers = dict(outcome.headers)
        assert headers[b"content-type"] == b"application/problem+json"
        problem = outcome.problem
        assert (outcome.status, problem["cause"]) in DOCUMENTED
        assert problem["status"] == outcome.status and problem["detail"]
        for name, value in outcome.headers:
            assert all(0x20 <= byte < 0x7F for byte in value), (name, value[:120])
            assert len(value) <= 1024, (name, len(value))
        text = outcome.body.decode()
        for secret in world.secrets:
            assert secret not in text
    for secret in world.secrets:
        assert secret not in outcome.log


def make_scope(
    path: str = AM_DATA,
    *,
    method: str = "GET",
    headers: list[tuple[bytes, bytes]] = (),  # type: ignore[assignment]
    tls: Any = None,
    client: Any = ("127.0.0.1", 40000),
) -> dict[str, Any]:
    extensions: dict[str, Any] = {}
    if tls is not None:
        extensions["tls"] = tls
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "2", "method": method,
        "scheme": "https", "path": path, "raw_path": path.encode("utf-8", "replace"),
        "query_string": b"", "root_path": "", "headers": [(b"host", b"udm.example.org"),
                                                          *headers],
        "client": client, "server": ("127.0.0.1", 443), "extensions": extensions,
    }


# Strategies

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)
B64URL = string.ascii_letters + string.digits + "-_"


def garbage_pem() -> st.SearchStrategy[str]:
    base64_text = st.text(string.ascii_letters + string.digits + "+/=\n", max_size=200)
    return base64_text.map(
        lambda body: f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"
    )


@st.composite
def tls_extensions(draw: st.DrawFn, world: World) -> Any:
    chains = [world.amf.chain_pem, world.plain.chain_pem]
    return draw(
        st.one_of(
            st.none(),
            st.just({}),
            st.sampled_from(chains).map(lambda chain: {"client_cert_chain": chain}),
            st.lists(st.one_of(garbage_pem(), TEXT), max_size=10).map(
                lambda chain: {"client_cert_chain": chain}
            ),
            st.sampled_from(
                [[b"bytes"], [None], [1, 2], "-----BEGIN CERTIFICATE-----", b"junk", (), None]
            ).map(lambda wrong: {"client_cert_chain": wrong}),
            st.sampled_from(chains).map(
                lambda chain: {"client_cert_chain": [*chain, "junk"]}
            ),
        )
    )


@st.composite
def header_lists(draw: st.DrawFn, world: World) -> list[tuple[bytes, bytes]]:
    fragments = [
        f"Bearer {world.set_token}".encode(), f"Bearer {world.instance_token}".encode(),
        world.cca.encode(), world.other_cca.encode(), binding(AMF_SET).encode(),
        binding(OTHER_AMF_SET).encode(), AMF_SET.encode(),
    ]
    name = st.one_of(st.sampled_from(CREDENTIAL_NAMES), st.binary(max_size=20))
    value = st.one_of(
        st.binary(max_size=300),
        st.sampled_from(fragments),
        st.tuples(st.sampled_from(fragments), st.binary(max_size=40)).map(lambda p: p[0] + p[1]),
    )
    return draw(st.lists(st.tuples(name, value), max_size=14))


CLIENTS = st.one_of(
    st.none(),
    st.sampled_from([("127.0.0.1", 1), ("::1", 1), ("10.1.2.3", 2), ("::ffff:127.0.0.1", 3),
                     ("fe80::1%eth0", 4), ("", 0)]),
    st.tuples(TEXT, st.integers(0, 65535)),
)
PATHS = st.one_of(
    st.sampled_from([AM_DATA, "/nudm-uecm/v1/x/registrations", "/health", "/", ""]),
    st.tuples(st.sampled_from(["/nudm-sdm/", "/health/", "/"]), TEXT).map("".join),
    TEXT,
)
METHODS = st.one_of(st.sampled_from(["GET", "PUT", "POST", "DELETE"]), st.text(max_size=8))


# The whole middleware


@HOSTILE
@given(data=st.data())
def test_any_request_gets_the_app_or_a_documented_rejection(world: World, data: Any) -> None:
    producer = data.draw(st.sampled_from(sorted(world.producers)))
    scope = make_scope(
        data.draw(PATHS),
        method=data.draw(METHODS),
        headers=data.draw(header_lists(world)),
        tls=data.draw(tls_extensions(world)),
        client=data.draw(CLIENTS),
    )
    assert_sound(world, world.call(producer, scope))


def set_token_request(
    world: World, changes: dict[bytes, bytes] | None = None
) -> list[tuple[bytes, bytes]]:
    values = {
        b"authorization": f"Bearer {world.set_token}".encode(),
        b"3gpp-sbi-binding": binding(AMF_SET).encode(),
        b"3gpp-sbi-client-credentials": world.cca.encode(),
    }
    values.update(changes or {})
    return list(values.items())


def test_the_nearly_valid_request_unchanged_is_accepted(world: World) -> None:
    outcome = world.call("tls", make_scope(headers=set_token_request(world), tls={
        "client_cert_chain": world.amf.chain_pem}))
    assert outcome.app_called
    assert outcome.scope[CONSUMER_SCOPE_KEY].nf_set_id == AMF_SET


@HOSTILE
@given(position=st.integers(min_value=0), replacement=st.sampled_from(B64URL + ".=+/ \x00é"))
def test_token_with_one_character_changed_is_never_accepted(
    world: World, position: int, replacement: str
) -> None:
    token = list(world.set_token)
    position %= len(token)
    token[position] = replacement
    mutated = "".join(token)
    headers = set_token_request(world, {b"authorization": b"Bearer " + mutated.encode("utf-8")})
    outcome = world.call("tls", make_scope(headers=headers, tls={
        "client_cert_chain": world.amf.chain_pem}))
    assert_sound(world, outcome)
    if mutated != world.set_token:
        assert not outcome.app_called
        assert outcome.problem["cause"] in ("ACCESS_TOKEN_INVALID", "INVALID_REQUEST")


@st.composite
def mutated_ccas(draw: st.DrawFn, world: World) -> str:
    segments = world.cca.split(".")
    donors = world.other_cca.split(".")
    index = draw(st.integers(0, 2))
    segments[index] = draw(
        st.one_of(
            st.just(donors[index]),
            st.text(B64URL, min_size=1, max_size=120),
            st.just(segments[index][::-1]),
            st.just(segments[index] + draw(st.text(B64URL, min_size=1, max_size=4))),
        )
    )
    return ".".join(segments)


@HOSTILE
@given(data=st.data())
def test_cca_with_a_mutated_segment_is_never_accepted(world: World, data: Any) -> None:
    cca = data.draw(mutated_ccas(world))
    producer = data.draw(st.sampled_from(["tls", "no-peer, CCA required"]))
    headers = set_token_request(world, {b"3gpp-sbi-client-credentials": cca.encode()})
    outcome = world.call(producer, make_scope(headers=headers, tls={
        "client_cert_chain": world.amf.chain_pem}))
    assert_sound(world, outcome)
    if cca != world.cca:
        assert not outcome.app_called
        assert outcome.problem["cause"] == "CCA_VERIFICATION_FAILURE"


@HOSTILE
@given(junk=st.binary(max_size=80))
def test_binding_header_with_junk_appended_never_changes_the_set(
    world: World, junk: bytes
) -> None:
    value = binding(AMF_SET).encode() + junk
    headers = set_token_request(world, {b"3gpp-sbi-binding": value})
    outcome = world.call("tls", make_scope(headers=headers, tls={
        "client_cert_chain": world.amf.chain_pem}))
    assert_sound(world, outcome)
    if outcome.app_called:
        assert outcome.scope[CONSUMER_SCOPE_KEY].nf_set_id == AMF_SET
    else:
        assert outcome.problem["cause"] in (
            "INVALID_REQUEST", "NF_SET_ID_MISSING", "NF_SET_ID_MISMATCH"
        )


@HOSTILE
@given(path=TEXT, method=METHODS)
def test_any_path_with_a_valid_token_gets_the_app_or_a_documented_rejection(
    world: World, path: str, method: str
) -> None:
    headers = [(b"authorization", f"Bearer {world.instance_token}".encode())]
    scope = make_scope("/" + path, method=method, headers=headers, tls={
        "client_cert_chain": world.plain.chain_pem})
    assert_sound(world, world.call("tls", scope))


# Parsers that run on every request


SEGMENT = st.text(string.ascii_letters + string.digits + "-._~", min_size=1, max_size=12)
TEMPLATE = st.lists(
    st.one_of(SEGMENT, st.just("{supi}"), st.just("{id}")), min_size=1, max_size=5
)


@HOSTILE
@given(
    template=TEMPLATE,
    method=st.sampled_from(["GET", "PUT", "POST"]),
    fillers=st.lists(st.text(st.characters(blacklist_characters="/", blacklist_categories=("Cs",)),
                             min_size=1, max_size=12), min_size=5, max_size=5),
)
def test_operation_scope_is_found_for_every_path_its_template_matches(
    template: list[str], method: str, fillers: list[str]
) -> None:
    segments = ["nudm-sdm", *template]
    scopes = OperationScopes({f"{method} /" + "/".join(segments): "nudm-sdm:op"})
    concrete = [filler if part.startswith("{") else part for part, filler in
                zip(segments, ["nudm-sdm", *fillers])]
    path = "/" + "/".join(concrete)
    assert scopes.lookup(method, "nudm-sdm", path) == "nudm-sdm:op"
    assert scopes.lookup(method, "nudm-sdm", path + "/") == "nudm-sdm:op"
    assert scopes.lookup(method, "nudm-sdm", path + "/extra") is None
    assert scopes.lookup("DELETE", "nudm-sdm", path) is None


@HOSTILE
@given(method=st.text(max_size=10), service=TEXT, path=TEXT)
def test_operation_scope_lookup_of_any_request_is_none_or_a_configured_scope(
    method: str, service: str, path: str
) -> None:
    scopes = OperationScopes({
        "GET /nudm-sdm/v2/{supi}/am-data": "nudm-sdm:am-data:read",
        "PUT /nudm-sdm/v2/{supi}/am-data": "nudm-sdm:am-data:write",
        "GET /nudm-sdm/v2/{supi}": "nudm-sdm:read",
    })
    found = scopes.lookup(method, service, path)
    assert found in (None, "nudm-sdm:am-data:read", "nudm-sdm:am-data:write", "nudm-sdm:read")
    if found is not None:
        assert method in ("GET", "PUT") and service == "nudm-sdm"
        assert path.startswith("/nudm-sdm/v2/")


@HOSTILE
@given(headers=st.lists(st.tuples(st.sampled_from(CREDENTIAL_NAMES[:4]) | st.binary(max_size=8),
                                  st.binary(max_size=600)), max_size=20))
def test_credential_reader_on_any_header_list_reads_or_refuses(
    headers: list[tuple[bytes, bytes]]
) -> None:
    reader = CredentialReader(set_header="3gpp-Sbi-Binding", peer_cert="none")
    try:
        raw = reader.read({"headers": headers, "extensions": {}})
    except (InvalidRequest, CcaVerificationFailure, PeerCertificateInvalid):
        return
    assert isinstance(raw, RawCredentials)
    authorizations = [value for name, value in headers if name == b"authorization"]
    assert len(authorizations) <= 1
    if raw.access_token is not None:
        assert raw.access_token.isascii() and " " not in raw.access_token
        assert raw.access_token in authorizations[0].decode("ascii")
    ccas = [value for name, value in headers if name == b"3gpp-sbi-client-credentials"]
    assert len(ccas) <= 1
    if raw.cca is not None:
        assert raw.cca.isascii() and len(raw.cca) <= 32768
    assert sum(map(len, raw.set_header_values)) <= 4096
    assert raw.peer_chain is None


@HOSTILE
@given(
    scheme=st.sampled_from(["Bearer", "bearer", "BEARER", "bEaReR"]),
    spaces=st.integers(1, 5),
    token=st.text(string.ascii_letters + string.digits + "-_.", min_size=1, max_size=100),
    padding=st.sampled_from(["", " ", "\t", "  \t"]),
)
def test_credential_reader_takes_the_token_after_any_bearer_spelling(
    scheme: str, spaces: int, token: str, padding: str
) -> None:
    reader = CredentialReader(set_header="3gpp-Sbi-Binding", peer_cert="none")
    value = f"{padding}{scheme}{' ' * spaces}{token}{padding}".encode()
    raw = reader.read({"headers": [(b"authorization", value)], "extensions": {}})
    assert raw.access_token == token


# The fuzz target, exercised without atheris


def load_fuzz_target() -> Any:
    spec = importlib.util.spec_from_file_location("fuzz_middleware", FUZZ_TARGET)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fuzz_target() -> Any:
    return load_fuzz_target()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=512))
@example(data=b"\xeb\xff\xff\x14(\x14\xeb\xff\xff\x14\x14")
@example(
    data=b"\x10" + b"\x00" * 6 + b"\xfb\x00\x00\x01\x01\x00\x1ar!~t2.aemf\x91" + b"\x00" * 6
    + b"\xcc\x00\x00\x00\xfb\x00\x00\x01\x01\x00\x1ar!~t2.aemf\x91" + b"\x00" * 6
    + b"\xcc\x00s\xccena"
)
def test_fuzz_target_holds_on_random_inputs(fuzz_target: Any, data: bytes) -> None:
    fuzz_target.check_one_input(data)


def test_fuzz_target_reaches_acceptance_and_deep_rejections(fuzz_target: Any) -> None:
    """Guards the target's usefulness: plain random bytes must reach more than the first check."""
    import random

    rng = random.Random(20240601)
    seen: set[str] = set()
    original = fuzz_target._check_rejected

    def recording(world: Any, status: int, headers: Any, body: bytes) -> None:
        seen.add(json.loads(body)["cause"])
        original(world, status, headers, body)

    fuzz_target._check_rejected = recording
    accepted_before = 0
    started = time.perf_counter()
    try:
        for _ in range(3000):
            fuzz_target.check_one_input(rng.randbytes(rng.randrange(0, 300)))
            accepted_before += bool(fuzz_target._world().calls)
    finally:
        fuzz_target._check_rejected = original
    assert accepted_before > 0
    assert {"ACCESS_TOKEN_INVALID", "INVALID_REQUEST", "PEER_CERTIFICATE_INVALID",
            "CCA_VERIFICATION_FAILURE", "INSUFFICIENT_SCOPE"} <= seen
    assert time.perf_counter() - started < 10
