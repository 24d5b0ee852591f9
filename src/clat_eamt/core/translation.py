"""T(P): a pool address P as the CLAT writes it in IPv6 (SPEC section 5, dataplane v2).

A mapping D -> X is two nftables elements: ``ip`` DNAT D -> P for the LAN's IPv4-only hosts, and
``ip6`` DNAT T(P) -> X on what the CLAT emits.  The CLAT itself is never told about P: it
translates P like any other IPv4 destination, so T(P) is

- P embedded in the CLAT's Pref64 (RFC 6052 section 2.2) for a CLAT that translates by prefix
  (OpenWrt's 464xlat/nat46 ``remote.style RFC6052``, clatd, Jool in its namespace, a tayga
  without maps), or
- P under the IPv6 side of one static prefix map (RFC 7757 EAM) that never changes, for a tayga
  run by the daemon: tayga refuses non-global IPv4 under 64:ff9b::/96 (RFC 6052 section 3.1),
  and the pool is private, so the pool gets its own ``map`` line instead, into a /96 of the
  CLAT's own /64 (``tayga_pool_prefix``).

Both are ``PoolTranslation(prefix)`` with a /96 prefix or an RFC 6052 prefix of another length;
``of`` gives the IPv6 prefixes of a pool block (one when the block's bits are contiguous in the
IPv6 address, one /128 per address otherwise) and ``back`` inverts it for adoption.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from clat_eamt.core.pref64 import embed, extract, pref64_problem

_POOL_TAG = 0xFFFF_FFFF << 32  # bits 64-95 of the pool's /96 inside the CLAT's /64
MAX_EXPANDED = 4096  # addresses of one block spelled out one by one (non-/96 prefixes)


@dataclass(frozen=True)
class PoolTranslation:
    """How the CLAT writes IPv4 destinations in IPv6: RFC 6052 under ``prefix``."""

    prefix: IPv6Network

    def __post_init__(self) -> None:
        # A /96 only appends the 32 bits (an EAM prefix such as tayga's pool map may have any
        # bits 64-71); other lengths must be real RFC 6052 prefixes.
        problem = None if self.prefix.prefixlen == 96 else pref64_problem(self.prefix)
        if problem:
            raise ValueError(problem)

    def of(self, block: IPv4Network) -> list[IPv6Network]:
        """T(block) as IPv6 prefixes (ValueError for a block too large to spell out)."""
        if self.prefix.prefixlen == 96:  # the IPv4 bits are the last 32: one prefix
            first = int(self.prefix.network_address) | int(block.network_address)
            return [IPv6Network((first, 96 + block.prefixlen))]
        if block.num_addresses > MAX_EXPANDED:
            raise ValueError(
                f"{block}: a block of more than {MAX_EXPANDED} addresses needs a /96 Pref64 "
                f"(under {self.prefix} its IPv6 form is not one prefix)"
            )
        return [IPv6Network((embed(self.prefix, a), 128)) for a in _addresses(block)]

    def back(self, ipv6: IPv6Network) -> IPv4Network | None:
        """The pool block whose T is ``ipv6`` (one of ``of``'s prefixes), or None."""
        if self.prefix.prefixlen == 96:
            length = ipv6.prefixlen - 96
            if ipv6.network_address not in self.prefix or not 0 <= length <= 32:
                return None
            return IPv4Network((int(ipv6.network_address) & 0xFFFF_FFFF, length))
        first = extract(self.prefix, ipv6.network_address)
        if first is None:
            return None
        return IPv4Network((first, 32)) if ipv6.prefixlen == 128 else None

    def covering(self, block: IPv4Network) -> IPv6Network:
        """The one IPv6 prefix every T(P) of ``block`` lies in (the CLAT writes a zero suffix
        and u octet, so the block's fixed bits are a prefix even where its T is not one)."""
        length = self.prefix.prefixlen
        if length == 96:
            return self.of(block)[0]
        before = max(0, 64 - length)
        bits = length + block.prefixlen + (8 if block.prefixlen > before else 0)
        return IPv6Network((embed(self.prefix, block.network_address), bits))


def tayga_pool_prefix(clat_ipv6: IPv6Address) -> IPv6Network:
    """The /96 a tayga of the daemon's maps the pool into: inside the CLAT's own /64, which the
    router already routes into the tun and the ISP routes to the router (SPEC 7), with bits
    64-95 all ones.  tayga 0.9.2 refuses a map into 64:ff9b:1::/48 ("reserved address") and
    into its own prefix (SPEC 7), so neither RFC 8215's local-use prefix nor the Pref64 will do;
    the CLAT's and tayga's own addresses must lie outside it (``config.rules`` checks that)."""
    return IPv6Network(((int(clat_ipv6) >> 64 << 64) | _POOL_TAG, 96))


def _addresses(block: IPv4Network) -> list[IPv4Address]:
    return [block.network_address] if block.prefixlen == 32 else list(block)
