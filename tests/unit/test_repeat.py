"""Decisions remembered for repeated answers (core.repeat): an engine that remembers them ends
every step exactly where one that decides every answer afresh ends (outcomes, table, counters,
the memory of answers seen), over random histories of answers, time, ticks, the operator and
policy changes; and it does remember in the cases a home repeats."""

from __future__ import annotations

import random
import tracemalloc
from dataclasses import replace
from ipaddress import IPv4Address

import pytest

from clat_eamt.core.engine import Engine
from clat_eamt.core.model import AaaaStatus, HostClass, LiveFlows, Observation, State
from clat_eamt.core.repeat import Repeats

from .corekit import LAPTOP, TV, engine, obs, v4, v6

NAMES = [f"n{i}.example" for i in range(6)]
A = [f"203.0.113.{i}" for i in range(1, 7)]
AAAA = ["2001:db8:1::1", "2001:db8:1::2", "2001:db8:1::3", "2001:db8:64::cb00:7101"]  # last: DNS64


class Fresh(Repeats):
    """Never recalls: every answer is decided by ``decide``."""

    def recall(self, *args: object, **kwargs: object) -> None:
        return None


def an_answer(rng: random.Random) -> Observation:
    name = rng.choice(NAMES)
    a = rng.sample(A, rng.choice([1, 1, 1, 2]))
    kind = rng.random()
    aaaa: list[str] | AaaaStatus
    if kind < 0.55:
        aaaa = rng.sample(AAAA, rng.choice([1, 1, 1, 2]))
    elif kind < 0.8:
        aaaa = AaaaStatus.NODATA
    else:
        aaaa = rng.choice([AaaaStatus.TIMEOUT, AaaaStatus.SERVFAIL, AaaaStatus.NXDOMAIN])
    host = rng.choice([TV, TV, LAPTOP, None])
    return obs(name, a, aaaa, ttl=rng.choice([5, 60, 300]), aaaa_ttl=rng.choice([5, 60, 300]),
               host=host)  # fmt: skip


def an_event(rng: random.Random, history: list[Observation]) -> tuple[str, object]:
    """One random event; an answer is often one given before (a home repeats its names), with
    its TTLs counted down as a resolver's cache gives them."""
    roll = rng.random()
    if roll < 0.75:
        if history and rng.random() < 0.6:
            again = rng.choice(history)
            answer = replace(again, a_ttl=max(0, again.a_ttl - rng.choice([0, 1, 30])))
        else:
            answer = an_answer(rng)
            history.append(answer)
        return "answer", answer
    if roll < 0.85:
        return "tick", None if rng.random() < 0.3 else LiveFlows(frozenset())
    if roll < 0.89:
        return "static", (v4(f"{rng.choice(A)}/32"), v6(f"{rng.choice(AAAA[:3])}/128"))
    if roll < 0.93:
        return "delete", v4(f"{rng.choice(A)}/32")
    if roll < 0.95:
        return "flush", None
    return "policy", rng.choice([30, 30, 10])  # a new policy object: a reload, a host census


def apply(eng: Engine, event: tuple[str, object], now: float) -> object:
    kind, arg = event
    if kind == "answer":
        assert isinstance(arg, Observation)
        # and the same answer again a moment later (another client, a retry)
        return [eng.observe(arg, now), eng.observe(arg, now + 0.5)]
    if kind == "tick":
        return eng.tick(now, arg)  # type: ignore[arg-type]
    if kind == "static":
        return eng.add_static(*arg, now)  # type: ignore[misc]
    if kind == "delete":
        return eng.delete(arg, now)  # type: ignore[arg-type]
    if kind == "flush":
        return eng.flush(now)
    eng.policy = replace(eng.policy, ttl_min=arg)
    return None


def state(eng: Engine) -> object:
    return (eng.table.sorted(), dict(eng.table.quarantine), +eng.counters, eng.seen._pairs,
            eng.seen._vouch, eng.table.pool.leases())  # fmt: skip


