"""The decision function: one A query and what DNS said -> the table changes it warrants.

``decide`` is pure: it reads the table, the limiter and the policy and returns a ``Decision``
(plain data) without changing anything; ``engine.Engine`` commits it.  The rules, in order:

1. Gates (SPEC section 3 and 4): only A queries, only when enabled, name allow/deny lists,
   DNSSEC (when required, only answers with AD create or refresh anything), an A answer exists.
2. AAAA outcome: SERVFAIL or timeout teaches nothing (no change); NODATA / NXDOMAIN, or only
   synthesized (inside a Pref64 or embedding an A record) or special-purpose AAAA, mean the name
   is not IPv6-enabled: the name withdraws its vouch from entries it supported.
3. Target: one IPv6 per name, chosen deterministically: the one this name already maps to, else
   one an answered IPv4 already maps to, else one that already has a pool block, else a stable
   hash of the name over the sorted candidates (SPEC section 5, multiple records).
4. Per IPv4 destination D: covered by a static/provider entry -> nothing (dns overrides no other
   origin); a Valid dns entry with an IPv6 in the answer -> refresh; one of the same name whose
   IPv6 left the answer -> kept until its TTL ends; one of another name -> conflict (it goes
   Stale, D is quarantined, nothing new is made); a revivable Stale entry D -> X -> refresh;
   otherwise create, if the host is eligible and the table size, rates and pool allow.
5. Hostile names (``seen``): a create or revive D -> X is refused while another name's
   unexpired answer holds D without X, a name maps at most ``seen.PER_TARGET`` IPv4s to one
   target, and all names together at most ``Policy.max_per_target`` (issue 26: five names
   brought 8 each, 56 destinations, to one attacker's IPv6).  An answer that holds D with no
   usable IPv6 at all (NODATA, only synthesized) conflicts with another name's Valid D -> X as
   rule 4's conflict does.

Work per answer is bounded whatever the answer holds (issue 15): at most ``MAX_ADDRESSES`` A
and AAAA records each are considered, the lowest ones (deterministic, so a name's choice does
not move when a resolver rotates its records); the others are passed through untouched and
counted (``Decision.skipped``).
"""

from __future__ import annotations

import enum
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from clat_eamt.core.addresses import AddressPolicy
from clat_eamt.core.lifecycle import Event, allowed
from clat_eamt.core.limits import MAX_ADDRESSES, CreationLimiter, lowest
from clat_eamt.core.model import (
    AaaaStatus,
    Entry,
    EntryKey,
    Host,
    HostClass,
    Observation,
    Origin,
    Reason,
    Refusal,
    State,
    show,
)
from clat_eamt.core.names import NameFilter, normalize
from clat_eamt.core.pref64 import Pref64Set
from clat_eamt.core.seen import PER_TARGET, AnswersSeen
from clat_eamt.core.table import MappingTable


class HostMode(enum.StrEnum):
    IPV4_ONLY = "ipv4-only"  # only hosts known to be IPv4-only trigger mappings (SPEC 3)
    ALL = "all"  # every host: for networks where detection cannot work


@dataclass(frozen=True)
class Policy:
    """Everything the decision depends on besides the table, in core terms."""

    enabled: bool = True
    addresses: AddressPolicy = field(default_factory=AddressPolicy)
    pref64: Pref64Set = field(default_factory=Pref64Set)
    names: NameFilter = field(default_factory=NameFilter)
    ttl_min: int = 30
    ttl_max: int = 3600
    stale_linger: float = 30.0
    require_dnssec: bool = False
    host_mode: HostMode = HostMode.IPV4_ONLY
    max_entries: int = 4096
    max_per_target: int = 16  # IPv4s mapped to one IPv6, all names together (rule 5)
    ipv4_only_hosts: bool = False  # the neighbour tables know an IPv4-only host on the LAN

    def expiry(self, now: float, ttl: int) -> float:
        """SPEC section 3: TTL = min(A TTL, AAAA TTL), within the configured floor and ceiling."""
        return now + min(max(ttl, self.ttl_min), self.ttl_max)

    def host_refusal(self, host: Host | None) -> Refusal | None:
        if self.host_mode is HostMode.ALL:
            return None
        if host is None:
            # Without client identity (dnsmasq's default: its cache stays on) any client's
            # answer may create, when the LAN has IPv4-only hosts; the dataplane's host sets
            # then decide per packet who is steered (SPEC 5, client identity is optional).
            if self.ipv4_only_hosts:
                return None
            return Refusal(Reason.HOST_NOT_ELIGIBLE, "client unknown, no IPv4-only host on the LAN")
        if host.klass is not HostClass.IPV4_ONLY:
            return Refusal(Reason.HOST_NOT_ELIGIBLE, f"host {host.key} is {host.klass}")
        return None


