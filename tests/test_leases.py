"""One user at a time for set tokens: the lease stores, in memory and in a real Redis."""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from tests.redis_server import RedisServer, redis_server
from sbi_setauth.leases import LeaseStore, StoreUnavailable, open_lease_store
from sbi_setauth.leases.memory import MemoryLeaseStore
from sbi_setauth.leases.redis import KEY_PREFIX, RedisLeaseStore

IDLE = 0.3
NF_A = "4947a69a-f61b-4bc1-b9da-47c9c5d14b64"
NF_B = "6c0f3f7e-52a1-4b8f-9d0e-1f2a3b4c5d6e"
NF_C = "a1b2c3d4-0000-4000-8000-000000000003"


class FakeClock:
    """A wall clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Harness:
    """A store under test, a second view of it (another replica), and a way to let time pass."""

    store: LeaseStore
    replica: LeaseStore
    clock: FakeClock | None = None

    def now(self) -> float:
        return self.clock.now if self.clock else time.time()

    async def advance(self, seconds: float) -> None:
        if self.clock:
            self.clock.now += seconds
        else:
            await asyncio.sleep(seconds)


def new_token_key() -> str:
    return uuid.uuid4().hex


@pytest.fixture(scope="module")
def shared_redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest_asyncio.fixture(params=["memory", "redis"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    if request.param == "memory":
        clock = FakeClock()
        store = MemoryLeaseStore(clock=clock)
        yield Harness(store, store, clock)
        await store.aclose()
        return
    server: RedisServer = request.getfixturevalue("shared_redis")
    store, replica = RedisLeaseStore(server.url), RedisLeaseStore(server.url)
    yield Harness(store, replica)
    await store.aclose()
    await replica.aclose()


@pytest.mark.asyncio
async def test_first_holder_takes_a_free_lease(harness: Harness) -> None:
    token_key = new_token_key()

    granted = await harness.store.acquire(
        token_key, NF_A, idle_seconds=IDLE, expires_at=harness.now() + 60
    )

    assert granted is True


@pytest.mark.asyncio
async def test_other_holder_is_refused_while_the_lease_is_live(harness: Harness) -> None:
    token_key, exp = new_token_key(), harness.now() + 60
    await harness.store.acquire(token_key, NF_A, idle_seconds=IDLE, expires_at=exp)

    refused = await harness.store.acquire(token_key, NF_B, idle_seconds=IDLE, expires_at=exp)
    renewed = await harness.store.acquire(token_key, NF_A, idle_seconds=IDLE, expires_at=exp)

    assert refused is False
    assert renewed is True


@pytest.mark.asyncio
async def test_holder_renews_its_lease_on_use(harness: Harness) -> None:
    token_key, exp = new_token_key(), harness.now() + 60
    await harness.store.acquire(token_key, NF_A, idle_seconds=IDLE, expires_at=exp)
    await harness.advance(0.2)
    assert await harness.store.acquire(token_key, NF_A, idle_seconds=IDLE, expires_at=exp)
    await harness.advance(0.2)

    taken_over = await harness.store.acquire(token_key, NF_B, idle_seconds=IDLE, expires_at=exp)

    assert taken_over is False


@pytest.mark.asyncio
async def test_refused_attempt_does_not_extend_the_lease(harness: Harness) -> None:
    token_key, exp = new_token_key(), harness.now() + 60
    await harness.store.acquire(token_key, NF_A, idle_seconds=IDLE, expires_at=exp)
    await harness.advance(0.2)
    assert not await harness.store.acquire(token_key, NF_B, idle_seconds=IDLE, expires_at=exp)
    await harness.advance(0.15)

    taken_over = await harness.store.acquire(token_key, NF_C, idle_seconds=IDLE, expires_at=exp)

    assert taken_over is True


@pytest.mark.asyncio
async def test_other_holder_takes_over_after_the_idle_period(harness: Harness) -> None:
    token_key, exp = new_token_key(), harness.now() + 60
    await harness.store.acquire(token_key, NF_A, idle_seconds=IDLE, expires_at=exp)
    await harness.advance(IDLE + 0.05)

    taken_over = await harness.store.acquire(token_key, NF_B, idle_seconds=IDLE, expires_at=exp)
    former_holder = await harness.store.acquire(
        token_key, NF_A, idle_seconds=IDLE, expires_at=exp
    )

    assert taken_over is True
    assert former_holder is False


@pytest.mark.asyncio
async def test_lease_never_outlives_the_token_expiry(harness: Harness) -> None:
    token_key = new_token_key()
    await harness.store.acquire(
        token_key, NF_A, idle_seconds=30, expires_at=harness.now() + 0.15
    )
    await harness.advance(0.2)

    taken_over = await harness.store.acquire(
        token_key, NF_B, idle_seconds=30, expires_at=harness.now() + 60
    )

    assert taken_over is True


@pytest.mark.asyncio
async def test_expired_token_is_granted_without_taking_a_lease(harness: Harness) -> None:
    token_key = new_token_key()

    granted = await harness.store.acquire(
        token_key, NF_A, idle_seconds=IDLE, expires_at=harness.now() - 1
    )
    other = await harness.store.acquire(
        token_key, NF_B, idle_seconds=IDLE, expires_at=harness.now() + 60
    )

    assert granted is True
    assert other is True


@pytest.mark.asyncio
async def test_replicas_see_the_same_lease(harness: Harness) -> None:
    token_key, exp = new_token_key(), harness.now() + 60
    await harness.store.acquire(token_key, NF_A, idle_seconds=IDLE, expires_at=exp)

    refused = await harness.replica.acquire(token_key, NF_B, idle_seconds=IDLE, expires_at=exp)
    renewed = await harness.replica.acquire(token_key, NF_A, idle_seconds=IDLE, expires_at=exp)
    await harness.advance(IDLE + 0.05)
    taken_over = await harness.store.acquire(
        token_key, NF_B, idle_seconds=IDLE, expires_at=exp
    )

    assert (refused, renewed, taken_over) == (False, True, True)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("token_key", "holder", "idle_seconds", "expires_at"),
    [
        ("k" * 129, NF_A, IDLE, 2e9),
        ("", NF_A, IDLE, 2e9),
        ("jti\ud800", NF_A, IDLE, 2e9),
        ("jti", "", IDLE, 2e9),
        ("jti", "x" * 257, IDLE, 2e9),
        ("jti", NF_A, 0, 2e9),
        ("jti", NF_A, float("nan"), 2e9),
        ("jti", NF_A, IDLE, float("inf")),
    ],
)
async def test_out_of_bounds_arguments_are_refused_before_the_store_is_asked(
    harness: Harness, token_key: str, holder: str, idle_seconds: float, expires_at: float
) -> None:
    with pytest.raises(ValueError):
        await harness.store.acquire(
            token_key, holder, idle_seconds=idle_seconds, expires_at=expires_at
        )


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_concurrent_holders_are_never_granted_overlapping_leases(
    kind: str, request: pytest.FixtureRequest
) -> None:
    idle, duration = 0.1, 1.2
    if kind == "memory":
        store = MemoryLeaseStore()
        replicas: list[LeaseStore] = [store]
    else:
        url = request.getfixturevalue("shared_redis").url
        replicas = [RedisLeaseStore(url, timeout=1.0), RedisLeaseStore(url, timeout=1.0)]
    token_key, exp = new_token_key(), time.time() + 60
    grants: list[tuple[float, float, str]] = []
    refusals = 0
    end = time.time() + duration

    async def attempt(holder: str, replica: LeaseStore) -> None:
        nonlocal refusals
        started = time.time()
        granted = await replica.acquire(token_key, holder, idle_seconds=idle, expires_at=exp)
        if granted:
            grants.append((started, time.time(), holder))
        else:
            refusals += 1

    async def holder_loop(holder: str, seed: int) -> None:
        rng = random.Random(seed)
        while time.time() < end:
            await asyncio.gather(
                *(attempt(holder, rng.choice(replicas)) for _ in range(8))
            )
            quiet = rng.random() < 0.3
            await asyncio.sleep(idle * 1.5 if quiet else rng.uniform(0, 0.02))

    try:
        await asyncio.gather(*(holder_loop(h, i) for i, h in enumerate([NF_A, NF_B, NF_C])))
    finally:
        for replica in replicas:
            await replica.aclose()

    grants.sort()
    overlaps = [
        (first, second)
        for i, first in enumerate(grants)
        for second in grants[i + 1:]
        if second[0] < first[0] + idle
        and second[2] != first[2]
        and second[1] - first[0] < idle - 0.002
        and first[1] - second[0] < idle - 0.002
    ]
    handovers = sum(1 for a, b in zip(grants, grants[1:]) if a[2] != b[2])
    assert overlaps == []
    assert handovers >= 2
    assert refusals > 0


@pytest.mark.asyncio
async def test_leases_are_namespaced_redis_keys_that_expire_on_their_own(
    shared_redis: RedisServer,
) -> None:
    store = RedisLeaseStore(shared_redis.url)
    inspector = Redis.from_url(shared_redis.url)
    token_key = new_token_key()
    try:
        await store.acquire(token_key, NF_A, idle_seconds=IDLE, expires_at=time.time() + 60)
        holder = await inspector.get(KEY_PREFIX + token_key)
        ttl_ms = await inspector.pttl(KEY_PREFIX + token_key)
        await asyncio.sleep(IDLE + 0.05)
        remaining = await inspector.exists(KEY_PREFIX + token_key)
    finally:
        await store.aclose()
        await inspector.aclose()

    assert holder == NF_A.encode()
    assert 0 < ttl_ms <= IDLE * 1000
    assert remaining == 0


@pytest.mark.asyncio
async def test_stopped_redis_makes_acquire_raise_store_unavailable_quickly(
    own_redis: RedisServer,
) -> None:
    store = RedisLeaseStore(own_redis.url, timeout=0.25)
    exp = time.time() + 60
    await store.acquire(new_token_key(), NF_A, idle_seconds=IDLE, expires_at=exp)
    own_redis.stop()

    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        await store.acquire(new_token_key(), NF_A, idle_seconds=IDLE, expires_at=exp)
    elapsed = time.monotonic() - started
    await store.aclose()

    assert elapsed < 0.25 + 0.1


@pytest.mark.asyncio
async def test_unresponsive_redis_makes_acquire_raise_store_unavailable_within_timeout(
    own_redis: RedisServer,
) -> None:
    store = RedisLeaseStore(own_redis.url, timeout=0.25)
    exp = time.time() + 60
    await store.acquire(new_token_key(), NF_A, idle_seconds=IDLE, expires_at=exp)
    own_redis.pause()
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await store.acquire(new_token_key(), NF_A, idle_seconds=IDLE, expires_at=exp)
        elapsed = time.monotonic() - started
    finally:
        own_redis.resume()

    recovered = await store.acquire(new_token_key(), NF_A, idle_seconds=IDLE, expires_at=exp)
    await store.aclose()

    assert 0.2 < elapsed < 0.25 + 0.1
    assert recovered is True


@pytest.mark.asyncio
async def test_same_store_works_again_once_redis_is_restarted(own_redis: RedisServer) -> None:
    store = RedisLeaseStore(own_redis.url)
    exp = time.time() + 60

    async def burst() -> list[bool | BaseException]:
        return await asyncio.gather(
            *(
                store.acquire(new_token_key(), NF_A, idle_seconds=IDLE, expires_at=exp)
                for _ in range(8)
            ),
            return_exceptions=True,
        )

    assert await burst() == [True] * 8
    own_redis.stop()
    assert all(isinstance(outcome, StoreUnavailable) for outcome in await burst())
    own_redis.start()
    after_restart = await burst()
    own_redis.stop()
    own_redis.start()
    after_silent_restart = await burst()
    await store.aclose()

    assert after_restart == [True] * 8
    assert after_silent_restart == [True] * 8


@pytest.mark.asyncio
async def test_redis_store_does_not_connect_until_first_acquire() -> None:
    store = open_lease_store("redis://127.0.0.1:1/0", timeout=0.25)

    assert isinstance(store, RedisLeaseStore)
    with pytest.raises(StoreUnavailable):
        await store.acquire(new_token_key(), NF_A, idle_seconds=IDLE, expires_at=2e9)
    await store.aclose()


def test_open_lease_store_builds_a_memory_store_with_the_given_bound() -> None:
    store = open_lease_store("memory", max_entries=10)

    assert isinstance(store, MemoryLeaseStore)
    assert store.max_entries == 10


@pytest.mark.parametrize("url", ["", "memcached://127.0.0.1", "https://user:s3cret@host", "redis"])
def test_open_lease_store_rejects_other_urls_without_echoing_secrets(url: str) -> None:
    with pytest.raises(ValueError, match="lease store") as raised:
        open_lease_store(url)

    assert "s3cret" not in str(raised.value)


@pytest.mark.asyncio
async def test_memory_store_stays_bounded_and_fast_under_many_tokens(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemoryLeaseStore(max_entries=1_000)
    exp = time.time() + 60
    caplog.set_level(logging.WARNING, logger="sbi_setauth.leases.memory")

    started = time.monotonic()
    for index in range(100_000):
        await store.acquire(f"jti-{index}", NF_A, idle_seconds=30, expires_at=exp)
    elapsed = time.monotonic() - started

    assert len(store) == 1_000
    assert elapsed < 2.0
    assert 1 <= len(caplog.records) <= 2


@pytest.mark.asyncio
async def test_full_memory_store_evicts_the_lease_closest_to_its_end() -> None:
    clock = FakeClock()
    store = MemoryLeaseStore(max_entries=3, clock=clock)
    for token_key, lifetime in [("later", 50), ("soonest", 10), ("latest", 90)]:
        await store.acquire(token_key, NF_A, idle_seconds=300, expires_at=clock.now + lifetime)

    await store.acquire("newcomer", NF_A, idle_seconds=300, expires_at=clock.now + 60)

    exp = clock.now + 100
    assert len(store) == 3
    for kept in ["later", "latest", "newcomer"]:
        assert await store.acquire(kept, NF_B, idle_seconds=300, expires_at=exp) is False
    assert await store.acquire("soonest", NF_B, idle_seconds=300, expires_at=exp) is True


@pytest.mark.asyncio
async def test_memory_store_drops_lapsed_leases_as_requests_arrive() -> None:
    clock = FakeClock()
    store = MemoryLeaseStore(clock=clock)
    for index in range(1_000):
        await store.acquire(f"old-{index}", NF_A, idle_seconds=IDLE, expires_at=clock.now + 60)
    clock.now += IDLE + 1

    for index in range(50):
        await store.acquire(f"new-{index}", NF_A, idle_seconds=IDLE, expires_at=clock.now + 60)

    assert len(store) == 50


@pytest.mark.asyncio
async def test_memory_store_bookkeeping_stays_bounded_under_constant_renewal() -> None:
    clock = FakeClock()
    store = MemoryLeaseStore(max_entries=10, clock=clock)
    exp = clock.now + 3_600

    for _ in range(50_000):
        clock.now += 0.001
        assert await store.acquire("busy", NF_A, idle_seconds=30, expires_at=exp)

    assert len(store) == 1
    assert len(store._deadlines) <= 2 * store.max_entries + 1024 + 1
