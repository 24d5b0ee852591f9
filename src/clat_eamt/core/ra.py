"""Pref64 from router advertisements: the PREF64 option (RFC 8781), parsed and aged (pure).

RFC 9872 (and RFC 8781 section 5) ranks the RA option above DNS discovery (RFC 7050); the
configuration ranks above both (core.pref64.PRECEDENCE).  What is checked, and where from:

- the RA itself (RFC 4861 section 6.1.2): ICMPv6 type 134 code 0, at least 16 octets, every
  option with a length above zero (else the whole RA is dropped), sent from a link-local
  address with hop limit 255 (the shell passes both: they come with the packet, not in it);
- the option (RFC 8781 section 4): type 38 and length 2 (any other length: ignored); the
  13-bit Scaled Lifetime counts units of 8 seconds; the 3-bit PLC gives the prefix length
  (0: /96, 1: /64, 2: /56, 3: /48, 4: /40, 5: /32; any other: ignored); the 96 bits that
  follow are the prefix's highest bits, and bits beyond the prefix length are ignored;
- a prefix must also be usable as a Pref64 (RFC 6052 section 2.2: u octet zero);
- lifetimes (RFC 8781 section 5): a prefix is used until its lifetime ends; an RA carrying it
  again with lifetime 0 ends it at once; the router lifetime of the RA does not matter
  (section 4: the option is independent of the router's default-router role).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network

from clat_eamt.core.pref64 import pref64_problem

ICMPV6_ROUTER_ADVERTISEMENT = 134
OPTION_PREF64 = 38
PREF64_LENGTH = 2  # in units of 8 octets
LIFETIME_UNIT = 8  # seconds per unit of Scaled Lifetime
PLC_LENGTHS = {0: 96, 1: 64, 2: 56, 3: 48, 4: 40, 5: 32}
_RA_HEADER = 16  # type, code, checksum, hop limit, flags, router lifetime, reachable, retrans


class RaError(ValueError):
    """The packet is no valid router advertisement: it must be ignored as a whole."""


@dataclass(frozen=True)
class Pref64Option:
    prefix: IPv6Network
    lifetime: int  # seconds


@dataclass(frozen=True)
class Advert:
    options: tuple[Pref64Option, ...]
    ignored: tuple[str, ...] = ()  # PREF64 options ignored, and why


def parse_pref64(body: bytes) -> Pref64Option | str:
    """One PREF64 option (its 16 octets, type and length included); a reason if ignored."""
    if len(body) != PREF64_LENGTH * 8:
        return f"PREF64 option of length {len(body) // 8} (RFC 8781 section 4: must be 2)"
    (scaled_plc,) = struct.unpack_from("!H", body, 2)
    scaled, plc = scaled_plc >> 3, scaled_plc & 0x7
    length = PLC_LENGTHS.get(plc)
    if length is None:
        return f"PREF64 option with PLC {plc} (RFC 8781 section 4: must be 0-5)"
    high = int.from_bytes(body[4:16], "big") << 32
    mask = ((1 << length) - 1) << (128 - length)
    prefix = IPv6Network((high & mask, length))
    problem = pref64_problem(prefix)
    if problem:
        return problem
    return Pref64Option(prefix, scaled * LIFETIME_UNIT)


def parse_ra(packet: bytes, source: IPv6Address, hop_limit: int) -> Advert:
    """The PREF64 options of one received ICMPv6 message (the payload after the IPv6 header;
    the kernel checked its checksum).  RaError when it is no valid RA."""
    if hop_limit != 255:
        raise RaError(f"hop limit {hop_limit}, not 255 (RFC 4861 section 6.1.2: off-link)")
    if not source.is_link_local:
        raise RaError(f"source {source} is not link-local (RFC 4861 section 6.1.2)")
    if len(packet) < _RA_HEADER:
        raise RaError(f"{len(packet)} octets, shorter than an RA (RFC 4861 section 6.1.2)")
    if packet[0] != ICMPV6_ROUTER_ADVERTISEMENT or packet[1] != 0:
        raise RaError(f"ICMPv6 type {packet[0]} code {packet[1]}, not an RA (134, code 0)")
    found: list[Pref64Option] = []
    ignored: list[str] = []
    offset = _RA_HEADER
    while offset < len(packet):
        if offset + 2 > len(packet) or packet[offset + 1] == 0:
            raise RaError("an option of length 0 (RFC 4861 section 6.1.2)")
        end = offset + packet[offset + 1] * 8
        if end > len(packet):
            raise RaError("an option runs past the end of the packet")
        if packet[offset] == OPTION_PREF64:
            parsed = parse_pref64(packet[offset:end])
            if isinstance(parsed, str):
                ignored.append(parsed)
            else:
                found.append(parsed)
        offset = end
    return Advert(tuple(found), tuple(ignored))


@dataclass
class Pref64Table:
    """The PREF64s heard, by (interface, router): each with the time its lifetime ends."""

    expiry: dict[tuple[str, IPv6Address, IPv6Network], float] = field(default_factory=dict)

    def observe(self, now: float, interface: str, router: IPv6Address, advert: Advert) -> None:
        for option in advert.options:
            key = (interface, router, option.prefix)
            if option.lifetime == 0:
                self.expiry.pop(key, None)
            else:
                self.expiry[key] = now + option.lifetime

    def expire(self, now: float) -> None:
        self.expiry = {k: t for k, t in self.expiry.items() if t > now}

    def prefixes(self, now: float) -> tuple[IPv6Network, ...]:
        """The live prefixes, the longest-lived first (stable for equal lifetimes)."""
        live = sorted(
            ((t, k[2]) for k, t in self.expiry.items() if t > now), key=lambda x: (-x[0], str(x[1]))
        )
        return tuple(dict.fromkeys(prefix for _, prefix in live))

    def next_expiry(self, now: float) -> float | None:
        times = [t for t in self.expiry.values() if t > now]
        return min(times) if times else None

    def describe(self, now: float) -> list[dict[str, object]]:
        return [
            {"interface": k[0], "router": str(k[1]), "prefix": str(k[2]),
             "expires_in": round(t - now, 1)}
            for k, t in sorted(self.expiry.items(), key=lambda x: (str(x[0][2]), x[0][0]))
            if t > now
        ]  # fmt: skip


def encode_pref64(prefix: IPv6Network, lifetime: int) -> bytes:
    """A PREF64 option (the lab's sender, and the tests): lifetime rounded up to 8 s units."""
    plc = {length: code for code, length in PLC_LENGTHS.items()}[prefix.prefixlen]
    scaled = min((lifetime + LIFETIME_UNIT - 1) // LIFETIME_UNIT, 0x1FFF)
    high = int(prefix.network_address) >> 32
    return struct.pack("!BBH", OPTION_PREF64, PREF64_LENGTH, scaled << 3 | plc) + high.to_bytes(
        12, "big"
    )


def encode_ra(options: Iterable[bytes], router_lifetime: int = 1800) -> bytes:
    """An RA message with ``options`` (checksum 0: the kernel fills it for raw ICMPv6)."""
    header = struct.pack(
        "!BBHBBHII", ICMPV6_ROUTER_ADVERTISEMENT, 0, 0, 64, 0, router_lifetime, 0, 0
    )
    return header + b"".join(options)
