"""The safety net's shell (issue 25): conntrack events in, ``core.safety`` decides, rescues out.

Per steered leg, the kernel's filtered events (``dataplane.ctevents``) tell its start, its first
reply (the guard's CONFIRMED mark bit) and its end; ``core.safety.Safety`` keeps one deadline
per leg and this shell one asyncio timer for the earliest.  When a target's flow passed its
window without a reply, in this order:

1. the target is broken (``Safety``), every Valid mapping to it (or to its broken /64) goes
   Stale (``Engine.stale_broken``) and the dataplane drops their IPv4 legs: from now on a new
   connection to D is not DNATed and takes the NAT64;
2. then the conntrack entries of the rescued flows are deleted, both legs: the device's SYN
   retransmission (1 s after the first, RFC 6298) finds no entry and opens a new connection,
   which step 1 sends through the NAT64.  In the other order, a retransmission between the two
   steps would be steered again.

Step 1 for a static or provider entry: it stays Valid and its D goes into the table's
``suspended`` set instead (``core.suspend``), until the verdict's back-off ends; a leg installed
later to a target still broken is suspended as soon as its batch landed (``Applier.landed``).

The brake (``Safety.brake``) is one element in the table's ``brake`` set: engaged, no IPv4 leg
is DNATed any more; existing entries and running flows stay.

Cost per steered connection: its ~6 events parsed and one deadline (``make bench``, safety);
an unrelated connection costs nothing here: the kernel's BPF filter drops its events.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network, IPv6Address
from typing import Any

from clat_eamt.core.counters import Count, SafetyEvent
from clat_eamt.core.engine import Engine, Outcome
from clat_eamt.core.model import DataplaneOp, EnsureDnat, RemoveDnat
from clat_eamt.core.safety import BrakeChange, BrakeState, Rescue, Safety, SafetyPolicy
from clat_eamt.core.suspend import SUSPENDED_ORIGINS, SuspendChange, Suspensions
from clat_eamt.core.unguarded import exempt
from clat_eamt.dataplane.ctevents import CtEvent, CtEvents

log = logging.getLogger("clat_eamt.safety")


class Rescuer:
    def __init__(
        self,
        policy: SafetyPolicy,
        *,
        engine: Callable[[], Engine],
        enact: Callable[[Outcome], Awaitable[None]],
        set_brake: Callable[[bool], Awaitable[None]],
        announce: Callable[[str, dict[str, Any]], None],
        clock: Callable[[], float],
        netns: str | None = None,
        set_suspended: Callable[[SuspendChange], Awaitable[None]] | None = None,
    ) -> None:
        """``engine``: the runtime's engine now (a reload may make another); ``enact``: carry
        out an engine outcome (publish, apply; returns once applied); ``announce``: a safety
        event for the log and ubus; ``set_suspended``: apply a change of the suspended set."""
        self.safety = Safety(policy)
        self.suspension = Suspensions(counters=self.safety.counters)
        self.set_suspended = set_suspended
        self._planned = 0  # the verdicts' generation the suspension was last planned at
        self._suspending: asyncio.Lock | None = None
        self.engine, self.enact, self.set_brake = engine, enact, set_brake
        self.announce, self.clock = announce, clock
        self.events = CtEvents(self._events, netns)
        self.legs: dict[Hashable, CtEvent] = {}  # watched legs, for the deletion
        self.error: str | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._busy: asyncio.Task[None] | None = None
        self._jobs: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Listen (needs CAP_NET_ADMIN and ctnetlink); without it the daemon runs unprotected,
        and says so in status."""
        self.wire()
        if not self.safety.policy.enabled:
            return
        try:
            self.events.start()
        except OSError as error:
            self.error = f"conntrack events: {error.strerror or error}"
            log.error("safety net off: %s", self.error)

    def wire(self) -> None:
        """The engine (a new one after a reload) reads the verdicts."""
        self.engine().broken = self.safety.broken if self.safety.policy.enabled else None

    def configure(self, policy: SafetyPolicy) -> None:
        """A reload: new timing; on or off only by a restart (the listener is built at start)."""
        if self.safety.policy.enabled:
            self.safety.policy = replace(policy, enabled=True)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.events.stop()

    # --- events -------------------------------------------------------------------------------

    def target_of(self, event: CtEvent) -> IPv6Address | None:
        """X: the IPv6 leg's reply source; for the IPv4 leg, the mapping of its pool address."""
        src = event.reply_src
        if isinstance(src, IPv6Address):
            return src
        if isinstance(src, IPv4Address):
            for entry in self.engine().table.using_pool(IPv4Network(src)):
                return entry.ipv6.network_address
        return None

    def _events(self, events: list[CtEvent]) -> None:
        now = self.clock()
        for event in events:
            if event.kind == "destroy":
                self.safety.ended(event.key)
                self.legs.pop(event.key, None)
                continue
            target = self.target_of(event)
            if target is None:
                continue
            if event.confirmed:
                if self.legs.pop(event.key, None) is not None or event.kind == "new":
                    change = self.safety.replied(event.key, target, now)
                    if change is not None:
                        self._spawn(self.brake(change))
            elif event.key not in self.legs and self.safety.steered(event.key, target, now):
                self.legs[event.key] = event  # kept while watched, for its deletion
        if self.suspension.held and self.safety.generation != self._planned:
            self._spawn(self.suspend())  # a target turned working: its destinations resume
        self._schedule()

    def _schedule(self) -> None:
        times = [self.safety.next_deadline(), self.suspension.next_change()]
        when = min((t for t in times if t is not None), default=None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if when is None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, when - self.clock())
        self._timer = loop.call_later(delay, self._due)

    def _due(self) -> None:
        self._timer = None
        if self._busy is not None and not self._busy.done():
            self._timer = asyncio.get_running_loop().call_later(0.01, self._due)
            return
        self._busy = asyncio.create_task(self.due(), name="rescue")

    async def due(self) -> None:
        """What the earliest deadline brought: rescues, brake changes."""
        try:
            await self.recheck()
            rescues, changes = self.safety.due(self.clock())
            if rescues:
                await self.rescue(rescues)
            for change in changes:
                await self.brake(change)
            resume = self.suspension.next_change()
            if resume is not None and resume <= self.clock():
                await self.suspend()  # back-off over: the next real connection is the trial
        except Exception:  # the net must keep running whatever one rescue hit
            log.exception("rescue failed")
        finally:
            self._schedule()

    async def recheck(self) -> None:
        """Before a rescue, the late legs' entries are read back (one netlink get each, only
        then): one whose mark says it got a reply (its event lost to a full socket queue)
        works and is let be, never cut."""
        late = [self.legs[f] for f in self.safety.late(self.clock()) if f in self.legs]
        if not late:
            return
        answered = await asyncio.to_thread(self.events.answered, late)
        now = self.clock()
        for leg in late:
            target = self.target_of(leg)
            if leg.key in answered and target is not None:
                self.legs.pop(leg.key, None)
                change = self.safety.replied(leg.key, target, now)
                if change is not None:
                    await self.brake(change)

    async def rescue(self, rescues: list[Rescue]) -> None:
        now = self.clock()
        outcome = self.engine().stale_broken(now)
        await self.enact(outcome)  # step 1: no new flow steered to a broken target
        await self.suspend()  # step 1 for static and provider entries
        legs = [self.legs.pop(f) for r in rescues for f in r.flows if f in self.legs]
        deleted = await asyncio.to_thread(self.events.delete, legs)  # step 2
        self.safety.counters[Count.SAFETY_FLOWS_DELETED] += deleted
        for r in rescues:
            data = {"target": str(r.target), "flows": len(r.flows), "newly_broken": r.newly_broken}
            self.announce(SafetyEvent.RESCUED, data)

    # --- suspended destinations (``core.suspend``) ----------------------------------------------

    async def suspend(self, plan: Callable[[float], SuspendChange] | None = None) -> None:
        """Plan (by default all of it again) and apply; one at a time, in order."""
        if self.set_suspended is None or not self.safety.policy.enabled:
            return
        if self._suspending is None:
            self._suspending = asyncio.Lock()
        async with self._suspending:
            now, before = self.clock(), dict(self.suspension.held)
            if plan is None:
                self._planned = self.safety.generation
                change = self.suspension.plan(self.engine().table, self.safety, now)
            else:
                change = plan(now)
            if not change:
                return
            try:
                await self.set_suspended(change)
            except Exception:  # the set is as it was: so is the plan (the rescue goes on)
                self.suspension.held = before
                log.exception("suspending %s failed", change)
                return
        if change.add:
            self.announce(SafetyEvent.SUSPENDED, {"ipv4": " ".join(map(str, change.add))})
        if change.remove:
            self.announce(SafetyEvent.RESUMED, {"ipv4": " ".join(map(str, change.remove))})

    def landed(self, ops: tuple[DataplaneOp, ...]) -> None:
        """A batch landed (``Applier.landed``): its new legs of static or provider entries to a
        broken target are suspended, removed legs resumed; per op, no scan of the table."""
        if self.set_suspended is None or not self.safety.policy.enabled:
            return
        table = self.engine().table
        added = [
            e
            for op in ops if isinstance(op, EnsureDnat)
            for e in table.covering(op.ipv4.network_address)
            if e.ipv4 == op.ipv4 and e.origin in SUSPENDED_ORIGINS
        ]  # fmt: skip
        gone = [
            op.ipv4
            for op in ops
            if isinstance(op, RemoveDnat) and self.suspension.suspended(op.ipv4)
        ]
        if added or gone:
            safety = self.safety
            self._spawn(self.suspend(lambda now: self.suspension.update(added, gone, safety, now)))

    def _spawn(self, job: Awaitable[None]) -> None:
        async def run() -> None:  # kept in _jobs: the loop holds tasks only weakly
            try:
                await job
            except Exception:  # the net keeps running: the rescue still covers a miss
                log.exception("safety net job failed")
            self._schedule()

        task = asyncio.get_running_loop().create_task(run(), name="safety")
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)

    async def brake(self, change: BrakeChange) -> None:
        await self.set_brake(change.state is BrakeState.ENGAGED)
        kind = {
            BrakeState.ENGAGED: SafetyEvent.BRAKE_ENGAGED,
            BrakeState.TRIAL: SafetyEvent.BRAKE_TRIAL,
            BrakeState.RELEASED: SafetyEvent.BRAKE_RELEASED,
        }[change.state]
        self.announce(kind, {"why": change.why})

    def status(self) -> dict[str, Any]:
        view = self.safety.view(self.clock())
        return {
            "enabled": self.safety.policy.enabled, "error": self.error,
            "events": self.events.received, "events_lost": self.events.lost, **view,
            "suspended": self.suspension.view(self.clock()),
            "suspended_total": len(self.suspension.held),
        }  # fmt: skip