# --- the changes a decision asks for -------------------------------------------------------


@dataclass(frozen=True)
class Create:
    entry: Entry


@dataclass(frozen=True)
class Refresh:
    key: EntryKey
    expires: float
    fqdn: str


@dataclass(frozen=True)
class Withdraw:
    """``fqdn`` no longer vouches for the entry; with no name left it goes Stale."""

    key: EntryKey
    fqdn: str


@dataclass(frozen=True)
class MarkStale:
    key: EntryKey
    event: Event


@dataclass(frozen=True)
class Quarantine:
    ipv4: IPv4Network
    until: float


Change = Create | Refresh | Withdraw | MarkStale | Quarantine


@dataclass(frozen=True)
class Decision:
    name: str
    target: IPv6Address | None
    changes: tuple[Change, ...] = ()
    refusals: tuple[Refusal, ...] = ()
    notes: tuple[str, ...] = ()
    skipped: int = 0  # A and AAAA records beyond MAX_ADDRESSES: passed through, not considered

    @property
    def created(self) -> tuple[Entry, ...]:
        return tuple(c.entry for c in self.changes if isinstance(c, Create))


def decide(
    obs: Observation,
    table: MappingTable,
    limiter: CreationLimiter,
    policy: Policy,
    now: float,
    *,
    seen: AnswersSeen | None = None,
    broken: Callable[[IPv6Address], bool] | None = None,
) -> Decision:
    """Rules 1-5 of the module docstring.  Reads, never writes.  ``broken``: targets whose
    native path failed lately are not mapped (``core.safety``)."""
    name = normalize(obs.name)
    gate = _gate(obs, name, policy)
    if gate is not None:
        return Decision(name, None, refusals=(gate,))
    if obs.aaaa_status in (AaaaStatus.SERVFAIL, AaaaStatus.TIMEOUT):
        why = f"AAAA {obs.aaaa_status}: nothing learned; the A answer goes out unmapped"
        return Decision(name, None, refusals=(Refusal(Reason.AAAA_UNKNOWN, why),))

    refusals: list[Refusal] = []
    a, a_skipped = lowest(obs.a)
    aaaa, aaaa_skipped = lowest(obs.aaaa)
    skipped = a_skipped + aaaa_skipped
    if skipped:
        why = f"{len(a) + a_skipped} A and {len(aaaa) + aaaa_skipped} AAAA records: the lowest "
        why += f"{MAX_ADDRESSES} of each considered, {skipped} passed through unmapped"
        refusals.append(Refusal(Reason.TOO_MANY_ADDRESSES, why))
    targets = usable_targets(obs, aaaa, policy, refusals)
    if broken is not None:
        for target in [t for t in targets if broken(t)]:
            why = f"{target}: its native path failed lately; the NAT64 carries it meanwhile"
            refusals.append(Refusal(Reason.TARGET_BROKEN, why, target))
            targets.remove(target)
    destinations = _usable_destinations(a, policy.addresses, refusals)
    if not targets:
        if obs.aaaa_status is not AaaaStatus.ANSWER:
            refusals.append(Refusal(Reason.NO_AAAA, f"AAAA {obs.aaaa_status}: {name} is IPv4-only"))
        changes = _withdrawals(name, a, table) + _no_target_conflicts(
            name, destinations, table, policy.expiry(now, obs.a_ttl), refusals
        )
        return Decision(name, None, changes, tuple(refusals), skipped=skipped)

    # Rule 5: among several AAAA, one that no other name's answer objects to.
    unopposed = [
        t
        for t in targets
        if seen is None or not any(seen.objection(name, d, t, now) for d in destinations)
    ]
    target = choose_target(name, unopposed or targets, destinations, table)
    plan = _Plan(name, target, obs, table=table, limiter=limiter, policy=policy, now=now)
    plan.seen = seen
    for destination in destinations:
        plan.destination(destination, set(targets))
    return Decision(
        name, target, tuple(plan.changes), tuple(refusals + plan.refusals), tuple(plan.notes),
        skipped,
    )  # fmt: skip


