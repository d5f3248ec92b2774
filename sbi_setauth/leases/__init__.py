"""Leases that let one NF instance of a consumer NF Set use a set token at a time.

A store grants the lease on a token to one holder; it is renewed on use, lapses after an idle
period so a standby instance can take over, and never outlives the token's `exp`.
"""

from __future__ import annotations

import math
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "MAX_HOLDER_LENGTH",
    "MAX_IDLE_SECONDS",
    "MAX_TOKEN_KEY_LENGTH",
    "LeaseStore",
    "StoreUnavailable",
    "check_lease_request",
    "check_store_url",
    "open_lease_store",
]

MAX_TOKEN_KEY_LENGTH = 128
MAX_HOLDER_LENGTH = 256
MAX_IDLE_SECONDS = 86_400.0


class StoreUnavailable(Exception):
    """The lease store could not answer in time."""


class LeaseStore(Protocol):
    """Where the lease on each set token is kept."""

    async def acquire(
        self, token_key: str, holder: str, *, idle_seconds: float, expires_at: float
    ) -> bool:
        """Take or renew the lease on `token_key` for `holder`.

        `token_key` identifies the token (its `jti` or a hash of it), `holder` is the acting
        NF instance ID and `expires_at` the token's `exp` as a UNIX timestamp. Returns True
        when `holder` now holds the lease, which then lasts `idle_seconds` but never beyond
        `expires_at`; returns False, changing nothing, when another holder's lease is live.
        A token already expired is granted without being stored. Raises `StoreUnavailable`
        when the store cannot answer in time.
        """
        ...

    async def aclose(self) -> None:
        """Release the store's resources."""
        ...


def check_lease_request(
    token_key: str, holder: str, idle_seconds: float, expires_at: float
) -> None:
    """Raise ValueError unless the arguments of an acquire are within bounds."""
    if not token_key or len(token_key) > MAX_TOKEN_KEY_LENGTH or not token_key.isprintable():
        raise ValueError(f"token_key must have 1 to {MAX_TOKEN_KEY_LENGTH} printable characters")
    if not holder or len(holder) > MAX_HOLDER_LENGTH or not holder.isprintable():
        raise ValueError(f"holder must have 1 to {MAX_HOLDER_LENGTH} printable characters")
    if not 0 < idle_seconds < MAX_IDLE_SECONDS:
        raise ValueError(f"idle_seconds must be positive and below {MAX_IDLE_SECONDS}")
    if not math.isfinite(expires_at):
        raise ValueError("expires_at must be a finite UNIX timestamp")


def check_store_url(url: str) -> None:
    """Raise ValueError unless `url` names a store that `open_lease_store` can use.

    The message never repeats the URL, which may carry a password.
    """
    if url == "memory":
        return
    if not url.startswith(("redis://", "rediss://")):
        raise ValueError("expected memory or a redis:// or rediss:// URL")
    try:
        from redis.connection import URL_QUERY_ARGUMENT_PARSERS, parse_url
    except ImportError:
        raise ValueError("the Redis store needs redis: pip install 'sbi-setauth[redis]'") from None
    parts = urlsplit(url)
    try:
        parts.port
    except ValueError:
        raise ValueError("the Redis URL's port is not a number") from None
    unknown = set(parse_qs(parts.query, keep_blank_values=True)) - set(URL_QUERY_ARGUMENT_PARSERS)
    if unknown:
        raise ValueError(f"unknown Redis URL options: {', '.join(sorted(unknown))[:200]}")
    database = parts.path.strip("/")
    if database and not database.isdigit():
        raise ValueError("the Redis URL's database is not a number")
    try:
        parse_url(url)
    except (ValueError, TypeError) as error:
        raise ValueError(f"the Redis URL does not parse: {type(error).__name__}") from None


def open_lease_store(
    url: str, *, timeout: float = 0.25, max_entries: int = 100_000
) -> LeaseStore:
    """Build the store named by `url`: "memory", or a "redis://" or "rediss://" URL.

    Nothing is connected here; a Redis store connects on its first acquire. `timeout` bounds
    each Redis call in seconds and `max_entries` the size of the memory store.
    """
    if url == "memory":
        from sbi_setauth.leases.memory import MemoryLeaseStore

        return MemoryLeaseStore(max_entries=max_entries)
    if url.startswith(("redis://", "rediss://")):
        check_store_url(url)
        from sbi_setauth.leases.redis import RedisLeaseStore

        return RedisLeaseStore(url, timeout=timeout)
    named = url.split("://", 1)[0] + "://" if "://" in url else url[:40]
    raise ValueError(
        f"lease store {named!r} is not supported: use 'memory' or a redis:// or rediss:// URL"
    )
