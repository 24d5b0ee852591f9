"""Suspended destinations (``core.suspend``, issue 25): static and provider entries whose target
is broken stay Valid and are not steered until the verdict's back-off ends."""

from __future__ import annotations

import asyncio
import itertools
import socket
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from clat_eamt.control.views import safety_text
from clat_eamt.core.addresses import AddressPolicy
from clat_eamt.core.counters import Count
from clat_eamt.core.decide import HostMode, Policy
from clat_eamt.core.engine import Engine, Outcome
from clat_eamt.core.limits import CreationLimiter
from clat_eamt.core.model import AaaaStatus, EnsureDnat, Observation, Origin, RemoveDnat, State
from clat_eamt.core.pool import Pool
from clat_eamt.core.safety import Safety, SafetyPolicy, covering
from clat_eamt.core.suspend import SUSPENDED_ORIGINS, SuspendChange, Suspensions
from clat_eamt.dataplane.ctevents import CtEvent
from clat_eamt.dataplane.guard import STEERED
from clat_eamt.present import entry_json, mappings_table, suspended_in
from clat_eamt.rescue import Rescuer

POLICY = SafetyPolicy(window=0.7, backoff=10, backoff_max=100, brake_failures=0)
X = IPv6Address("2001:db8:1::10")
X_SAME_64 = IPv6Address("2001:db8:1::20")
X_OTHER = IPv6Address("2001:db8:2::10")


def net4(text: str) -> IPv4Network:
    return IPv4Network(text)


def net6(text: str) -> IPv6Network:
    return IPv6Network(text)


def engine_with(safety: Safety) -> Engine:
    policy = Policy(
        addresses=AddressPolicy(allow_documentation=True), ttl_min=0, host_mode=HostMode.ALL
    )
    engine = Engine(policy, Pool(IPv4Network("100.127.0.0/16")), CreationLimiter(9, 9, 9, 9))
    engine.broken = safety.broken
    return engine


def fail(safety: Safety, target: IPv6Address, now: float) -> None:
    """A steered flow to ``target`` that got no reply in its window."""
    safety.steered(("flow", target, now), target, now)
    safety.due(now + POLICY.window)


def mirror(applied: set[IPv4Network], change: SuspendChange) -> set[IPv4Network]:
    """What the nft set holds after ``change`` (removals first, as ``suspended_batch``)."""
    assert not set(change.add) & set(change.remove)
    assert set(change.remove) <= applied  # never deletes what is not there (nft would refuse)
    assert not set(change.add) & (applied - set(change.remove))
    return (applied - set(change.remove)) | set(change.add)


def test_static_and_provider_entries_to_a_broken_target_are_suspended_not_stale():
    safety = Safety(POLICY)
    engine = engine_with(safety)
    engine.add_static(net4("192.0.2.1/32"), net6(f"{X}/128"), 0.0)
    engine.upsert_provider(net4("192.0.2.2/32"), net6(f"{X_SAME_64}/128"), 3600, 0.0)
    engine.upsert_provider(net4("192.0.2.3/32"), net6(f"{X_OTHER}/128"), 3600, 0.0)
    s = Suspensions()
    assert not s.plan(engine.table, safety, 0.0)
    fail(safety, X, 1.0)
    assert engine.stale_broken(1.7).events == ()  # neither goes Stale
    change = s.plan(engine.table, safety, 1.7)
    assert change == SuspendChange((net4("192.0.2.1/32"), net4("192.0.2.2/32")), ())  # its /64
    assert {e.state for e in engine.table} == {State.VALID}
    assert s.next_change() == 1.7 + 10
    assert s.counters[Count.SUSPENDED] == 2
    # The back-off passes: both are resumed, still Valid; the next connection is the trial.
    assert s.plan(engine.table, safety, 11.6) == SuspendChange()
    assert s.plan(engine.table, safety, 11.7) == SuspendChange(
        (), (net4("192.0.2.1/32"), net4("192.0.2.2/32"))
    )
    assert s.next_change() is None and s.counters[Count.RESUMED] == 2
    fail(safety, X, 12.0)  # the trial failed: suspended again, the back-off doubled
    s.plan(engine.table, safety, 12.7)
    assert s.next_change() == 12.7 + 20


