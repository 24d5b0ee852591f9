"""SPEC sections 3-5: the decision function, one clause per test (through the engine, which
commits what ``decide`` returns)."""

from ipaddress import IPv4Address, IPv4Network, IPv6Address

import pytest

from clat_eamt.core.addresses import AddressPolicy
from clat_eamt.core.decide import HostMode, choose_target, decide
from clat_eamt.core.limits import CreationLimiter
from clat_eamt.core.model import (
    AaaaStatus,
    EnsureDnat,
    EnsureTranslator,
    Host,
    HostClass,
    LiveFlows,
    Reason,
    RemoveDnat,
    StaleReason,
    State,
)
from clat_eamt.core.names import NameFilter

from .corekit import LAPTOP, TV, engine, obs, v4, v6


def reasons(outcome):
    return {r.reason for r in outcome.refusals}


def test_spec3_dual_stack_name_creates_a_valid_entry_and_the_dataplane_ops():
    eng = engine()
    out = eng.observe(obs("www.example", "192.0.2.10", "2001:db8:1::10", ttl=300), 0)
    (entry,) = eng.table
    assert (entry.ipv4, entry.ipv6, entry.state) == (
        v4("192.0.2.10/32"),
        v6("2001:db8:1::10/128"),
        State.VALID,
    )
    assert entry.expires == 300 and entry.fqdns == ("www.example",) and entry.host == TV.key
    assert out.ops == (
        EnsureTranslator(entry.pool, entry.ipv6),
        EnsureDnat(entry.ipv4, entry.pool),
    )
    assert entry.pool.subnet_of(v4("198.51.100.0/24"))


def test_spec3_ttl_is_min_of_a_and_aaaa_within_floor_and_ceiling():
    eng = engine(ttl_min=30, ttl_max=3600)
    eng.observe(obs("a.example", "192.0.2.1", "2001:db8:1::1", ttl=600, aaaa_ttl=120), 0)
    eng.observe(obs("b.example", "192.0.2.2", "2001:db8:1::2", ttl=5), 0)
    eng.observe(obs("c.example", "192.0.2.3", "2001:db8:1::3", ttl=86400), 0)
    expiry = {e.fqdns[0]: e.expires for e in eng.table}
    assert expiry == {"a.example": 120, "b.example": 30, "c.example": 3600}


def test_spec3_ipv4_only_name_maps_nothing():
    eng = engine()
    out = eng.observe(obs("v4only.example", "192.0.2.20", AaaaStatus.NODATA), 0)
    assert len(eng.table) == 0 and Reason.NO_AAAA in reasons(out) and out.ops == ()


def test_spec3_dns64_synthesized_aaaa_maps_nothing():
    eng = engine()
    out = eng.observe(obs("v4only.example", "192.0.2.20", "2001:db8:64::c000:214"), 0)
    assert len(eng.table) == 0 and reasons(out) == {Reason.SYNTHESIZED}


def test_spec3_synthesized_aaaa_under_an_unknown_prefix_maps_nothing():
    eng = engine()
    out = eng.observe(obs("v4only.example", "192.0.2.20", "2001:db8:99::c000:214"), 0)
    assert len(eng.table) == 0 and reasons(out) == {Reason.SYNTHESIZED}


def test_spec3_one_real_aaaa_among_synthesized_ones_is_enough():
    eng = engine()
    eng.observe(obs("mixed.example", "192.0.2.20", ["64:ff9b::c000:214", "2001:db8:1::20"]), 0)
    (entry,) = eng.table
    assert entry.ipv6 == v6("2001:db8:1::20/128")


@pytest.mark.parametrize("status", [AaaaStatus.SERVFAIL, AaaaStatus.TIMEOUT])
def test_spec3_aaaa_failure_or_timeout_releases_unmapped_and_changes_nothing(status):
    eng = engine()
    eng.observe(obs("www.example", "192.0.2.10", "2001:db8:1::10"), 0)
    out = eng.observe(obs("www.example", "192.0.2.10", status), 10)
    assert reasons(out) == {Reason.AAAA_UNKNOWN} and out.events == ()
    assert next(iter(eng.table)).state is State.VALID


def test_spec4_special_purpose_aaaa_is_refused_with_the_reason():
    eng = engine()
    out = eng.observe(obs("evil.example", "192.0.2.10", "fd00::1"), 0)
    (refusal,) = out.refusals
    assert refusal.reason is Reason.SPECIAL_PURPOSE and "unique-local" in refusal.detail
    assert len(eng.table) == 0


def test_spec4_special_purpose_a_record_is_refused():
    eng = engine()
    out = eng.observe(obs("evil.example", "10.1.2.3", "2001:db8:1::10"), 0)
    assert reasons(out) == {Reason.SPECIAL_PURPOSE} and len(eng.table) == 0


