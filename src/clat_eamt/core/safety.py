"""The safety net (issue 25, SPEC section 4): verdicts on native targets, the rescue of steered
flows that got no answer, and the router-wide brake; pure, driven by events with ``now``.

An IPv4-only device has no Happy Eyeballs: if the native path to a steered destination is
broken, its connection simply fails.  But its TCP retransmits an unanswered SYN after the
initial RTO, 1 s on Linux and Android (RFC 6298 section 2.1 asks 1 s; QUIC's first PTO is of
the same order, RFC 9002 section 6.2.2).  A steered flow with no reply within ``window``
(default 0.7 s, below that retransmission; measured on the lab: a SYN-ACK over the native path
comes back in under 1 ms there, over a real home line in tens of ms) is rescued: the shell
deletes its conntrack entries on both legs after the mapping went Stale, so the
retransmission opens a new connection that takes the NAT64.  No connection is lost; the first
one costs one retransmission.

Verdicts, per target and per covering /64.  A /64 is the unit IPv6 subnets are made of (RFC
4291 section 2.5.4, RFC 7421): a CDN's addresses for one site share one, and a filter or a
broken route between the router and a server hits the whole subnet at least; a shorter prefix
(a /48 is a whole site or customer, a /32 a whole provider) would lump together paths that fail
independently.  What a target's own verdict says wins over its /64's.

- unknown: nothing learnt (or a broken verdict expired): mapped, a real connection tries it;
- working: a steered flow to it (or to its /64) got a reply (conntrack's first reply);
- broken: a steered flow got no reply in the window (or an ICMPv6 error / RST, held back by the
  dataplane and so seen as no reply); not mapped until ``backoff`` * 2**(failures-1) passed
  (capped at ``backoff_max``), then unknown again: the next real connection is the probe, and
  the rescue makes a failed probe cost that connection one retransmission, never the connection.

The brake: ``brake_failures`` broken verdicts on distinct targets within ``brake_window``
seconds mean the IPv6 path itself is broken (the ISP, a firewall, the CLAT's IPv6 filtered):
steering is suspended router-wide (entries stay for running flows).  After its back-off it lets
flows be steered again on trial: the first steered flow that gets a reply releases it, a
failure engages it again at once with the back-off doubled.

Bounded: at most ``MAX_RECORDS`` verdicts (the oldest forgotten first: an unknown target is
merely tried again) and ``MAX_PENDING`` flows in their window (beyond that a new flow is not
watched: counted, and its target keeps its verdict).
"""

from __future__ import annotations

import enum
import heapq
from collections import Counter, OrderedDict, deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network

from clat_eamt.core.counters import Count

PREFIX_LEN = 64  # the covering prefix that shares a verdict (module doc)
MAX_RECORDS = 8192  # verdicts kept (targets and /64s together); ~150 bytes each
MAX_PENDING = 4096  # flows in their first window watched at once


class Verdict(enum.StrEnum):
    UNKNOWN = "unknown"
    WORKING = "working"
    BROKEN = "broken"


class BrakeState(enum.StrEnum):
    RELEASED = "released"
    ENGAGED = "engaged"  # no new flow steered
    TRIAL = "trial"  # back-off over: flows steered again until one works or one fails


@dataclass(frozen=True)
class SafetyPolicy:
    enabled: bool = True
    window: float = 0.7  # seconds a steered flow may go without a reply
    backoff: float = 60.0  # first broken verdict's life, doubled per failure in a row
    backoff_max: float = 3600.0
    brake_failures: int = 3  # broken targets within brake_window engage the brake; 0: never
    brake_window: float = 30.0


@dataclass
class Record:
    verdict: Verdict
    since: float  # when the verdict was reached
    until: float = 0.0  # broken: when it ends
    failures: int = 0  # broken verdicts in a row (the back-off's exponent)


@dataclass(frozen=True)
class Rescue:
    """Un-steer these flows (shell: the target's mappings go Stale first, then the flows'
    conntrack entries on both legs are deleted)."""

    target: IPv6Address
    flows: tuple[Hashable, ...]
    newly_broken: bool  # False: the target was already broken (a flow of before the verdict)


@dataclass(frozen=True)
class BrakeChange:
    state: BrakeState
    why: str


@dataclass
class _Pending:
    target: IPv6Address
    deadline: float


def covering(target: IPv6Address) -> IPv6Network:
    return IPv6Network((int(target) >> (128 - PREFIX_LEN) << (128 - PREFIX_LEN), PREFIX_LEN))


