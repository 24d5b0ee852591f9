"""T(P): a pool address P as the CLAT writes it in IPv6 (SPEC section 5, dataplane v2).

A mapping D -> X is two nftables elements: ``ip`` DNAT D -> P for the LAN's IPv4-only hosts, and
``ip6`` DNAT T(P) -> X on what the CLAT emits.  The CLAT itself is never told about P: it
translates P like any other IPv4 destination, so T(P) is

- P embedded in the CLAT's Pref64 (RFC 6052 section 2.2) for a CLAT that translates by prefix
  (OpenWrt's 464xlat/nat46 ``remote.style RFC6052``, clatd, Jool in its namespace, a tayga
  without maps), or
- P under the IPv6 side of one static prefix map (RFC 7757 EAM) that never changes, for a tayga
  run by the daemon: tayga refuses non-global IPv4 under 64:ff9b::/96 (RFC 6052 section 3.1),
  and the pool is private, so the pool gets its own ``map`` line instead.

Both are ``PoolTranslation(prefix)`` with a /96 prefix or an RFC 6052 prefix of another length;
``of`` gives the IPv6 prefixes of a pool block (one when the block's bits are contiguous in the
IPv6 address, one /128 per address otherwise) and ``back`` inverts it for adoption.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Network

from clat_eamt.core.pref64 import LOCAL_USE_PREFIX, embed, extract, pref64_problem

# The pool's static map in a tayga run by the daemon: 64:ff9b:1::/96 lies in the RFC 8215
# local-use prefix, outside tayga's own prefix (tayga refuses a map inside it, SPEC 7), and is
# treated as a translation prefix everywhere (never a mapping target, core.pref64).
TAYGA_POOL_PREFIX = IPv6Network((LOCAL_USE_PREFIX.network_address, 96))
MAX_EXPANDED = 4096  # addresses of one block spelled out one by one (non-/96 prefixes)


@dataclass(frozen=True)
class PoolTranslation:
    """How the CLAT writes IPv4 destinations in IPv6: RFC 6052 under ``prefix``."""

    prefix: IPv6Network

    def __post_init__(self) -> None:
        problem = pref64_problem(self.prefix)
        if problem:
            raise ValueError(problem)

    def of(self, block: IPv4Network) -> list[IPv6Network]:
        """T(block) as IPv6 prefixes (ValueError for a block too large to spell out)."""
        if self.prefix.prefixlen == 96:  # the IPv4 bits are the last 32: one prefix
            first = embed(self.prefix, block.network_address)
            return [IPv6Network((first, 96 + block.prefixlen))]
        if block.num_addresses > MAX_EXPANDED:
            raise ValueError(
                f"{block}: a block of more than {MAX_EXPANDED} addresses needs a /96 Pref64 "
                f"(under {self.prefix} its IPv6 form is not one prefix)"
            )
        return [IPv6Network((embed(self.prefix, a), 128)) for a in _addresses(block)]

    def back(self, ipv6: IPv6Network) -> IPv4Network | None:
        """The pool block whose T is ``ipv6`` (one of ``of``'s prefixes), or None."""
        first = extract(self.prefix, ipv6.network_address)
        if first is None:
            return None
        if self.prefix.prefixlen == 96:
            length = ipv6.prefixlen - 96
            return IPv4Network((first, length)) if 0 <= length <= 32 else None
        return IPv4Network((first, 32)) if ipv6.prefixlen == 128 else None

    def covering(self, block: IPv4Network) -> IPv6Network:
        """The one IPv6 prefix every T(P) of ``block`` lies in (the CLAT writes a zero suffix
        and u octet, so the block's fixed bits are a prefix even where its T is not one)."""
        length = self.prefix.prefixlen
        before = max(0, 64 - length) if length != 96 else 32
        bits = length + block.prefixlen + (8 if length != 96 and block.prefixlen > before else 0)
        return IPv6Network((embed(self.prefix, block.network_address), bits))


def _addresses(block: IPv4Network) -> list[IPv4Address]:
    return [block.network_address] if block.prefixlen == 32 else list(block)
