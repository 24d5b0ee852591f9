"""IPv6-only services for IPv4-only devices (issue 27; SPEC section 5, "IPv6-only services").

A name with a real AAAA and no A (NOERROR, no A record; or an A holding only a configured
placeholder, the seed's "A null record") is out of an IPv4-only device's reach, although the
router has native IPv6 to it.  With ``ipv6_only`` on, the proxy answers the A query with one
address P of the mapping pool, and P's IPv6 leg T(P) -> X (``core.dataplane``) carries the
device's connections to the AAAA X: the same mechanism as a dns entry without its IPv4 leg.

The rules, in order (``decide_ipv6_only``, pure like ``core.decide``):

1. Gates: an A query, the optimization and ``ipv6_only`` on, the name allowed, DNSSEC as for
   every entry (when required, only answers with AD), and an A answer with no address or only
   placeholders (per name: two names sharing one placeholder each get their own P and never
   meet in the conflict rule, which is about real IPv4 destinations).
2. The AAAA: an answer, with a target that is not synthesized by DNS64, not special-purpose and
   allowed by the prefix policy (``decide``'s rule 2); one per name, chosen as ``decide`` does.
3. P is the target's pool block: the one it holds (P stays the name's while the mapping lives,
   stable across refreshes), else the one quarantined for this very target, else a new one.
4. A new entry counts against ``max_entries``, the creation rate and the host gate as every
   learned entry does; the TTL of the A is min(AAAA TTL, the mapping's Valid life).
5. Quarantine: a block handed out in an A is kept from every other target until ``quarantine``
   seconds after the last mapping of it ended (``HeldBlocks``), so a device that kept P in its
   own cache reaches nothing rather than another service.  A restart forgets the table, not
   the kernel: the IPv6 legs found then and not adopted are held the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Network
from typing import NamedTuple

from clat_eamt.core.decide import (
    Change,
    Create,
    Decision,
    Policy,
    Refresh,
    choose_target,
    gate_name,
    learned_count,
    usable_targets,
)
from clat_eamt.core.lifecycle import Event, allowed
from clat_eamt.core.limits import CreationLimiter, lowest
from clat_eamt.core.model import (
    AaaaStatus,
    Entry,
    Observation,
    Origin,
    Reason,
    Refusal,
    State,
)
from clat_eamt.core.names import normalize
from clat_eamt.core.pool import Pool
from clat_eamt.core.table import MappingTable


@dataclass(frozen=True)
class Ipv6OnlyPolicy:
    """The options of issue 27, in core terms."""

    enabled: bool = False
    placeholders: frozenset[IPv4Address] = frozenset()
    quarantine: float = 900.0

    def applies(self, a: Iterable[IPv4Address]) -> bool:
        """True when the A answer has nothing a device could use: no address, or only
        placeholders."""
        return self.enabled and all(address in self.placeholders for address in a)


class SyntheticA(NamedTuple):
    """The A record the proxy answers an IPv6-only name's query with (the mapper's result in
    place of the A TTL ceiling)."""

    address: IPv4Address
    ttl: int


@dataclass(frozen=True)
class Synthesis:
    """What ``decide_ipv6_only`` found: the decision (changes as ``core.decide`` makes them)
    and the A record to answer with, if any."""

    decision: Decision
    address: IPv4Address | None = None
    ttl: int = 0


class HeldBlocks:
    """Blocks handed out in synthesized A answers, each with its target and the end of its
    quarantine: while a block has no lease it is held in the pool (``Pool.hold``) until then."""

    def __init__(self) -> None:
        self._until: dict[IPv4Network, tuple[IPv6Network, float]] = {}
        self._block_of: dict[IPv6Network, IPv4Network] = {}  # a target's last block handed out

    def block_for(self, target: IPv6Network, pool: Pool) -> IPv4Network | None:
        """A block held for this very target (its own P back: a device's cache stays right)."""
        block = self._block_of.get(target)
        return block if block is not None and pool.lease_of(target) is None else None

    def _note(self, block: IPv4Network, target: IPv6Network, until: float) -> None:
        old = self._until.get(block)
        if old is not None and self._block_of.get(old[0]) == block:
            del self._block_of[old[0]]
        self._until[block] = (target, until)
        self._block_of[target] = block

    def handed(self, entry: Entry, quarantine: float) -> None:
        """``entry``'s P went out in an A answer: quarantined until ``quarantine`` after its
        Valid life at least (``released`` moves that later when the mapping really ends)."""
        end = (entry.expires or 0.0) + quarantine
        held = self._until.get(entry.pool)
        self._note(entry.pool, entry.ipv6, max(end, held[1] if held else end))

    def released(self, entry: Entry, pool: Pool, now: float, quarantine: float) -> None:
        """An entry was deleted: if its block was handed out and is now free, hold it."""
        held = self._until.get(entry.pool)
        if held is None or pool.lease_of(entry.ipv6) is not None:
            return
        target, until = held
        self._note(entry.pool, target, max(until, now + quarantine))
        pool.hold(entry.pool)

    def take(self, block: IPv4Network, target: IPv6Network, pool: Pool) -> bool:
        """Give a held block back to its own target: it becomes a lease with no reference
        yet, which the new entry then takes (``MappingTable.add``).  True if it did (the
        kernel has no IPv6 leg for it yet: the caller adds it)."""
        held = self._until.get(block)
        if held is None or held[0] != target or pool.lease_of(target) is not None:
            return False
        if pool.owner_of(block.network_address) is not None:
            return False  # not held: leased again (only to this target, see ``block_for``)
        pool.unhold(block)
        pool.adopt(target, block)
        return True

    def expire(self, now: float, pool: Pool) -> list[IPv4Network]:
        """End the quarantines that are over; the blocks free again."""
        done = [block for block, (_, until) in self._until.items() if until <= now]
        for block in done:
            target, _ = self._until.pop(block)
            if self._block_of.get(target) == block:
                del self._block_of[target]
            lease = pool.lease_of(target)
            if lease is None or lease.block != block:  # held, not leased again
                pool.unhold(block)
        return done

    def after_restart(
        self, legs: Mapping[IPv4Network, IPv6Network], pool: Pool, now: float, quarantine: float
    ) -> list[IPv4Network]:
        """IPv6 legs a previous run left that nothing adopted (the start's reconciling diff
        removes them): an IPv6-only entry has no IPv4 leg to be adopted by, so any of them may
        be a P that devices still hold.  Each free /32 block is held for ``quarantine``, for
        its own target only (it gets its P back, ``block_for``)."""
        held: list[IPv4Network] = []
        for block, target in sorted(legs.items()):
            if block.prefixlen != 32 or not block.subnet_of(pool.network):
                continue
            if pool.owner_of(block.network_address) is not None or block in self._until:
                continue
            try:
                pool.hold(block)
            except ValueError:  # reserved (the pool's first or last address): never handed out
                continue
            self._note(block, target, now + quarantine)
            held.append(block)
        return held

    def quarantined(self, pool: Pool) -> int:
        """Blocks held now: handed out, their mapping ended, leased to nobody."""
        return sum(1 for block in self._until if pool.owner_of(block.network_address) is None)


def status(ipv6_only: Ipv6OnlyPolicy, table: MappingTable, held: HeldBlocks) -> dict[str, object]:
    """What status shows of it: the switch, its entries now, the addresses in quarantine."""
    return {
        "enabled": ipv6_only.enabled,
        "mappings": table.count(Origin.IPV6_ONLY),
        "quarantined": held.quarantined(table.pool),
    }


def decide_ipv6_only(  # noqa: PLR0917 - the decision's inputs, as ``decide`` has them
    obs: Observation,
    table: MappingTable,
    limiter: CreationLimiter,
    policy: Policy,
    ipv6_only: Ipv6OnlyPolicy,
    held: HeldBlocks,
    now: float,
) -> Synthesis:
    """Rules 1-4 of the module docstring.  Reads, never writes."""
    name = normalize(obs.name)

    def refused(reason: Reason, why: str, *more: Refusal) -> Synthesis:
        return Synthesis(Decision(name, None, refusals=(*more, Refusal(reason, why))))

    if not ipv6_only.enabled:
        return refused(Reason.DISABLED, "ipv6_only is off")
    if not ipv6_only.applies(obs.a):  # addresses of its own: ``core.decide``'s case
        return Synthesis(Decision(name, None))
    gate = gate_name(obs, name, policy)
    if gate is not None:
        return Synthesis(Decision(name, None, refusals=(gate,)))
    if obs.aaaa_status is not AaaaStatus.ANSWER:
        return refused(Reason.NO_AAAA, f"AAAA {obs.aaaa_status}: nothing to reach {name} by")
    refusals: list[Refusal] = []
    aaaa, _ = lowest(obs.aaaa)
    targets = usable_targets(obs, aaaa, policy, refusals)
    if not targets:
        return refused(Reason.NO_AAAA, f"{name} has no usable AAAA", *refusals)
    target = choose_target(name, targets, [], table)
    ipv6 = IPv6Network((int(target), 128))
    expires = policy.expiry(now, obs.aaaa_ttl)
    lease = table.pool.lease_of(ipv6)
    block = lease.block if lease is not None else held.block_for(ipv6, table.pool)
    change: Change
    if block is not None and (existing := table.get((block, ipv6))) is not None:
        if existing.state is State.STALE and not allowed(existing, Event.REFRESH):
            why = f"{existing.ipv4} -> {target} is stale ({existing.stale_reason})"
            return refused(Reason.CONFLICT, why, *refusals)
        change = Refresh(existing.key, expires, name)
    else:
        refusal = _create_refusal(obs, table, limiter, policy, now)
        if refusal is None and block is None:
            block = table.pool.peek(ipv6, 32)
            if block is None:
                refusal = Refusal(Reason.POOL_EXHAUSTED, f"pool {table.pool.network} is full")
        if refusal is not None or block is None:
            assert refusal is not None
            return Synthesis(Decision(name, target, refusals=(*refusals, refusal)))
        entry = Entry(
            block, ipv6, block, Origin.IPV6_ONLY, State.VALID, now, now, expires,
            fqdns=(name,), host=obs.host.key if obs.host else None, cnames=obs.chain,
        )  # fmt: skip
        change = Create(entry)
    ttl = max(0, min(obs.aaaa_ttl, int(expires - now)))
    decision = Decision(name, target, (change,), tuple(refusals))
    return Synthesis(decision, block.network_address, ttl)


def _create_refusal(
    obs: Observation,
    table: MappingTable,
    limiter: CreationLimiter,
    policy: Policy,
    now: float,
) -> Refusal | None:
    """Rule 4: the limits every learned entry meets (``decide._Plan._create``)."""
    refusal = policy.host_refusal(obs.host)
    if refusal is None and learned_count(table) >= policy.max_entries:
        refusal = Refusal(Reason.TABLE_FULL, f"{policy.max_entries} learned entries")
    if refusal is None:
        allowance, reason = limiter.allowance(obs.host.key if obs.host else None, now)
        if allowance < 1:
            refusal = Refusal(reason, "creation rate limit reached")
    return refusal