def test_a_dns_entry_still_goes_stale_and_is_not_suspended():
    safety = Safety(POLICY)
    engine = engine_with(safety)
    obs = Observation("a.example", (IPv4Address("192.0.2.9"),), 60, AaaaStatus.ANSWER, (X,), 60)
    engine.observe(obs, 0.0)
    fail(safety, X, 1.0)
    assert [e.entry.state for e in engine.stale_broken(1.7).events] == [State.STALE]
    assert not Suspensions().plan(engine.table, safety, 1.7)


def test_a_prefix_entry_suspends_all_of_d_for_a_broken_64_else_the_target_s_own_address():
    safety = Safety(POLICY)
    engine = engine_with(safety)
    assert not engine.add_static(net4("192.0.2.0/24"), net6("2001:db8:1::/120"), 0.0).refusals
    own = IPv6Address("2001:db8:1::5")
    fail(safety, own, 1.0)  # the target and its /64
    s = Suspensions()
    assert s.plan(engine.table, safety, 1.7) == SuspendChange((net4("192.0.2.0/24"),), ())
    [entry] = list(engine.table)
    held = suspended_in({"safety": {"suspended": s.view(1.7)}})
    assert entry_json(entry, 1.7, held)["suspended"] == "target broken"
    safety.records.pop(covering(own))  # the target's own verdict alone: D + 5 only (RFC 7757)
    assert s.plan(engine.table, safety, 1.8) == SuspendChange(
        (net4("192.0.2.5/32"),), (net4("192.0.2.0/24"),)
    )


def test_a_leg_installed_to_a_broken_target_is_suspended_and_a_removed_one_resumed():
    safety = Safety(POLICY)
    engine = engine_with(safety)
    fail(safety, X, 0.0)
    s = Suspensions()
    outcome = engine.upsert_provider(net4("192.0.2.2/32"), net6(f"{X}/128"), 3600, 1.0)
    [entry] = list(engine.table)
    assert entry.state is State.VALID and entry.origin is Origin.PROVIDER
    assert s.update([entry], [], safety, 1.0).add == (net4("192.0.2.2/32"),)
    assert outcome.ops  # installed all the same: the set keeps it from being steered
    gone = engine.delete(net4("192.0.2.2/32"), 2.0)
    removed = [op.ipv4 for op in gone.ops if isinstance(op, RemoveDnat)]
    assert s.update([], removed, safety, 2.0).remove == (net4("192.0.2.2/32"),)
    assert s.held == {}


def test_mappings_show_a_suspended_entry_as_valid_and_why():
    safety = Safety(POLICY)
    engine = engine_with(safety)
    engine.add_static(net4("192.0.2.1/32"), net6(f"{X}/128"), 0.0)
    [entry] = list(engine.table)

    def held(*nets: str) -> dict:
        return {"safety": {"suspended": [{"ipv4": n, "retry_in_s": 1.0} for n in nets]}}

    row = entry_json(entry, 0.0, suspended_in(held("192.0.2.1/32"))) | {"flows": 0}
    assert row["state"] == "valid" and row["stale_reason"] is None
    assert "valid(suspended: target broken)" in mappings_table([row])
    assert entry_json(entry, 0.0, suspended_in(held("192.0.2.2/32")))["suspended"] is None
    assert entry_json(entry, 0.0, suspended_in(held("192.0.2.0/24")))["suspended"]
    assert entry_json(entry, 0.0, suspended_in({}))["suspended"] is None
    engine.add_static(net4("198.51.100.0/28"), net6("2001:db8:3::/124"), 0.0)
    prefix = engine.table.get((net4("198.51.100.0/28"), net6("2001:db8:3::/124")))
    assert entry_json(prefix, 0.0, suspended_in(held("198.51.100.5/32")))["suspended"]


