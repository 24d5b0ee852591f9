"""Creation rate limits (SPEC section 4: cap table size and creation rate), and the bound on
the addresses of one answer that anything reads or keeps (``lowest``).

Token buckets with time passed in.  One global bucket and one per host; the per-host buckets live
in a bounded LRU so a LAN full of (spoofed) MACs cannot grow memory without bound.  An evicted
host starts again with a full bucket, which the global bucket still caps.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import TypeVar

from clat_eamt.core.model import Reason

_Address = TypeVar("_Address", IPv4Address, IPv6Address)
MAX_ADDRESSES = 16  # per family and answer; CDNs answer with a handful


def lowest(records: Iterable[_Address], limit: int = MAX_ADDRESSES) -> tuple[list[_Address], int]:
    """The lowest ``limit`` distinct records, sorted, and how many others were left out: what
    the decision considers and the memory of answers keeps (deterministic, so a name's choice
    does not move when a resolver rotates its records)."""
    if isinstance(records, tuple) and len(records) <= 1:  # the usual answer: one record
        return list(records), 0
    distinct = set(records)
    if len(distinct) <= limit:
        return sorted(distinct), 0
    return heapq.nsmallest(limit, distinct), len(distinct) - limit


@dataclass
class TokenBucket:
    """``rate`` tokens per second up to ``burst``; starts full."""

    rate: float
    burst: float
    tokens: float = -1.0
    stamp: float | None = None

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        if self.tokens < 0:
            self.tokens = self.burst

    def available(self, now: float) -> float:
        if self.stamp is None or now <= self.stamp:  # a clock going backwards adds nothing
            return self.tokens
        return min(self.burst, self.tokens + (now - self.stamp) * self.rate)

    def take(self, now: float, count: int = 1) -> None:
        self.tokens = max(0.0, self.available(now) - count)
        self.stamp = now if self.stamp is None else max(self.stamp, now)


class CreationLimiter:
    """How many new entries may be created now, globally and for one host."""

    def __init__(
        self,
        rate: float,
        burst: float,
        host_rate: float,
        host_burst: float,
        max_hosts: int = 1024,
    ) -> None:
        self._global = TokenBucket(rate, burst)
        self._host_rate = host_rate
        self._host_burst = host_burst
        self._max_hosts = max_hosts
        self._hosts: OrderedDict[str, TokenBucket] = OrderedDict()
        TokenBucket(host_rate, host_burst)  # validate the per-host parameters up front

    def allowance(self, host: str | None, now: float) -> tuple[int, Reason]:
        """(entries that may be created now, the limit that binds).  Changes nothing."""
        allowed = int(self._global.available(now))
        binding = Reason.RATE_LIMITED
        if host is not None:
            bucket = self._hosts.get(host)
            per_host = int(bucket.available(now)) if bucket else int(self._host_burst)
            if per_host < allowed:
                allowed, binding = per_host, Reason.HOST_RATE_LIMITED
        return allowed, binding

    def consume(self, host: str | None, now: float, count: int) -> None:
        if count <= 0:
            return
        self._global.take(now, count)
        if host is None:
            return
        bucket = self._hosts.pop(host, None) or TokenBucket(self._host_rate, self._host_burst)
        bucket.take(now, count)
        self._hosts[host] = bucket  # most recently used last
        while len(self._hosts) > self._max_hosts:
            self._hosts.popitem(last=False)

    @property
    def parameters(self) -> tuple[float, float, float, float]:
        """rate, burst, host rate, host burst (as configured)."""
        return self._global.rate, self._global.burst, self._host_rate, self._host_burst

    @property
    def tracked_hosts(self) -> int:
        return len(self._hosts)
