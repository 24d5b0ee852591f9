"""The router's own prefixes, read from its interfaces at start (SPEC section 4).

They matter twice: the mapping pool must not overlap any of them (a pool address that is also
a LAN address would steal its traffic), and no DNS answer may map one of them (an answer that
says a LAN or router address has some IPv6 is an attack, not an optimization).
"""

from __future__ import annotations

import asyncio
from ipaddress import ip_interface

from pyroute2 import IPRoute  # type: ignore[import-untyped]

from clat_eamt.core.model import IPNetwork


def _read() -> list[IPNetwork]:
    with IPRoute() as ipr:
        found: list[IPNetwork] = []
        for message in ipr.get_addr():
            address = message.get_attr("IFA_ADDRESS")
            if address is None:
                continue
            interface = ip_interface(f"{address.split('%', 1)[0]}/{message['prefixlen']}")
            if not (interface.is_loopback or interface.is_link_local):
                found.append(interface.network)
    return sorted(set(found), key=lambda n: (n.version, n))


async def local_prefixes() -> list[IPNetwork]:
    """Every non-loopback, non-link-local prefix on the router's interfaces."""
    return await asyncio.to_thread(_read)
