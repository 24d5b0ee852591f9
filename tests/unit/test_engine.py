"""The engine's time, operator and provider paths, and the dataplane operations they return."""

from ipaddress import IPv4Address

import pytest

from clat_eamt.core.engine import StaticSpec
from clat_eamt.core.model import (
    EnsureDnat,
    EnsureTranslator,
    LiveFlows,
    Origin,
    Reason,
    RemoveDnat,
    RemoveTranslator,
    StaleReason,
    State,
)

from .corekit import engine, obs, v4, v6


def flows(*pairs):
    return LiveFlows(frozenset((IPv4Address(d), IPv4Address(p)) for d, p in pairs))


def only(eng):
    (entry,) = eng.table
    return entry


def test_spec3_ttl_expiry_makes_the_entry_stale_and_removes_only_its_dnat():
    eng = engine()
    eng.observe(obs("www.example", "192.0.2.10", "2001:db8:1::10", ttl=60), 0)
    assert eng.tick(59, live=LiveFlows()).ops == ()
    out = eng.tick(60, live=LiveFlows())
    entry = only(eng)
    assert entry.state is State.STALE and entry.stale_reason is StaleReason.EXPIRED
    assert out.ops == (RemoveDnat(entry.ipv4),)  # translator entry stays for running flows


def test_spec3_stale_entry_with_live_flows_is_kept_with_its_translator_entry():
    eng = engine(stale_linger=0)
    eng.observe(obs("www.example", "192.0.2.10", "2001:db8:1::10", ttl=60), 0)
    eng.tick(60, live=LiveFlows())
    pool = str(only(eng).pool.network_address)
    for t in (61, 3600, 7200):  # a stream lasting hours
        assert eng.tick(t, live=flows(("192.0.2.10", pool))).ops == ()
    assert only(eng).state is State.STALE


def test_spec3_stale_entry_becomes_invalid_and_is_deleted_when_its_flows_end():
    eng = engine(stale_linger=0)
    eng.observe(obs("www.example", "192.0.2.10", "2001:db8:1::10", ttl=60), 0)
    eng.tick(60, live=LiveFlows())
    entry = only(eng)
    out = eng.tick(61, live=LiveFlows())
    assert len(eng.table) == 0
    assert out.ops == (RemoveTranslator(entry.pool, entry.ipv6),)
    assert [e.kind for e in out.events] == ["removed"]
    assert out.events[0].entry.state is State.INVALID
    assert eng.table.pool.free == eng.table.pool.size


def test_stale_entry_lingers_before_its_flows_are_checked():
    eng = engine(stale_linger=30)
    eng.observe(obs("www.example", "192.0.2.10", "2001:db8:1::10", ttl=60), 0)
    eng.tick(60, live=LiveFlows())
    eng.tick(89, live=LiveFlows())
    assert len(eng.table) == 1
    eng.tick(90, live=LiveFlows())
    assert len(eng.table) == 0


def test_flow_oracle_failure_deletes_nothing():
    eng = engine(stale_linger=0)
    eng.observe(obs("www.example", "192.0.2.10", "2001:db8:1::10", ttl=60), 0)
    eng.tick(60, live=None)
    eng.tick(10_000, live=None)
    assert only(eng).state is State.STALE


def test_shared_pool_address_stays_until_the_last_entry_using_it_is_deleted():
    eng = engine(stale_linger=0)
    eng.observe(obs("cdn.example", ["192.0.2.1", "192.0.2.2"], "2001:db8:1::1", ttl=60), 0)
    pool = str(next(iter(eng.table)).pool.network_address)
    eng.tick(60, live=LiveFlows())
    out = eng.tick(61, live=flows(("192.0.2.2", pool)))  # one flow left on 192.0.2.2
    assert len(eng.table) == 1 and out.ops == ()  # translator entry still needed
    out = eng.tick(62, live=LiveFlows())
    assert out.ops and isinstance(out.ops[-1], RemoveTranslator)


