"""Host classification from the router's neighbour tables (SPEC section 3).

"A host whose MAC shows both IPv4 and IPv6 in the neighbour tables is dual-stack and is not
optimized; keep a table of IPv4-only hosts; when unsure, do not optimize."  The decisions taken
where that leaves a gap:

- Only a global-unicast (2000::/3) or ULA (fc00::/7, RFC 4193) IPv6 entry makes a MAC
  dual-stack.  Every IPv6-enabled stack has a link-local fe80:: address (RFC 4291 section 2.5.6)
  even where the network gives it no other, and a host with only link-local IPv6 cannot reach
  native IPv6 destinations: for our purpose it is IPv4-only (its Happy Eyeballs would use IPv4
  anyway, through the CLAT).
- Entries that never resolved (INCOMPLETE, FAILED, NONE) or are not about a host (NOARP:
  multicast, broadcast, point-to-point) do not count; REACHABLE, STALE, DELAY, PROBE and
  PERMANENT do: each says the MAC used that address.
- A host seen with IPv4 only is "unknown" for an observation period (``observe``, default 60 s)
  and IPv4-only after it: a host that just joined does DHCPv4/ARP and SLAAC/NS in any order, and
  the router learns its global IPv6 only once it sends something over IPv6.  A host absent from
  the tables for more than ``reobserve_after`` (10 min) is observed afresh when it returns.
- Dual-stack verdicts are held for ``hold`` (24 h) after the last IPv6 sighting.  IPv6 entries
  age out sooner than the host's IPv6 use (temporary addresses rotate, an idle host's entries go
  STALE and are garbage collected on busy LANs), and a wrong "dual-stack" only costs an
  optimization while a wrong "IPv4-only" maps a host the draft says to leave alone.  A day
  covers overnight idling and daily address rotation.  A MAC not seen for that long is
  forgotten; at most MAX_HOSTS are remembered.
- When a refresh fails, every IPv4-only verdict reads as unknown until the next good one.

``classify`` and ``by_ipv4`` take the neighbour entries and the previous records (the memory)
and return new records; ``HostMemory`` keeps them between looks and answers the proxy (who is
this client) and the dataplane (which IPv4 addresses are dual-stack, which IPv4-only).  No I/O:
``dataplane.neighbours`` dumps the tables, the runtime hands them here with the time.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv6Address, IPv6Network, ip_address
from typing import Any

from clat_eamt.core.model import Host, HostClass

OBSERVE_SECONDS = 60.0
DUAL_STACK_HOLD_SECONDS = 86400.0
REOBSERVE_AFTER_SECONDS = 600.0
MAX_HOSTS = 4096  # memory bound against MAC floods (the kernel's gc_thresh3 is 1024)
_MEMO_HOSTS = 1024  # answers of ``host`` kept until the next look
_GLOBAL, _ULA = IPv6Network("2000::/3"), IPv6Network("fc00::/7")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_BROADCAST = IPv4Address("255.255.255.255")
_CAUTION = {HostClass.IPV4_ONLY: 0, HostClass.UNKNOWN: 1, HostClass.DUAL_STACK: 2}


class Nud(enum.IntFlag):
    """Neighbour states (include/uapi/linux/neighbour.h)."""

    NONE, INCOMPLETE, REACHABLE, STALE, DELAY = 0x00, 0x01, 0x02, 0x04, 0x08
    PROBE, FAILED, NOARP, PERMANENT = 0x10, 0x20, 0x40, 0x80


_COUNTS = Nud.REACHABLE | Nud.STALE | Nud.DELAY | Nud.PROBE | Nud.PERMANENT


@dataclass(frozen=True)
class Neighbour:
    """One entry of the kernel's neighbour table (ARP for IPv4, NDP for IPv6)."""

    ip: IPv4Address | IPv6Address
    mac: str | None
    state: int  # Nud flags
    ifindex: int = 0


@dataclass(frozen=True)
class HostRecord:
    """What is known of one MAC; also the memory handed to the next ``classify``."""

    mac: str
    ipv4s: frozenset[IPv4Address]  # current IPv4 entries, else the last ones seen
    klass: HostClass
    why: str
    first_seen: float  # start of the current observation
    last_seen: float  # last refresh that found a usable entry of the MAC
    present: bool = False  # found by the refresh that made this record
    ipv4_current: bool = False  # ipv4s are in the tables now
    ipv6: IPv6Address | None = None  # last global/ULA IPv6 seen
    ipv6_seen: float | None = None
    link_local: IPv6Address | None = None  # link-local IPv6 seen now (display only)


