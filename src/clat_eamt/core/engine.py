"""The engine: the table, the pool and the limiter, driven by events, returning operations.

Every method takes ``now`` and returns an ``Outcome``: the dataplane operations to apply (as a
diff, in a safe order) and what happened to which entry (for logs, counters and ubus events).
It is still pure: the shells decide when to call it and apply what it returns.

- ``observe``      a DNS observation (decide + commit)
- ``tick``         time passes: TTL expiry, Stale -> Invalid when the flow oracle says so
- ``sync_static``  the configured static entries (applied as a diff on start and reload)
- ``add_static`` / ``delete`` / ``flush``   the operator's actions
- ``upsert_provider`` / ``sync_provider``   an entry from the provider's table, or all of it
- ``synthesize``   an IPv6-only name's A query (``core.ipv6only``)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from clat_eamt.core.counters import Count, EntryKind, refused, stale
from clat_eamt.core.dataplane import Note, diff, partial_state
from clat_eamt.core.decide import (
    Change,
    Create,
    Decision,
    MarkStale,
    Policy,
    Quarantine,
    Refresh,
    Withdraw,
    decide,
)
from clat_eamt.core.ipv6only import HeldBlocks, Ipv6OnlyPolicy, decide_ipv6_only
from clat_eamt.core.lifecycle import (
    Event,
    allowed,
    refresh_valid,
    take_over,
    transition,
    without_fqdn,
)
from clat_eamt.core.limits import CreationLimiter
from clat_eamt.core.model import (
    DataplaneOp,
    EnsureTranslator,
    Entry,
    EntryEvent,
    EntryKey,
    Ident,
    LiveFlows,
    Observation,
    Origin,
    Reason,
    Refusal,
    StaleReason,
    State,
    show,
)
from clat_eamt.core.pool import Pool
from clat_eamt.core.refresh import REFRESH_GRACE
from clat_eamt.core.repeat import Repeats
from clat_eamt.core.seen import AnswersSeen
from clat_eamt.core.table import MappingTable


@dataclass(frozen=True)
class Outcome:
    ops: tuple[DataplaneOp, ...] = ()
    events: tuple[EntryEvent, ...] = ()
    decision: Decision | None = None
    refusals: tuple[Refusal, ...] = ()


@dataclass(frozen=True)
class StaticSpec:
    """A static entry as configured: IPv4 prefix -> IPv6 prefix of equal suffix length."""

    ipv4: IPv4Network
    ipv6: IPv6Network
    comment: str = ""


@dataclass(frozen=True)
class _TakeOver:
    """Operator or provider installs exactly this mapping over an existing entry (not a DNS
    decision; see ``lifecycle.take_over``)."""

    key: EntryKey
    origin: Origin
    expires: float | None
    comment: str


_EngineChange = Change | _TakeOver


class Engine:
    def __init__(self, policy: Policy, pool: Pool, limiter: CreationLimiter) -> None:
        self.policy = policy
        self.table = MappingTable(pool)
        self.limiter = limiter
        self.counters: Counter[str] = Counter()
        self.seen = AnswersSeen()  # every A answer for its TTL (decide's rule 5)
        self.repeats = Repeats()  # decisions on repeated answers, while they hold
        self.ipv6_only = Ipv6OnlyPolicy()
        self.held = HeldBlocks()  # pool addresses handed out in A answers (``core.ipv6only``)
        # Targets not to be mapped now (``core.safety.Safety.broken``); None: all may be.
        self.broken: Callable[[IPv6Address, float], bool] | None = None

    # --- DNS ----------------------------------------------------------------------------------

    def observe(self, obs: Observation, now: float) -> Outcome:
        table, policy = self.table, self.policy
        decision = self.repeats.recall(obs, table.generation, policy, now)
        learn = decision is None
        if decision is None:
            broken = self.broken
            decision = decide(
                obs, table, self.limiter, policy, now, seen=self.seen,
                broken=None if broken is None else (lambda target: broken(target, now)),
            )  # fmt: skip
            all_valid = all(self._keeps_state(c) for c in decision.changes)
        else:  # it refreshes entries Valid when it was learned: none changed state since
            all_valid = True
        # After deciding (a name objects not to itself), under the name decide gave it: one
        # string shared with the entries it made.
        not_kept = self.seen.remember(obs, now, decision.name)
        if not_kept:
            self.counters[Count.SEEN_REFUSED] += not_kept  # the memory is full (``core.seen``)
        self.counters[Count.OBSERVED] += 1
        if obs.aaaa:
            self.counters[Count.OBSERVED_WITH_AAAA] += 1  # A answers whose AAAA had records
        for refusal in decision.refusals:
            self.counters[refused(refusal.reason)] += 1
        if decision.skipped:
            self.counters[Count.ADDRESSES_SKIPPED] += decision.skipped
        outcome = self._commit(decision.changes, now, refreshes=all_valid, decision=decision)
        if learn:  # a remembered decision creates nothing (``core.repeat``)
            self.repeats.learn(obs, decision, all_valid, table.generation, policy)
            created = len(decision.created)
            self.limiter.consume(obs.host.key if obs.host else None, now, created)
        return outcome

    def synthesize(self, obs: Observation, now: float) -> tuple[Outcome, IPv4Address | None, int]:
        """The outcome, the A record and its TTL for an answer with no A (or placeholders
        only) of an IPv6-only name; no record when none is warranted (``core.ipv6only``)."""
        found = decide_ipv6_only(
            obs, self.table, self.limiter, self.policy, self.ipv6_only, self.held, now
        )
        decision = found.decision
        for refusal in decision.refusals:
            self.counters[refused(refusal.reason)] += 1
        taken = tuple(  # its own P back from the quarantine: a lease before ``_commit``
            EnsureTranslator(e.pool, e.ipv6)
            for e in decision.created
            if self.held.take(e.pool, e.ipv6, self.table.pool)
        )
        outcome = self._commit(decision.changes, now, decision=decision)
        outcome = replace(outcome, ops=taken + outcome.ops)
        self.limiter.consume(obs.host.key if obs.host else None, now, len(decision.created))
        if found.address is None or decision.target is None:
            return outcome, None, 0
        entry = self.table.get((IPv4Network(found.address), IPv6Network(decision.target)))
        assert entry is not None
        self.held.handed(entry, self.ipv6_only.quarantine)
        self.counters[Count.IPV6_ONLY_ANSWERS] += 1
        return outcome, found.address, found.ttl

    # --- time ---------------------------------------------------------------------------------

    def tick(self, now: float, live: LiveFlows | None, refreshing: Collection[str] = ()) -> Outcome:
        """Expire Valid entries whose TTL ran out; delete Stale ones whose flows are gone.

        ``live`` None means the flow oracle could not answer: nothing is deleted then, since
        deleting P <-> X under a running flow would break it.  ``refreshing``: names the daemon
        is asking again right now (``core.refresh``); their entries stay Valid for up to
        ``REFRESH_GRACE`` seconds past their end, until the answer decides.
        """

        # From the table's expiry heap and Stale index: a tick touches the entries that change
        # (and the Stale ones), not all of them.
        def held(entry: Entry) -> bool:  # being asked again: Valid a little past its end
            return (
                entry.expires is not None
                and now < entry.expires + REFRESH_GRACE
                and any(name in refreshing for name in entry.fqdns)
            )

        changes: list[Change] = [
            MarkStale(entry.key, Event.EXPIRE)
            for entry in self.table.expired(now)
            if allowed(entry, Event.EXPIRE) and not (refreshing and held(entry))
        ]
        gone: list[Entry] = []
        for entry in self.table.stale() if live is not None else ():
            if not live.uses(entry):  # type: ignore[union-attr]
                stale_since = now if entry.stale_since is None else entry.stale_since
                if now - stale_since >= self.policy.stale_linger:
                    gone.append(entry)
        self.table.expire_quarantine(now)
        self.held.expire(now, self.table.pool)
        self.seen.expire(now)
        return self._commit(changes, now, gone=gone)

    def stale_broken(self, now: float) -> Outcome:
        """``core.safety`` found a target broken: every Valid dns entry whose target is broken
        now goes Stale at once (running flows keep their path, new ones take the NAT64; static
        and provider ones are suspended instead, ``core.suspend``).  A scan, only then (rare)."""
        broken = self.broken
        self.table.generation += 1  # remembered decisions (``core.repeat``) read the verdicts
        if broken is None:
            return Outcome()
        changes: list[Change] = [
            MarkStale(e.key, Event.BROKEN)
            for e in self.table
            if e.state is State.VALID and allowed(e, Event.BROKEN)
            and broken(e.ipv6.network_address, now)
        ]  # fmt: skip
        return self._commit(changes, now)

    # --- static, provider, operator ------------------------------------------------------------

    def sync_static(self, specs: Iterable[StaticSpec], now: float) -> Outcome:
        """Make the static entries equal ``specs``: add new ones, delete the ones not listed."""
        wanted = {(s.ipv4, s.ipv6): s for s in specs}
        changes: list[Change] = []
        events: list[EntryEvent] = []
        refusals: list[Refusal] = []
        for entry in self.table:
            unlisted = entry.key not in wanted
            if entry.origin is Origin.STATIC and entry.state is State.VALID and unlisted:
                changes.append(MarkStale(entry.key, Event.DELETE))
        outcome = self._commit(changes, now)
        for spec in wanted.values():
            result = self.add_static(spec.ipv4, spec.ipv6, now, spec.comment)
            events += result.events
            refusals += result.refusals
            outcome = replace(outcome, ops=outcome.ops + result.ops)
        return replace(outcome, events=outcome.events + tuple(events), refusals=tuple(refusals))

    def add_static(
        self, ipv4: IPv4Network, ipv6: IPv6Network, now: float, comment: str = ""
    ) -> Outcome:
        """An operator's entry: outranks every other origin for the IPv4 prefix it covers.
        The caller validates ipv4/ipv6 with the config rules first."""
        return self._install(Origin.STATIC, ipv4, ipv6, now=now, expires=None, comment=comment)

    def upsert_provider(
        self, ipv4: IPv4Network, ipv6: IPv6Network, ttl: int, now: float
    ) -> Outcome:
        """An entry of the provider's table (approach 3 of the slides): outranks dns entries,
        never a static one; lives for ``ttl`` seconds unless refreshed."""
        return self._install(Origin.PROVIDER, ipv4, ipv6, now=now, expires=now + ttl)

    def sync_provider(
        self, entries: Iterable[tuple[IPv4Network, IPv6Network, float, str]], now: float
    ) -> Outcome:
        """Make the provider entries equal the operator's table just taken (``core.provider``):
        ``retire_provider`` for the ones it no longer lists, then ``install_provider``."""
        wanted = list(entries)
        keep = {
            (int(v4.network_address), v4.prefixlen, int(v6.network_address), v6.prefixlen)
            for v4, v6, _, _ in wanted
        }
        retired = self.retire_provider(keep, now)
        installed = self.install_provider(wanted, now)
        return Outcome(
            retired.ops + installed.ops, retired.events + installed.events,
            refusals=installed.refusals,
        )  # fmt: skip

    def retire_provider(self, keep: Collection[Ident], now: float) -> Outcome:
        """The Valid provider entries whose identity (``Entry.ident``) is not in ``keep`` go
        Stale (their flows keep running)."""
        changes: list[Change] = [
            MarkStale(e.key, Event.DELETE)
            for e in self.table
            if e.origin is Origin.PROVIDER and e.state is State.VALID and e.ident not in keep
        ]
        return self._commit(changes, now)

    def install_provider(
        self, entries: Iterable[tuple[IPv4Network, IPv6Network, float, str]], now: float
    ) -> Outcome:
        """Each (IPv4, IPv6, end, comment) installed or refreshed until its end, over dns
        entries and never over a static one.  Entries the router cannot install (a static
        entry covers them, the pool is full) come back as refusals."""
        ops: list[DataplaneOp] = []
        events: list[EntryEvent] = []
        refusals: list[Refusal] = []
        for ipv4, ipv6, end, comment in entries:
            done = self._install(
                Origin.PROVIDER, ipv4, ipv6, now=now, expires=end, comment=comment
            )  # each diff follows the one before: the ops apply in this order
            ops += done.ops
            events += done.events
            refusals += done.refusals
        return Outcome(tuple(ops), tuple(events), refusals=tuple(refusals))

    def delete(self, ipv4: IPv4Network, now: float, origin: Origin | None = None) -> Outcome:
        """Operator delete: the Valid entries with exactly this IPv4 prefix go Stale; their flows
        keep running and the entries disappear when the flows end."""
        changes: list[Change] = [
            MarkStale(e.key, Event.DELETE)
            for e in self.table
            if e.ipv4 == ipv4 and e.state is State.VALID and origin in (None, e.origin)
        ]
        return self._commit(changes, now)

    def adopt(
        self,
        found: Iterable[tuple[IPv4Network, IPv4Network, IPv6Network]],
        now: float,
        notes: Mapping[IPv4Network, Note] | None = None,
    ) -> list[Entry]:
        """Mappings (D, P, X) found in the kernel at start, left by a run that ended without
        cleaning up (a crash, SIGKILL, a restart).  One whose element recorded a dns entry with
        its names and an expiry still ahead (``notes``) is Valid again until that expiry: a
        device that cached the answer keeps going native.  Any other becomes a Stale dns entry
        ("restarted"): its running flows keep their path, new flows take the NAT64 until DNS
        proves it again, and it goes when its flows are gone.  Ones that clash with the table
        are not adopted (the reconciling diff then removes them from the kernel)."""
        adopted: list[Entry] = []
        for ipv4, pool, ipv6 in found:
            if ipv4.prefixlen != 32 or ipv6.prefixlen != 128 or (ipv4, ipv6) in self.table:
                continue
            try:
                self.table.pool.adopt(ipv6, pool)
            except ValueError:
                continue
            note = (notes or {}).get(ipv4)
            valid = (
                note is not None and note.origin == Origin.DNS and note.complete
                and bool(note.names) and note.expires is not None and note.expires > now
                and not any(True for _ in self.table.covering(ipv4.network_address))
            )  # fmt: skip
            if valid:
                assert note is not None and note.expires is not None
                entry = Entry(
                    ipv4, ipv6, pool, Origin.DNS, State.VALID, now, now, note.expires,
                    fqdns=note.names,
                )  # fmt: skip
            else:
                entry = Entry(
                    ipv4, ipv6, pool, Origin.DNS, State.STALE, now, now, now,
                    stale_reason=StaleReason.RESTARTED, stale_since=now,
                )  # fmt: skip
            self.table.add(entry)
            adopted.append(entry)
            self.counters[Count.ADOPTED_VALID if valid else Count.ADOPTED] += 1
        return adopted

    def flush(self, now: float) -> Outcome:
        """Operator flush: every Valid learned entry goes Stale (flows kept)."""
        changes: list[Change] = [
            MarkStale(e.key, Event.FLUSH)
            for e in self.table
            if e.origin.learned and e.state is State.VALID
        ]
        return self._commit(changes, now)

    def _install(
        self,
        origin: Origin,
        ipv4: IPv4Network,
        ipv6: IPv6Network,
        *,
        now: float,
        expires: float | None,
        comment: str = "",
    ) -> Outcome:
        """Static or provider entry: lower-ranked Valid entries it overlaps go Stale (outranked);
        an equal or higher one refuses it (static entries may not overlap each other)."""
        if 32 - ipv4.prefixlen != 128 - ipv6.prefixlen:  # RFC 7757 section 3, equal suffixes
            raise ValueError(f"{ipv4} and {ipv6} have different suffix lengths")
        key = (ipv4, ipv6)
        existing = self.table.get(key)
        if existing is not None and existing.origin.rank > origin.rank:
            return self._refused(
                Reason.COVERED,
                f"{show(ipv4)} -> {show(ipv6)} is a {existing.origin} entry ({existing.state})",
            )
        changes: list[_EngineChange] = []
        for other in self.table.valid_overlapping(ipv4):  # O(log n): no scan per entry
            if other.key == key:
                continue
            newer_provider = other.origin is origin is Origin.PROVIDER  # the newer one wins
            if other.origin.rank >= origin.rank and not newer_provider:
                return self._refused(
                    Reason.COVERED, f"{show(ipv4)} overlaps {other.origin} entry {show(other.ipv4)}"
                )
            changes.append(MarkStale(other.key, Event.OUTRANK))
        if existing is None:
            block = self.table.pool.peek(ipv6, ipv4.prefixlen)
            if block is None:
                why = f"pool {self.table.pool.network} has no free /{ipv4.prefixlen}"
                return self._refused(Reason.POOL_EXHAUSTED, why)
            entry = Entry(
                ipv4, ipv6, block, origin, State.VALID, now, now, expires, comment=comment
            )
            changes.append(Create(entry))
        elif existing.origin is not origin or existing.state is State.STALE:
            changes.append(_TakeOver(key, origin, expires, comment))
        elif origin is Origin.PROVIDER and expires is not None:
            changes.append(Refresh(key, expires, ""))
        return self._commit(changes, now)

    def _refused(self, reason: Reason, why: str) -> Outcome:
        self.counters[refused(reason)] += 1
        return Outcome(refusals=(Refusal(reason, why),))

    # --- applying changes ---------------------------------------------------------------------

    def _commit(
        self, changes: Iterable[_EngineChange], now: float, gone: Iterable[Entry] = (),
        refreshes: bool | None = None, decision: Decision | None = None,
    ) -> Outcome:  # fmt: skip
        """``refreshes``: the caller knows whether every change keeps its entry's state;
        ``decision``: the one the changes come from (the outcome carries it)."""
        changes, gone = list(changes), list(gone)
        if refreshes is None:
            refreshes = all(self._keeps_state(c) for c in changes)
        if not gone and refreshes:
            # Refreshing Valid entries (most answers) changes no state the dataplane holds:
            # skip the two views and their diff, the bulk of an answer's cost otherwise.
            refreshed = tuple(self._refresh(change, now) for change in changes)
            return Outcome((), refreshed, decision, decision.refusals if decision else ())
        touched = [c.entry for c in changes if isinstance(c, Create)] + gone
        for change in changes:
            if not isinstance(change, Create | Quarantine):
                touched += [e for e in (self.table.get(change.key),) if e is not None]
        # The view covers every touched IPv4 and target, so a block freed by one target and
        # taken by another in the same commit shows up as a replacement.
        ipv4s = {e.ipv4 for e in touched}
        targets = {e.ipv6 for e in touched}
        before = partial_state(self.table, ipv4s, targets)
        events = [self._apply(change, now) for change in changes]
        for entry in gone:
            done = transition(entry, Event.FLOWS_GONE, now)
            self.table.delete(done.key)
            self.held.released(done, self.table.pool, now, self.ipv6_only.quarantine)
            self.counters[Count.DELETED] += 1
            events.append(EntryEvent(EntryKind.REMOVED, done))
        after = partial_state(self.table, ipv4s, targets)
        found = tuple(e for e in events if e)
        return Outcome(diff(before, after), found, decision, decision.refusals if decision else ())

    def _keeps_state(self, change: _EngineChange) -> bool:
        """A refresh of a Valid entry: it stays Valid with its key and pool block (lifecycle),
        so what the dataplane must hold does not change."""
        if not isinstance(change, Refresh):
            return False
        entry = self.table.get(change.key)
        return entry is not None and entry.state is State.VALID

    def _refresh(self, change: _EngineChange, now: float) -> EntryEvent:
        """``_apply`` for a Refresh of a Valid entry (``_keeps_state``): the most common change."""
        assert isinstance(change, Refresh)
        entry = self.table.get(change.key)
        assert entry is not None
        new = refresh_valid(entry, now, change.expires, change.fqdn)
        self.table.replace(new)
        self.counters[EntryKind.REFRESHED] += 1
        return EntryEvent(EntryKind.REFRESHED, new)

    def _apply(self, change: _EngineChange, now: float) -> EntryEvent | None:
        if isinstance(change, Quarantine):
            current = self.table.quarantine.get(change.ipv4, change.until)
            self.table.quarantine[change.ipv4] = max(current, change.until)
            self.table.generation += 1
            return None
        if isinstance(change, Create):
            self.table.add(change.entry)
            self.counters[Count.CREATED] += 1
            return EntryEvent(EntryKind.ADDED, change.entry)
        entry = self.table.get(change.key)
        if entry is None:
            raise KeyError(f"no entry {change.key}")
        if isinstance(change, Refresh):
            revived = entry.state is State.STALE
            new = transition(entry, Event.REFRESH, now, expires=change.expires, fqdn=change.fqdn)
            kind = EntryKind.REVIVED if revived else EntryKind.REFRESHED
        elif isinstance(change, _TakeOver):
            new = take_over(
                entry, change.origin, now, expires=change.expires, comment=change.comment
            )
            kind = EntryKind.ADDED if entry.origin is not change.origin else EntryKind.REVIVED
        elif isinstance(change, Withdraw):
            fqdns = without_fqdn(entry.fqdns, change.fqdn)
            if fqdns:
                self.table.replace(entry.replace(fqdns=fqdns))
                self.counters[Count.WITHDRAWN] += 1
                return None
            new = transition(entry, Event.WITHDRAW, now)
            kind = EntryKind.STALE
        else:
            new = transition(entry, change.event, now)
            kind = EntryKind.STALE
        self.table.replace(new)
        self.counters[kind if kind != EntryKind.STALE else stale(new.stale_reason)] += 1
        return EntryEvent(kind, new)