def test_spec3_static_entries_are_installed_and_outrank_dns():
    eng = engine()
    eng.observe(obs("www.example", "192.0.2.10", "2001:db8:1::10"), 0)
    out = eng.sync_static([StaticSpec(v4("192.0.2.0/28"), v6("2001:db8:5::/124"), "cdn")], 1)
    static = next(e for e in eng.table if e.origin is Origin.STATIC)
    dns = next(e for e in eng.table if e.origin is Origin.DNS)
    assert static.state is State.VALID and static.expires is None and static.comment == "cdn"
    assert static.pool.prefixlen == 28
    assert dns.state is State.STALE and dns.stale_reason is StaleReason.OUTRANKED
    assert EnsureTranslator(static.pool, static.ipv6) in out.ops
    assert EnsureDnat(static.ipv4, static.pool) in out.ops
    assert out.ops.index(EnsureTranslator(static.pool, static.ipv6)) < out.ops.index(
        EnsureDnat(static.ipv4, static.pool)
    )
    eng.table.check_invariants()


def test_spec3_dns_answer_never_overrides_a_static_entry():
    eng = engine()
    eng.sync_static([StaticSpec(v4("192.0.2.0/28"), v6("2001:db8:5::/124"))], 0)
    before = list(eng.table)
    out = eng.observe(obs("www.example", "192.0.2.10", "2001:db8:1::10"), 1)
    assert {r.reason for r in out.refusals} == {Reason.COVERED}
    assert list(eng.table) == before


def test_sync_static_is_a_diff_and_idempotent():
    eng = engine()
    specs = [
        StaticSpec(v4("192.0.2.16/28"), v6("2001:db8:5::/124")),
        StaticSpec(v4("192.0.2.32/32"), v6("2001:db8:6::1/128")),
    ]
    first = eng.sync_static(specs, 0)
    assert len(first.ops) == 4
    assert eng.sync_static(specs, 1).ops == ()
    out = eng.sync_static(specs[:1], 2)
    assert out.ops == (RemoveDnat(v4("192.0.2.32/32")),)
    gone = next(e for e in eng.table if e.ipv4 == v4("192.0.2.32/32"))
    assert gone.state is State.STALE and gone.stale_reason is StaleReason.DELETED


def test_static_entries_may_not_overlap_each_other():
    eng = engine()
    eng.add_static(v4("192.0.2.16/28"), v6("2001:db8:5::/124"), 0)
    out = eng.add_static(v4("192.0.2.20/32"), v6("2001:db8:6::1/128"), 0)
    assert {r.reason for r in out.refusals} == {Reason.COVERED}


def test_static_entry_with_unequal_suffix_lengths_is_an_error():
    with pytest.raises(ValueError, match="suffix"):
        engine().add_static(v4("192.0.2.0/24"), v6("2001:db8:5::/64"), 0)


def test_operator_delete_then_re_add_of_a_static_entry():
    eng = engine()
    eng.add_static(v4("192.0.2.16/28"), v6("2001:db8:5::/124"), 0)
    eng.delete(v4("192.0.2.16/28"), 1)
    assert only(eng).state is State.STALE
    out = eng.add_static(v4("192.0.2.16/28"), v6("2001:db8:5::/124"), 2)
    assert only(eng).state is State.VALID and [e.kind for e in out.events] == ["revived"]


def test_spec3_provider_entry_outranks_dns_and_expires_by_its_ttl():
    eng = engine()
    eng.observe(obs("www.example", "192.0.2.10", "2001:db8:1::10"), 0)
    eng.upsert_provider(v4("192.0.2.10/32"), v6("2001:db8:7::10/128"), ttl=100, now=1)
    provider = next(e for e in eng.table if e.origin is Origin.PROVIDER)
    dns = next(e for e in eng.table if e.origin is Origin.DNS)
    assert provider.state is State.VALID and provider.expires == 101
    assert dns.stale_reason is StaleReason.OUTRANKED
    out = eng.observe(obs("www.example", "192.0.2.10", "2001:db8:1::10"), 2)
    assert {r.reason for r in out.refusals} == {Reason.COVERED}
    eng.upsert_provider(v4("192.0.2.10/32"), v6("2001:db8:7::10/128"), ttl=100, now=50)
    assert next(e for e in eng.table if e.origin is Origin.PROVIDER).expires == 150
    eng.tick(151, live=None)
    assert next(e for e in eng.table if e.origin is Origin.PROVIDER).state is State.STALE


def test_spec3_provider_entry_never_overrides_a_static_one():
    eng = engine()
    eng.add_static(v4("192.0.2.16/28"), v6("2001:db8:5::/124"), 0)
    out = eng.upsert_provider(v4("192.0.2.17/32"), v6("2001:db8:7::1/128"), ttl=100, now=1)
    assert {r.reason for r in out.refusals} == {Reason.COVERED} and len(eng.table) == 1


