"""IPv6 legs the safety net leaves alone: those of IPv6-only entries (issues 25 and 27).

The safety net's hold-back and rescue (``core.safety``) exist to hand a steered flow to the
NAT64 when the native path fails.  An IPv6-only entry (``core.ipv6only``) has no NAT64 path:
the device was told P itself, there is no IPv4 destination D to fall back to.  Held back, a
refusal of its first packet (an RST, an ICMPv6 unreachable) would only turn ECONNREFUSED into
the device's connect timeout, and a server slower than the rescue window would cost a
retransmission and make the entry Stale and its target broken for nothing.  So the guard never
marks the IPv6 leg of a pool block P that an IPv6-only entry uses: no hold-back, no rescue, no
verdict from its flows (the dataplane's ``unguarded`` set, ``dataplane.guard``).

A lease shared with a dns, static or provider entry (another name with an A and the same AAAA)
stays unguarded on its IPv6 leg while the IPv6-only entry holds it: those entries' flows are
still guarded on their IPv4 leg (DNATed D -> P), which carries the refusal after the CLAT
translated it (RFC 7915) and which the rescue acts on alone as well.

Pure: the shell asks ``exempt`` for the blocks whose IPv6 leg a batch installs and applies the
returned ``UnguardedChange`` as a diff, in the same transaction as the legs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Network

from clat_eamt.core.model import Origin
from clat_eamt.core.table import MappingTable


def exempt(table: MappingTable, block: IPv4Network) -> bool:
    """True when an IPv6-only entry uses ``block``: its IPv6 leg has no NAT64 behind it."""
    return any(e.origin is Origin.IPV6_ONLY for e in table.using_pool(block))


@dataclass(frozen=True)
class UnguardedChange:
    """Pool blocks whose IPv6 leg enters (``add``) or leaves (``remove``) the set; disjoint."""

    add: tuple[IPv4Network, ...] = ()
    remove: tuple[IPv4Network, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.add or self.remove)


@dataclass
class UnguardedLegs:
    """The pool blocks whose IPv6 leg is unguarded now."""

    held: set[IPv4Network] = field(default_factory=set)

    def update(
        self,
        installed: Iterable[IPv4Network],
        removed: Iterable[IPv4Network],
        is_exempt: Callable[[IPv4Network], bool],
    ) -> UnguardedChange:
        """IPv6 legs a batch installs (new, or a block re-pointed to another target) and
        removes: per changed leg, no scan of the table."""
        add: list[IPv4Network] = []
        remove = [p for p in dict.fromkeys(removed) if p in self.held]
        self.held.difference_update(remove)
        for p in dict.fromkeys(installed):
            wanted = is_exempt(p)
            if wanted and p not in self.held:
                add.append(p)
                self.held.add(p)
            elif not wanted and p in self.held:
                remove.append(p)
                self.held.discard(p)
        return UnguardedChange(tuple(add), tuple(p for p in remove if p not in add))