@pytest.mark.parametrize("seed", range(12))
def test_remembered_decisions_equal_fresh_ones_on_random_histories(seed):
    remembering, fresh = engine(max_entries=4), engine(max_entries=4)
    fresh.repeats = Fresh()
    rng, history, now = random.Random(seed), [], 1000.0
    for _ in range(400):
        now += rng.choice([0.5, 1, 3, 20, 70])
        event = an_event(rng, history)
        assert apply(remembering, event, now) == apply(fresh, event, now), event
        assert state(remembering) == state(fresh), event
    remembering.table.check_invariants()
    assert remembering.repeats.hits > 50  # the comparison exercised the remembered path


def test_a_repeated_answer_refreshing_its_mapping_is_recalled_until_the_table_changes():
    eng = engine()
    answer = obs("ds.example", "203.0.113.10", "2001:db8:1::10")
    eng.observe(answer, 0.0)  # creates: not remembered
    eng.observe(answer, 1.0)  # refreshes: remembered
    again = eng.observe(replace(answer, a_ttl=200, aaaa_ttl=100), 2.0)
    assert eng.repeats.hits == 1
    [entry] = eng.table.sorted()
    assert entry.state is State.VALID and entry.expires == 301.0  # never shortened (lifecycle)
    assert again.decision is not None and again.decision.changes[0].expires == 102.0
    eng.observe(obs("other.example", "203.0.113.11", "2001:db8:1::11"), 3.0)  # a new entry
    eng.observe(answer, 4.0)
    assert eng.repeats.hits == 1  # the table changed: decided afresh


def test_a_name_without_ipv6_is_recalled_and_so_is_its_hostile_twin_refused_afresh():
    """The memory of answers seen still sees every answer: a repeated NODATA answer for the
    victim's name is recalled, yet remembered for its TTL, so a hostile name's create is
    refused (decide's rule 5)."""
    eng = engine()
    victim = obs("victim.example", "203.0.113.20", AaaaStatus.NODATA, ttl=300)
    eng.observe(victim, 0.0)
    eng.observe(victim, 200.0)  # recalled; remembered until 500
    assert eng.repeats.hits == 1
    hostile = eng.observe(obs("evil.example", "203.0.113.20", "2001:db8:1::66"), 400.0)
    assert not eng.table.sorted() and hostile.decision is not None
    assert [r.reason for r in hostile.decision.refusals] == ["unvouched"]


def test_a_refresh_between_several_targets_is_decided_afresh():
    eng = engine()
    answer = obs("cdn.example", "203.0.113.30", ["2001:db8:1::1", "2001:db8:1::2"])
    for now in (0.0, 1.0, 2.0):
        eng.observe(answer, now)
    assert eng.repeats.hits == 0 and len(eng.repeats) == 0


def test_the_memory_is_bounded():
    memory = Repeats(capacity=2)
    eng = engine()
    eng.repeats = memory
    for i in range(4):
        eng.observe(obs(f"v4only{i}.example", f"203.0.113.{i + 1}", AaaaStatus.NODATA), 0.0)
    assert len(memory) == 2
    assert TV.klass is HostClass.IPV4_ONLY and IPv4Address(A[0])  # the builders' assumptions


def test_one_remembered_name_costs_what_the_module_says():
    """CAPACITY's figure: a remembered decision costs at most ~600 bytes (tracemalloc: the
    same answers through an engine that remembers and one that does not)."""
    answers = [
        obs(f"v4only{i}.example.com", f"203.0.113.{i % 250 + 1}", AaaaStatus.NODATA)
        for i in range(1000)
    ]
    used = []
    for capacity in (1000, 0):
        eng = engine()
        eng.repeats = Repeats(capacity)
        tracemalloc.start()
        for answer in answers:
            eng.observe(answer, 0.0)
        used.append(tracemalloc.get_traced_memory()[0])
        tracemalloc.stop()
    assert 100 < (used[0] - used[1]) / len(answers) < 700