# --- the state machine ---------------------------------------------------------------------------

TARGETS = [X, X_SAME_64, X_OTHER, IPv6Address("2001:db8:3::1")]
PREFIX = (net4("198.51.100.0/28"), net6("2001:db8:3::/124"))  # holds TARGETS[3]


class SuspendMachine(RuleBasedStateMachine):
    """Failures, replies, entries coming and going and time, planned fully or incrementally:
    the set (as the diffs built it) always holds exactly the D of a Valid static or provider
    entry whose target is broken now, collapsed."""

    def __init__(self) -> None:
        super().__init__()
        self.safety = Safety(POLICY)
        self.engine = engine_with(self.safety)
        self.s = Suspensions()
        self.applied: set[IPv4Network] = set()
        self.now = 0.0
        self.engine.add_static(*PREFIX, 0.0)

    def apply(self, change: SuspendChange) -> None:
        self.applied = mirror(self.applied, change)

    @rule(to=st.sampled_from(TARGETS))
    def failed(self, to: IPv6Address) -> None:
        fail(self.safety, to, self.now)
        self.now += POLICY.window
        self.apply(self.s.plan(self.engine.table, self.safety, self.now))

    @rule(to=st.sampled_from(TARGETS))
    def replied(self, to: IPv6Address) -> None:
        self.safety.steered("r", to, self.now)
        self.safety.replied("r", to, self.now)
        self.apply(self.s.plan(self.engine.table, self.safety, self.now))

    @rule(i=st.integers(0, 2), provider=st.booleans())
    def install(self, i: int, provider: bool) -> None:
        d, x = net4(f"192.0.2.{i + 1}/32"), net6(f"{TARGETS[i]}/128")
        if provider:
            out = self.engine.upsert_provider(d, x, 3600, self.now)
        else:
            out = self.engine.add_static(d, x, self.now)
        self.landed(out)

    @rule(i=st.integers(0, 2))
    def delete(self, i: int) -> None:
        self.landed(self.engine.delete(net4(f"192.0.2.{i + 1}/32"), self.now))

    def landed(self, out: Outcome) -> None:
        table = self.engine.table
        added = [
            e
            for op in out.ops
            if isinstance(op, EnsureDnat)
            for e in table.covering(op.ipv4.network_address)
            if e.ipv4 == op.ipv4
        ]
        gone = [op.ipv4 for op in out.ops if isinstance(op, RemoveDnat)]
        self.apply(self.s.update(added, gone, self.safety, self.now))

    @rule(step=st.floats(0.0, 40.0))
    def wait(self, step: float) -> None:
        self.now += step
        due = self.s.next_change()
        if due is not None and due <= self.now:  # the shell's timer
            self.apply(self.s.plan(self.engine.table, self.safety, self.now))

    @invariant()
    def the_set_is_what_the_verdicts_say(self) -> None:
        assert self.applied == set(self.s.elements())
        elements = sorted(self.applied)
        assert all(not a.overlaps(b) for a, b in itertools.pairwise(elements))
        valid = [e for e in self.engine.table if e.state is State.VALID]
        for d in elements:  # nothing left of an entry that went (its D may be another's next)
            assert any(e.origin in SUSPENDED_ORIGINS and e.ipv4.overlaps(d) for e in valid), d
        due = self.s.next_change()
        if due is not None and due <= self.now:
            return  # the timer has not fired yet
        for entry in self.engine.table:
            if entry.state is not State.VALID or entry.ipv6.prefixlen != 128:
                continue
            broken = self.safety.broken(entry.ipv6.network_address, self.now)
            assert broken == any(entry.ipv4.subnet_of(d) for d in self.applied), entry


TestSuspendMachine = SuspendMachine.TestCase
TestSuspendMachine.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)


# --- the shell ---------------------------------------------------------------------------------


