"""Coverage-guided fuzz target for the producer middleware: fuzzer bytes become a whole request
(method, path, headers, TLS client chain, client address) and every answer is checked.

Run it with atheris (`python fuzz/fuzz_middleware.py -runs=N`); without atheris, import
`check_one_input` and call it on any bytes, as the test suite does.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import json
import logging
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cryptography.hazmat.primitives import serialization

from sbi_setauth import SetAuthMiddleware, Settings
from sbi_setauth.middleware import CONSUMER_SCOPE_KEY
from sbi_setauth.rejections import ALL_REJECTIONS
from sbi_setauth.testing import CA, Nrf

__all__ = ["check_one_input", "DOCUMENTED_REJECTIONS"]

DOCUMENTED_REJECTIONS = frozenset((kind.status, kind.cause) for kind in ALL_REJECTIONS)
PRODUCER_ID = "9f0cd3c4-6a0c-4d0b-8f43-3c9f6bb5f5a1"
AMF_SET = "set1.amfset.5gc.mnc001.mcc001"
OTHER_AMF_SET = "set2.amfset.5gc.mnc001.mcc001"
PATHS = (
    "/nudm-sdm/v2/imsi-001010000000001/am-data",
    "/nudm-uecm/v1/imsi-001010000000001/registrations",
    "/nudm-ee/v1/x",
    "/health",
    "/health/../nudm-sdm/v2/x/am-data",
    "/",
    "",
)
METHODS = ("GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS", "get", "")
HEADER_NAMES = (
    b"authorization",
    b"3gpp-sbi-client-credentials",
    b"3gpp-sbi-binding",
    b"x-consumer-set",
    b"host",
    b":authority",
    b"x-forwarded-client-cert",
    b"client-cert",
    b"client-cert-chain",
    b"AUTHORIZATION",
    b"3gpp-sbi-source-nf-client-credentials",
    b"content-length",
)
CREDENTIAL_HEADERS = (
    b"authorization",
    b"3gpp-sbi-client-credentials",
    b"3gpp-sbi-binding",
    b"x-consumer-set",
    b"x-forwarded-client-cert",
    b"client-cert",
)
CLIENTS: tuple[Any, ...] = (
    ("127.0.0.1", 40000),
    ("10.1.2.3", 40000),
    ("::ffff:127.0.0.1", 1),
    ("[::1]", 1),
    ("fe80::1%eth0", 1),
    ("", 0),
    None,
)


class _Input:
    """Reads fuzzer bytes front to back; past the end it yields zeros and empty strings."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def byte(self) -> int:
        if self.position >= len(self.data):
            return 0
        value = self.data[self.position]
        self.position += 1
        return value

    def pick(self, options: Any) -> Any:
        return options[self.byte() % len(options)]

    def take(self, limit: int) -> bytes:
        size = min(self.byte() * limit // 255, limit)
        chunk = self.data[self.position:self.position + size]
        self.position += size
        return chunk


@dataclass
class _World:
    """The PKI, the NRF, the valid credentials to mutate and the producers under test."""

    directory: Path
    producers: list[SetAuthMiddleware]
    fragments: dict[bytes, list[bytes]]
    peer_chains: list[list[str]]
    peer_ders: list[bytes]
    valid_tokens: frozenset[str]
    valid_ccas: frozenset[str]
    instance_ids: frozenset[str]
    secrets: tuple[bytes, ...]
    calls: list[dict[str, Any]] = field(default_factory=list)
    log_lines: list[str] = field(default_factory=list)


class _Collector(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


_WORLD: _World | None = None
_LOOP: asyncio.AbstractEventLoop | None = None


def _pem(der: bytes) -> str:
    body = base64.encodebytes(der).decode("ascii")
    return f"-----BEGIN CERTIFICATE-----\n{body}-----END CERTIFICATE-----\n"


def _build_world() -> _World:
    directory = Path(tempfile.mkdtemp(prefix="sbi-setauth-fuzz-"))
    atexit.register(shutil.rmtree, directory, True)
    ca, nrf = CA(), Nrf()
    jwks = nrf.write_jwks(directory / "nrf.jwks")
    anchors = ca.write_pem(directory / "anchors.pem")
    scopes = directory / "scopes.json"
    scopes.write_text(json.dumps({"PUT /nudm-sdm/v2/{supi}/am-data": "nudm-sdm:am-data:write"}))
    now = time.time()

    amf = ca.issue_nf_certificate(nf_type="AMF", nf_set_id=AMF_SET)
    standby = ca.issue_nf_certificate(nf_type="AMF", nf_set_id=AMF_SET)
    plain = ca.issue_nf_certificate(nf_type="AMF")
    other = ca.issue_nf_certificate(nf_type="AMF", nf_set_id=OTHER_AMF_SET)
    scp = ca.issue_nf_certificate(nf_type="SCP")
    nfs = (amf, standby, plain, other)

    def settings(**overrides: Any) -> Settings:
        values: dict[str, Any] = dict(
            nf_type="UDM", nf_instance_id=PRODUCER_ID, services="nudm-sdm,nudm-uecm",
            nrf_issuers=nrf.nrf_instance_id, nrf_keys=str(jwks), trust_anchors=str(anchors),
            exempt_paths="/health",
        )
        values.update(overrides)
        return Settings(**values)

    world = _World(directory, [], {}, [], [], frozenset(), frozenset(), frozenset(), ())

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        world.calls.append(scope)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    def clock() -> float:
        return now

    world.producers = [
        SetAuthMiddleware(app, settings(), clock=clock),
        SetAuthMiddleware(app, settings(peer_cert="none", require_cca=True), clock=clock),
        SetAuthMiddleware(
            app,
            settings(
                peer_cert="xfcc", trusted_proxies="127.0.0.1", trusted_scps=scp.nf_instance_id
            ),
            clock=clock,
        ),
        SetAuthMiddleware(
            app, settings(peer_cert="client-cert", trusted_proxies="127.0.0.1,::1"), clock=clock
        ),
        SetAuthMiddleware(
            app,
            settings(operation_scopes=str(scopes), set_header="x-consumer-set",
                     exclusive_use=False, trust_anchors=str(anchors)),
            clock=clock,
        ),
        SetAuthMiddleware(app, settings(peer_cert="none", trust_anchors=""), clock=clock),
    ]

    issued_at = int(now)
    tokens = []
    for nf in nfs:
        tokens.append(nrf.access_token(sub=nf.nf_instance_id, aud="UDM", scope="nudm-sdm",
                                       iat=issued_at))
        if nf.nf_set_id:
            tokens.append(nrf.access_token(sub=nf.nf_instance_id, aud=[PRODUCER_ID],
                                           scope="nudm-sdm nudm-sdm:am-data:write",
                                           nf_set_id=nf.nf_set_id, iat=issued_at))
    ccas = [nf.cca(iat=issued_at) for nf in nfs] + [amf.cca(iat=issued_at, nf_set_id=None)]
    bindings = [f"bl=nf-set; nfset={AMF_SET}", f"bl=nf-set; nfset={OTHER_AMF_SET}",
                f"bl=nf-instance; nfinst={amf.nf_instance_id}", AMF_SET, AMF_SET.upper()]
    chains = [nf.chain_pem for nf in (*nfs, scp)]
    xfcc = [f'Hash=ab;Cert="{quote(chain[0], safe="")}"' for chain in chains]
    client_cert = [
        ":" + base64.b64encode(nf.chain_der[0]).decode("ascii") + ":" for nf in (*nfs, scp)
    ]

    world.fragments = {
        b"authorization": [f"Bearer {token}".encode() for token in tokens],
        b"3gpp-sbi-client-credentials": [cca.encode() for cca in ccas],
        b"3gpp-sbi-binding": [value.encode() for value in bindings],
        b"x-consumer-set": [value.encode() for value in bindings],
        b"x-forwarded-client-cert": [value.encode() for value in xfcc],
        b"client-cert": [value.encode() for value in client_cert],
        b"client-cert-chain": [value.encode() for value in client_cert],
    }
    world.peer_chains = chains
    world.peer_ders = [nf.chain_der[0] for nf in (*nfs, scp)]
    world.valid_tokens = frozenset(tokens)
    world.valid_ccas = frozenset(ccas)
    world.instance_ids = frozenset(nf.nf_instance_id for nf in nfs)
    world.secrets = tuple(
        part.encode() for value in (*tokens, *ccas) for part in value.split(".")[1:]
    ) + tuple(
        nf.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )[40:80]
        for nf in nfs
    )
    return world


def _world() -> _World:
    global _WORLD, _LOOP
    if _WORLD is None:
        _WORLD = _build_world()
        _LOOP = asyncio.new_event_loop()
    return _WORLD


def _mutated(source: bytes, data: _Input) -> bytes:
    value = bytearray(source)
    for _ in range(data.byte() % 4 + 1):
        if value:
            value[(data.byte() << 8 | data.byte()) % len(value)] = data.byte()
    return bytes(value)


def _header_value(world: _World, name: bytes, data: _Input) -> bytes:
    fragments = world.fragments.get(name.lower()) or world.fragments[b"authorization"]
    kind = data.byte() % 9
    if kind == 0:
        return data.take(600)
    fragment = data.pick(fragments)
    if kind == 1:
        return _mutated(fragment, data)
    if kind == 2:
        return fragment + data.take(64)
    if kind == 3:
        return fragment[: (data.byte() << 8 | data.byte()) % (len(fragment) + 1)]
    if kind == 4:
        return fragment + data.pick((b",", b", ", b" ", b";")) + data.pick(fragments)
    if kind == 5:
        return data.take(16) + fragment
    return fragment


def _tls_extension(world: _World, data: _Input) -> dict[str, Any] | None:
    kind = data.byte() % 9
    if kind == 0:
        return None
    if kind == 1:
        chain = list(data.pick(world.peer_chains))
        chain[0] = _mutated(chain[0].encode(), data).decode("latin-1")
        return {"client_cert_chain": chain}
    if kind == 2:
        count = data.byte() % 12
        return {"client_cert_chain": [data.take(200).decode("latin-1") for _ in range(count)]}
    if kind == 3:
        wrong: tuple[Any, ...] = ([b"bytes"], [None], [1, 2], "-----BEGIN CERTIFICATE-----",
                                  b"junk", (), {}, None)
        return {"client_cert_chain": data.pick(wrong)}
    if kind == 4:
        return {}
    if kind == 5:
        chain = list(data.pick(world.peer_chains))
        return {"client_cert_chain": chain + [data.take(100).decode("latin-1")]}
    if kind == 6:
        return {"client_cert_chain": [_pem(_mutated(data.pick(world.peer_ders), data))]}
    return {"client_cert_chain": list(data.pick(world.peer_chains))}


def _scope(world: _World, data: _Input) -> dict[str, Any]:
    path = data.pick(PATHS)
    if data.byte() % 3 == 0:
        path += data.take(40).decode("latin-1")
    method = data.pick(METHODS)
    headers = [(b"host", b"udm.example.org")] if data.byte() % 4 else []
    present = data.byte()
    for bit, name in enumerate(CREDENTIAL_HEADERS):
        if present >> bit & 1 or (bit == 0 and not present & 0x80):
            headers.append((name, _header_value(world, name, data)))
    for _ in range(data.byte() % 6):
        name = data.pick(HEADER_NAMES) if data.byte() % 5 else data.take(12).lower()
        headers.append((name, _header_value(world, name, data)))
    client = data.pick(CLIENTS)
    extensions: dict[str, Any] = {}
    tls = _tls_extension(world, data)
    if tls is not None:
        extensions["tls"] = tls
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "2", "method": method,
        "scheme": "https", "path": path, "raw_path": path.encode("utf-8", "replace"),
        "query_string": data.take(40), "root_path": "", "headers": headers, "client": client,
        "server": ("127.0.0.1", 443), "extensions": extensions,
    }


