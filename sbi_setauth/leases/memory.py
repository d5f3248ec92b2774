"""A lease store kept in the producer's own memory, for a producer running as one process.

It needs no other service, but replicas of the producer do not see each other's leases.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable

from sbi_setauth.leases import check_lease_request

__all__ = ["MemoryLeaseStore"]

logger = logging.getLogger(__name__)

_PURGE_PER_ACQUIRE = 32
_EVICTION_WARNING_INTERVAL = 60.0


class MemoryLeaseStore:
    """Leases in a dict, with a heap of deadlines so lapsed ones leave without a full scan.

    Every `acquire` runs to completion without awaiting, so concurrent requests on one event
    loop see each lease change atomically. The store is not meant to be shared across threads.
    """

    def __init__(
        self, *, max_entries: int = 100_000, clock: Callable[[], float] = time.time
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._clock = clock
        self._leases: dict[str, tuple[str, float]] = {}
        self._deadlines: list[tuple[float, str]] = []
        self._evictions_unreported = 0
        self._last_eviction_warning = float("-inf")

    def __len__(self) -> int:
        """Return how many leases are stored, lapsed ones not yet purged included."""
        return len(self._leases)

    async def acquire(
        self, token_key: str, holder: str, *, idle_seconds: float, expires_at: float
    ) -> bool:
        """Take or renew the lease on `token_key` for `holder`; see `LeaseStore.acquire`."""
        check_lease_request(token_key, holder, idle_seconds, expires_at)
        now = self._clock()
        self._purge(now, _PURGE_PER_ACQUIRE)

        if expires_at <= now:
            return True
        lease = self._leases.get(token_key)
        if lease is not None and lease[0] != holder and lease[1] > now:
            return False

        deadline = min(now + idle_seconds, expires_at)
        if lease is None and len(self._leases) >= self.max_entries:
            self._evict_earliest(now)
        self._leases[token_key] = (holder, deadline)
        if lease is None or lease[1] != deadline:
            heapq.heappush(self._deadlines, (deadline, token_key))
        if len(self._deadlines) > 2 * len(self._leases) + 1024:
            self._deadlines = [(kept[1], key) for key, kept in self._leases.items()]
            heapq.heapify(self._deadlines)
        return True

    async def aclose(self) -> None:
        """Forget every lease."""
        self._leases.clear()
        self._deadlines.clear()

    def _is_current(self, deadline: float, token_key: str) -> bool:
        lease = self._leases.get(token_key)
        return lease is not None and lease[1] == deadline

    def _purge(self, now: float, limit: int) -> None:
        deadlines = self._deadlines
        while limit > 0 and deadlines and deadlines[0][0] <= now:
            deadline, token_key = heapq.heappop(deadlines)
            if self._is_current(deadline, token_key):
                del self._leases[token_key]
            limit -= 1

    def _evict_earliest(self, now: float) -> None:
        # Limitation: when the store is full of live leases, the lease closest to its end is
        # dropped, so another instance of that set may take the token over before it idles.
        while self._deadlines:
            deadline, token_key = heapq.heappop(self._deadlines)
            if not self._is_current(deadline, token_key):
                continue
            del self._leases[token_key]
            if deadline > now:
                self._report_eviction(now)
            return

    def _report_eviction(self, now: float) -> None:
        self._evictions_unreported += 1
        if now - self._last_eviction_warning < _EVICTION_WARNING_INTERVAL:
            return
        logger.warning(
            "lease store full (%d entries): evicted %d live lease(s) closest to their end",
            self.max_entries,
            self._evictions_unreported,
        )
        self._evictions_unreported = 0
        self._last_eviction_warning = now