def _gate(obs: Observation, name: str, policy: Policy) -> Refusal | None:
    refusal = gate_name(obs, name, policy)
    if refusal is None and not obs.a:
        return Refusal(Reason.NO_A, f"no A records for {name}")
    return refusal


def gate_name(obs: Observation, name: str, policy: Policy) -> Refusal | None:
    """Rule 1 but the A records: the query, the switch, the name lists and DNSSEC."""
    if obs.qtype.upper() != "A":
        return Refusal(Reason.NOT_A_QUERY, f"{obs.qtype} query: passed through")
    if not policy.enabled:
        return Refusal(Reason.DISABLED, "optimization disabled")
    denied = policy.names.denied_by(name)
    if denied is not None:
        return Refusal(Reason.NAME_DENIED, f"{name} matches deny_name {denied}")
    if not policy.names.admits(name):
        return Refusal(Reason.NAME_NOT_ALLOWED, f"{name} is below no allow_name entry")
    if policy.require_dnssec and not obs.authenticated:
        return Refusal(Reason.NOT_VALIDATED, "DNSSEC required and the answers carried no AD")
    return None


def usable_targets(
    obs: Observation, aaaa: list[IPv6Address], policy: Policy, refusals: list[Refusal]
) -> list[IPv6Address]:
    usable: list[IPv6Address] = []
    every_a = frozenset(obs.a)  # a target embedding any A record is synthesized (all of them)
    for ipv6 in aaaa:
        synthesized = policy.pref64.synthesized_reason(ipv6, every_a)
        if synthesized is not None:
            refusals.append(Refusal(Reason.SYNTHESIZED, synthesized, ipv6))
            continue
        refusal = policy.addresses.refusal(ipv6)
        if refusal is not None:
            refusals.append(refusal)
            continue
        usable.append(ipv6)
    return usable


def _usable_destinations(
    a_records: Iterable[IPv4Address], addresses: AddressPolicy, refusals: list[Refusal]
) -> list[IPv4Address]:
    usable: list[IPv4Address] = []
    for ipv4 in a_records:
        refusal = addresses.refusal(ipv4)
        if refusal is not None:
            refusals.append(refusal)
        else:
            usable.append(ipv4)
    return usable


def _withdrawals(
    name: str, a_records: Iterable[IPv4Address], table: MappingTable
) -> tuple[Change, ...]:
    """SPEC section 3: conditions no longer hold for the entries this name vouched for."""
    changes: list[Change] = []
    for ipv4 in sorted(set(a_records)):
        entry = table.valid_covering(ipv4)
        if entry is not None and entry.origin is Origin.DNS and name in entry.fqdns:
            changes.append(Withdraw(entry.key, name))
    return tuple(changes)


