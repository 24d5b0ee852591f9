"""The router's own addresses and prefixes, read from its interfaces at start (SPEC section 4).

They matter twice: the mapping pool must not overlap any prefix of the router (a pool address
that is also a LAN or WAN address would steal its traffic), and no DNS answer may map the
router's own addresses or its LAN prefixes (an answer that gives a LAN address some IPv6 is an
attack, not an optimization).  Which interfaces are the LAN comes from ``lan_interface``
(empty: every interface counts as LAN).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Interface, IPv6Interface, ip_interface, ip_network

from clat_eamt.core.model import IPNetwork
from clat_eamt.dataplane import rtnl


@dataclass(frozen=True)
class LocalNetworks:
    addresses: tuple[IPNetwork, ...]  # every own address, as /32 or /128
    prefixes: tuple[IPNetwork, ...]  # every on-link prefix (for the pool check)
    lan_prefixes: tuple[IPNetwork, ...]  # the prefixes of the LAN interfaces

    @property
    def never_mapped(self) -> tuple[IPNetwork, ...]:
        return tuple(dict.fromkeys(self.addresses + self.lan_prefixes))


def _read(lan: Sequence[str] | None) -> LocalNetworks:
    found: list[tuple[str, IPv4Interface | IPv6Interface]] = []
    names = {link.index: link.name for link in rtnl.links()}
    for entry in rtnl.addresses():
        interface = ip_interface(f"{entry.address}/{entry.prefixlen}")
        if not (interface.is_loopback or interface.is_link_local):
            found.append((names.get(entry.index, ""), interface))
    return LocalNetworks(
        addresses=tuple(dict.fromkeys(ip_network(i.ip) for _, i in found)),
        prefixes=tuple(dict.fromkeys(i.network for _, i in found)),
        lan_prefixes=tuple(dict.fromkeys(i.network for n, i in found if not lan or n in lan)),
    )


async def local_networks(lan: Sequence[str] | None) -> LocalNetworks:
    """The router's addresses and prefixes.  The IPv6 prefixes of every link are never mapped,
    the WAN link's too (issue 15: an AAAA on the WAN's prefix, not the router's own address,
    was mappable; a target there is the ISP's access network, reached on-link, not a CDN).
    IPv4 prefixes outside ``lan`` are not added: the WAN of a 464XLAT CE is IPv6-only (RFC
    6877), and a machine whose other links hold IPv4 prefixes is not steering them."""
    found = await asyncio.to_thread(_read, lan)
    links_v6 = tuple(p for p in found.prefixes if p.version == 6)
    never = tuple(dict.fromkeys(found.lan_prefixes + links_v6))
    return LocalNetworks(found.addresses, found.prefixes, never)