def safety_net(daemon: Any) -> Rescuer:
    """The daemon's safety net (``daemon.Daemon``: its engine, commands, dataplane, ubus)."""
    from clat_eamt.assemble import safety_from_config  # noqa: PLC0415
    from clat_eamt.runtime import commands as c  # noqa: PLC0415

    policy = safety_from_config(daemon.cfg)
    set_brake = getattr(daemon.dataplane, "set_brake", None)
    suspend = getattr(daemon.dataplane, "set_suspended", None)
    if set_brake is None:  # no dataplane: nothing is steered, nothing to watch
        policy = SafetyPolicy(enabled=False)

    async def enact(outcome: Outcome) -> None:
        if outcome.events or outcome.ops:
            await daemon.execute([c.Publish(outcome, "rescue"), c.ApplyOps(outcome.ops)])

    async def brake(engaged: bool) -> None:
        if set_brake is not None:
            await set_brake(engaged)

    def announce(kind: str, data: dict[str, Any]) -> None:
        log.warning("%s: %s", kind, ", ".join(f"{k} {v}" for k, v in data.items()))
        if daemon.ubus is not None:
            daemon.ubus.publish_safety(kind, data)

    async def set_suspended(change: SuspendChange) -> None:
        if suspend is not None:
            await suspend(change.add, change.remove)

    rescuer = Rescuer(
        policy, engine=lambda: daemon.runtime.engine, enact=enact, set_brake=brake,
        announce=announce, clock=daemon.clock,
        set_suspended=None if suspend is None else set_suspended,
    )  # fmt: skip
    daemon.applier.landed = rescuer.landed
    if hasattr(daemon.dataplane, "exempt"):  # IPv6-only entries' IPv6 legs: no NAT64 behind
        daemon.dataplane.exempt = lambda block: exempt(daemon.runtime.engine.table, block)
    return rescuer