def counts(neighbour: Neighbour) -> bool:
    """A resolved entry about a unicast host (see the module docstring)."""
    ip = neighbour.ip
    if not neighbour.mac or neighbour.mac == "00:00:00:00:00:00":
        return False
    if not neighbour.state & _COUNTS or neighbour.state & Nud.NOARP:
        return False
    return not (ip.is_multicast or ip.is_unspecified or ip.is_loopback or ip == _BROADCAST)


def native_ipv6(ip: IPv6Address) -> bool:
    """Global unicast or ULA: an address a host can use beyond the link."""
    return ip in _GLOBAL or ip in _ULA


def classify(
    neighbours: Iterable[Neighbour],
    now: float,
    previous: Mapping[str, HostRecord] | None = None,
    *,
    observe: float = OBSERVE_SECONDS,
    hold: float = DUAL_STACK_HOLD_SECONDS,
    reobserve_after: float = REOBSERVE_AFTER_SECONDS,
    max_hosts: int = MAX_HOSTS,
) -> dict[str, HostRecord]:
    """The records per MAC after one look at the neighbour tables at time ``now``."""
    previous = previous or {}
    ipv4s: dict[str, set[IPv4Address]] = {}
    native: dict[str, IPv6Address] = {}
    local: dict[str, IPv6Address] = {}
    for n in neighbours:
        if not counts(n):
            continue
        mac = (n.mac or "").lower()
        if isinstance(n.ip, IPv4Address):
            ipv4s.setdefault(mac, set()).add(n.ip)
        elif native_ipv6(n.ip):  # the smallest: deterministic, and global sorts before ULA
            native[mac] = min(native.get(mac, n.ip), n.ip)
        elif n.ip.is_link_local:
            local[mac] = min(local.get(mac, n.ip), n.ip)
    seen = ipv4s.keys() | native.keys() | local.keys()
    records: dict[str, HostRecord] = {}
    for mac in ipv4s.keys() | native.keys() | previous.keys():
        prev = previous.get(mac)
        if mac in seen:  # observed afresh only after an absence longer than reobserve_after
            away = prev is not None and not prev.present and now - prev.last_seen > reobserve_after
            first_seen = prev.first_seen if prev is not None and not away else now
            last_seen = now
            addresses = frozenset(ipv4s.get(mac, ())) or (prev.ipv4s if prev else frozenset())
        elif prev is not None and now - prev.last_seen <= max(hold, reobserve_after):
            first_seen, last_seen, addresses = prev.first_seen, prev.last_seen, prev.ipv4s
        else:
            continue  # forgotten
        ipv6: IPv6Address | None = native.get(mac, prev.ipv6 if prev else None)
        ipv6_seen = now if mac in native else prev.ipv6_seen if prev else None
        record = HostRecord(
            mac, addresses, HostClass.UNKNOWN, "", first_seen, last_seen, mac in seen,
            bool(ipv4s.get(mac)), ipv6, ipv6_seen, local.get(mac),
        )  # fmt: skip
        klass, why = _verdict(record, now, observe=observe, hold=hold, reobserve=reobserve_after)
        records[mac] = replace(record, klass=klass, why=why)
    if len(records) > max_hosts:
        keep = sorted(records.values(), key=lambda r: r.last_seen, reverse=True)[:max_hosts]
        records = {r.mac: r for r in keep}
    return records


def _verdict(
    r: HostRecord, now: float, *, observe: float, hold: float, reobserve: float
) -> tuple[HostClass, str]:
    if r.ipv6 is not None and r.ipv6_seen is not None and now - r.ipv6_seen <= hold:
        kind = "ULA" if r.ipv6 in _ULA else "global"
        if r.ipv6_seen == now:
            return HostClass.DUAL_STACK, f"MAC also has {kind} IPv6 {r.ipv6}"
        age = now - r.ipv6_seen
        return HostClass.DUAL_STACK, (
            f"MAC had {kind} IPv6 {r.ipv6} {age:.0f} s ago (dual-stack is held {hold:.0f} s)"
        )
    if now - r.last_seen > reobserve:
        return HostClass.UNKNOWN, f"not in the neighbour tables for {now - r.last_seen:.0f} s"
    if not r.ipv4s:
        return HostClass.UNKNOWN, "no IPv4 address seen"
    quiet = now - max(r.first_seen, r.ipv6_seen if r.ipv6_seen is not None else r.first_seen)
    if quiet < observe:
        return HostClass.UNKNOWN, (
            f"IPv4 seen for {quiet:.0f} s without global IPv6; "
            f"IPv4-only once observed {observe:.0f} s"
        )
    ll = f" (link-local {r.link_local} does not count)" if r.link_local else ""
    return HostClass.IPV4_ONLY, f"only IPv4 seen for {quiet:.0f} s{ll}"


