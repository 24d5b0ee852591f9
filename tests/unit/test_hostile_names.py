"""Issue 13, hostile names: every A answer is remembered for its TTL (core.seen) and a mapping
D -> X is refused while another name's unexpired answer holds D without X; a name brings a
bounded number of IPv4s to one target; an answer holding D without any IPv6 conflicts with
another name's Valid D -> X.  Through the engine, which remembers each answer it decides on."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest

from clat_eamt.core.limits import MAX_ADDRESSES
from clat_eamt.core.model import AaaaStatus, LiveFlows, Observation, Reason, StaleReason, State
from clat_eamt.core.seen import PAIR_COST, PER_TARGET, AnswersSeen

from .corekit import engine, obs

VICTIM_IP = "192.0.2.20"
ATTACKER_V6 = "2001:db8:bad::1"


def reasons(outcome):
    return {r.reason for r in outcome.refusals}


@pytest.mark.parametrize(
    "victim_aaaa",
    [AaaaStatus.NODATA, AaaaStatus.NXDOMAIN, "2001:db8:64::c000:214", "2001:db8:1::20"],
    ids=["nodata", "nxdomain", "synthesized", "its-own-ipv6"],
)
def test_victim_answered_first_then_a_hostile_name_gets_no_mapping(victim_aaaa):
    """The victim's answer was released (and dnsmasq now serves it from its cache: it never
    comes back); a hostile name then says the victim's IPv4 has the attacker's IPv6."""
    eng = engine()
    eng.observe(obs("victim.example", VICTIM_IP, victim_aaaa, ttl=600), 0)
    before = {(e.ipv4, e.ipv6, e.state) for e in eng.table}
    out = eng.observe(obs("hostile.example", VICTIM_IP, ATTACKER_V6, ttl=600), 10)
    assert not out.decision.created
    assert not [e for e in eng.table if e.ipv6.network_address == IPv6Address(ATTACKER_V6)]
    assert reasons(out) & {Reason.UNVOUCHED, Reason.CONFLICT}
    if isinstance(victim_aaaa, AaaaStatus) or victim_aaaa.startswith("2001:db8:64:"):
        # No mapping of the victim's existed: only the memory stood in the way.
        assert before == set() and reasons(out) == {Reason.UNVOUCHED}
        [refusal] = out.refusals
        assert "victim.example" in refusal.detail and refusal.address == IPv4Address(VICTIM_IP)


def test_without_the_memory_the_hostile_name_was_mapped():
    """The attack as measured on the old code: a name nobody has mapped yet gets mapped."""
    eng = engine()
    eng.observe(obs("victim.example", VICTIM_IP, AaaaStatus.NODATA, ttl=600), 0)
    eng.seen = AnswersSeen()  # forget: what the proxy did before issue 13
    out = eng.observe(obs("hostile.example", VICTIM_IP, ATTACKER_V6, ttl=600), 10)
    assert len(out.decision.created) == 1


def test_the_memory_lasts_the_answers_ttl():
    eng = engine()
    eng.observe(obs("victim.example", VICTIM_IP, AaaaStatus.NODATA, ttl=60), 0)
    assert not eng.observe(obs("hostile.example", VICTIM_IP, ATTACKER_V6), 59).decision.created
    eng.tick(61, None)
    later = eng.observe(obs("hostile.example", VICTIM_IP, ATTACKER_V6), 61)
    assert len(later.decision.created) == 1  # the victim's answer is no longer cached anywhere


def test_an_aaaa_that_timed_out_vouches_and_objects_to_nothing():
    eng = engine()
    eng.observe(obs("other.example", VICTIM_IP, AaaaStatus.TIMEOUT, ttl=600), 0)
    out = eng.observe(obs("site.example", VICTIM_IP, "2001:db8:1::20"), 1)
    assert len(out.decision.created) == 1


def test_names_agreeing_on_the_mapping_do_not_object_to_each_other():
    eng = engine()
    eng.observe(obs("www.example", "192.0.2.10", "2001:db8:1::10"), 0)
    eng.flush(1)  # the entry goes; the memory of www's answer stays
    eng.tick(100, LiveFlows())
    assert len(eng.table) == 0
    out = eng.observe(obs("example", "192.0.2.10", ["2001:db8:1::10", "2001:db8:1::11"]), 101)
    assert [e.ipv6.network_address for e in out.decision.created] == [IPv6Address("2001:db8:1::10")]


def test_hostile_name_first_then_the_victims_answer_makes_it_stale():
    """The conflict rule, also for a victim name with no IPv6 at all (only DNS64's)."""
    for victim_aaaa in ("2001:db8:1::20", "2001:db8:64::c000:214", AaaaStatus.NODATA):
        eng = engine()
        eng.observe(obs("hostile.example", VICTIM_IP, ATTACKER_V6), 0)
        [entry] = eng.table
        out = eng.observe(obs("victim.example", VICTIM_IP, victim_aaaa), 1)
        [stale] = [e for e in eng.table if e.key == entry.key]
        assert stale.state is State.STALE and stale.stale_reason is StaleReason.CONFLICT
        assert Reason.CONFLICT in reasons(out)
        assert not [e for e in eng.table if e.state is State.VALID]
        # and the hostile name cannot bring it back while the victim's answer holds
        again = eng.observe(obs("hostile.example", VICTIM_IP, ATTACKER_V6), 2)
        assert not again.decision.created and not [e for e in eng.table if e.state is State.VALID]


def test_one_answer_with_forty_a_records_maps_only_a_few_to_one_target():
    eng = engine()
    many = [f"203.0.113.{i}" for i in range(1, 41)]
    out = eng.observe(obs("many.example", many, ATTACKER_V6), 0)
    assert len(out.decision.created) == PER_TARGET
    assert Reason.TARGET_CAP in reasons(out)
    # ... and not by coming back with others either
    more = eng.observe(
        obs("many.example", [f"203.0.113.{i}" for i in range(41, 61)], ATTACKER_V6), 1
    )
    assert not more.decision.created


def test_a_full_memory_forgets_nothing_and_refuses_what_it_cannot_vouch_for():
    """Issue 26: an unexpired answer is never pushed out; an answer that does not fit is not
    kept, and until its TTL would have ended no IPv4 the memory does not hold is mapped."""
    seen = AnswersSeen(capacity=2 * MAX_ADDRESSES)
    for i in range(2):
        many = [f"198.51.100.{16 * i + j}" for j in range(MAX_ADDRESSES)]
        assert seen.remember(obs(f"n{i}.example", many, AaaaStatus.NODATA, ttl=600), 0) == 0
    assert len(seen) == 2 * MAX_ADDRESSES and seen.full()
    late = obs("late.example", "192.0.2.99", AaaaStatus.NODATA, ttl=300)
    assert seen.remember(late, 1) == 1 and seen.refused == 1
    target = IPv6Address(ATTACKER_V6)
    # what it holds still objects; what it could not keep is refused while it may be cached
    assert "n0.example" in seen.objection("x.example", IPv4Address("198.51.100.0"), target, 2)
    assert "full" in seen.objection("x.example", IPv4Address("192.0.2.99"), target, 2)
    assert "full" in seen.objection("x.example", IPv4Address("203.0.113.1"), target, 2)
    assert seen.status(2)["blind_for"] == 299 and seen.status(2)["pairs"] == 32
    seen.expire(601)
    assert len(seen) == 0 and seen.bytes == 0
    assert seen.objection("x.example", IPv4Address("192.0.2.99"), target, 601) is None


def test_five_answers_of_4000_a_records_do_not_open_a_hijack():
    """Issue 26, as measured: five answers of 4,000 A records pushed out (16,384 pairs) what
    vouched for the victims; a hostile name then mapped a victim's IPv4 to its IPv6."""
    eng = engine()
    eng.observe(obs("victim.example", VICTIM_IP, AaaaStatus.NODATA, ttl=600), 0)
    for n in range(5):
        # 198.18.0.0/15 (benchmarking, RFC 2544): data only, no packet goes anywhere
        flood = [str(IPv4Address("198.18.0.0") + (n << 12) + i) for i in range(4000)]
        eng.observe(obs(f"flood{n}.example", flood, AaaaStatus.NODATA, ttl=600), 1 + n)
    assert len(eng.seen) <= 1 + 5 * MAX_ADDRESSES  # what decide reads, nothing more
    out = eng.observe(obs("hostile.example", VICTIM_IP, ATTACKER_V6, ttl=600), 10)
    assert not out.decision.created and reasons(out) == {Reason.UNVOUCHED}


def test_a_name_does_not_object_to_itself_whatever_its_case():
    """The memory keeps names as decide compares them (normalized): an answer for
    Video.Example. never objects to a later one for video.example."""
    from clat_eamt.core.seen import AnswersSeen  # noqa: PLC0415

    seen = AnswersSeen()
    first = Observation("Video.Example.", (IPv4Address("192.0.2.10"),), 300, AaaaStatus.NODATA)
    seen.remember(first, 0.0)
    assert (
        seen.objection("video.example", IPv4Address("192.0.2.10"), IPv6Address("2001:db8::1"), 1.0)
        is None
    )
    assert seen.objection(
        "other.example", IPv4Address("192.0.2.10"), IPv6Address("2001:db8::1"), 1.0
    )


@pytest.mark.parametrize("aaaa", [["2001:db8:1::10"], ["2001:db8:1::11", "2001:db8:1::10"]])
def test_a_names_one_or_several_ipv6_each_vouch(aaaa):
    """The memory keeps one IPv6 as a bare integer and several as a tuple (issue 15): either
    way each of them vouches, and any other IPv6 is objected to with the whole set named."""
    seen = AnswersSeen()
    seen.remember(obs("www.example", "192.0.2.10", aaaa, ttl=600), 0)
    d = IPv4Address("192.0.2.10")
    for x in aaaa:
        assert seen.objection("other.example", d, IPv6Address(x), 1) is None
    said = seen.objection("other.example", d, IPv6Address(ATTACKER_V6), 1)
    listed = ", ".join(sorted(aaaa))
    assert said == f"www.example answered 192.0.2.10 with {listed} (599 s of its TTL left)"


def test_names_together_map_at_most_max_per_target_ipv4s_to_one_ipv6():
    """Issue 26, as measured: five more names pointing their A records at one attacker IPv6
    got 8 each, 56 destinations on one IPv6; only the creation rate limited it."""
    eng = engine()
    cap = eng.policy.max_per_target
    created = 0
    for n in range(7):
        many = [f"203.0.113.{8 * n + i}" for i in range(8)]
        out = eng.observe(obs(f"name{n}.example", many, ATTACKER_V6, ttl=600), n)
        created += len(out.decision.created)
    on_target = [e for e in eng.table if e.ipv6.network_address == IPv6Address(ATTACKER_V6)]
    assert created == len(on_target) == cap == 16
    assert Reason.TARGET_CAP in reasons(out)
    assert "max_ipv4_per_ipv6" in next(r.detail for r in out.refusals)


def test_the_memory_of_answers_costs_no_more_than_its_byte_bound_says():
    """Issue 26: its names and AAAA sets are counted against ``max_bytes`` by an estimate
    (``NAME_COST``, ``ADDRESS_COST``); tracemalloc finds no more than the estimate plus the
    pairs' share, for the largest answers it keeps (255-character names, 16 AAAA each)."""
    import tracemalloc  # noqa: PLC0415

    seen = AnswersSeen()
    tracemalloc.start()
    try:
        for n in range(5000):
            name = (f"n{n:05d}" + "x" * 58 + ".") * 3 + "y" * 60
            a = tuple(IPv4Address(0xC6120000 + 16 * n + i) for i in range(16))
            aaaa = tuple(IPv6Address((1 << 125) + 64 * n + i) for i in range(16))
            seen.remember(Observation(name, a, 600, AaaaStatus.ANSWER, aaaa, 600), 0.0)
            del name, a, aaaa
        used = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert seen.full() and len(seen) <= seen.capacity and seen.bytes <= seen.max_bytes
    assert used <= seen.bytes + PAIR_COST * len(seen), (used, seen.bytes, len(seen))
