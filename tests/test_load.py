"""Load and fault tests against a real producer served over mutual TLS and HTTP/2 on 127.0.0.1.

Many consumers send a mix of requests that must be accepted and requests that must be refused;
every answer is compared with the one expected, and the producer's memory must stay flat. The
default run is short. `LOAD_TEST_LONG=1` runs the full load (200 consumers for 60 seconds,
changed with `LOAD_TEST_CLIENTS` and `LOAD_TEST_SECONDS`); `pytest -s` prints the
figures. Consumers run in a child process so the producer has a core to itself.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import gc
import multiprocessing
import os
import secrets
import ssl
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sbi_setauth import SetAuthMiddleware, Settings
from sbi_setauth.leases.redis import KEY_PREFIX
from sbi_setauth.serving import BackgroundServer
from sbi_setauth.testing import Nrf, NfCertificate

from .conftest import AM_DATA, AMF_SET, OTHER_AMF_SET, PRODUCER_ID, Pki, binding
from .redis_server import RedisServer

LONG_RUN = os.environ.get("LOAD_TEST_LONG") == "1"
LOAD_CLIENTS = int(os.environ.get("LOAD_TEST_CLIENTS", "200" if LONG_RUN else "50"))
LOAD_SECONDS = float(os.environ.get("LOAD_TEST_SECONDS", "60" if LONG_RUN else "5"))
WARMUP_CYCLES = 2
RSS_GROWTH_LIMIT = 24 * 1024 * 1024
OBJECT_GROWTH_LIMIT = 20_000
REQUEST_TIMEOUT = 60.0
FAULT_PHASE = 0.8

CCA_HEADER = "3gpp-Sbi-Client-Credentials"
BINDING_HEADER = "3gpp-Sbi-Binding"
FRESH_GARBAGE = "<fresh garbage>"


@dataclass(frozen=True)
class Probe:
    """One kind of request a consumer sends, and the answer the producer must give."""

    kind: str
    headers: tuple[tuple[str, str], ...]
    status: int
    cause: str | None = None
    bearer_error: str | None = None


@dataclass(frozen=True)
class ConsumerPlan:
    """A consumer NF instance: its TLS client certificate and the requests it cycles through."""

    nf_instance_id: str
    certfile: str
    keyfile: str
    probes: tuple[Probe, ...]


@dataclass
class Tally:
    """Answers counted by kind, and a description of the first few wrong ones."""

    requests: int = 0
    wrong: int = 0
    seconds: float = 0.0
    by_kind: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def record(self, kind: str, problem: str | None) -> None:
        self.requests += 1
        self.by_kind[kind] += 1
        if problem is not None:
            self.wrong += 1
            if len(self.examples) < 10:
                self.examples.append(f"{kind}: {problem}")


def _bearer(token: str) -> tuple[str, str]:
    return ("authorization", f"Bearer {token}")


def _garbage_token() -> str:
    return ".".join(
        base64.urlsafe_b64encode(secrets.token_bytes(secrets.randbelow(120) + 8))
        .rstrip(b"=")
        .decode()
        for _ in range(3)
    )


def _load_plans(
    pki: Pki, directory: Path, clients: int, token_lifetime: int
) -> list[ConsumerPlan]:
    """Consumers alternating between two AMF sets, each with its own instance and set tokens."""
    amfs: list[NfCertificate] = [
        pki.amf(AMF_SET if index % 2 == 0 else OTHER_AMF_SET) for index in range(clients)
    ]
    forger = Nrf(pki.nrf.nrf_instance_id, kid=pki.nrf.kid)
    now = int(time.time())
    set_tokens = [
        pki.set_token(amf, amf.nf_set_id or "", lifetime=token_lifetime) for amf in amfs
    ]
    plans = []
    for index, amf in enumerate(amfs):
        own_set = amf.nf_set_id or ""
        other_set = OTHER_AMF_SET if own_set == AMF_SET else AMF_SET
        same_set_neighbour = (index + 2) % clients
        neighbour = amfs[(index + 1) % clients]
        instance_token = pki.instance_token(amf, lifetime=token_lifetime)
        own_binding = (BINDING_HEADER, binding(own_set))
        probes = (
            Probe("set-token", (_bearer(set_tokens[index]), own_binding), 200),
            Probe("instance-token", (_bearer(instance_token),), 200),
            Probe("no-token", (), 401, "ACCESS_TOKEN_MISSING", ""),
            Probe(
                "set-token-with-cca",
                (
                    _bearer(set_tokens[index]),
                    own_binding,
                    (CCA_HEADER, amf.cca(lifetime=token_lifetime)),
                ),
                200,
            ),
            Probe(
                "expired-token",
                (_bearer(pki.instance_token(amf, iat=now - 7200, exp=now - 3600)),),
                401,
                "ACCESS_TOKEN_INVALID",
                "invalid_token",
            ),
            Probe(
                "set-token-of-other-set",
                (
                    _bearer(pki.set_token(amf, other_set, lifetime=token_lifetime)),
                    (BINDING_HEADER, binding(other_set)),
                ),
                403,
                "NF_SET_ID_MISMATCH",
            ),
            Probe(
                "garbage-token",
                ((FRESH_GARBAGE, ""),),
                401,
                "ACCESS_TOKEN_INVALID",
                "invalid_token",
            ),
            Probe(
                "set-token-held-by-another-instance",
                (_bearer(set_tokens[same_set_neighbour]), own_binding),
                403,
                "SET_TOKEN_IN_USE",
            ),
            Probe(
                "forged-signature",
                (
                    _bearer(
                        forger.access_token(
                            sub=amf.nf_instance_id, aud="UDM", scope="nudm-sdm"
                        )
                    ),
                ),
                401,
                "ACCESS_TOKEN_INVALID",
                "invalid_token",
            ),
            Probe(
                "token-of-another-instance",
                (_bearer(pki.instance_token(neighbour, lifetime=token_lifetime)),),
                403,
                "PEER_CERTIFICATE_INVALID",
            ),
            Probe(
                "token-without-the-service",
                (_bearer(pki.instance_token(amf, scope="nudm-uecm")),),
                403,
                "INSUFFICIENT_SCOPE",
                "insufficient_scope",
            ),
            Probe(
                "two-authorization-headers",
                (_bearer(instance_token), _bearer(instance_token)),
                400,
                "INVALID_REQUEST",
                "invalid_request",
            ),
            Probe(
                "cca-of-another-instance",
                (_bearer(instance_token), (CCA_HEADER, neighbour.cca())),
                403,
                "CCA_VERIFICATION_FAILURE",
            ),
        )
        certfile, keyfile = amf.write_cert_and_key(directory)
        plans.append(ConsumerPlan(amf.nf_instance_id, str(certfile), str(keyfile), probes))
    return plans


def _producer(settings: Settings) -> Starlette:
    async def am_data(request: Request) -> JSONResponse:
        return JSONResponse({"consumer": request.state.consumer.nf_instance_id})

    app = Starlette(routes=[Route("/nudm-sdm/v2/{supi}/am-data", am_data)])
    app.add_middleware(SetAuthMiddleware, settings=settings)
    return app


def _judge(probe: Probe, plan: ConsumerPlan, response: httpx.Response) -> str | None:
    """Return what is wrong with the answer to `probe`, or None when it is the expected one."""
    if response.http_version != "HTTP/2":
        return f"answered over {response.http_version}"
    if response.status_code != probe.status:
        return f"status {response.status_code}, expected {probe.status}"
    try:
        body = response.json()
    except ValueError:
        return "the body is not JSON"
    if probe.status == 200:
        if body.get("consumer") != plan.nf_instance_id:
            return f"accepted as consumer {body.get('consumer')!r}"
        return None

    if response.headers.get("content-type") != "application/problem+json":
        return f"content-type {response.headers.get('content-type')!r}"
    if body.get("cause") != probe.cause:
        return f"cause {body.get('cause')!r}, expected {probe.cause}"
    challenge = response.headers.get("www-authenticate")
    if probe.bearer_error is None:
        return None if challenge is None else f"unexpected challenge {challenge!r}"
    if challenge is None or not challenge.startswith("Bearer realm="):
        return f"challenge {challenge!r}"
    if probe.bearer_error == "":
        return None if "error=" not in challenge else f"challenge {challenge!r} names an error"
    if f'error="{probe.bearer_error}"' not in challenge:
        return f"challenge {challenge!r}, expected error {probe.bearer_error}"
    return None


def _headers(probe: Probe) -> list[tuple[str, str]]:
    return [
        _bearer(_garbage_token()) if name == FRESH_GARBAGE else (name, value)
        for name, value in probe.headers
    ]


async def _ask(
    client: httpx.AsyncClient, url: str, probe: Probe, plan: ConsumerPlan
) -> str | None:
    try:
        response = await client.get(url, headers=_headers(probe))
    except httpx.HTTPError as error:
        return f"transport error {error!r}"
    return _judge(probe, plan, response)


async def _run_phase(
    clients: list[httpx.AsyncClient],
    plans: list[ConsumerPlan],
    url: str,
    *,
    seconds: float | None = None,
    cycles: int | None = None,
) -> Tally:
    """Every consumer cycles through its probes, from its own offset, until time or cycles end."""
    tally = Tally()
    started = time.monotonic()
    deadline = started + seconds if seconds is not None else float("inf")

    async def consumer(index: int) -> None:
        plan, client = plans[index], clients[index]
        total = cycles * len(plan.probes) if cycles is not None else None
        sent = 0
        while time.monotonic() < deadline and (total is None or sent < total):
            probe = plan.probes[(index + sent) % len(plan.probes)]
            tally.record(probe.kind, await _ask(client, url, probe, plan))
            sent += 1

    await asyncio.gather(*(consumer(index) for index in range(len(plans))))
    tally.seconds = time.monotonic() - started
    return tally


def _client_context(ca_file: str, plan: ConsumerPlan) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file)
    context.load_cert_chain(plan.certfile, plan.keyfile)
    return context


async def _await_word(connection: Connection, word: str, timeout: float) -> None:
    if not await asyncio.to_thread(connection.poll, timeout):
        raise TimeoutError(f"no {word!r} from the test within {timeout} s")
    received = connection.recv()
    if received != word:
        raise RuntimeError(f"expected {word!r} from the test, got {received!r}")


async def _consumers(
    connection: Connection, plans: list[ConsumerPlan], url: str, ca_file: str, seconds: float
) -> None:
    clients = [
        httpx.AsyncClient(
            http2=True,
            verify=_client_context(ca_file, plan),
            timeout=REQUEST_TIMEOUT,
            limits=httpx.Limits(max_connections=1),
        )
        for plan in plans
    ]
    try:
        warm = Tally()
        first_probes = [plan.probes[0] for plan in plans]
        answers = await asyncio.gather(
            *(
                _ask(client, url, probe, plan)
                for client, probe, plan in zip(clients, first_probes, plans)
            )
        )
        for probe, problem in zip(first_probes, answers):
            warm.record(probe.kind, problem)
        cycled = await _run_phase(clients, plans, url, cycles=WARMUP_CYCLES)
        warm.requests += cycled.requests
        warm.wrong += cycled.wrong
        warm.examples += cycled.examples
        connection.send(("warm", warm))

        await _await_word(connection, "go", 120)
        connection.send(("done", await _run_phase(clients, plans, url, seconds=seconds)))
        await _await_word(connection, "close", seconds + 300)
    finally:
        for client in clients:
            await client.aclose()


def _consumers_main(
    connection: Connection, plans: list[ConsumerPlan], url: str, ca_file: str, seconds: float
) -> None:
    """Entry point of the child process that plays every consumer."""
    try:
        asyncio.run(_consumers(connection, plans, url, ca_file, seconds))
    except BaseException as error:
        connection.send(("failed", f"{type(error).__name__}: {error}"))
        raise


def _receive(connection: Connection, word: str, timeout: float) -> Any:
    if not connection.poll(timeout):
        raise AssertionError(f"the consumers sent no {word!r} within {timeout} s")
    received_word, payload = connection.recv()
    assert received_word == word, f"the consumers failed: {payload}"
    return payload


def _memory() -> tuple[int, int]:
    """Resident set size in bytes and the number of objects tracked by the collector."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    with open("/proc/self/status") as status:
        kilobytes = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return kilobytes * 1024, len(gc.get_objects())