def _only(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    values = [value for key, value in headers if key == name]
    return values[0] if len(values) == 1 else None


def _check_accepted(world: _World, scope: dict[str, Any], status: int, body: bytes) -> None:
    assert status == 200 and body == b"ok", "the application's answer was altered"
    consumer = scope.get(CONSUMER_SCOPE_KEY)
    path = scope["path"]
    if consumer is None:
        assert path == "/health" or path.startswith("/health/"), f"unverified call to {path!r}"
        return
    authorization = _only(scope["headers"], b"authorization")
    assert authorization is not None, "accepted without exactly one Authorization header"
    token = authorization.decode("ascii").split()[-1]
    assert token in world.valid_tokens, "accepted a token the NRF never issued"
    cca = _only(scope["headers"], b"3gpp-sbi-client-credentials")
    if cca is not None:
        assert cca.strip(b" \t").decode("ascii") in world.valid_ccas, "accepted a forged CCA"
    assert consumer.nf_instance_id in world.instance_ids, "accepted an unknown consumer"


def _check_rejected(
    world: _World, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    header_map = dict(headers)
    assert header_map.get(b"content-type") == b"application/problem+json"
    problem = json.loads(body)
    assert (status, problem["cause"]) in DOCUMENTED_REJECTIONS, (status, problem["cause"])
    assert problem["status"] == status and problem["title"] and problem["detail"]
    if status == 401:
        assert header_map[b"www-authenticate"].startswith(b"Bearer realm=")
    for name, value in headers:
        assert all(0x20 <= b < 0x7F for b in value), f"response header {name!r} is not clean"
        assert len(value) <= 1024, f"response header {name!r} is {len(value)} bytes"
    assert len(body) <= 4096, f"rejection body is {len(body)} bytes"
    for secret in world.secrets:
        assert secret not in body, "a credential was echoed in the rejection"


def check_one_input(data: bytes) -> None:
    """Send the request `data` describes and assert the middleware's answer is sound.

    Sound means: the app's own answer with a verified consumer (or an exempt path), or a
    documented rejection with the app not called and the body not read; never an exception,
    never a credential echoed in the answer or in the log.
    """
    world = _world()
    reader = _Input(data)
    producer = world.producers[reader.byte() % len(world.producers)]
    scope = _scope(world, reader)
    sent: list[dict[str, Any]] = []
    body_read = False

    async def receive() -> dict[str, Any]:
        nonlocal body_read
        body_read = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    world.calls.clear()
    world.log_lines.clear()
    logger = logging.getLogger("sbi_setauth")
    collector, level = _Collector(world.log_lines), logger.level
    logger.addHandler(collector)
    logger.setLevel(logging.DEBUG)
    try:
        assert _LOOP is not None
        _LOOP.run_until_complete(producer(scope, receive, send))
    finally:
        logger.removeHandler(collector)
        logger.setLevel(level)

    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert len(starts) == 1, "not exactly one response"
    status, headers = starts[0]["status"], list(starts[0]["headers"])
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    if world.calls:
        _check_accepted(world, scope, status, body)
    else:
        assert not body_read, "the body of a rejected request was read"
        _check_rejected(world, status, headers, body)
    logged = "\n".join(world.log_lines)
    for secret in world.secrets:
        assert secret.decode("latin-1") not in logged, "a credential was written to the log"


def main() -> None:
    """Run the target under atheris with libFuzzer's command-line options."""
    import atheris

    atheris.instrument_all()
    _world()
    atheris.Setup(sys.argv, check_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
