"""IPv6-only services (issue 27): the core's decision, P's life and its quarantine, fake clock."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Network

from hypothesis import given, settings
from hypothesis import strategies as st

from clat_eamt.core.counters import Count
from clat_eamt.core.ipv6only import Ipv6OnlyPolicy, status
from clat_eamt.core.limits import CreationLimiter
from clat_eamt.core.model import (
    AaaaStatus,
    EnsureDnat,
    EnsureTranslator,
    LiveFlows,
    Origin,
    Reason,
    RemoveTranslator,
    State,
)
from clat_eamt.core.names import NameFilter
from clat_eamt.core.pool import Pool

from .corekit import LAPTOP, POOL, engine, obs

X1, X2, X3 = "2001:db8:6::1", "2001:db8:6::2", "2001:db8:6::3"
PLACEHOLDER = "203.0.113.99"


def on(quarantine: float = 600.0, placeholders: tuple[str, ...] = (), **kw: object):  # type: ignore[no-untyped-def]
    eng = engine(**kw)  # type: ignore[arg-type]
    eng.ipv6_only = Ipv6OnlyPolicy(
        True, frozenset(IPv4Address(p) for p in placeholders), quarantine
    )
    return eng


def reasons(outcome) -> set[Reason]:  # type: ignore[no-untyped-def]
    assert outcome.decision is not None
    return {r.reason for r in outcome.decision.refusals}


def test_off_by_default_no_a_and_nothing_mapped():
    eng = engine()
    outcome, address, _ = eng.synthesize(obs("v6.example", [], X1), 0)
    assert address is None and len(eng.table) == 0 and outcome.ops == ()


def test_a_nodata_name_with_a_real_aaaa_gets_a_pool_address_on_the_ipv6_leg_only():
    eng = on()
    outcome, address, ttl = eng.synthesize(obs("v6.example", [], X1, ttl=300), 0)
    assert address is not None and address in POOL
    (entry,) = eng.table
    assert entry.origin is Origin.IPV6_ONLY and entry.state is State.VALID
    assert entry.ipv4 == entry.pool == IPv4Network(address)
    assert outcome.ops == (EnsureTranslator(entry.pool, IPv6Network(X1)),)
    assert not any(isinstance(op, EnsureDnat) for op in outcome.ops)  # no IPv4 D to DNAT
    assert ttl == 300 and eng.counters[Count.IPV6_ONLY_ANSWERS] == 1


def test_p_is_stable_across_refreshes_and_the_ttl_is_bounded_by_aaaa_and_mapping_life():
    eng = on(ttl_max=120)
    _, first, ttl = eng.synthesize(obs("v6.example", [], X1, aaaa_ttl=300), 0)
    assert ttl == 120  # the mapping lives 120 s: the A may not outlive it
    eng.synthesize(obs("other.example", [], X2), 1)
    outcome, again, ttl = eng.synthesize(obs("v6.example", [], X1, aaaa_ttl=50), 100)
    assert again == first and outcome.ops == ()  # a refresh changes nothing in the kernel
    assert ttl == 50  # the AAAA's TTL is the smaller one now
    (entry,) = [e for e in eng.table if e.fqdns == ("v6.example",)]
    assert entry.expires == 100 + 50  # ttl_min 30 < 50


def test_dnssec_required_needs_ad_and_names_and_prefixes_are_policed():
    assert on(require_dnssec=True).synthesize(obs("v6.example", [], X1), 0)[1] is None
    ok = on(require_dnssec=True).synthesize(obs("v6.example", [], X1, authenticated=True), 0)
    assert ok[1] is not None
    denied = on(names=NameFilter(deny=("example",)))
    outcome, address, _ = denied.synthesize(obs("v6.example", [], X1), 0)
    assert address is None and reasons(outcome) == {Reason.NAME_DENIED}


def test_synthesized_special_purpose_or_missing_aaaa_gets_no_a():
    eng = on()
    for aaaa in ("2001:db8:64::c000:201", "::1", "fe80::1"):  # DNS64 made, loopback, link-local
        outcome, address, _ = eng.synthesize(obs("v6.example", [], aaaa), 0)
        assert address is None and Reason.NO_AAAA in reasons(outcome)
    for aaaa_status in (AaaaStatus.NODATA, AaaaStatus.SERVFAIL, AaaaStatus.TIMEOUT):
        assert eng.synthesize(obs("v6.example", [], aaaa_status), 0)[1] is None
    assert len(eng.table) == 0


def test_a_name_with_a_records_of_its_own_is_not_this_case():
    eng = on(placeholders=(PLACEHOLDER,))
    for a in (["192.0.2.10"], ["192.0.2.10", PLACEHOLDER]):
        outcome, address, _ = eng.synthesize(obs("ds.example", a, X1), 0)
        assert address is None and outcome.decision is not None
        assert outcome.decision.refusals == ()
    assert len(eng.table) == 0


def test_two_names_sharing_one_placeholder_get_their_own_p_and_no_conflict():
    eng = on(placeholders=(PLACEHOLDER,))
    out1, p1, _ = eng.synthesize(obs("one.example", PLACEHOLDER, X1), 0)
    out2, p2, _ = eng.synthesize(obs("two.example", PLACEHOLDER, X2), 0)
    assert p1 is not None and p2 is not None and p1 != p2
    assert Reason.CONFLICT not in reasons(out1) | reasons(out2)
    assert {e.state for e in eng.table} == {State.VALID}
    # and the same placeholder through the ordinary path is not mapped as a destination
    assert eng.synthesize(obs("one.example", PLACEHOLDER, X1), 5)[1] == p1


def test_two_names_with_the_same_aaaa_share_its_p_and_neither_can_move_it():
    eng = on()
    _, p1, _ = eng.synthesize(obs("one.example", [], X1), 0)
    _, p2, _ = eng.synthesize(obs("evil.example", [], X1), 1)
    assert p1 == p2  # one target, one P: reaching P reaches X1, which both names say
    (entry,) = eng.table
    assert set(entry.fqdns) == {"one.example", "evil.example"}
    _, p3, _ = eng.synthesize(obs("evil.example", [], X2), 2)
    assert p3 != p1  # another target never takes P over
    assert eng.table.pool.owner_of(p1).target == IPv6Network(X1)  # type: ignore[union-attr]


def test_table_cap_creation_rate_and_host_gate_count_these_entries():
    full = on(max_entries=1)
    full.observe(obs("ds.example", "192.0.2.10", X3), 0)
    outcome, address, _ = full.synthesize(obs("v6.example", [], X1), 1)
    assert address is None and reasons(outcome) == {Reason.TABLE_FULL}
    slow = on(limiter=CreationLimiter(1, 1, 1000, 1000))
    assert slow.synthesize(obs("a.example", [], X1), 0)[1] is not None
    outcome, address, _ = slow.synthesize(obs("b.example", [], X2), 0)
    assert address is None and reasons(outcome) == {Reason.RATE_LIMITED}
    outcome, address, _ = on().synthesize(obs("v6.example", [], X1, host=LAPTOP), 0)
    assert address is None and reasons(outcome) == {Reason.HOST_NOT_ELIGIBLE}


def _end(eng, t: float) -> None:  # type: ignore[no-untyped-def]
    eng.tick(t, live=LiveFlows())  # Valid -> Stale at expiry
    eng.tick(t + eng.policy.stale_linger, live=LiveFlows())  # no flows: deleted


def test_after_the_mapping_ends_p_is_quarantined_then_free_again():
    eng = on(quarantine=600, stale_linger=0, ttl_min=0)
    _, p, _ = eng.synthesize(obs("gone.example", [], X1, aaaa_ttl=60), 0)
    assert p is not None
    _end(eng, 60)
    assert len(eng.table) == 0 and eng.table.pool.lease_of(IPv6Network(X1)) is None
    _, other, _ = eng.synthesize(obs("new.example", [], X2), 61)
    assert other is not None and other != p  # a lower free address would have been p
    assert eng.table.pool.owner_of(p) is None  # held, leased to nobody: the leg is gone
    assert status(eng.ipv6_only, eng.table, eng.held)["quarantined"] == 1
    eng.tick(60 + 599, live=LiveFlows())
    assert eng.table.pool.peek(IPv6Network(X3)) != IPv4Network(p)
    eng.tick(60 + 600, live=LiveFlows())
    assert eng.table.pool.peek(IPv6Network(X3)) == IPv4Network(p)


def test_the_same_target_gets_its_own_p_back_during_the_quarantine():
    eng = on(quarantine=600, stale_linger=0, ttl_min=0)
    _, p, _ = eng.synthesize(obs("back.example", [], X1, aaaa_ttl=60), 0)
    _end(eng, 60)
    outcome, again, _ = eng.synthesize(obs("back.example", [], X1, aaaa_ttl=60), 100)
    assert again == p and outcome.ops == (EnsureTranslator(IPv4Network(p), IPv6Network(X1)),)
    eng.table.check_invariants()


def test_deleting_the_entry_removes_the_ipv6_leg():
    eng = on(stale_linger=0, ttl_min=0)
    _, p, _ = eng.synthesize(obs("gone.example", [], X1, aaaa_ttl=60), 0)
    eng.tick(60, live=LiveFlows())
    out = eng.tick(60, live=LiveFlows())
    assert out.ops == (RemoveTranslator(IPv4Network(p), IPv6Network(X1)),)


def test_pool_hold_keeps_a_free_block_from_every_lease():
    pool = Pool(IPv4Network("198.51.100.0/29"))
    first = pool.peek(IPv6Network(X1))
    assert first is not None
    pool.hold(first)
    assert pool.peek(IPv6Network(X1)) != first and pool.owner_of(first.network_address) is None
    pool.unhold(first)
    assert pool.peek(IPv6Network(X1)) == first


NAMES = [(f"n{i}.example", f"2001:db8:6::{i + 1}") for i in range(4)]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 400), st.integers(0, 200)),
        min_size=1,
        max_size=30,
    ),
    st.integers(0, 900),
)
def test_p_never_goes_to_another_target_within_the_quarantine_after_its_a_lived(steps, q):
    """Whatever the timing: an address handed out for X with TTL t at time s goes to no other
    target before s + t + quarantine (a device keeps it at most t, plus its own slack)."""
    eng = on(quarantine=q, stale_linger=0, ttl_min=0, pool=IPv4Network("198.51.100.0/29"))
    last: dict[IPv4Address, tuple[str, float]] = {}
    now = 0.0
    for who, advance, aaaa_ttl in steps:
        now += advance
        eng.tick(now, live=LiveFlows())
        eng.tick(now, live=LiveFlows())
        name, target = NAMES[who]
        _, address, ttl = eng.synthesize(obs(name, [], target, aaaa_ttl=aaaa_ttl), now)
        if address is None:
            continue
        previous = last.get(address)
        if previous is not None and previous[0] != target:
            assert now >= previous[1], (address, previous, target, now)
        end = now + ttl + q
        last[address] = (
            target,
            max(end, previous[1]) if previous and previous[0] == target else end,
        )
        eng.table.check_invariants()


def test_a_hostile_name_whose_a_is_p_cannot_move_p_elsewhere():
    eng = on()
    _, p, _ = eng.synthesize(obs("v6.example", [], X1), 0)
    assert p is not None
    outcome = eng.observe(obs("evil.example", str(p), X2), 1)
    assert Reason.COVERED in reasons(outcome) and outcome.ops == ()
    assert eng.table.pool.owner_of(p).target == IPv6Network(X1)  # type: ignore[union-attr]
    assert [e.origin for e in eng.table] == [Origin.IPV6_ONLY]
