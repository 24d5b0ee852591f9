"""The engine's writes to the mapping table: ``TableWriter``, the base of ``core.engine.Engine``.

Split out of ``core.engine`` (which keeps what is decided from DNS answers and from time), in
two parts:

- the entries asked for rather than decided from DNS: the configured static entries
  (``sync_static`` / ``add_static``), the provider's table (``upsert_provider`` /
  ``sync_provider`` / ``retire_provider`` / ``install_provider``), the mappings found in the
  kernel at start (``adopt``) and the operator's ``delete`` / ``flush``;
- the commit every path of the engine ends in (``_commit``): the changes applied to the table,
  returned with the diff of the dataplane they make (``Outcome``).

Pure like the engine: time is an argument.  The state it writes is the engine's, made in
``Engine.__init__``; the public methods are called as ``Engine.<method>``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from ipaddress import IPv4Network, IPv6Network

from clat_eamt.core.counters import Count, EntryKind, refused, stale
from clat_eamt.core.dataplane import Note, diff, partial_state
from clat_eamt.core.decide import (
    Change,
    Create,
    Decision,
    MarkStale,
    Quarantine,
    Refresh,
    Withdraw,
)
from clat_eamt.core.ipv6only import HeldBlocks, Ipv6OnlyPolicy
from clat_eamt.core.lifecycle import (
    Event,
    refresh_valid,
    take_over,
    transition,
    without_fqdn,
)
from clat_eamt.core.model import (
    DataplaneOp,
    Entry,
    EntryEvent,
    EntryKey,
    Ident,
    Origin,
    Reason,
    Refusal,
    StaleReason,
    State,
    show,
)
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


class TableWriter:
    """The engine's table writes; ``Engine.__init__`` makes the state they use."""

    table: MappingTable
    counters: Counter[str]
    ipv6_only: Ipv6OnlyPolicy
    held: HeldBlocks  # pool addresses handed out in A answers (``core.ipv6only``)

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
