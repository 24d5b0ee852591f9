"""NAT64 prefixes (Pref64) and IPv4-embedded IPv6 addresses.

RFC 6052 section 2.2 places the 32 IPv4 bits after a prefix of 32, 40, 48, 56, 64 or 96 bits,
skipping bits 64-71 (the "u" octet), which must be zero.  A AAAA is "synthesized" (made by DNS64,
so the name is not really IPv6-enabled; draft-ietf-v6ops-464xlat-optimization, SPEC section 3)
when it lies inside a known Pref64 or embeds one of the name's A records at any of those
positions.  64:ff9b::/96 (RFC 6052) and 64:ff9b:1::/48 (RFC 8215) are always known.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, IPv6Network

RFC6052_LENGTHS: tuple[int, ...] = (32, 40, 48, 56, 64, 96)
WELL_KNOWN_PREFIX = IPv6Network("64:ff9b::/96")  # RFC 6052 section 2.1
LOCAL_USE_PREFIX = IPv6Network("64:ff9b:1::/48")  # RFC 8215
ALWAYS_KNOWN: tuple[IPv6Network, ...] = (WELL_KNOWN_PREFIX, LOCAL_USE_PREFIX)

_U_OCTET_SHIFT = 128 - 72  # bits 64-71 counted from the left
_U_OCTET_MASK = 0xFF << _U_OCTET_SHIFT


def pref64_problem(prefix: IPv6Network) -> str | None:
    """None if ``prefix`` is usable as a Pref64 (RFC 6052 section 2.2), else why not."""
    if prefix.prefixlen not in RFC6052_LENGTHS:
        lengths = ", ".join(f"/{n}" for n in RFC6052_LENGTHS)
        return f"{prefix}: a Pref64 must be one of {lengths} (RFC 6052 section 2.2)"
    if int(prefix.network_address) & _U_OCTET_MASK:
        return f"{prefix}: bits 64-71 of a Pref64 must be zero (RFC 6052 section 2.2)"
    return None


def _layout(length: int) -> tuple[int, int]:
    """(bits of the IPv4 address before the u octet, bits after it) for a prefix length."""
    if length == 96:
        return 0, 32
    before = max(0, 64 - length)
    return before, 32 - before


def embed(prefix: IPv6Network, ipv4: IPv4Address) -> IPv6Address:
    """RFC 6052 section 2.2: the IPv4-embedded IPv6 address of ``ipv4`` under ``prefix``."""
    problem = pref64_problem(prefix)
    if problem:
        raise ValueError(problem)
    v4 = int(ipv4)
    before, after = _layout(prefix.prefixlen)
    value = int(prefix.network_address)
    if prefix.prefixlen == 96:
        return IPv6Address(value | v4)
    high = v4 >> after
    low = v4 & ((1 << after) - 1)
    value |= high << (128 - prefix.prefixlen - before)
    value |= low << (128 - 72 - after)
    return IPv6Address(value)


def extract(prefix: IPv6Network, ipv6: IPv6Address) -> IPv4Address | None:
    """The IPv4 address embedded in ``ipv6`` under ``prefix``; None if ``ipv6`` is outside it or
    its u octet is not zero (then it is no RFC 6052 address)."""
    if ipv6 not in prefix or pref64_problem(prefix):
        return None
    return _extract_at(prefix.prefixlen, ipv6)


def _extract_at(length: int, ipv6: IPv6Address) -> IPv4Address | None:
    value = int(ipv6)
    if length == 96:
        return IPv4Address(value & 0xFFFFFFFF)
    if value & _U_OCTET_MASK:
        return None
    before, after = _layout(length)
    high = (value >> (128 - length - before)) & ((1 << before) - 1)
    low = (value >> (128 - 72 - after)) & ((1 << after) - 1)
    return IPv4Address((high << after) | low)


@dataclass(frozen=True)
class Pref64Set:
    """The translation prefixes the CE knows: configured or discovered ones plus the two
    always-known ones.  ``source`` says where the extra ones came from (for status)."""

    extra: tuple[IPv6Network, ...] = ()
    source: str = "none"
    # Verdicts by (AAAA, A records), bounded; kept on the set for the reason addresses.py says.
    _memo: dict[object, str | None] = field(
        default_factory=dict, init=False, compare=False, hash=False, repr=False
    )

    @property
    def prefixes(self) -> tuple[IPv6Network, ...]:
        return tuple(dict.fromkeys(self.extra + ALWAYS_KNOWN))

    def containing(self, ipv6: IPv6Address) -> IPv6Network | None:
        return next((p for p in self.prefixes if ipv6 in p), None)

    def synthesized_reason(self, ipv6: IPv6Address, a_records: Iterable[IPv4Address]) -> str | None:
        """Why ``ipv6`` looks synthesized by DNS64, or None when it looks like a real address."""
        key = (ipv6, tuple(a_records))
        memo = self._memo
        if key in memo:
            return memo[key]
        verdict = self._synthesized(ipv6, key[1])
        if len(memo) >= 512:  # the hot CDN addresses; bounded, a router has little memory
            memo.clear()
        memo[key] = verdict
        return verdict

    def _synthesized(self, ipv6: IPv6Address, a_records: tuple[IPv4Address, ...]) -> str | None:
        prefix = self.containing(ipv6)
        if prefix is not None:
            return f"{ipv6} is inside Pref64 {prefix}"
        wanted = set(a_records)
        for length in RFC6052_LENGTHS:
            embedded = _extract_at(length, ipv6)
            if embedded is not None and embedded in wanted:
                return f"{ipv6} embeds A record {embedded} at the RFC 6052 /{length} position"
        return None


# RFC 7050 section 2.2: ipv4only.arpa has exactly these two A records, so a DNS64 synthesizes
# AAAA records that embed them; where they sit reveals the Pref64 and its length.
WELL_KNOWN_IPV4 = (IPv4Address("192.0.0.170"), IPv4Address("192.0.0.171"))
WKA_NAME = "ipv4only.arpa"


def prefixes_from_wka(aaaa: Iterable[IPv6Address]) -> tuple[IPv6Network, ...]:
    """The Pref64s revealed by the AAAA records of ipv4only.arpa (RFC 7050 section 3).

    Each record is searched for a well-known IPv4 at every RFC 6052 position, and the position
    must reproduce the record exactly (zero u octet and suffix).  When one record fits more than
    one position, a position where the other well-known address fits too wins (the RFC's reason
    for having two), then the longest prefix; a record that fits nowhere is ignored."""
    records = tuple(dict.fromkeys(aaaa))
    fits: dict[IPv6Address, list[IPv6Network]] = {}
    found_under: dict[IPv6Network, set[IPv4Address]] = {}
    for record in records:
        for length in sorted(RFC6052_LENGTHS, reverse=True):
            embedded = _extract_at(length, record)
            if embedded not in WELL_KNOWN_IPV4:
                continue
            prefix = IPv6Network((int(record) >> (128 - length) << (128 - length), length))
            if pref64_problem(prefix) is None and embed(prefix, embedded) == record:
                fits.setdefault(record, []).append(prefix)
                found_under.setdefault(prefix, set()).add(embedded)
    chosen: list[IPv6Network] = []
    for candidates in fits.values():
        both = [p for p in candidates if len(found_under[p]) == len(WELL_KNOWN_IPV4)]
        chosen.append((both or candidates)[0])
    return tuple(dict.fromkeys(chosen))


# Where a Pref64 may come from, the one that wins first (SPEC section 5, RFC 9872): what the
# operator configured, then the PREF64 option of the WAN's router advertisements (RFC 8781),
# then DNS discovery (RFC 7050).  A new source joins by taking its place in this list.
CONFIG, RA, DNS = "config", "ra (RFC 8781)", "dns (RFC 7050)"
PRECEDENCE: tuple[str, ...] = (CONFIG, RA, DNS)


def choose(
    found: Mapping[str, Sequence[IPv6Network]], precedence: Sequence[str] = PRECEDENCE
) -> Pref64Set:
    """The Pref64Set of the first source in ``precedence`` that has prefixes (source "none"
    when no source has any).  Only that source's prefixes count: a lower one never adds a
    prefix the higher one does not know."""
    for source in precedence:
        prefixes = tuple(found.get(source, ()))
        if prefixes:
            return Pref64Set(prefixes, source)
    return Pref64Set((), "none")
