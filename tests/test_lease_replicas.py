"""One user at a time across producer replicas: two apps sharing one real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from .conftest import AMF_SET, Pki, Producer, bearer, binding, build_producer
from .redis_server import RedisServer, redis_server

IDLE = 1.0


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


def replicas(pki: Pki, url: str, **overrides) -> tuple[Producer, Producer]:
    settings = pki.settings(holder_store=url, holder_lease=IDLE, **overrides)
    return build_producer(settings), build_producer(settings)


async def set_request(producer: Producer, pki: Pki, amf, token: str):
    headers = {**bearer(token), "3gpp-Sbi-Binding": binding(AMF_SET)}
    return await producer.request(headers=headers, peer=amf)


@pytest.mark.parametrize("store", ["redis", "memory"])
async def test_holder_keeps_the_set_token_across_replicas(
    pki: Pki, redis: RedisServer, store: str
) -> None:
    first, second = replicas(pki, redis.url if store == "redis" else "memory")
    amf_a, amf_b = pki.amf(), pki.amf()
    token = pki.set_token(amf_a)

    assert (await set_request(first, pki, amf_a, token)).status == 200
    refused = await set_request(first, pki, amf_b, token)
    assert (refused.status, refused.cause, refused.handler_ran) == (403, "SET_TOKEN_IN_USE", False)
    assert amf_a.nf_instance_id not in refused.body.decode()

    on_other_replica = await set_request(second, pki, amf_b, token)
    if store == "redis":
        assert (on_other_replica.status, on_other_replica.cause) == (403, "SET_TOKEN_IN_USE")
        assert (await set_request(second, pki, amf_a, token)).status == 200
    else:
        # Each replica has its own memory store: the point of HOLDER_STORE=redis://.
        assert on_other_replica.status == 200


async def test_no_takeover_while_the_holder_stays_active(pki: Pki, redis: RedisServer) -> None:
    first, second = replicas(pki, redis.url)
    amf_a, amf_b = pki.amf(), pki.amf()
    token = pki.set_token(amf_a)

    for step in range(6):
        replica = first if step % 2 else second
        assert (await set_request(replica, pki, amf_a, token)).status == 200
        await asyncio.sleep(IDLE / 4)
        answer = await set_request(first, pki, amf_b, token)
        assert (answer.status, answer.cause) == (403, "SET_TOKEN_IN_USE")


async def test_standby_takes_over_after_the_holder_goes_idle(pki: Pki, redis: RedisServer) -> None:
    first, second = replicas(pki, redis.url)
    amf_a, amf_b = pki.amf(), pki.amf()
    token = pki.set_token(amf_a)

    assert (await set_request(first, pki, amf_a, token)).status == 200
    await asyncio.sleep(IDLE + 0.2)
    assert (await set_request(second, pki, amf_b, token)).status == 200
    answer = await set_request(first, pki, amf_a, token)
    assert (answer.status, answer.cause) == (403, "SET_TOKEN_IN_USE")


async def test_instance_tokens_are_not_leased(pki: Pki) -> None:
    server = RedisServer()
    server.start()
    try:
        producer, _ = replicas(pki, server.url)
        amf = pki.amf(None)
        token = pki.instance_token(amf)
        server.stop()
        answer = await producer.request(headers=bearer(token), peer=amf)
        assert answer.status == 200
    finally:
        server.close()


async def test_exclusive_use_off_lets_every_instance_through(pki: Pki) -> None:
    producer = build_producer(pki.settings(exclusive_use=False))
    amf_a, amf_b = pki.amf(), pki.amf()
    token = pki.set_token(amf_a)
    assert (await set_request(producer, pki, amf_a, token)).status == 200
    assert (await set_request(producer, pki, amf_b, token)).status == 200


@pytest.mark.parametrize("mode,status", [("closed", 503), ("open", 200)])
async def test_unreachable_store_follows_store_failure(
    pki: Pki, mode: str, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    server = RedisServer()
    server.start()
    try:
        producer, _ = replicas(pki, server.url, store_failure=mode)
        amf = pki.amf()
        token = pki.set_token(amf)
        assert (await set_request(producer, pki, amf, token)).status == 200
        server.stop()
        with caplog.at_level("INFO", logger="sbi_setauth.middleware"):
            answer = await set_request(producer, pki, amf, token)
        assert answer.status == status and answer.handler_ran is (status == 200)
        levels = [r.levelname for r in caplog.records if r.name == "sbi_setauth.middleware"]
        assert levels == (["WARNING"] if mode == "open" else ["INFO"])
        if status == 503:
            assert answer.cause == "HOLDER_STORE_UNAVAILABLE"
            assert answer.headers["retry-after"].isdigit()
        server.start()
        assert (await set_request(producer, pki, amf, token)).status == 200
    finally:
        server.close()
