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

This module keeps what the engine decides from DNS answers and from time (``observe``,
``synthesize``, ``tick``, ``stale_broken``).  The entries asked for rather than decided (static,
provider, adopted; the operator's delete and flush) and the commit every path ends in are in
``core.writer``: ``TableWriter``, the base of ``Engine``, which also defines ``Outcome`` and
``StaticSpec`` (both still importable from here).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from clat_eamt.core.counters import Count, refused
from clat_eamt.core.decide import Change, MarkStale, Policy, decide
from clat_eamt.core.ipv6only import HeldBlocks, Ipv6OnlyPolicy, decide_ipv6_only
from clat_eamt.core.lifecycle import Event, allowed
from clat_eamt.core.limits import CreationLimiter
from clat_eamt.core.model import EnsureTranslator, Entry, LiveFlows, Observation, State
from clat_eamt.core.pool import Pool
from clat_eamt.core.refresh import REFRESH_GRACE
from clat_eamt.core.repeat import Repeats
from clat_eamt.core.seen import AnswersSeen
from clat_eamt.core.table import MappingTable
from clat_eamt.core.writer import Outcome, StaticSpec, TableWriter

__all__ = ["Engine", "Outcome", "StaticSpec"]


class Engine(TableWriter):
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
