"""What the dataplane should hold for a table, and the operations that turn one state into another.

SPEC section 5: a Valid entry D -> X is realised as two legs through a pool address P: the IPv4
leg D -> P (an nftables ``ip`` DNAT element, for the LAN's IPv4-only hosts) and the IPv6 leg
P -> X (an ``ip6`` DNAT element T(P) -> X on what the CLAT emits, ``core.translation``; or, for
Jool in netfilter mode, a translator EAM entry P <-> X, RFC 7757).  Stale entries lose their
IPv4 leg (no new flows) but keep P -> X while the pool lease lives, i.e. until the last entry
using X is deleted after its flows ended (conntrack pins every running flow to the P it started
with, and in nft mode to its X too).  The ops keep their historical names: ``*Translator`` is
the IPv6 leg, ``*Dnat`` the IPv4 leg.

The desired state is therefore: DNAT = {ipv4: pool} of Valid entries (an IPv6-only entry,
``core.ipv6only``, has no IPv4 leg); translator = every pool lease.  Shells apply
``diff(before, after)``; nothing is ever flushed and rebuilt.  ``Note`` is what the IPv4 leg's
element records about its entry so that a restarted daemon can adopt it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network

from clat_eamt.core.model import (
    DataplaneOp,
    EnsureDnat,
    EnsureTranslator,
    Entry,
    LiveFlows,
    Origin,
    RemoveDnat,
    RemoveTranslator,
    State,
)
from clat_eamt.core.table import MappingTable


@dataclass(frozen=True)
class DataplaneState:
    dnat: Mapping[IPv4Network, IPv4Network] = field(default_factory=dict)  # D -> P
    translator: Mapping[IPv4Network, IPv6Network] = field(default_factory=dict)  # P -> X
    notes: Mapping[IPv4Network, Note] = field(default_factory=dict)  # D -> Note (adoption)


def desired_state(table: MappingTable) -> DataplaneState:
    """The whole dataplane a table asks for (used to reconcile on start)."""
    dnat = {e.ipv4: e.pool for e in table if e.state is State.VALID and _has_ipv4_leg(e)}
    translator = {lease.block: lease.target for lease in table.pool.leases()}
    return DataplaneState(dnat, translator)


def _has_ipv4_leg(entry: Entry) -> bool:
    """An IPv6-only entry (issue 27) has only the IPv6 leg: the device was told P itself, so
    there is no IPv4 destination D to DNAT to it."""
    return entry.origin is not Origin.IPV6_ONLY


def partial_state(
    table: MappingTable, ipv4s: Iterable[IPv4Network], targets: Iterable[IPv6Network]
) -> DataplaneState:
    """The part of ``desired_state`` that concerns some IPv4 prefixes and IPv6 targets; cheap
    enough to compute before and after every decision."""
    dnat: dict[IPv4Network, IPv4Network] = {}
    for ipv4 in ipv4s:
        for entry in table.covering(ipv4.network_address):
            if entry.state is State.VALID and entry.ipv4 == ipv4 and _has_ipv4_leg(entry):
                dnat[ipv4] = entry.pool
    translator: dict[IPv4Network, IPv6Network] = {}
    for target in targets:
        lease = table.pool.lease_of(target)
        if lease is not None:
            translator[lease.block] = target
    return DataplaneState(dnat, translator)


def diff(before: DataplaneState, after: DataplaneState) -> tuple[DataplaneOp, ...]:
    """Operations from ``before`` to ``after``, in a safe order: a DNAT element never points at a
    pool address the translator does not know, and a translator entry is removed only after the
    DNAT elements that used it (also when a block is reused for another target: a start that
    reconciles with what a crashed run left can find one, tests/unit/test_runtime_machine)."""
    ops: list[DataplaneOp] = []
    retargeted = {
        pool
        for pool, ipv6 in after.translator.items()
        if before.translator.get(pool) not in (None, ipv6)
    }
    # Off the block before it changes target, even an element that stays on it (added back
    # below): no moment where it leads to the old target through the new leg or vice versa.
    first = sorted(ipv4 for ipv4, pool in before.dnat.items() if pool in retargeted)
    ops.extend(RemoveDnat(ipv4) for ipv4 in first)
    for pool, ipv6 in sorted(after.translator.items()):
        old = before.translator.get(pool)
        if old == ipv6:
            continue
        if old is not None:  # block reused for another target: replace it
            ops.append(RemoveTranslator(pool, old))
        ops.append(EnsureTranslator(pool, ipv6))
    for ipv4, pool in sorted(after.dnat.items()):
        if before.dnat.get(ipv4) != pool or ipv4 in first:
            ops.append(EnsureDnat(ipv4, pool))
    gone = (ipv4 for ipv4 in sorted(before.dnat) if ipv4 not in after.dnat and ipv4 not in first)
    ops.extend(RemoveDnat(ipv4) for ipv4 in gone)
    ops.extend(
        RemoveTranslator(pool, ipv6)
        for pool, ipv6 in sorted(before.translator.items())
        if pool not in after.translator
    )
    return tuple(ops)


def left_behind(
    actual: DataplaneState, live: LiveFlows | None
) -> list[tuple[IPv4Network, IPv4Network, IPv6Network]]:
    """What a previous run left in the kernel, as (D, P, X): every DNAT element whose pool
    address the translator still maps, and every live flow (D, P) whose P it maps (its DNAT
    element may already have gone).  Translator entries with neither are orphans: nobody can
    be using them, and the reconciling diff removes them."""
    found: dict[tuple[IPv4Network, IPv4Network], IPv6Network] = {}
    for ipv4, pool in actual.dnat.items():
        if pool in actual.translator:
            found[(ipv4, pool)] = actual.translator[pool]
    for d, p in live.pairs if live is not None else ():
        pool = IPv4Network(p)
        if pool in actual.translator:
            found.setdefault((IPv4Network(d), pool), actual.translator[pool])
    return [(ipv4, pool, ipv6) for (ipv4, pool), ipv6 in sorted(found.items())]


@dataclass(frozen=True)
class NetEffect:
    """A run of operations folded into what must change, so a burst of answers costs one batch
    (one tayga restart): translator entries to set and to remove, DNAT elements likewise."""

    translator_set: dict[IPv4Network, IPv6Network] = field(default_factory=dict)
    translator_remove: set[IPv4Network] = field(default_factory=set)
    dnat_set: dict[IPv4Network, IPv4Network] = field(default_factory=dict)
    dnat_remove: set[IPv4Network] = field(default_factory=set)


def net_effect(ops: Iterable[DataplaneOp]) -> NetEffect:
    """Fold ``ops`` in order: a later operation on the same key wins."""
    effect = NetEffect()
    for op in ops:
        if isinstance(op, EnsureTranslator):
            effect.translator_set[op.pool] = op.ipv6
            effect.translator_remove.discard(op.pool)
        elif isinstance(op, RemoveTranslator):
            effect.translator_set.pop(op.pool, None)
            effect.translator_remove.add(op.pool)
        elif isinstance(op, EnsureDnat):
            effect.dnat_set[op.ipv4] = op.pool
            effect.dnat_remove.discard(op.ipv4)
        else:
            effect.dnat_set.pop(op.ipv4, None)
            effect.dnat_remove.add(op.ipv4)
    return effect


_SAFE = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Note:
    """What the kernel keeps beside an IPv4 leg about its entry (an nft element comment), so a
    restarted daemon adopts a Valid mapping as Valid until it expires: the origin, the expiry on
    the daemon's clock (CLOCK_MONOTONIC: one per boot, and the kernel table does not outlive a
    boot) and every name; ``complete`` False when the names did not fit."""

    origin: str
    expires: float | None = None
    names: tuple[str, ...] = ()
    complete: bool = True

    def text(self, limit: int) -> str:
        """One line of at most ``limit`` characters (nft's comment limit is 128), of letters,
        digits and ``-_.~`` only: a DNS name may hold any byte (RFC 2181 section 11), and one
        that the nft parser stumbled over would fail the whole transaction it is in."""
        words = [self.origin, "-" if self.expires is None else f"{self.expires:.1f}"]
        text = " ".join([*words, *self.names])
        if len(text) > limit or not all(_SAFE.fullmatch(n) for n in self.names):
            text = " ".join(["~" + self.origin, words[1]])  # not everything: say so
        return text

    @classmethod
    def parse(cls, text: str) -> Note | None:
        words = text.split()
        if len(words) < 2:
            return None
        origin, complete = words[0].lstrip("~"), not words[0].startswith("~")
        try:
            expires = None if words[1] == "-" else float(words[1])
        except ValueError:
            return None
        return cls(origin, expires, tuple(words[2:]), complete)


def note_of(table: MappingTable, ipv4: IPv4Network) -> Note | None:
    """The Note for the Valid entry whose IPv4 leg is ``ipv4`` (None if there is none)."""
    for entry in table.covering(ipv4.network_address):
        if entry.state is State.VALID and entry.ipv4 == ipv4 and _has_ipv4_leg(entry):
            return Note(str(entry.origin), entry.expires, entry.fqdns)
    return None