def test_spec4_excluded_lan_address_is_refused():
    lan = AddressPolicy(allow_documentation=True, excluded=(v4("192.0.2.0/28"),))
    eng = engine(addresses=lan)
    out = eng.observe(obs("router.example", "192.0.2.1", "2001:db8:1::1"), 0)
    assert reasons(out) == {Reason.EXCLUDED}


def test_spec3_refresh_on_a_matching_answer_extends_the_expiry():
    eng = engine()
    eng.observe(obs("www.example", "192.0.2.10", "2001:db8:1::10", ttl=300), 0)
    out = eng.observe(obs("www.example", "192.0.2.10", "2001:db8:1::10", ttl=300), 200)
    (entry,) = eng.table
    assert entry.expires == 500 and entry.refreshes == 1 and out.ops == ()
    assert [e.kind for e in out.events] == ["refreshed"]


def test_spec3_conflict_makes_the_existing_entry_stale_and_creates_nothing():
    eng = engine()
    eng.observe(obs("a.example", "192.0.2.10", "2001:db8:1::a"), 0)
    out = eng.observe(obs("b.example", "192.0.2.10", "2001:db8:1::b"), 5)
    (entry,) = eng.table
    assert entry.state is State.STALE and entry.stale_reason is StaleReason.CONFLICT
    assert entry.ipv6 == v6("2001:db8:1::a/128")
    assert out.ops == (RemoveDnat(v4("192.0.2.10/32")),)
    assert reasons(out) == {Reason.CONFLICT}


def test_spec3_conflicting_address_stays_quarantined_until_both_answers_expire():
    eng = engine()
    eng.observe(obs("a.example", "192.0.2.10", "2001:db8:1::a", ttl=300), 0)
    eng.observe(obs("b.example", "192.0.2.10", "2001:db8:1::b", ttl=600), 5)
    again = eng.observe(obs("b.example", "192.0.2.10", "2001:db8:1::b"), 100)
    assert reasons(again) == {Reason.CONFLICT} and len(eng.table) == 1
    eng.tick(700, live=None)
    later = eng.observe(obs("b.example", "192.0.2.10", "2001:db8:1::b"), 701)
    assert [e.kind for e in later.events] == ["added"]


def test_spec3_two_names_agreeing_on_the_mapping_share_one_entry():
    eng = engine()
    eng.observe(obs("a.example", "192.0.2.10", "2001:db8:1::10"), 0)
    eng.observe(obs("b.example", "192.0.2.10", "2001:db8:1::10"), 1)
    (entry,) = eng.table
    assert entry.fqdns == ("a.example", "b.example") and entry.state is State.VALID


def test_spec5_several_ipv4s_to_one_ipv6_share_one_pool_address():
    eng = engine()
    eng.observe(obs("cdn.example", ["192.0.2.10", "192.0.2.11", "192.0.2.12"], "2001:db8:1::1"), 0)
    pools = {e.pool for e in eng.table}
    assert len(eng.table) == 3 and len(pools) == 1
    assert eng.table.pool.lease_of(v6("2001:db8:1::1/128")).refs == 3


def test_spec5_choice_among_several_aaaa_is_deterministic_and_stable():
    aaaa = ["2001:db8:1::1", "2001:db8:1::2", "2001:db8:1::3"]
    first = engine()
    first.observe(obs("multi.example", "192.0.2.10", aaaa), 0)
    second = engine()
    second.observe(obs("multi.example", "192.0.2.10", list(reversed(aaaa))), 0)
    assert [e.ipv6 for e in first.table] == [e.ipv6 for e in second.table]
    chosen = next(iter(first.table)).ipv6
    # refresh with the answer order shuffled and one more record: same choice
    first.observe(obs("multi.example", "192.0.2.10", [*aaaa[::-1], "2001:db8:1::0"]), 10)
    assert [e.ipv6 for e in first.table] == [chosen]


def test_spec5_choice_prefers_an_address_that_is_already_mapped():
    eng = engine()
    eng.observe(obs("one.example", "192.0.2.10", "2001:db8:1::7"), 0)
    eng.observe(obs("two.example", "192.0.2.11", ["2001:db8:1::1", "2001:db8:1::7"]), 1)
    assert {e.ipv6 for e in eng.table} == {v6("2001:db8:1::7/128")}


def test_choose_target_hash_is_independent_of_answer_order():
    eng = engine()
    targets = sorted(IPv6Address(f"2001:db8:1::{i}") for i in range(1, 6))
    dests = [IPv4Address("192.0.2.1")]
    picks = {choose_target(f"n{i}.example", targets, dests, eng.table) for i in range(40)}
    assert len(picks) > 1  # spread over the candidates
    assert choose_target("n1.example", targets, dests, eng.table) == choose_target(
        "n1.example", targets, dests, eng.table
    )