def test_flush_makes_dns_entries_stale_and_keeps_static_ones():
    eng = engine()
    eng.add_static(v4("192.0.2.16/28"), v6("2001:db8:5::/124"), 0)
    eng.observe(obs("www.example", "192.0.2.10", "2001:db8:1::10"), 0)
    out = eng.flush(1)
    states = {e.origin: (e.state, e.stale_reason) for e in eng.table}
    assert states[Origin.DNS] == (State.STALE, StaleReason.FLUSHED)
    assert states[Origin.STATIC] == (State.VALID, None)
    assert out.ops == (RemoveDnat(v4("192.0.2.10/32")),)


def test_counters_count_what_happened():
    eng = engine(stale_linger=0)
    eng.observe(obs("www.example", "192.0.2.10", "2001:db8:1::10", ttl=60), 0)
    eng.observe(obs("www.example", "192.0.2.10", "2001:db8:1::10", ttl=60), 1)
    eng.observe(obs("v4.example", "192.0.2.11", "2001:db8:64::c000:20b"), 1)
    eng.tick(61, live=LiveFlows())
    eng.tick(62, live=LiveFlows())
    c = eng.counters
    assert (c["observed"], c["created"], c["refreshed"]) == (3, 1, 1)
    assert (c["refused.synthesized"], c["stale.expired"], c["deleted"]) == (1, 1, 1)


def test_entry_gone_stale_at_time_zero_still_drains():
    """Regression (found by the property test): stale_since == 0.0 is a real time."""
    eng = engine(stale_linger=5)
    eng.add_static(v4("192.0.2.3/32"), v6("2001:db8:6::3/128"), 0.0)
    eng.delete(v4("192.0.2.3/32"), 0.0)
    eng.tick(10.0, live=LiveFlows())
    assert len(eng.table) == 0


def test_operator_static_entry_takes_over_a_dns_entry_of_the_same_mapping():
    eng = engine()
    eng.observe(obs("www.example", "192.0.2.10", "2001:db8:1::10"), 0)
    pool = only(eng).pool
    out = eng.add_static(v4("192.0.2.10/32"), v6("2001:db8:1::10/128"), 1, "pinned")
    entry = only(eng)
    assert (entry.origin, entry.state, entry.expires, entry.pool) == (
        Origin.STATIC,
        State.VALID,
        None,
        pool,
    )
    assert out.ops == () and [e.kind for e in out.events] == ["added"]
    eng.table.check_invariants()


def test_provider_cannot_take_over_a_static_entry_of_the_same_mapping():
    eng = engine()
    eng.add_static(v4("192.0.2.10/32"), v6("2001:db8:1::10/128"), 0)
    out = eng.upsert_provider(v4("192.0.2.10/32"), v6("2001:db8:1::10/128"), ttl=60, now=1)
    assert {r.reason for r in out.refusals} == {Reason.COVERED}
    assert only(eng).origin is Origin.STATIC


def test_newer_provider_entry_outranks_an_older_overlapping_one():
    eng = engine()
    eng.upsert_provider(v4("192.0.2.10/32"), v6("2001:db8:7::1/128"), ttl=100, now=0)
    eng.upsert_provider(v4("192.0.2.10/32"), v6("2001:db8:7::2/128"), ttl=100, now=1)
    states = {str(e.ipv6): (e.state, e.stale_reason) for e in eng.table}
    assert states == {
        "2001:db8:7::1/128": (State.STALE, StaleReason.OUTRANKED),
        "2001:db8:7::2/128": (State.VALID, None),
    }


def test_provider_cannot_take_over_a_deleted_static_entry_still_draining():
    """Regression (found by the property test): the draining static entry keeps its owner."""
    eng = engine()
    eng.add_static(v4("192.0.2.1/32"), v6("2001:db8:1::1/128"), 0)
    eng.delete(v4("192.0.2.1/32"), 0)
    out = eng.upsert_provider(v4("192.0.2.1/32"), v6("2001:db8:1::1/128"), ttl=1, now=1)
    assert {r.reason for r in out.refusals} == {Reason.COVERED}
    assert only(eng).origin is Origin.STATIC and only(eng).state is State.STALE