class _Events:
    lost = received = 0

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def answered(self, legs: list[CtEvent]) -> set[object]:
        return set()

    def stop(self) -> None:
        pass

    def delete(self, legs: list[CtEvent]) -> int:
        self.log.append("delete")
        return len(legs)


def test_the_rescuer_suspends_a_static_entry_before_deleting_its_flows_then_resumes_it():
    async def scenario() -> None:
        safety_policy = SafetyPolicy(window=0.7, backoff=10)
        log: list[str] = []
        clock = [0.0]

        async def enact(outcome: Outcome) -> None:
            log.append(f"stale {len(outcome.events)}")

        async def brake(engaged: bool) -> None:
            log.append(f"brake {engaged}")

        async def suspend(change: SuspendChange) -> None:
            log.append(f"suspend +{list(map(str, change.add))} -{list(map(str, change.remove))}")

        rescuer = Rescuer(
            safety_policy, engine=lambda: engine, enact=enact, set_brake=brake,
            announce=lambda kind, data: log.append(str(kind)), clock=lambda: clock[0],
            set_suspended=suspend,
        )  # fmt: skip
        engine = engine_with(rescuer.safety)
        engine.add_static(net4("192.0.2.1/32"), net6(f"{X}/128"), 0.0)
        rescuer.events = _Events(log)  # type: ignore[assignment]
        rescuer.wire()
        [entry] = list(engine.table)
        pool = entry.pool.network_address
        rescuer._events([CtEvent("new", socket.AF_INET, 1, STEERED, pool, b"v4")])
        clock[0] = 0.7
        await rescuer.due()
        assert log == [
            "stale 0", "suspend +['192.0.2.1/32'] -[]", "suspended", "delete", "rescued"
        ]  # fmt: skip
        assert entry.state is State.VALID
        status = rescuer.status()
        assert status["suspended"] == [{"ipv4": "192.0.2.1/32", "retry_in_s": 10.0}]
        assert status["suspended_total"] == 1
        said = safety_text(status, {"suspended": 1})
        assert "suspended 1, " in said and "suspended now: 192.0.2.1/32 (retry in 10.0 s)" in said
        assert rescuer.safety.next_deadline() is None
        clock[0] = 10.7  # the back-off is over: resumed, the next connection is the trial
        log.clear()
        await rescuer.due()
        assert log == ["suspend +[] -['192.0.2.1/32']", "resumed"]
        rescuer.stop()

    asyncio.run(scenario())


def test_a_provider_entry_pushed_to_a_target_already_broken_is_suspended_once_its_batch_landed():
    async def scenario() -> None:
        log: list[str] = []

        async def suspend(change: SuspendChange) -> None:
            log.append(f"+{list(map(str, change.add))} -{list(map(str, change.remove))}")

        async def nothing(_: object) -> None:
            pass

        rescuer = Rescuer(
            POLICY, engine=lambda: engine, enact=nothing, set_brake=nothing,
            announce=lambda kind, data: None, clock=lambda: 1.0, set_suspended=suspend,
        )  # fmt: skip
        engine = engine_with(rescuer.safety)
        fail(rescuer.safety, X, 0.0)
        pushed = engine.upsert_provider(net4("192.0.2.2/32"), net6(f"{X}/128"), 3600, 1.0)
        rescuer.landed(pushed.ops)
        await asyncio.gather(*rescuer._jobs)
        assert log == ["+['192.0.2.2/32'] -[]"]
        dns = Observation("d.example", (IPv4Address("192.0.2.3"),), 60, AaaaStatus.ANSWER,
                          (X_OTHER,), 60)  # fmt: skip
        rescuer.landed(engine.observe(dns, 1.0).ops)  # a dns entry: not for the set
        gone = engine.delete(net4("192.0.2.2/32"), 1.0, Origin.PROVIDER)
        rescuer.landed(gone.ops)
        await asyncio.gather(*rescuer._jobs)
        assert log == ["+['192.0.2.2/32'] -[]", "+[] -['192.0.2.2/32']"]
        rescuer.stop()

    asyncio.run(scenario())
