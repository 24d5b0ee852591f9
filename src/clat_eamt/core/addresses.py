"""Address policy: which IPv4 destinations and IPv6 targets may ever be mapped.

SPEC section 4: never map special-purpose or local addresses.  The two IANA special-purpose
address registries (RFC 6890 and its updates), and the IPv6 blocks returned or deprecated since
(``IPV6_RETURNED``), are restated below as data; an address inside any
of their blocks is refused whatever the registry's "globally reachable" column says, because a
CDN never serves from them and an attacker could use them to redirect traffic (e.g. to the
translation prefixes).  On top of that only global unicast is accepted (IPv6: 2000::/3, RFC 4291
section 2.4; IPv4: not multicast or reserved) and the CE's own, LAN, resolver and deny-listed
prefixes are excluded.

The documentation blocks are the one switchable exception: test labs must use them (and nothing
else), so ``allow_documentation`` treats them as global unicast.  It is off on real routers.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network

from clat_eamt.core.model import IPAddress, IPNetwork, Reason, Refusal, show


@dataclass(frozen=True)
class SpecialBlock:
    """One row of an IANA special-purpose address registry."""

    network: IPNetwork
    name: str
    rfc: str
    documentation: bool = False

    def describe(self) -> str:
        return f"{self.network} ({self.name}, {self.rfc})"


def _block(prefix: str, name: str, rfc: str, documentation: bool = False) -> SpecialBlock:
    return SpecialBlock(ip_network(prefix), name, rfc, documentation)


# IANA IPv4 Special-Purpose Address Registry (sub-blocks of 192.0.0.0/24 are covered by it).
IPV4_SPECIAL: tuple[SpecialBlock, ...] = (
    _block("0.0.0.0/8", "this network", "RFC 791"),
    _block("10.0.0.0/8", "private-use", "RFC 1918"),
    _block("100.64.0.0/10", "shared address space", "RFC 6598"),
    _block("127.0.0.0/8", "loopback", "RFC 1122"),
    _block("169.254.0.0/16", "link local", "RFC 3927"),
    _block("172.16.0.0/12", "private-use", "RFC 1918"),
    _block("192.0.0.0/24", "IETF protocol assignments", "RFC 6890"),
    _block("192.0.2.0/24", "documentation (TEST-NET-1)", "RFC 5737", documentation=True),
    _block("192.31.196.0/24", "AS112-v4", "RFC 7535"),
    _block("192.52.193.0/24", "AMT", "RFC 7450"),
    _block("192.88.99.0/24", "deprecated 6to4 relay anycast", "RFC 7526"),
    _block("192.168.0.0/16", "private-use", "RFC 1918"),
    _block("192.175.48.0/24", "direct delegation AS112 service", "RFC 7534"),
    _block("198.18.0.0/15", "benchmarking", "RFC 2544"),
    _block("198.51.100.0/24", "documentation (TEST-NET-2)", "RFC 5737", documentation=True),
    _block("203.0.113.0/24", "documentation (TEST-NET-3)", "RFC 5737", documentation=True),
    _block("240.0.0.0/4", "reserved", "RFC 1112"),
    _block("255.255.255.255/32", "limited broadcast", "RFC 919"),
)

# IANA IPv6 Special-Purpose Address Registry (sub-blocks of 2001::/23 are covered by it).
IPV6_SPECIAL: tuple[SpecialBlock, ...] = (
    _block("::/128", "unspecified address", "RFC 4291"),
    _block("::1/128", "loopback address", "RFC 4291"),
    _block("::ffff:0:0/96", "IPv4-mapped address", "RFC 4291"),
    _block("64:ff9b::/96", "IPv4-IPv6 translation (well-known prefix)", "RFC 6052"),
    _block("64:ff9b:1::/48", "IPv4-IPv6 translation (local-use prefix)", "RFC 8215"),
    _block("100::/64", "discard-only address block", "RFC 6666"),
    _block("100:0:0:1::/64", "dummy IPv6 prefix", "RFC 9780"),
    _block("2001::/23", "IETF protocol assignments", "RFC 2928"),
    _block("2001:db8::/32", "documentation", "RFC 3849", documentation=True),
    _block("2002::/16", "6to4", "RFC 3056"),
    _block("2620:4f:8000::/48", "direct delegation AS112 service", "RFC 7534"),
    _block("3fff::/20", "documentation", "RFC 9637", documentation=True),
    _block("5f00::/16", "segment routing (SRv6) SIDs", "RFC 9602"),
    _block("fc00::/7", "unique-local", "RFC 4193"),
    _block("fe80::/10", "link-local unicast", "RFC 4291"),
)

# Returned and deprecated IPv6 blocks (issue 26: 3ffe::/16 was mapped).  Not in the special-
# purpose registry, since they are no longer assigned for a purpose; IANA's IPv6 Address Space
# and Global Unicast Address Assignments registries and the RFCs that returned them list them.
# Whatever is announced from them now is no CDN's: never a target.
IPV6_RETURNED: tuple[SpecialBlock, ...] = (
    _block("3ffe::/16", "6bone testing, returned to IANA", "RFC 3701"),
    _block("5f00::/8", "6bone testing (the first plan), replaced by 3ffe::/16", "RFC 1897"),
    _block("2001:10::/28", "ORCHID, deprecated (ORCHIDv2 is 2001:20::/28)", "RFC 4843"),
    _block("fec0::/10", "site-local unicast, deprecated", "RFC 3879"),
    _block("::/96", "IPv4-compatible IPv6 address, deprecated", "RFC 4291 section 2.5.5.1"),
    _block("200::/7", "OSI NSAP-mapped, deprecated", "RFC 4048"),
)

IPV4_MULTICAST = IPv4Network("224.0.0.0/4")  # RFC 5771
IPV6_GLOBAL_UNICAST = IPv6Network("2000::/3")  # RFC 4291 section 2.4 / IANA unicast space
_MULTICAST_FIRST = int(IPV4_MULTICAST.network_address)
_MULTICAST_LAST = int(IPV4_MULTICAST.broadcast_address)
_UNICAST_FIRST = int(IPV6_GLOBAL_UNICAST.network_address)
_UNICAST_LAST = int(IPV6_GLOBAL_UNICAST.broadcast_address)


def _span(net: IPNetwork) -> tuple[int, int, int]:
    """(version, first address, last address) as integers: overlap tests without objects."""
    first = int(net.network_address)
    return net.version, first, first | ((1 << (net.max_prefixlen - net.prefixlen)) - 1)


# The registries as integer ranges, most specific block first, so one pass over a few dozen
# integer comparisons answers for any address (every DNS answer asks, with new addresses each
# time: a memo of network objects cost about 1 KB per address seen).
_SPECIAL_SPANS: tuple[tuple[int, int, int, SpecialBlock], ...] = tuple(
    (*_span(b.network), b)
    for b in sorted(IPV4_SPECIAL + IPV6_SPECIAL + IPV6_RETURNED, key=lambda b: -b.network.prefixlen)
)


def _target_span(target: IPAddress | IPNetwork) -> tuple[int, int, int]:
    """``_span`` of ``target``; an address without building a network object (every answer's
    addresses are asked about: ``ip_network`` of an address goes through its text form)."""
    if isinstance(target, IPv4Address | IPv6Address):
        value = int(target)
        return target.version, value, value
    return _span(ip_network(target))


def _in_special(version: int, first: int, last: int) -> SpecialBlock | None:
    for v, lo, hi, block in _SPECIAL_SPANS:
        if v == version and lo <= last and first <= hi:
            return block
    return None


def special_block(target: IPAddress | IPNetwork) -> SpecialBlock | None:
    """The most specific special-purpose block that contains (or overlaps) ``target``."""
    return _in_special(*_target_span(target))


def documentation_blocks() -> tuple[SpecialBlock, ...]:
    return tuple(b for b in IPV4_SPECIAL + IPV6_SPECIAL if b.documentation)


_Excluded = tuple[int, int, int, IPNetwork]  # version, first, last, the prefix


@dataclass(frozen=True)
class AddressPolicy:
    """What may be mapped.  ``excluded`` holds the CE's own, LAN and resolver prefixes and the
    configured deny list; ``allowed`` (if non-empty for a family) is a positive list."""

    allow_documentation: bool = False
    excluded: tuple[IPNetwork, ...] = ()
    allowed: tuple[IPNetwork, ...] = ()

    def with_excluded(self, extra: Iterable[IPNetwork]) -> AddressPolicy:
        return AddressPolicy(self.allow_documentation, self.excluded + tuple(extra), self.allowed)

    @functools.cached_property
    def _spans(self) -> tuple[tuple[_Excluded, ...], tuple[tuple[int, int, int], ...]]:
        """``excluded`` and ``allowed`` as integer ranges (computed once per policy)."""
        return (
            tuple((*_span(n), n) for n in self.excluded),
            tuple(_span(n) for n in self.allowed),
        )

    def refusal(self, target: IPAddress | IPNetwork) -> Refusal | None:
        """None if ``target`` may be mapped, else why not (SPEC section 4).  Integer range
        tests only; the network object and the text are made for a refusal alone."""
        version, first, last = _target_span(target)
        block = _in_special(version, first, last)
        if block is not None and not (block.documentation and self.allow_documentation):
            net, address = self._shown(target, first, last)
            return Refusal(Reason.SPECIAL_PURPOSE, f"{show(net)} is in {block.describe()}", address)
        if version == 4:
            if first <= _MULTICAST_LAST and last >= _MULTICAST_FIRST:  # overlaps 224.0.0.0/4
                net, address = self._shown(target, first, last)
                return Refusal(Reason.NOT_GLOBAL_UNICAST, f"{show(net)} is multicast", address)
        elif not (first >= _UNICAST_FIRST and last <= _UNICAST_LAST):  # inside 2000::/3
            net, address = self._shown(target, first, last)
            why = f"{show(net)} is outside {IPV6_GLOBAL_UNICAST}"
            return Refusal(Reason.NOT_GLOBAL_UNICAST, why, address)
        excluded, allowed = self._spans
        for v, lo, hi, prefix in excluded:
            if v == version and lo <= last and first <= hi:
                net, address = self._shown(target, first, last)
                why = f"{show(net)} is inside excluded {prefix}"
                return Refusal(Reason.EXCLUDED, why, address)
        if not allowed:
            return None
        family = [(lo, hi) for v, lo, hi in allowed if v == version]
        if family and not any(lo <= first and last <= hi for lo, hi in family):
            net, address = self._shown(target, first, last)
            shown = ", ".join(str(a) for a in self.allowed if a.version == version)
            return Refusal(Reason.PREFIX_NOT_ALLOWED, f"{show(net)} is outside {shown}", address)
        return None

    @staticmethod
    def _shown(
        target: IPAddress | IPNetwork, first: int, last: int
    ) -> tuple[IPNetwork, IPAddress | None]:
        """The network a refusal names, and its address when it is a single one."""
        net = ip_network(target)
        return net, (net.network_address if first == last else None)
