"""The safety net's shell (``rescue``) with the kernel replaced: the order of a rescue (the
mapping goes Stale before its flows' entries are deleted), and a reply whose event was lost."""

from __future__ import annotations

import asyncio
import socket
from ipaddress import IPv4Address, IPv4Network, IPv6Address

from clat_eamt.core.addresses import AddressPolicy
from clat_eamt.core.decide import HostMode, Policy
from clat_eamt.core.engine import Engine, Outcome
from clat_eamt.core.limits import CreationLimiter
from clat_eamt.core.model import AaaaStatus, Observation, State
from clat_eamt.core.pool import Pool
from clat_eamt.core.safety import SafetyPolicy, Verdict
from clat_eamt.dataplane.ctevents import CtEvent
from clat_eamt.dataplane.guard import CONFIRMED, STEERED
from clat_eamt.rescue import Rescuer

X = IPv6Address("2001:db8:1::10")


class FakeEvents:
    def __init__(self, answered: set[tuple[int, int]]) -> None:
        self.lost = self.received = 0
        self.deleted: list[tuple[int, int]] = []
        self._answered = answered
        self.log: list[str]

    def answered(self, legs: list[CtEvent]) -> set[tuple[int, int]]:
        return {leg.key for leg in legs} & self._answered

    def stop(self) -> None:
        pass

    def delete(self, legs: list[CtEvent]) -> int:
        self.log.append("delete")
        self.deleted += [leg.key for leg in legs]
        return len(legs)


def setup(answered: set[tuple[int, int]] = frozenset()) -> tuple[Rescuer, Engine, list[str]]:
    policy = Policy(
        addresses=AddressPolicy(allow_documentation=True), ttl_min=0, host_mode=HostMode.ALL
    )
    engine = Engine(policy, Pool(IPv4Network("100.127.0.0/24")), CreationLimiter(9, 9, 9, 9))
    obs = Observation("a.example", (IPv4Address("192.0.2.1"),), 60, AaaaStatus.ANSWER, (X,), 60)
    engine.observe(obs, 0.0)
    log: list[str] = []
    clock = [0.0]

    async def enact(outcome: Outcome) -> None:
        log.append("stale " + ",".join(str(e.entry.ipv4) for e in outcome.events))

    async def brake(engaged: bool) -> None:
        log.append(f"brake {engaged}")

    rescuer = Rescuer(
        SafetyPolicy(window=0.7), engine=lambda: engine, enact=enact, set_brake=brake,
        announce=lambda kind, data: log.append(str(kind)), clock=lambda: clock[0],
    )  # fmt: skip
    fake = FakeEvents(set(answered))
    fake.log = log
    rescuer.events = fake  # type: ignore[assignment]
    rescuer.wire()
    rescuer.clock_box = clock  # type: ignore[attr-defined]
    return rescuer, engine, log


def new_legs(engine: Engine, mark: int = STEERED) -> list[CtEvent]:
    [entry] = list(engine.table)
    pool = entry.pool.network_address
    return [
        CtEvent("new", socket.AF_INET, 1, mark, pool, b"v4"),
        CtEvent("new", socket.AF_INET6, 2, mark, X, b"v6"),
    ]


def test_a_late_flow_is_un_steered_before_its_entries_are_deleted():
    async def scenario() -> None:
        rescuer, engine, log = setup()
        rescuer._events(new_legs(engine))
        rescuer.clock_box[0] = 0.7  # type: ignore[attr-defined]
        await rescuer.due()
        assert log == ["stale 192.0.2.1/32", "delete", "rescued"]
        assert sorted(rescuer.events.deleted) == [(socket.AF_INET, 1), (socket.AF_INET6, 2)]
        [entry] = list(engine.table)
        assert entry.state is State.STALE
        assert rescuer.safety.verdict(X, 0.7)[0] is Verdict.BROKEN
        rescuer.stop()

    asyncio.run(scenario())


def test_a_reply_whose_event_was_lost_is_found_before_cutting_anything():
    async def scenario() -> None:
        rescuer, engine, log = setup(answered={(socket.AF_INET6, 2), (socket.AF_INET, 1)})
        rescuer._events(new_legs(engine))
        rescuer.clock_box[0] = 0.7  # type: ignore[attr-defined]
        await rescuer.due()
        assert log == [] and rescuer.events.deleted == []
        assert rescuer.safety.verdict(X, 0.7)[0] is Verdict.WORKING
        [entry] = list(engine.table)
        assert entry.state is State.VALID
        rescuer.stop()

    asyncio.run(scenario())


def test_a_confirmed_leg_ends_its_watch():
    async def scenario() -> None:
        rescuer, engine, _ = setup()
        legs4, legs6 = new_legs(engine)
        rescuer._events([legs4, legs6])
        done = [
            CtEvent("update", e.family, e.ident, STEERED | CONFIRMED, e.reply_src, e.orig)
            for e in (legs4, legs6)
        ]
        rescuer._events(done)
        assert rescuer.safety.next_deadline() is None and rescuer.legs == {}
        rescuer.stop()

    asyncio.run(scenario())
