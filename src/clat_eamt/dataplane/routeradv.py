"""The shell that hears the WAN's router advertisements for their PREF64 (RFC 8781).

A raw ICMPv6 socket filtered to type 134 (ICMP6_FILTER), with the receiving interface and
the hop limit of each packet (IPV6_RECVPKTINFO, IPV6_RECVHOPLIMIT; RFC 3542).  Only RAs that
arrive on an interface carrying an IPv6 default route count: that is the WAN, where the ISP's
router speaks; an RA from the LAN (a rogue host, or the router's own RAs looped back) could
otherwise set the Pref64 and decide which answers count as synthesized.  The reading and the
lifetimes are ``core.ra``; this only moves packets and keeps a timer for the next expiry.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
import time
from collections.abc import Callable
from ipaddress import IPv6Address, IPv6Network

from clat_eamt.core.pref64 import RA
from clat_eamt.core.ra import ICMPV6_ROUTER_ADVERTISEMENT, Pref64Table, RaError, parse_ra
from clat_eamt.logs import RateLimitedLog

log = logging.getLogger(__name__)
ICMP6_FILTER = 1  # linux/icmpv6.h, level IPPROTO_ICMPV6
RTF_REJECT = 0x0200  # linux/route.h: unreachable / prohibit routes
IPV6_ROUTE = "/proc/net/ipv6_route"


def default_route_interfaces(table: str | os.PathLike[str] = IPV6_ROUTE) -> set[str]:
    """Interfaces of the IPv6 default routes (/proc/net/ipv6_route: destination ::/0), except
    reject routes and loopback."""
    found: set[str] = set()
    try:
        with open(table) as file:
            lines = file.read().splitlines()
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        if len(fields) < 10 or fields[0] != "0" * 32 or fields[1] != "00":
            continue
        if int(fields[8], 16) & RTF_REJECT or fields[9] == "lo":
            continue
        found.add(fields[9])
    return found


def _only_router_adverts() -> bytes:
    blocked = [0xFFFFFFFF] * 8  # a set bit blocks a type (Linux icmpv6_filter)
    blocked[ICMPV6_ROUTER_ADVERTISEMENT >> 5] &= ~(1 << (ICMPV6_ROUTER_ADVERTISEMENT & 31))
    return struct.pack("=8I", *blocked)


class RaListener:
    """Keeps ``on_change(prefixes, source)`` told of the live PREF64s of the WAN's RAs."""

    def __init__(
        self,
        on_change: Callable[[tuple[IPv6Network, ...], str], None],
        clock: Callable[[], float] = time.monotonic,
        wan: Callable[[], set[str]] = default_route_interfaces,
    ) -> None:
        self.on_change, self.clock, self.wan = on_change, clock, wan
        self.table = Pref64Table()
        self.prefixes: tuple[IPv6Network, ...] = ()
        self.problem: str | None = "not started"
        self.counters = {"heard": 0, "not_wan": 0, "invalid": 0}
        self.ignored: tuple[str, ...] = ()
        self._sock: socket.socket | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._errors = RateLimitedLog(log, logging.WARNING)

    def start(self) -> bool:
        try:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        except OSError as error:  # not root: the Pref64 comes from config or DNS only
            self.problem = f"cannot listen for router advertisements: {error.strerror or error}"
            log.info("%s", self.problem)
            return False
        sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, _only_router_adverts())
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
        sock.setblocking(False)
        self._sock = sock
        asyncio.get_running_loop().add_reader(sock, self._readable)
        self.problem = None
        return True

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock)
            self._sock.close()
            self._sock = None

    def _readable(self) -> None:
        assert self._sock is not None
        try:
            data, ancillary, _flags, peer = self._sock.recvmsg(2048, 256)
        except OSError as error:
            self._errors.note("socket", "router advertisement socket: %s", error)
            return
        ifindex, hop_limit = 0, -1
        for level, kind, value in ancillary:
            if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO and len(value) >= 20:
                ifindex = struct.unpack_from("=I", value, 16)[0]
            elif level == socket.IPPROTO_IPV6 and kind == socket.IPV6_HOPLIMIT and len(value) >= 4:
                hop_limit = struct.unpack_from("=i", value)[0]
        try:
            interface = socket.if_indextoname(ifindex)
        except OSError:
            interface = str(ifindex)
        self.handle(data, IPv6Address(peer[0].split("%", 1)[0]), hop_limit, interface)

    def handle(self, data: bytes, source: IPv6Address, hop_limit: int, interface: str) -> None:
        """One received ICMPv6 message (the socket's, or a test's)."""
        if interface not in self.wan():
            self.counters["not_wan"] += 1
            return
        try:
            advert = parse_ra(data, source, hop_limit)
        except RaError as error:
            self.counters["invalid"] += 1
            self._errors.note(
                "invalid",
                "router advertisement from %s on %s ignored: %s",
                source,
                interface,
                error,
            )
            return
        self.counters["heard"] += 1
        if advert.ignored:
            self.ignored = advert.ignored
            self._errors.note(
                "option", "router advertisement from %s: %s", source, "; ".join(advert.ignored)
            )
        self.table.observe(self.clock(), interface, source, advert)
        self.update()

    def update(self) -> None:
        """Drop what expired, tell a change, and wake up at the next expiry."""
        now = self.clock()
        self.table.expire(now)
        prefixes = self.table.prefixes(now)
        if prefixes != self.prefixes:
            self.prefixes = prefixes
            shown = ", ".join(map(str, prefixes)) or "none"
            log.info("Pref64 from router advertisements (RFC 8781): %s", shown)
            self.on_change(prefixes, RA)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        ends = self.table.next_expiry(now)
        if ends is not None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # a test without a loop drives update() itself
                return
            self._timer = loop.call_later(max(ends - now, 0.0) + 0.01, self.update)

    def status(self) -> dict[str, object]:
        now = self.clock()
        return {
            "prefixes": [str(p) for p in self.prefixes],
            "heard": self.table.describe(now),
            "wan_interfaces": sorted(self.wan()),
            "counters": dict(self.counters),
            "ignored": list(self.ignored),
            "problem": self.problem,
        }