def _server_files(pki: Pki, directory: Path) -> tuple[Path, Path]:
    producer = pki.ca.issue_nf_certificate(PRODUCER_ID, nf_type="UDM", ip_addresses=["127.0.0.1"])
    return producer.write_cert_and_key(directory)


def test_many_consumers_get_exactly_the_expected_answers_and_memory_stays_flat(
    tmp_path: Path,
) -> None:
    pki = Pki(tmp_path)
    token_lifetime = int(LOAD_SECONDS) + 900
    settings = pki.settings(holder_lease=token_lifetime, cca_max_age=token_lifetime)
    plans = _load_plans(pki, tmp_path, LOAD_CLIENTS, token_lifetime)
    certfile, keyfile = _server_files(pki, tmp_path)
    kinds = {probe.kind for probe in plans[0].probes}

    with BackgroundServer(
        _producer(settings), certfile=certfile, keyfile=keyfile, ca_certs=pki.anchors_path
    ) as server:
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        process = context.Process(
            target=_consumers_main,
            args=(theirs, plans, server.url + AM_DATA, str(pki.anchors_path), LOAD_SECONDS),
            daemon=True,
        )
        memory_start = _memory()
        process.start()
        try:
            warm: Tally = _receive(ours, "warm", 120)
            memory_warm = _memory()
            ours.send("go")
            done: Tally = _receive(ours, "done", LOAD_SECONDS + 180)
            memory_end = _memory()
            ours.send("close")
            process.join(30)
        finally:
            if process.is_alive():
                process.terminate()
                process.join(10)

    rss_growth = memory_end[0] - memory_warm[0]
    object_growth = memory_end[1] - memory_warm[1]
    print(
        f"\nload: {LOAD_CLIENTS} consumers, {done.seconds:.1f} s, {done.requests} requests "
        f"({done.requests / done.seconds:.0f}/s), {done.wrong} wrong; warm-up {warm.requests} "
        f"requests, {warm.wrong} wrong\n"
        f"memory: RSS {memory_start[0] / 2**20:.1f} MiB at start, "
        f"{memory_warm[0] / 2**20:.1f} MiB after warm-up, {memory_end[0] / 2**20:.1f} MiB after "
        f"the run ({rss_growth / 2**20:+.1f} MiB); objects {memory_warm[1]} -> {memory_end[1]} "
        f"({object_growth:+d})\nby kind: {dict(sorted(done.by_kind.items()))}"
    )
    assert warm.wrong == 0, warm.examples
    assert done.wrong == 0, done.examples
    assert set(done.by_kind) == kinds
    assert done.requests >= LOAD_CLIENTS * len(kinds)
    assert rss_growth < RSS_GROWTH_LIMIT
    assert object_growth < OBJECT_GROWTH_LIMIT


