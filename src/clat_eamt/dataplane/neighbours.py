"""Reading the router's neighbour tables (ARP and NDP) for host classification (SPEC 3).

The decisions (which entries count, the verdict per MAC, the memory) are the pure
``core.hosts``; this is its I/O: a dump of the tables with ``rtnl`` on a socket opened in the
router's namespace (netns.socket_in: setns in a helper thread).
"""

from __future__ import annotations

from collections.abc import Sequence

from clat_eamt.core.hosts import Neighbour
from clat_eamt.dataplane import rtnl


def dump_neighbours(interfaces: Sequence[str] | None, netns: str | None) -> list[Neighbour]:
    """Blocking: the IPv4 and IPv6 neighbour entries on ``interfaces`` (all when None)."""
    wanted: set[int] | None = None
    if interfaces is not None:
        wanted = {link.index for link in rtnl.links(netns) if link.name in interfaces}
        if not wanted:
            raise LookupError(f"no interface {', '.join(interfaces) or '(none given)'}")
    return [
        Neighbour(n.dst, n.lladdr, n.state, n.ifindex)
        for n in rtnl.neighbours(netns)
        if n.dst is not None  # e.g. AF_BRIDGE fdb entries
        and (wanted is None or n.ifindex in wanted)
    ]