def test_spec3_same_name_whose_aaaa_moved_keeps_its_entry_until_the_ttl_ends():
    eng = engine()
    eng.observe(obs("www.example", "192.0.2.10", "2001:db8:1::10", ttl=300), 0)
    out = eng.observe(obs("www.example", "192.0.2.10", "2001:db8:1::99", ttl=300), 100)
    (entry,) = eng.table
    assert entry.ipv6 == v6("2001:db8:1::10/128") and entry.expires == 300
    assert out.events == () and "kept until its TTL ends" in out.decision.notes[0]


def test_spec3_name_that_lost_its_aaaa_withdraws_and_the_entry_goes_stale():
    eng = engine()
    eng.observe(obs("www.example", "192.0.2.10", "2001:db8:1::10"), 0)
    out = eng.observe(obs("www.example", "192.0.2.10", AaaaStatus.NODATA), 50)
    (entry,) = eng.table
    assert entry.state is State.STALE and entry.stale_reason is StaleReason.WITHDRAWN
    assert out.ops == (RemoveDnat(v4("192.0.2.10/32")),)


def test_spec3_withdrawal_by_one_of_two_names_keeps_the_entry_valid():
    eng = engine()
    eng.observe(obs("a.example", "192.0.2.10", "2001:db8:1::10"), 0)
    eng.observe(obs("b.example", "192.0.2.10", "2001:db8:1::10"), 1)
    eng.observe(obs("a.example", "192.0.2.10", "2001:db8:64::c000:20a"), 2)
    (entry,) = eng.table
    assert entry.state is State.VALID and entry.fqdns == ("b.example",)


def test_spec3_expired_entry_is_revived_by_a_matching_answer():
    eng = engine()
    eng.observe(obs("www.example", "192.0.2.10", "2001:db8:1::10", ttl=60), 0)
    eng.tick(61, live=None)
    out = eng.observe(obs("www.example", "192.0.2.10", "2001:db8:1::10", ttl=60), 62)
    (entry,) = eng.table
    assert entry.state is State.VALID and entry.expires == 122
    assert [e.kind for e in out.events] == ["revived"]
    assert out.ops == (EnsureDnat(entry.ipv4, entry.pool),)


def test_spec3_new_target_after_expiry_gets_a_new_entry_beside_the_draining_one():
    eng = engine()
    eng.observe(obs("www.example", "192.0.2.10", "2001:db8:1::10", ttl=60), 0)
    eng.tick(61, live=None)
    eng.observe(obs("www.example", "192.0.2.10", "2001:db8:1::20", ttl=60), 62)
    states = {str(e.ipv6): e.state for e in eng.table}
    assert states == {"2001:db8:1::10/128": State.STALE, "2001:db8:1::20/128": State.VALID}
    eng.table.check_invariants()


def test_spec3_dual_stack_host_does_not_trigger_a_mapping():
    eng = engine()
    out = eng.observe(obs("www.example", "192.0.2.10", "2001:db8:1::10", host=LAPTOP), 0)
    assert len(eng.table) == 0 and reasons(out) == {Reason.HOST_NOT_ELIGIBLE}


@pytest.mark.parametrize("host", [None, Host("02:00:00:00:00:09", HostClass.UNKNOWN)])
def test_spec3_when_unsure_do_not_optimize(host):
    eng = engine()
    out = eng.observe(obs("www.example", "192.0.2.10", "2001:db8:1::10", host=host), 0)
    assert len(eng.table) == 0 and reasons(out) == {Reason.HOST_NOT_ELIGIBLE}


def test_host_mode_all_maps_for_unknown_hosts():
    eng = engine(host_mode=HostMode.ALL)
    eng.observe(obs("www.example", "192.0.2.10", "2001:db8:1::10", host=None), 0)
    assert len(eng.table) == 1


def test_spec3_dual_stack_host_answer_still_refreshes_an_existing_entry():
    eng = engine()
    eng.observe(obs("www.example", "192.0.2.10", "2001:db8:1::10", ttl=100), 0)
    eng.observe(obs("www.example", "192.0.2.10", "2001:db8:1::10", ttl=100, host=LAPTOP), 50)
    assert next(iter(eng.table)).expires == 150


def test_spec3_dnssec_required_refuses_unvalidated_answers():
    eng = engine(require_dnssec=True)
    out = eng.observe(obs("www.example", "192.0.2.10", "2001:db8:1::10"), 0)
    assert reasons(out) == {Reason.NOT_VALIDATED} and len(eng.table) == 0
    eng.observe(obs("www.example", "192.0.2.10", "2001:db8:1::10", authenticated=True), 1)
    assert len(eng.table) == 1