@dataclass(frozen=True)
class Outcome:
    """One answer seen during the lease store fault run."""

    who: str
    started: float
    ended: float
    status: int
    cause: str | None
    consumer: str | None
    retry_after: str | None


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.close()


async def _ask_with_set_token(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], who: str
) -> Outcome:
    started = time.monotonic()
    try:
        response = await client.get(url, headers=headers)
    except httpx.HTTPError as error:
        return Outcome(who, started, time.monotonic(), 0, repr(error), None, None)
    ended = time.monotonic()
    body = response.json() if response.headers.get("content-type", "").endswith("json") else {}
    return Outcome(
        who,
        started,
        ended,
        response.status_code,
        body.get("cause"),
        body.get("consumer"),
        response.headers.get("retry-after"),
    )


async def _await_lease(redis_url: str, nf_instance_id: str, timeout: float = 5.0) -> None:
    """Wait until the only lease in Redis is held by `nf_instance_id`."""
    deadline = time.monotonic() + timeout
    inspector = Redis.from_url(redis_url)
    try:
        while True:
            keys = [key async for key in inspector.scan_iter(KEY_PREFIX + "*")]
            holders = [await inspector.get(key) for key in keys]
            if holders == [nf_instance_id.encode()]:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the lease was not taken by {nf_instance_id}: {holders}")
            await asyncio.sleep(0.01)
    finally:
        await inspector.aclose()


