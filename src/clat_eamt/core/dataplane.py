"""What the dataplane should hold for a table, and the operations that turn one state into another.

SPEC section 5: a Valid entry D -> X is realised as an nftables DNAT element D -> P and a
translator EAMT entry P <-> X (RFC 7757).  Stale entries lose their DNAT element (no new flows)
but keep P <-> X while the pool lease lives, i.e. until the last entry using X is deleted after
its flows ended (conntrack pins every running flow to the P it started with).

The desired state is therefore: DNAT = {ipv4: pool} of Valid entries; translator = every pool
lease.  Shells apply ``diff(before, after)``; nothing is ever flushed and rebuilt.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network

from clat_eamt.core.model import (
    DataplaneOp,
    EnsureDnat,
    EnsureTranslator,
    LiveFlows,
    RemoveDnat,
    RemoveTranslator,
    State,
)
from clat_eamt.core.table import MappingTable


@dataclass(frozen=True)
class DataplaneState:
    dnat: Mapping[IPv4Network, IPv4Network] = field(default_factory=dict)  # D -> P
    translator: Mapping[IPv4Network, IPv6Network] = field(default_factory=dict)  # P -> X


def desired_state(table: MappingTable) -> DataplaneState:
    """The whole dataplane a table asks for (used to reconcile on start)."""
    dnat = {e.ipv4: e.pool for e in table if e.state is State.VALID}
    translator = {lease.block: lease.target for lease in table.pool.leases()}
    return DataplaneState(dnat, translator)


def partial_state(
    table: MappingTable, ipv4s: Iterable[IPv4Network], targets: Iterable[IPv6Network]
) -> DataplaneState:
    """The part of ``desired_state`` that concerns some IPv4 prefixes and IPv6 targets; cheap
    enough to compute before and after every decision."""
    dnat: dict[IPv4Network, IPv4Network] = {}
    for ipv4 in ipv4s:
        for entry in table.covering(ipv4.network_address):
            if entry.state is State.VALID and entry.ipv4 == ipv4:
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
    DNAT elements that used it."""
    ops: list[DataplaneOp] = []
    for pool, ipv6 in sorted(after.translator.items()):
        old = before.translator.get(pool)
        if old == ipv6:
            continue
        if old is not None:  # block reused for another target: replace it
            ops.append(RemoveTranslator(pool, old))
        ops.append(EnsureTranslator(pool, ipv6))
    for ipv4, pool in sorted(after.dnat.items()):
        if before.dnat.get(ipv4) != pool:
            ops.append(EnsureDnat(ipv4, pool))
    ops.extend(RemoveDnat(ipv4) for ipv4 in sorted(before.dnat) if ipv4 not in after.dnat)
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


def staged(effect: NetEffect, held: Mapping[IPv4Network, IPv6Network]) -> list[NetEffect]:
    """``effect`` in stages a translator can take, given the entries it ``held`` before.

    Jool and tayga hold an IPv6 target in one entry only, so a target moving to a new pool
    address (its old entry removed in the same batch) can be added only after that removal,
    and the DNAT elements pointing at the new address only after that: a second stage.  Each
    stage is applied in the safe order of ``diff``: translator sets, DNAT, translator removals.
    """
    leaving = {held[p] for p in effect.translator_remove if p in held}
    later = {p: x for p, x in effect.translator_set.items() if x in leaving}
    if not later:
        return [effect]
    first = NetEffect(
        translator_set={p: x for p, x in effect.translator_set.items() if p not in later},
        translator_remove=set(effect.translator_remove),
        dnat_set={d: p for d, p in effect.dnat_set.items() if p not in later},
        dnat_remove=set(effect.dnat_remove),
    )
    second = NetEffect(
        translator_set=later,
        dnat_set={d: p for d, p in effect.dnat_set.items() if p in later},
    )
    return [first, second]