@dataclass
class Safety:
    policy: SafetyPolicy = field(default_factory=SafetyPolicy)
    counters: Counter[str] = field(default_factory=Counter)
    # verdicts: IPv6Address (a target) or IPv6Network (its /64) -> Record, oldest first
    records: OrderedDict[IPv6Address | IPv6Network, Record] = field(default_factory=OrderedDict)
    brake: BrakeState = BrakeState.RELEASED
    brake_since: float = 0.0
    brake_until: float = 0.0
    brake_engagements: int = 0  # in a row (the brake's back-off exponent)
    generation: int = 0  # bumped when a verdict that decide reads changes (``core.repeat``)
    _pending: dict[Hashable, _Pending] = field(default_factory=dict)
    _deadlines: list[tuple[float, int, Hashable]] = field(default_factory=list)
    _seq: int = 0
    _failures: deque[tuple[float, IPv6Address]] = field(default_factory=deque)

    # --- verdicts ------------------------------------------------------------------------------

    def verdict(self, target: IPv6Address, now: float) -> tuple[Verdict, float | None]:
        """The verdict that holds for ``target`` (its own, else its /64's) and its age."""
        for key in (target, covering(target)):
            record = self.records.get(key)
            if record is None or (record.verdict is Verdict.BROKEN and now >= record.until):
                continue
            return record.verdict, now - record.since
        return Verdict.UNKNOWN, None

    def broken(self, target: IPv6Address, now: float) -> bool:
        """Not to be mapped (decide reads it): broken and the back-off not over."""
        return self.verdict(target, now)[0] is Verdict.BROKEN

    def broken_until(self, target: IPv6Address, now: float) -> float | None:
        """When the broken verdict that holds for ``target`` ends (None: not broken)."""
        for key in (target, covering(target)):
            record = self.records.get(key)
            if record is None or (record.verdict is Verdict.BROKEN and now >= record.until):
                continue
            return record.until if record.verdict is Verdict.BROKEN else None
        return None

    def broken_keys(self, now: float) -> list[tuple[IPv6Address | IPv6Network, float]]:
        """Every broken verdict in force (targets and /64s) with its end (``core.suspend``)."""
        return [
            (key, r.until)
            for key, r in self.records.items()
            if r.verdict is Verdict.BROKEN and now < r.until
        ]

    def _set(self, key: IPv6Address | IPv6Network, record: Record) -> None:
        self.records[key] = record
        self.records.move_to_end(key)
        while len(self.records) > MAX_RECORDS:
            self.records.popitem(last=False)

    def _working(self, target: IPv6Address, now: float) -> None:
        for key in (target, covering(target)):
            record = self.records.get(key)
            if record is None or record.verdict is not Verdict.WORKING:
                self.counters[Count.VERDICT_WORKING] += 1 if key == target else 0
                if record is not None and record.verdict is Verdict.BROKEN:
                    self.generation += 1
                self._set(key, Record(Verdict.WORKING, now))

    def _broken(self, target: IPv6Address, now: float) -> bool:
        """Record a failure; True if the target was not broken before."""
        was_broken = self.broken(target, now)
        for key in (target, covering(target)):
            old = self.records.get(key)
            failures = (old.failures if old is not None else 0) + 1
            life = min(self.policy.backoff * 2 ** (failures - 1), self.policy.backoff_max)
            self._set(key, Record(Verdict.BROKEN, now, now + life, failures))
        self.generation += 1
        if not was_broken:
            self.counters[Count.VERDICT_BROKEN] += 1
        return not was_broken

    # --- flows ---------------------------------------------------------------------------------

    def steered(self, flow: Hashable, target: IPv6Address, now: float) -> bool:
        """A new steered flow (either leg) to ``target``: watched until a reply or its window
        (False: not watched, too many are)."""
        if flow in self._pending:
            return True
        if len(self._pending) >= MAX_PENDING:
            self.counters[Count.SAFETY_UNWATCHED] += 1
            return False
        deadline = now + self.policy.window
        self._pending[flow] = _Pending(target, deadline)
        self._seq += 1
        heapq.heappush(self._deadlines, (deadline, self._seq, flow))
        self.counters[Count.SAFETY_WATCHED] += 1
        if self.verdict(target, now)[0] is Verdict.UNKNOWN and self._was_broken(target):
            self.counters[Count.VERDICT_RETRIED] += 1  # a real connection probes it again
        return True

    def _was_broken(self, target: IPv6Address) -> bool:
        return any(
            (r := self.records.get(k)) is not None and r.verdict is Verdict.BROKEN
            for k in (target, covering(target))
        )

    def replied(self, flow: Hashable, target: IPv6Address, now: float) -> BrakeChange | None:
        """A steered flow got its first reply: the target works (and the brake's trial ends)."""
        self._pending.pop(flow, None)
        self._working(target, now)
        if self.brake is BrakeState.TRIAL:
            return self._set_brake(BrakeState.RELEASED, now, "a steered flow got a reply")
        return None

    def ended(self, flow: Hashable) -> None:
        """The flow's conntrack entries are gone (destroyed, or deleted by a rescue)."""
        self._pending.pop(flow, None)

    def next_deadline(self) -> float | None:
        """When ``due`` has something to do next (the shell sets one timer for it)."""
        while self._deadlines and self._deadlines[0][2] not in self._pending:
            heapq.heappop(self._deadlines)
        times = [self._deadlines[0][0]] if self._deadlines else []
        if self.brake is BrakeState.ENGAGED:
            times.append(self.brake_until)
        return min(times) if times else None

    def late(self, now: float) -> list[Hashable]:
        """The flows ``due`` would rescue now (the shell may check them first: a reply whose
        event was lost is told with ``replied``)."""
        return [flow for flow, p in self._pending.items() if p.deadline <= now]

    def due(self, now: float) -> tuple[list[Rescue], list[BrakeChange]]:
        """Flows whose window passed without a reply, grouped per target; brake changes."""
        late: dict[IPv6Address, list[Hashable]] = {}
        while self._deadlines and self._deadlines[0][0] <= now:
            _, _, flow = heapq.heappop(self._deadlines)
            pending = self._pending.pop(flow, None)
            if pending is not None and pending.deadline <= now:
                late.setdefault(pending.target, []).append(flow)
        # The other flows to a failed target are rescued with it (the other leg, parallel ones).
        for flow, pending in list(self._pending.items()):
            if pending.target in late:
                late[pending.target].append(flow)
                del self._pending[flow]
        rescues: list[Rescue] = []
        changes: list[BrakeChange] = []
        for target, flows in late.items():
            newly = self._broken(target, now)
            rescues.append(Rescue(target, tuple(flows), newly))
            self.counters[Count.SAFETY_RESCUED] += 1
            change = self._failure(target, now)
            if change is not None:
                changes.append(change)
        if self.brake is BrakeState.ENGAGED and now >= self.brake_until:
            why = "back-off over: steering on trial"
            changes.append(self._set_brake(BrakeState.TRIAL, now, why))
        return rescues, changes

    # --- the brake -----------------------------------------------------------------------------

    @property
    def steering(self) -> bool:
        """Whether new flows may be steered (the brake is not engaged)."""
        return self.brake is not BrakeState.ENGAGED

    def _failure(self, target: IPv6Address, now: float) -> BrakeChange | None:
        if self.brake is BrakeState.TRIAL:
            return self._set_brake(BrakeState.ENGAGED, now, f"trial flow to {target} failed")
        limit = self.policy.brake_failures
        if limit <= 0 or self.brake is BrakeState.ENGAGED:
            return None
        window = self.policy.brake_window
        while self._failures and self._failures[0][0] <= now - window:
            self._failures.popleft()
        if all(t != target for _, t in self._failures):
            self._failures.append((now, target))
        if len(self._failures) >= limit:
            why = f"{len(self._failures)} native targets failed within {window:g} s"
            return self._set_brake(BrakeState.ENGAGED, now, why)
        return None

    def _set_brake(self, state: BrakeState, now: float, why: str) -> BrakeChange:
        if state is BrakeState.ENGAGED:
            self.brake_engagements += 1
            life = self.policy.backoff * 2 ** (self.brake_engagements - 1)
            self.brake_until = now + min(life, self.policy.backoff_max)
            self.counters[Count.BRAKE_ENGAGED] += 1
            self._failures.clear()
        elif state is BrakeState.RELEASED:
            self.brake_engagements = 0
            self.counters[Count.BRAKE_RELEASED] += 1
        self.brake, self.brake_since = state, now
        return BrakeChange(state, why)

    def view(self, now: float) -> dict[str, object]:
        """For status: the brake and the verdicts that hold, newest first (at most 50)."""
        shown: list[dict[str, object]] = []
        for key in reversed(self.records):
            record = self.records[key]
            if record.verdict is Verdict.BROKEN and now >= record.until:
                continue
            item: dict[str, object] = {
                "target": str(key), "verdict": str(record.verdict),
                "age_s": round(now - record.since, 1),
            }  # fmt: skip
            if record.verdict is Verdict.BROKEN:
                item["retry_in_s"] = round(record.until - now, 1)
            shown.append(item)
            if len(shown) >= 50:
                break
        since = round(now - self.brake_since, 1)
        brake: dict[str, object] = {"state": str(self.brake), "since_s": since}
        if self.brake is BrakeState.ENGAGED:
            brake["retry_in_s"] = round(self.brake_until - now, 1)
        return {"brake": brake, "watched": len(self._pending), "verdicts": shown}