def test_not_an_a_query_is_passed_through():
    out = engine().observe(obs("www.example", "192.0.2.10", "2001:db8:1::10", qtype="MX"), 0)
    assert reasons(out) == {Reason.NOT_A_QUERY}


def test_disabled_optimization_maps_nothing():
    out = engine(enabled=False).observe(obs("www.example", "192.0.2.10", "2001:db8:1::10"), 0)
    assert reasons(out) == {Reason.DISABLED}


def test_spec4_name_deny_and_allow_lists():
    eng = engine(names=NameFilter.of(allow=["example"], deny=["ads.example"]))
    denied = eng.observe(obs("x.ads.example", "192.0.2.10", "2001:db8:1::10"), 0)
    other = eng.observe(obs("www.example.net", "192.0.2.11", "2001:db8:1::11"), 0)
    assert reasons(denied) == {Reason.NAME_DENIED}
    assert reasons(other) == {Reason.NAME_NOT_ALLOWED} and len(eng.table) == 0


def test_spec4_table_size_is_capped():
    eng = engine(max_entries=2)
    out = eng.observe(
        obs("cdn.example", ["192.0.2.1", "192.0.2.2", "192.0.2.3"], "2001:db8:1::1"), 0
    )
    assert len(eng.table) == 2 and reasons(out) == {Reason.TABLE_FULL}


def test_spec4_global_creation_rate_is_capped_and_recovers():
    eng = engine(limiter=CreationLimiter(rate=1, burst=2, host_rate=100, host_burst=100))
    out = eng.observe(obs("cdn.example", ["192.0.2.1", "192.0.2.2", "192.0.2.3"], "2001:db8::1"), 0)
    assert len(eng.table) == 2 and reasons(out) == {Reason.RATE_LIMITED}
    eng.observe(obs("cdn.example", ["192.0.2.1", "192.0.2.2", "192.0.2.3"], "2001:db8::1"), 1)
    assert len(eng.table) == 3


def test_spec4_per_host_creation_rate_is_capped():
    eng = engine(limiter=CreationLimiter(rate=100, burst=100, host_rate=1, host_burst=1))
    out = eng.observe(obs("cdn.example", ["192.0.2.1", "192.0.2.2"], "2001:db8:1::1"), 0)
    assert reasons(out) == {Reason.HOST_RATE_LIMITED} and len(eng.table) == 1


def test_pool_exhaustion_refuses_new_mappings_counts_and_recovers():
    eng = engine(pool=IPv4Network("198.51.100.0/30"))  # two usable addresses
    for i in range(3):
        eng.observe(obs(f"n{i}.example", f"192.0.2.{i + 1}", f"2001:db8:1::{i + 1}", ttl=30), 0)
    assert len(eng.table) == 2 and eng.counters["refused.pool-exhausted"] == 1
    eng.tick(31, live=None)  # expire
    eng.tick(100, live=None)  # no oracle: nothing deleted
    assert len(eng.table) == 2
    eng.tick(101, live=LiveFlows())
    eng.observe(obs("n2.example", "192.0.2.3", "2001:db8:1::3"), 102)
    assert [e.fqdns for e in eng.table] == [("n2.example",)]


def test_decide_reads_and_never_writes():
    eng = engine()
    before = eng.table.pool.free
    decision = decide(
        obs("www.example", "192.0.2.10", "2001:db8:1::10"), eng.table, eng.limiter, eng.policy, 0
    )
    assert decision.created and len(eng.table) == 0 and eng.table.pool.free == before


def test_without_client_identity_any_answer_creates_when_the_lan_has_ipv4_only_hosts():
    """Issue 13: dnsmasq's default (no addmac/addsubnet, cache on) names no client; entries
    are then made from any answer while an IPv4-only host exists (the host sets steer per
    packet), and none at all without one."""
    nobody = engine(ipv4_only_hosts=False)
    out = nobody.observe(obs("www.example", "192.0.2.10", "2001:db8:1::10", host=None), 0)
    assert reasons(out) == {Reason.HOST_NOT_ELIGIBLE} and len(nobody.table) == 0
    lan = engine(ipv4_only_hosts=True)
    lan.observe(obs("www.example", "192.0.2.10", "2001:db8:1::10", host=None), 0)
    assert len(lan.table) == 1
    # A known dual-stack client still creates nothing (client identity opted in).
    out = lan.observe(obs("v.example", "192.0.2.11", "2001:db8:1::11", host=LAPTOP), 0)
    assert reasons(out) == {Reason.HOST_NOT_ELIGIBLE}