def _tls_client(amf: NfCertificate, pki: Pki, directory: Path) -> httpx.AsyncClient:
    certfile, keyfile = amf.write_cert_and_key(directory)
    context = ssl.create_default_context(cafile=str(pki.anchors_path))
    context.load_cert_chain(certfile, keyfile)
    return httpx.AsyncClient(http2=True, verify=context, timeout=10.0)


@pytest.mark.parametrize("store_failure", ["closed", "open"])
async def test_set_token_traffic_rides_out_lease_store_outages(
    store_failure: str, redis: RedisServer, tmp_path: Path
) -> None:
    pki = Pki(tmp_path)
    settings = pki.settings(holder_store=redis.url, store_failure=store_failure)
    holder, rival = pki.amf(), pki.amf()
    headers = {
        "Authorization": f"Bearer {pki.set_token(holder)}",
        BINDING_HEADER: binding(AMF_SET),
    }
    identities = {"holder": holder.nf_instance_id, "rival": rival.nf_instance_id}
    certfile, keyfile = _server_files(pki, tmp_path)
    outcomes: list[Outcome] = []
    marks: dict[str, float] = {}
    stopping = asyncio.Event()
    rival_may_ask = asyncio.Event()
    rival_busy = asyncio.Lock()

    with BackgroundServer(
        _producer(settings), certfile=certfile, keyfile=keyfile, ca_certs=pki.anchors_path
    ) as server:
        url = server.url + AM_DATA

        async def holder_stream(client: httpx.AsyncClient) -> None:
            while not stopping.is_set():
                outcomes.append(await _ask_with_set_token(client, url, headers, "holder"))

        async def rival_probes(client: httpx.AsyncClient) -> None:
            while not stopping.is_set():
                await rival_may_ask.wait()
                async with rival_busy:
                    if rival_may_ask.is_set() and not stopping.is_set():
                        outcomes.append(await _ask_with_set_token(client, url, headers, "rival"))
                await asyncio.sleep(0.02)

        def mark(name: str) -> None:
            marks[name] = time.monotonic()

        async with contextlib.AsyncExitStack() as clients:
            # A connection per holder stream keeps each one under Hypercorn's per-connection
            # request limit, which the busy-connection test below is about.
            holder_clients = [
                await clients.enter_async_context(_tls_client(holder, pki, tmp_path))
                for _ in range(4)
            ]
            rival_client = await clients.enter_async_context(_tls_client(rival, pki, tmp_path))
            mark("begin")
            workers = [asyncio.create_task(holder_stream(client)) for client in holder_clients]
            workers.append(asyncio.create_task(rival_probes(rival_client)))
            try:
                await _await_lease(redis.url, holder.nf_instance_id)
                rival_may_ask.set()
                await asyncio.sleep(FAULT_PHASE)

                mark("stop")
                await asyncio.to_thread(redis.stop)
                mark("stopped")
                await asyncio.sleep(FAULT_PHASE)
                rival_may_ask.clear()
                async with rival_busy:
                    mark("start")
                await asyncio.to_thread(redis.start)
                mark("started")
                await _await_lease(redis.url, holder.nf_instance_id)
                rival_may_ask.set()
                await asyncio.sleep(FAULT_PHASE)

                mark("pause")
                redis.pause()
                mark("paused")
                await asyncio.sleep(FAULT_PHASE)
                mark("resume")
                redis.resume()
                mark("resumed")
                await asyncio.sleep(FAULT_PHASE)
            finally:
                stopping.set()
                rival_may_ask.set()
                await asyncio.gather(*workers)

    phases = [
        ("up", marks["begin"], marks["stop"]),
        ("down", marks["stopped"], marks["start"]),
        ("up", marks["started"], marks["pause"]),
        ("down", marks["paused"], marks["resume"]),
        ("up", marks["resumed"], float("inf")),
    ]

    def allowed(who: str, state: str) -> tuple[int, str | None]:
        if state == "up":
            return (200, None) if who == "holder" else (403, "SET_TOKEN_IN_USE")
        return (503, "HOLDER_STORE_UNAVAILABLE") if store_failure == "closed" else (200, None)

    wrong: list[Outcome] = []
    settled: Counter[tuple[str, int]] = Counter()
    for outcome in outcomes:
        inside = [
            index
            for index, (_, begins, ends) in enumerate(phases)
            if begins <= outcome.started and outcome.ended <= ends
        ]
        states = [phases[inside[0]][0]] if inside else ["up", "down"]
        answer = (outcome.status, outcome.cause)
        if (
            answer not in {allowed(outcome.who, state) for state in states}
            or (outcome.status == 200 and outcome.consumer != identities[outcome.who])
            or (outcome.status == 503 and not (outcome.retry_after or "").isdigit())
        ):
            wrong.append(outcome)
        if inside:
            settled[(outcome.who, inside[0])] += 1

    print(
        f"\nlease store faults ({store_failure}): 2 injected (stop and restart, pause and "
        f"resume); {len(outcomes)} answers, {len(wrong)} wrong; settled per phase "
        f"{dict(sorted(settled.items()))}"
    )
    assert wrong == [], "\n".join(map(str, [marks, *wrong]))
    for index in range(len(phases)):
        assert settled[("holder", index)] >= 2, (index, settled)
        assert settled[("rival", index)] >= 1, (index, settled)


async def test_busy_http2_connection_is_not_dropped_after_a_thousand_requests(
    tmp_path: Path,
) -> None:
    pki = Pki(tmp_path)
    amf = pki.amf()
    headers = {"Authorization": f"Bearer {pki.instance_token(amf)}"}
    certfile, keyfile = _server_files(pki, tmp_path)
    failures: list[str] = []
    answered = 0

    with BackgroundServer(
        _producer(pki.settings()), certfile=certfile, keyfile=keyfile, ca_certs=pki.anchors_path
    ) as server:
        async with _tls_client(amf, pki, tmp_path) as client:

            async def stream(requests: int) -> None:
                nonlocal answered
                for _ in range(requests):
                    try:
                        response = await client.get(server.url + AM_DATA, headers=headers)
                    except httpx.HTTPError as error:
                        failures.append(repr(error))
                        continue
                    answered += response.status_code == 200

            await asyncio.gather(*(stream(40) for _ in range(32)))

    assert failures == [], sorted(Counter(failures).items())
    assert answered == 32 * 40