def by_ipv4(records: Mapping[str, HostRecord]) -> dict[IPv4Address, HostRecord]:
    """Which record speaks for each IPv4 address: the one in the tables now, then the most
    recently seen, then (two MACs claiming one address) the most cautious verdict."""
    best: dict[IPv4Address, HostRecord] = {}

    def rank(r: HostRecord) -> tuple[bool, float, int]:
        return (r.ipv4_current, r.last_seen, _CAUTION[r.klass])

    for record in records.values():
        for address in record.ipv4s:
            other = best.get(address)
            if other is None or rank(record) > rank(other):
                best[address] = record
    return best


class HostMemory:
    """The host records between looks at the neighbour tables: the proxy asks ``host``, the
    nft sets come from the ``*_ipv4s`` sets, status shows ``rows``."""

    def __init__(
        self, *, observe: float = OBSERVE_SECONDS, hold: float = DUAL_STACK_HOLD_SECONDS
    ) -> None:
        self.observe, self.hold = observe, hold
        self.records: dict[str, HostRecord] = {}
        self.unsure = True  # no good look yet, or the last one failed
        self.last_error: str | None = None
        self._by_ipv4: dict[IPv4Address, HostRecord] = {}
        # ``host`` answers by key until the next look (the proxy asks for every A answer)
        self._hosts: dict[str, Host | None] = {}

    def seen(self, neighbours: Iterable[Neighbour], now: float) -> None:
        """One good look at the tables: reclassify."""
        self.records = classify(neighbours, now, self.records, observe=self.observe, hold=self.hold)
        self._by_ipv4 = by_ipv4(self.records)
        self.unsure, self.last_error = False, None
        self._hosts = {}

    def unreadable(self, error: str) -> None:
        """The tables could not be read: every IPv4-only verdict reads as unknown until the
        next good look (SPEC 3: when unsure, do not optimize)."""
        self.unsure, self.last_error = True, error
        self._hosts = {}

    def _class(self, record: HostRecord) -> HostClass:
        if self.unsure and record.klass is HostClass.IPV4_ONLY:
            return HostClass.UNKNOWN
        return record.klass

    def host(self, key: str) -> Host | None:
        """The host a MAC ("aa:bb:cc:dd:ee:ff") or IPv4 address names; None when never seen
        (the caller treats that as unknown: do not optimize)."""
        if key in self._hosts:
            return self._hosts[key]
        if len(self._hosts) >= _MEMO_HOSTS:
            self._hosts = {}
        found = self._hosts[key] = self._host(key)
        return found

    def _host(self, key: str) -> Host | None:
        key = key.strip().lower()
        if _MAC.match(key):
            record = self.records.get(key)
        else:
            try:
                address = ip_address(key)
            except ValueError:
                return None
            record = self._by_ipv4.get(address) if isinstance(address, IPv4Address) else None
        return None if record is None else Host(key, self._class(record))

    def dual_stack_ipv4s(self) -> set[IPv4Address]:
        """IPv4 addresses of dual-stack hosts (also remembered ones): excluded from the DNAT."""
        return {a for a, r in self._by_ipv4.items() if r.klass is HostClass.DUAL_STACK}

    def ipv4_only_ipv4s(self) -> set[IPv4Address]:
        """IPv4 addresses in the tables now whose host is IPv4-only (empty when unsure)."""
        return {
            a
            for a, r in self._by_ipv4.items()
            if r.ipv4_current and self._class(r) is HostClass.IPV4_ONLY
        }

    def rows(self, now: float) -> list[dict[str, Any]]:
        """Status rows; ``last_seen`` is in seconds ago."""
        unsure = " (neighbour tables unreadable now)" if self.unsure else ""
        rows: list[tuple[IPv4Address | None, HostRecord]] = [
            (address, r) for r in self.records.values() for address in sorted(r.ipv4s) or (None,)
        ]
        rows.sort(key=lambda row: (row[0] is None, row[0] or IPv4Address(0), row[1].mac))
        return [
            {
                "ipv4": str(address) if address else None,
                "mac": r.mac,
                "class": str(self._class(r)),
                "why": r.why + unsure,
                "last_seen": round(now - r.last_seen, 1),
            }
            for address, r in rows
        ]