def _no_target_conflicts(
    name: str,
    destinations: Iterable[IPv4Address],
    table: MappingTable,
    until: float,
    refusals: list[Refusal],
) -> tuple[Change, ...]:
    """Rule 5: this name holds D with no usable IPv6, another name's Valid entry maps D -> X."""
    changes: list[Change] = []
    for ipv4 in destinations:
        valid = table.valid_covering(ipv4)
        if valid is None or valid.origin is not Origin.DNS or name in valid.fqdns:
            continue
        changes.append(MarkStale(valid.key, Event.CONFLICT))
        changes.append(Quarantine(valid.ipv4, max(valid.expires or until, until)))
        owner = valid.fqdns[-1] if valid.fqdns else "another name"
        why = f"{ipv4} maps to {show(valid.ipv6)} for {owner}; {name} has no IPv6 for it"
        refusals.append(Refusal(Reason.CONFLICT, why, ipv4))
    return tuple(changes)


def learned_count(table: MappingTable) -> int:
    """Entries max_entries caps: the dns ones and the IPv6-only ones (issue 27)."""
    return table.count(Origin.DNS) + table.count(Origin.IPV6_ONLY)


def choose_target(
    name: str,
    targets: list[IPv6Address],
    destinations: list[IPv4Address],
    table: MappingTable,
) -> IPv6Address:
    """Rule 3: deterministic per name and stable across refreshes."""
    candidates = set(targets)
    # The entry's IPv6 as an address from the integer it keeps (its network object is built
    # on every access; the address is its network address).
    mine = sorted(IPv6Address(e.ipv6_int[0]) for e in table.valid_targets_of(name))
    for ipv6 in mine:
        if ipv6 in candidates:
            return ipv6
    for ipv4 in destinations:
        entry = table.valid_covering(ipv4)
        if entry is not None and IPv6Address(entry.ipv6_int[0]) in candidates:
            return IPv6Address(entry.ipv6_int[0])
    for ipv6 in targets:
        if table.pool.lease_of(IPv6Network(ipv6)) is not None:
            return ipv6
    return targets[zlib.crc32(name.encode()) % len(targets)]


