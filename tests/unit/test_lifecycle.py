"""SPEC section 3, lifecycle: every allowed transition, and every forbidden one refused."""

from ipaddress import IPv4Network, IPv6Network

import pytest

from clat_eamt.core.lifecycle import (
    EVENTS_ALLOWED,
    MAX_FQDNS,
    REVIVABLE,
    TRANSITIONS,
    Event,
    LifecycleError,
    allowed,
    take_over,
    transition,
    with_fqdn,
)
from clat_eamt.core.model import Entry, Origin, StaleReason, State


def entry(origin=Origin.DNS, state=State.VALID, reason=None, expires=100.0):
    return Entry(
        IPv4Network("192.0.2.10/32"),
        IPv6Network("2001:db8:1::10/128"),
        IPv4Network("198.51.100.1/32"),
        origin,
        state,
        created=0,
        refreshed=0,
        expires=None if origin is Origin.STATIC else expires,
        fqdns=("www.example",),
        stale_reason=reason,
        stale_since=None if reason is None else 50.0,
    )


def test_spec3_refresh_keeps_valid_and_extends_to_the_later_expiry():
    after = transition(entry(expires=100), Event.REFRESH, 10, expires=400, fqdn="cdn.example")
    assert after.state is State.VALID and after.expires == 400 and after.refreshed == 10
    assert after.fqdns == ("www.example", "cdn.example") and after.refreshes == 1
    shorter = transition(entry(expires=100), Event.REFRESH, 10, expires=50, fqdn="x.example")
    assert shorter.expires == 100  # another name still vouches for longer


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (Event.EXPIRE, StaleReason.EXPIRED),
        (Event.CONFLICT, StaleReason.CONFLICT),
        (Event.WITHDRAW, StaleReason.WITHDRAWN),
        (Event.OUTRANK, StaleReason.OUTRANKED),
        (Event.FLUSH, StaleReason.FLUSHED),
        (Event.DELETE, StaleReason.DELETED),
    ],
)
def test_spec3_valid_goes_stale_with_its_reason_and_time(event, reason):
    after = transition(entry(), event, 42)
    assert after.state is State.STALE and after.stale_reason is reason and after.stale_since == 42


def test_spec3_stale_becomes_invalid_when_flows_are_gone():
    stale = entry(state=State.STALE, reason=StaleReason.EXPIRED)
    assert transition(stale, Event.FLOWS_GONE, 99).state is State.INVALID


def test_spec3_valid_entry_is_never_invalidated_directly():
    with pytest.raises(LifecycleError):
        transition(entry(), Event.FLOWS_GONE, 1)


@pytest.mark.parametrize("reason", list(StaleReason))
def test_spec3_stale_revives_only_for_reasons_a_new_answer_cures(reason):
    stale = entry(state=State.STALE, reason=reason)
    assert allowed(stale, Event.REFRESH) is (reason in REVIVABLE)
    if reason in REVIVABLE:
        revived = transition(stale, Event.REFRESH, 60, expires=360, fqdn="www.example")
        assert revived.state is State.VALID and revived.stale_reason is None
        assert revived.expires == 360
    else:
        with pytest.raises(LifecycleError):
            transition(stale, Event.REFRESH, 60, expires=360)


def test_spec3_conflict_is_not_cured_by_one_side_answering_again():
    assert StaleReason.CONFLICT not in REVIVABLE


@pytest.mark.parametrize(
    "event", [Event.REFRESH, Event.EXPIRE, Event.CONFLICT, Event.WITHDRAW, Event.OUTRANK]
)
def test_spec3_static_entries_are_never_changed_automatically(event):
    with pytest.raises(LifecycleError):
        transition(entry(origin=Origin.STATIC), event, 1, expires=10)


def test_spec3_static_entries_change_by_operator_delete_only():
    deleted = transition(entry(origin=Origin.STATIC), Event.DELETE, 5)
    assert deleted.state is State.STALE
    assert take_over(deleted, Origin.STATIC, 6, expires=None).state is State.VALID


def test_take_over_changes_owner_keeps_the_pool_block_and_respects_rank():
    dns = entry()
    static = take_over(dns, Origin.STATIC, 7, expires=None, comment="pinned")
    assert (static.origin, static.state, static.expires, static.pool) == (
        Origin.STATIC,
        State.VALID,
        None,
        dns.pool,
    )
    with pytest.raises(LifecycleError):
        take_over(static, Origin.PROVIDER, 8, expires=100)


@pytest.mark.parametrize("event", [Event.CONFLICT, Event.WITHDRAW, Event.FLUSH])
def test_spec3_dns_events_never_touch_provider_entries(event):
    assert not allowed(entry(origin=Origin.PROVIDER), event)


def test_transition_table_only_names_known_states_and_events():
    for (state, event), target in TRANSITIONS.items():
        assert isinstance(state, State) and isinstance(event, Event) and isinstance(target, State)
    assert set(EVENTS_ALLOWED) == set(Origin)


def test_fqdns_are_bounded_most_recent_last():
    names: tuple[str, ...] = ()
    for i in range(MAX_FQDNS + 5):
        names = with_fqdn(names, f"n{i}.example")
    assert len(names) == MAX_FQDNS and names[-1] == f"n{MAX_FQDNS + 4}.example"
    assert with_fqdn(("a", "b"), "a") == ("b", "a")


@pytest.mark.parametrize("state", [State.VALID, State.STALE])
def test_a_refreshed_entry_written_field_by_field_equals_the_replaced_one(state):
    # Entry.with_refresh copies every field by hand (the refresh per A answer is hot): it must make
    # what replace makes, with every field of the old entry distinct so none can be mixed up.
    old = Entry(
        IPv4Network("192.0.2.0/28"), IPv6Network("2001:db8:1::/124"),
        IPv4Network("198.51.100.16/28"), Origin.PROVIDER, state, created=1.0, refreshed=2.0,
        expires=3.0, fqdns=("a.example",), host="02:00:00:00:00:01", comment="why",
        stale_reason=None if state is State.VALID else StaleReason.EXPIRED,
        stale_since=None if state is State.VALID else 4.0, refreshes=5, cnames=("c.example",),
    )  # fmt: skip
    fast = old.with_refresh(6.0, 7.0, ("a.example", "b.example"))
    slow = old.replace(
        state=State.VALID, refreshed=6.0, expires=7.0, fqdns=("a.example", "b.example"),
        refreshes=6, stale_reason=None, stale_since=None,
    )  # fmt: skip
    assert fast == slow and fast._values() == slow._values()
    assert len(fast._values()) == len(Entry.__slots__)  # every slot set
