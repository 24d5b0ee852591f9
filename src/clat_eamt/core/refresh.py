"""How long an answer may be cached, and which mappings to refresh before they end; pure.

TTL coherence (RFC 2181 section 5.2 for the RRset): an A answer whose addresses have Valid dns
mappings leaves the proxy with TTLs no longer than the shortest remaining life among them
(``valid_life``), so neither dnsmasq's cache nor a device keeps an address past its mapping.

Refresh ahead: a device may reuse an address after its TTL (many do, for as long as a stream
or an app session lasts); once its mapping has gone Stale, its new connections take the NAT64.
So a Valid dns mapping that is in use (live flows on it, or a client's answer for its name in
the last ``recent`` seconds) and nears its end has its name asked again by the daemon (A and
AAAA, through the proxy: the same decision as a client's answer, so a name whose addresses
moved or lost their AAAA is not kept).

A caching resolver answers with what is left of its copy's TTL, and the mapping's end is that
same moment, so an ask ahead of the end often extends nothing (unless the resolver prefetches).
Then the name is asked once more just after the end, when the resolver must fetch it afresh;
the engine keeps the entry Valid until that ask has been answered (``holding``, at most
``REFRESH_GRACE`` seconds past the end).

Bounded: a token bucket caps the lookups per second, a name is asked at most twice per life of
its mapping, a mapping that lives less than ``min_life`` seconds is not refreshed ahead
(ttl_min's 30 s default always exceeds it), and a mapping nobody uses is left to expire.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

from clat_eamt.core.counters import EntryKind
from clat_eamt.core.limits import TokenBucket
from clat_eamt.core.model import Entry, EntryEvent, LiveFlows, Origin, State
from clat_eamt.core.table import MappingTable

REFRESH_GRACE = 5.0  # seconds an entry outlives its end while its name is being asked again
_SAME_END = 1.5  # seconds: ends closer than this are one end (TTL rounding)
# The ask at the end waits this long past it: caches count TTLs in whole seconds (unbound's
# copy of a 12 s record fetched at 100.8 s still answers, with TTL 0, at 112.9 s).
_AT_END = 1.2


def valid_life(
    table: MappingTable,
    addresses: Iterable[IPv4Address],
    now: float,
    decided: Mapping[int, float] | None = None,
) -> float | None:
    """Seconds until the first of the Valid dns mappings of ``addresses`` ends; None when none
    of them has one (static and provider entries have no end a DNS cache must respect).
    ``decided``: ends the decision on this answer just set, by address (saves table lookups)."""
    ends: list[float] = []
    for address in addresses:
        end = decided.get(int(address)) if decided else None
        if end is None:
            entry = table.valid_covering(address)
            if entry is None or entry.origin is not Origin.DNS or entry.expires is None:
                continue
            end = entry.expires
        ends.append(end)
    return max(0.0, min(ends) - now) if ends else None


_DECIDED = frozenset({EntryKind.ADDED, EntryKind.REFRESHED, EntryKind.REVIVED})


def decided_ends(events: Iterable[EntryEvent]) -> dict[int, float]:
    """The ends of the single-address entries an answer's decision created, refreshed or
    revived, by IPv4 address as an integer: its outcome's events carry them as the table holds
    them now (a refresh never shortens an entry's life, so the decision's own expiry may not be
    it)."""
    ends: dict[int, float] = {}
    for event in events:
        entry = event.entry
        if event.kind in _DECIDED and entry.expires is not None:
            ipv4, prefixlen = entry.ipv4_int
            if prefixlen == 32:
                ends[ipv4] = entry.expires
    return ends


@dataclass(frozen=True)
class RefreshSettings:
    lead: float = 10.0  # ask this many seconds before the end (at most a quarter of the life)
    min_life: float = 10.0
    recent: float = 300.0  # a client's answer this recent makes a mapping "in use"
    rate: float = 2.0  # lookups per second
    burst: float = 20.0
    memory: int = 4096  # names remembered (answers seen, asks made); oldest forgotten first


class RefreshAhead:
    """Which names the daemon asks again now (``due``), from the table and the live flows."""

    def __init__(self, settings: RefreshSettings | None = None) -> None:
        self.settings = settings or RefreshSettings()
        self.bucket = TokenBucket(self.settings.rate, self.settings.burst)
        self.answered: dict[str, float] = {}  # name -> last client answer seen for it
        # name -> (when, the end of its mapping then, asks for that end)
        self.asked: dict[str, tuple[float, float, int]] = {}
        self.skipped = 0  # due but over the rate limit (status)

    def client_answer(self, name: str, now: float) -> None:
        """A client's A answer for ``name`` passed the proxy (not one of our refreshes)."""
        self._remember(self.answered, name, now)

    def due(self, table: MappingTable, live: LiveFlows | None, now: float) -> list[str]:
        """The names to ask now, most urgent first; each one is taken from the rate limit."""
        s = self.settings
        candidates: list[tuple[float, str]] = []
        ends: dict[str, float] = {}
        for entry in table.expiring(now + s.lead):  # the heap, not the whole table
            name = self._candidate(entry, live, now)
            if name is not None:
                assert entry.expires is not None
                candidates.append((entry.expires, name))
                ends[name] = entry.expires
        names: list[str] = []
        for _, name in sorted(candidates):
            if name in names:
                continue
            if self.bucket.available(now) < 1:
                self.skipped += 1
                continue
            self.bucket.take(now)
            end = ends[name]
            _, before, asks = self.asked.get(name, (now, None, 0))
            again = before is not None and end - before < _SAME_END
            self._remember(
                self.asked, name, (now, before if again else end, asks + 1 if again else 1)
            )
            names.append(name)
        horizon = max(s.recent, s.lead)
        for old in [n for n, t in self.answered.items() if now - t > horizon]:
            del self.answered[old]
        for old in [n for n, (t, _, _) in self.asked.items() if now - t > horizon]:
            del self.asked[old]
        return names

    def holding(self, now: float) -> set[str]:
        """Names asked ahead whose ask at the end is still to come: their entries stay Valid
        past the end until it has been answered (``Engine.tick``'s ``refreshing``)."""
        return {
            name
            for name, (_, end, asks) in self.asked.items()
            if asks == 1 and now < end + REFRESH_GRACE
        }

    def _candidate(self, entry: Entry, live: LiveFlows | None, now: float) -> str | None:
        s = self.settings
        if entry.origin is not Origin.DNS or entry.state is not State.VALID:
            return None
        if entry.expires is None or not entry.fqdns:
            return None
        life = entry.expires - entry.refreshed
        left = entry.expires - now
        if left <= -REFRESH_GRACE:
            return None
        name = entry.fqdns[-1]  # the name that vouched for it last
        _, end, asks = self.asked.get(name, (0.0, None, 0))
        # TTLs are whole seconds, so an answer from a cache moves the end by up to a second.
        if end is not None and entry.expires - end < _SAME_END:  # asked for this end already
            if asks >= 2 or left > -_AT_END:
                return None
        elif life < s.min_life or left > min(s.lead, life / 4):
            return None
        in_use = live is not None and live.uses(entry)
        answered = self.answered.get(name)
        if not in_use and (answered is None or now - answered > s.recent):
            return None
        return name

    def _remember(self, memory: dict[str, Any], name: str, value: Any) -> None:
        memory.pop(name, None)
        memory[name] = value  # newest last
        while len(memory) > self.settings.memory:
            del memory[next(iter(memory))]