class _Plan:
    """Accumulates one decision's changes so later destinations see earlier creations."""

    def __init__(
        self,
        name: str,
        target: IPv6Address,
        obs: Observation,
        *,
        table: MappingTable,
        limiter: CreationLimiter,
        policy: Policy,
        now: float,
    ) -> None:
        self.name, self.target, self.table, self.policy, self.now = name, target, table, policy, now
        self.host = obs.host
        self.chain = obs.chain
        self.expires = policy.expiry(now, min(obs.a_ttl, obs.aaaa_ttl))
        self.limiter = limiter  # asked at the first creation only (refreshes make none)
        self._allowance: tuple[int, Reason] | None = None
        self.changes: list[Change] = []
        self.refusals: list[Refusal] = []
        self.notes: list[str] = []
        self.created = 0
        self.seen: AnswersSeen | None = None
        self.to_target: int | None = None  # rule 5: IPv4s this name maps to the target (lazy)
        self.on_target: int | None = None  # rule 5: IPv4s all names map to the target (lazy)

    def destination(self, ipv4: IPv4Address, targets: set[IPv6Address]) -> None:
        covering = self.table.covering(ipv4)
        higher = next(
            (e for e in covering if e.origin is not Origin.DNS and e.state is State.VALID), None
        )
        if higher is not None:
            mapping = f"{show(higher.ipv4)} -> {show(higher.ipv6)}"
            why = f"{ipv4} is covered by {higher.origin} entry {mapping}"
            self.refusals.append(Refusal(Reason.COVERED, why, ipv4))
            return
        valid = next((e for e in covering if e.state is State.VALID), None)
        if valid is not None:
            self._against_valid(ipv4, valid, targets)
            return
        net = IPv4Network(ipv4)
        if self.table.quarantined(net, self.now):
            until = self.table.quarantine[net] - self.now
            why = f"{ipv4} is quarantined after a conflict for {until:.0f} s more"
            self.refusals.append(Refusal(Reason.CONFLICT, why, ipv4))
            return
        seen = self.seen
        objection = (
            seen.objection(self.name, ipv4, self.target, self.now) if seen is not None else None
        )
        if objection is not None:
            self.refusals.append(Refusal(Reason.UNVOUCHED, objection, ipv4))
            return
        existing = self.table.get((net, IPv6Network(self.target)))
        if existing is not None:
            if allowed(existing, Event.REFRESH):
                self.changes.append(Refresh(existing.key, self.expires, self.name))
                self.notes.append(f"{ipv4} -> {self.target} revived from {existing.stale_reason}")
            else:
                why = f"stale entry {ipv4} -> {self.target} ({existing.stale_reason}) still drains"
                self.refusals.append(Refusal(Reason.CONFLICT, why, ipv4))
            return
        self._create(ipv4)

    def _against_valid(self, ipv4: IPv4Address, valid: Entry, targets: set[IPv6Address]) -> None:
        if IPv6Address(valid.ipv6_int[0]) in targets:
            self.changes.append(Refresh(valid.key, self.expires, self.name))
            return
        if self.name in valid.fqdns:
            self.notes.append(
                f"{ipv4} -> {show(valid.ipv6)} left the AAAA answer; kept until its TTL ends"
            )
            return
        # SPEC section 3, conflict: same IPv4, another name, another IPv6 (reverse proxies).
        self.changes.append(MarkStale(valid.key, Event.CONFLICT))
        until = max(valid.expires or self.now, self.expires)
        self.changes.append(Quarantine(valid.ipv4, until))
        owner = valid.fqdns[-1] if valid.fqdns else "another name"
        why = f"{ipv4} maps to {show(valid.ipv6)} for {owner}; {self.name} says {self.target}"
        self.refusals.append(Refusal(Reason.CONFLICT, why, ipv4))

    def _create(self, ipv4: IPv4Address) -> None:
        refusal = self.policy.host_refusal(self.host)
        if refusal is None and learned_count(self.table) + self.created >= (
            self.policy.max_entries
        ):
            refusal = Refusal(Reason.TABLE_FULL, f"{self.policy.max_entries} dns entries")
        if refusal is None and self._allowance is None:
            host = self.host.key if self.host else None
            self._allowance = self.limiter.allowance(host, self.now)
        if refusal is None and self._allowance is not None and self.created >= self._allowance[0]:
            refusal = Refusal(self._allowance[1], "creation rate limit reached")
        if refusal is None and self.to_target is None:
            mine = self.table.valid_targets_of(self.name)
            self.to_target = sum(1 for e in mine if e.ipv6.network_address == self.target)
        if refusal is None and (self.to_target or 0) >= PER_TARGET:
            why = f"{self.name} already maps {PER_TARGET} IPv4s to {self.target}"
            refusal = Refusal(Reason.TARGET_CAP, why)
        if refusal is None and self.on_target is None:
            mapped = self.table.with_target(IPv6Network(self.target))
            self.on_target = sum(
                1 for e in mapped if e.origin is Origin.DNS and e.state is State.VALID
            )
        if refusal is None and (self.on_target or 0) >= self.policy.max_per_target:
            cap = self.policy.max_per_target
            why = f"{cap} IPv4s already map to {self.target} (max_ipv4_per_ipv6)"
            refusal = Refusal(Reason.TARGET_CAP, why)
        block = None
        if refusal is None:
            block = self.table.pool.peek(IPv6Network(self.target), 32)
            if block is None:
                refusal = Refusal(Reason.POOL_EXHAUSTED, f"pool {self.table.pool.network} is full")
        if refusal is not None or block is None:
            assert refusal is not None
            self.refusals.append(Refusal(refusal.reason, refusal.detail, ipv4))
            return
        self.created += 1
        self.to_target = (self.to_target or 0) + 1
        self.on_target = (self.on_target or 0) + 1
        entry = Entry(  # from the answer's integers: the entry and the seen memory share them
            ipv4=IPv4Network((int(ipv4), 32)),
            ipv6=IPv6Network((int(self.target), 128)),
            pool=block,
            origin=Origin.DNS,
            state=State.VALID,
            created=self.now,
            refreshed=self.now,
            expires=self.expires,
            fqdns=(self.name,),
            host=self.host.key if self.host else None,
            cnames=self.chain,
        )
        self.changes.append(Create(entry))
