"""The AAAA answers the proxy asked beside A queries, kept for their TTL; pure (time is an
argument).

Every A query the proxy maps also needs the name's AAAA (SPEC section 3).  A home asks the
same names over and over (with dnsmasq's cache off, as per-client options make it, every one
of them reaches the proxy), and asking AAAA upstream each time doubled the proxy's upstream
exchanges per A answer and most of what it costs (README, Benchmarks).  An AAAA answer may be
kept and reused for its TTL, decremented as time passes, as any cache does (RFC 1035 sections
3.2.1 and 7.3, RFC 2181 section 8); an answer that says the name has no AAAA (NODATA,
NXDOMAIN) for its negative TTL, the smaller of the SOA record's TTL and its MINIMUM field
(RFC 2308 section 5).  An answer without a TTL to keep it by (a failure, a negative answer
without SOA) is not kept.  The TTL kept is the AAAA answer's own (with its CNAME chain's), not
the A's: the two often differ, and the A's may be the longer one.

What the decision sees is what the resolver would have said when asked again at that moment:
the same records with the TTL left.  The resolver's own cache (unbound, dnsmasq) already
answers so; keeping the answer here only saves the exchange.  A name whose AAAA changes is seen
changed once its TTL ends, as it would be through any resolver.

Memory is bounded: at most ``capacity`` names, the oldest inserted forgotten first; an expired
one goes when it is looked up or pushed out.  One name costs about 200 bytes besides its
addresses (the key, a small tuple and the dict slot; tracemalloc, tests/unit/test_remembered.py),
and the addresses about 100 bytes each, shared with the observations and the memory of answers
seen that hold the same ones; at most the lowest ``limits.MAX_ADDRESSES`` of an answer are kept,
those the decision considers (issue 26): about 4 MB for ``CAPACITY`` names at worst.
"""

from __future__ import annotations

from ipaddress import IPv6Address

from clat_eamt.core.limits import MAX_ADDRESSES, lowest
from clat_eamt.core.model import AaaaStatus
from clat_eamt.dns.answers import AddressAnswer
from clat_eamt.dns.wire import name_bytes

CAPACITY = 2048  # names; a home's working set of names within their TTLs fits
_KEPT = (AaaaStatus.ANSWER, AaaaStatus.NODATA, AaaaStatus.NXDOMAIN)
# (expires, status, authenticated, the addresses): the answer's own address objects, so every
# observation of the name holds the same ones (the engine compares repeated answers).
_Kept = tuple[float, AaaaStatus, bool, tuple[IPv6Address, ...]]


class RememberedAaaa:
    def __init__(self, capacity: int = CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("the AAAA memory needs room for one name")
        self.capacity = capacity
        self._kept: dict[bytes, _Kept] = {}  # a plain dict keeps insertion order: oldest first

    def __len__(self) -> int:
        return len(self._kept)

    def remember(self, key: bytes, answer: AddressAnswer, ttl: int, now: float) -> None:
        """Keep ``answer`` for the name ``key`` (``name_key``) for ``ttl`` seconds from ``now``;
        nothing is kept for a failure or a TTL of 0."""
        if answer.status not in _KEPT or ttl <= 0:
            self._kept.pop(key, None)  # an older answer is no better than this one
            return
        addresses = tuple(x for x in answer.addresses if isinstance(x, IPv6Address))
        if len(addresses) > MAX_ADDRESSES:  # what the decision considers: bounded in bytes
            addresses = tuple(lowest(addresses)[0])
        self._kept.pop(key, None)  # re-inserted: the newest
        self._kept[key] = (now + ttl, answer.status, answer.authenticated, addresses)
        while len(self._kept) > self.capacity:
            del self._kept[next(iter(self._kept))]

    def recall(self, key: bytes, now: float) -> AddressAnswer | None:
        """The answer kept for ``key`` with the TTL it has left, None if none is (any more)."""
        kept = self._kept.get(key)
        if kept is None:
            return None
        expires, status, authenticated, addresses = kept
        left = int(expires - now)  # whole seconds left, rounded down as caches count them
        if left <= 0:
            del self._kept[key]
            return None
        return AddressAnswer(status, addresses, left, authenticated=authenticated)


# The key of a name: its labels with their lengths as on the wire, in lower case (RFC 4343), so
# a dot inside a label cannot make two names one.
name_key = name_bytes
