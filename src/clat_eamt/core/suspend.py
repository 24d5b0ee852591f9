"""Suspended destinations: static and provider entries whose target is broken (issue 25).

A dns entry whose target turns broken goes Stale (``Engine.stale_broken``): DNS brings it back
once the verdict expired.  A static entry changes only by the operator, and a provider entry
lives until the operator's next table (hours): made Stale, a static entry would keep steering
every retransmission into the black hole (the rescue deletes the conntrack entries, the SYN is
steered again through the still-Valid mapping, and so on) and a provider entry would stay off
long after a transient failure.  So neither changes state; instead the IPv4 destinations D they
map to a broken target are *suspended*: the dataplane's ``suspended`` set, matched before the
IPv4 leg's DNAT, lets new connections to them take the NAT64 while running flows keep their
path (conntrack fixed both legs, SPEC section 7), as the router-wide brake does for all.

An element lives as long as the verdict that made it (its back-off, ``core.safety``); then it
is resumed and the next real connection is the trial: a reply makes the target working, no
reply gets it rescued again and broken with the back-off doubled.

Pure: the shell hands in the entries and the verdicts (``Safety``) and applies the returned
``SuspendChange`` to the set as a diff.  Elements are kept collapsed (no two overlap: nft
refuses overlapping intervals), so the diff is between two collapsed lists.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, collapse_addresses

from clat_eamt.core.counters import Count
from clat_eamt.core.model import Entry, Origin, State
from clat_eamt.core.safety import Safety

SUSPENDED_ORIGINS = frozenset({Origin.STATIC, Origin.PROVIDER})  # the others go Stale
SHOWN = 1000  # destinations listed in status (with their total): a bounded answer to each poll


@dataclass(frozen=True)
class SuspendChange:
    """Elements of the ``suspended`` set to add and to remove (disjoint, collapsed)."""

    add: tuple[IPv4Network, ...] = ()
    remove: tuple[IPv4Network, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.add or self.remove)


def broken_parts(entry: Entry, safety: Safety, now: float) -> dict[IPv4Network, float]:
    """The parts of ``entry``'s D whose target is broken now, each with when its verdict ends.

    EAM (RFC 7757 section 3) keeps the suffix: the address D + i maps to X + i, so a broken
    target inside a prefix entry suspends its own D address only; a broken /64 covering the
    whole X (always, X being at least a /96) suspends all of D, unless X is one address whose
    own verdict says otherwise (``Safety.verdict``: a target's own verdict wins)."""
    if entry.origin not in SUSPENDED_ORIGINS or entry.state is not State.VALID:
        return {}
    x, d = entry.ipv6, entry.ipv4
    if x.prefixlen == 128:
        until = safety.broken_until(x.network_address, now)
        return {} if until is None else {d: until}
    found: dict[IPv4Network, float] = {}
    for key, until in safety.broken_keys(now):
        if isinstance(key, IPv6Network):  # a /64: covers all of X
            if x.subnet_of(key):
                return {d: until}
            continue
        if key in x:
            offset = int(key) - int(x.network_address)
            part = IPv4Network((int(d.network_address) + offset, 32))
            found[part] = max(until, found.get(part, 0.0))
    return found


@dataclass
class Suspensions:
    """The destinations suspended now, each with when it is to be resumed."""

    held: dict[IPv4Network, float] = field(default_factory=dict)  # D (part) -> until
    counters: Counter[str] = field(default_factory=Counter)

    def elements(self) -> list[IPv4Network]:
        return list(collapse_addresses(self.held))

    def plan(self, entries: Iterable[Entry], safety: Safety, now: float) -> SuspendChange:
        """All of it again (a verdict changed, one expired): ``entries`` is the whole table;
        a scan, on verdict changes only (rare)."""
        wanted: dict[IPv4Network, float] = {}
        for entry in entries:
            wanted.update(broken_parts(entry, safety, now))
        return self._become(wanted)

    def update(
        self, entries: Iterable[Entry], gone: Iterable[IPv4Network], safety: Safety, now: float
    ) -> SuspendChange:
        """Entries whose IPv4 leg was just installed, and IPv4 legs just removed (``gone``):
        a static or provider entry to a target already broken is suspended at once; what a
        removed leg held is resumed.  Costs per changed leg, not per entry in the table."""
        wanted = dict(self.held)
        for d in gone:
            for part in [p for p in wanted if p.subnet_of(d)]:
                del wanted[part]
        for entry in entries:
            wanted.update(broken_parts(entry, safety, now))
        return self._become(wanted)

    def reset(self) -> None:
        """The set was emptied (the table rewritten at start): nothing is suspended."""
        self.held.clear()

    def next_change(self) -> float | None:
        """When the earliest element is due to be resumed (its verdict's end)."""
        return min(self.held.values(), default=None)

    def suspended(self, ipv4: IPv4Network) -> bool:
        return bool(self.held) and (ipv4 in self.held or any(p.overlaps(ipv4) for p in self.held))

    def _become(self, wanted: dict[IPv4Network, float]) -> SuspendChange:
        before = set(self.elements())
        newly = [d for d in wanted if not any(d.subnet_of(p) for p in self.held)]
        resumed = [p for p in self.held if not any(p.subnet_of(d) for d in wanted)]
        self.held = wanted
        after = set(self.elements())
        self.counters[Count.SUSPENDED] += len(newly)
        self.counters[Count.RESUMED] += len(resumed)
        return SuspendChange(tuple(sorted(after - before)), tuple(sorted(before - after)))

    def view(self, now: float) -> list[dict[str, object]]:
        """For status (and the mappings' rows): each suspended D (the first ``SHOWN``) and when
        it is tried again."""
        return [
            {"ipv4": str(d), "retry_in_s": round(until - now, 1)}
            for d, until in sorted(self.held.items())[:SHOWN]
        ]
