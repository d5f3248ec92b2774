"""Per-request cost of the set-token lease with each store, and the raw cost of `acquire()`.

A set-token request through the middleware is timed with EXCLUSIVE_USE=false (the baseline),
then with the memory store and with a Redis store on a redis-server this benchmark starts on a
free 127.0.0.1 port and stops at the end; all in one run. Run from the repository root (needs
`redis-server` on the PATH):

    python -m benchmarks.bench_leases [--requests N] [--repeats R]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.bench_requests import (
    AMF_SET,
    Case,
    Operator,
    bearer,
    binding,
    microseconds_per_request,
    print_table,
    protected_app,
)
from sbi_setauth.leases import LeaseStore
from sbi_setauth.leases.memory import MemoryLeaseStore
from sbi_setauth.leases.redis import RedisLeaseStore
from tests.redis_server import RedisServer


async def acquire_microseconds(store: LeaseStore, *, requests: int, repeats: int) -> float:
    """Median over `repeats` runs of the mean time of one lease renewal, in microseconds."""
    token_key = uuid.uuid4().hex
    holder = str(uuid.uuid4())
    expires_at = time.time() + 3600
    for _ in range(min(requests, 200)):
        if not await store.acquire(token_key, holder, idle_seconds=30, expires_at=expires_at):
            raise RuntimeError("the lease was refused to its own holder")

    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(requests):
            await store.acquire(token_key, holder, idle_seconds=30, expires_at=expires_at)
        runs.append((time.perf_counter() - started) / requests * 1e6)
    return statistics.median(runs)


async def main(requests: int, repeats: int) -> None:
    """Measure the request cost per store and the raw acquire cost, and print both tables."""
    redis = RedisServer()
    redis.start()
    try:
        with tempfile.TemporaryDirectory() as directory:
            operator = Operator(Path(directory))
            peer = operator.amf.chain_pem + [operator.ca.cert_pem.decode()]
            case = Case(
                "set token", [bearer(operator.set_token()), binding(AMF_SET)], peer, 200
            )
            request_rows = []
            for name, overrides in [
                ("no lease, EXCLUSIVE_USE=false (baseline)", {"exclusive_use": False}),
                ("memory store", {"holder_store": "memory"}),
                ("redis store (127.0.0.1)", {"holder_store": redis.url}),
            ]:
                app = protected_app(operator.settings(**overrides))
                micros = await microseconds_per_request(
                    app, case, requests=requests, repeats=repeats
                )
                request_rows.append((name, micros))
                if app.lease_store is not None:
                    await app.lease_store.aclose()

        memory_store = MemoryLeaseStore()
        redis_store = RedisLeaseStore(redis.url)
        try:
            acquire_rows = [
                ("memory store", await acquire_microseconds(
                    memory_store, requests=requests, repeats=repeats
                )),
                ("redis store (127.0.0.1)", await acquire_microseconds(
                    redis_store, requests=requests, repeats=repeats
                )),
            ]
        finally:
            await memory_store.aclose()
            await redis_store.aclose()
    finally:
        redis.close()

    print_table(
        f"Set-token request through ASGI with each lease store ({requests} requests x "
        f"{repeats} runs, median)",
        request_rows,
        request_rows[0][1],
    )
    print()
    width = max(len(name) for name, _ in acquire_rows)
    print("Raw acquire() of a held lease (renewal)")
    print(f"  {'store':<{width}}  {'us/acquire':>10}")
    for name, micros in acquire_rows:
        print(f"  {name:<{width}}  {micros:>10.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per run")
    parser.add_argument("--repeats", type=int, default=5, help="runs per case")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.requests, arguments.repeats))
