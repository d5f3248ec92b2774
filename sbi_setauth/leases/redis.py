"""A lease store in Redis, shared by every replica of a producer.

Each acquire is one atomic server-side script; Redis expires the leases by itself, using its
own clock, so replicas with skewed clocks still agree on when a lease lapses.
"""

from __future__ import annotations

import asyncio
import logging
import math

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from sbi_setauth.leases import StoreUnavailable, check_lease_request

__all__ = ["KEY_PREFIX", "RedisLeaseStore"]

logger = logging.getLogger(__name__)

KEY_PREFIX = "sbi-setauth:lease:"

_LATEST_EXPIRY = 1e11

# Limitation: leases live only as long as Redis keeps them; a Redis restart without
# persistence forgets every lease, so any instance of a set may take its token over at once.

_ACQUIRE_SCRIPT = """
if redis.replicate_commands then redis.replicate_commands() end
local time = redis.call('TIME')
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local ttl_ms = math.min(tonumber(ARGV[2]), tonumber(ARGV[3]) - now_ms)
if ttl_ms <= 0 then
  return 1
end
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl_ms)
return 1
"""


class RedisLeaseStore:
    """Leases kept in Redis under `KEY_PREFIX` + token key, each expiring on its own.

    Nothing connects until the first acquire. Every acquire is bounded by `timeout` seconds,
    and any failure to get an answer in that time raises `StoreUnavailable`. A pooled
    connection found broken is replaced and the call tried once more within the same time
    bound, so the store recovers by itself once Redis answers again.
    """

    def __init__(self, url: str, *, timeout: float = 0.25, max_connections: int = 64) -> None:
        if not timeout > 0 or not math.isfinite(timeout):
            raise ValueError("timeout must be a positive number of seconds")
        self.timeout = timeout
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1),
        )
        self._redis = Redis(connection_pool=pool)
        self._acquire_script = self._redis.register_script(_ACQUIRE_SCRIPT)

    async def acquire(
        self, token_key: str, holder: str, *, idle_seconds: float, expires_at: float
    ) -> bool:
        """Take or renew the lease on `token_key` for `holder`; see `LeaseStore.acquire`."""
        check_lease_request(token_key, holder, idle_seconds, expires_at)
        idle_ms = max(1, math.ceil(idle_seconds * 1000))
        expires_at_ms = math.floor(min(max(expires_at, 0.0), _LATEST_EXPIRY) * 1000)

        try:
            granted = await asyncio.wait_for(
                self._acquire_script(
                    keys=[KEY_PREFIX + token_key], args=[holder, idle_ms, expires_at_ms]
                ),
                self.timeout,
            )
        except (RedisError, OSError, asyncio.TimeoutError) as error:
            reason = type(error).__name__
            logger.debug("lease store did not answer: %s", reason)
            detail = f"the lease store did not answer in time ({reason})"
            raise StoreUnavailable(detail) from error
        return granted == 1

    async def aclose(self) -> None:
        """Close every connection to Redis."""
        await self._redis.aclose()
        await self._redis.connection_pool.disconnect()
