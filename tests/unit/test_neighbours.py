"""Host classification from neighbour entries (SPEC section 3): the pure core and its memory
between looks (the real dump runs in tests/integration/test_neighbours_lab.py; the runtime's
use of it in tests/unit/test_runtime.py)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clat_eamt.core.hosts import HostMemory, Neighbour, Nud, by_ipv4, classify
from clat_eamt.core.model import Host, HostClass

MAC_A, MAC_B = "00:00:5e:00:53:0a", "00:00:5e:00:53:0b"  # RFC 7042 documentation MACs
V4_A, V4_B = IPv4Address("192.0.2.10"), IPv4Address("192.0.2.11")
GLOBAL_A = IPv6Address("2001:db8:1::10")
ULA_A = IPv6Address("fd00:db8::10")
LL_A = IPv6Address("fe80::200:5eff:fe00:530a")
IPV4_ONLY, DUAL, UNKNOWN = HostClass.IPV4_ONLY, HostClass.DUAL_STACK, HostClass.UNKNOWN


def n(ip, mac=MAC_A, state=Nud.REACHABLE):
    return Neighbour(ip_address(ip) if isinstance(ip, str) else ip, mac, state, 2)


def run(*steps, **kw):
    """classify over (time, entries) steps, each step fed the previous records."""
    records = None
    for now, entries in steps:
        records = classify(entries, now, records, **kw)
    return records


def test_ipv4_only_host_is_unknown_during_the_observation_period():
    records = run((0, [n(V4_A)]), (59, [n(V4_A)]))
    assert records[MAC_A].klass is UNKNOWN
    assert "IPv4 seen for 59 s" in records[MAC_A].why


def test_link_local_only_host_is_ipv4_only_after_the_observation_period():
    steps = [(t, [n(V4_A), n(LL_A, state=Nud.STALE)]) for t in (0, 30, 60)]
    record = run(*steps)[MAC_A]
    assert record.klass is IPV4_ONLY
    assert record.why == f"only IPv4 seen for 60 s (link-local {LL_A} does not count)"
    assert record.ipv4s == {V4_A} and record.link_local == LL_A


@pytest.mark.parametrize(("ipv6", "kind"), [(GLOBAL_A, "global"), (ULA_A, "ULA")])
def test_global_or_ula_ipv6_on_the_same_mac_is_dual_stack_at_once(ipv6, kind):
    record = run((0, [n(V4_A), n(ipv6, state=Nud.STALE)]))[MAC_A]
    assert record.klass is DUAL
    assert record.why == f"MAC also has {kind} IPv6 {ipv6}"


def test_ipv6_of_another_mac_does_not_count():
    records = run((0, [n(V4_A), n(GLOBAL_A, mac=MAC_B)]), (60, [n(V4_A), n(GLOBAL_A, mac=MAC_B)]))
    assert records[MAC_A].klass is IPV4_ONLY
    assert records[MAC_B].klass is DUAL and records[MAC_B].ipv4s == frozenset()


@pytest.mark.parametrize("state", [Nud.FAILED, Nud.INCOMPLETE, Nud.NONE, Nud.NOARP])
def test_unresolved_entries_are_ignored(state):
    records = run((0, [n(V4_A), n(GLOBAL_A, state=state)]), (60, [n(V4_A)]))
    assert records[MAC_A].klass is IPV4_ONLY
    assert run((0, [n(V4_A, state=state)])) == {}


def test_entries_without_a_mac_or_about_multicast_are_ignored():
    assert run((0, [n(V4_A, mac=None), n("ff02::1"), n("224.0.0.1"), n("::1")])) == {}


def test_dual_stack_verdict_is_held_after_the_ipv6_entry_expires():
    hold = 3600
    steps = [(0, [n(V4_A), n(GLOBAL_A)]), (10, [n(V4_A)]), (3600, [n(V4_A)])]
    record = run(*steps, hold=hold)[MAC_A]
    assert record.klass is DUAL
    assert record.why == f"MAC had global IPv6 {GLOBAL_A} 3600 s ago (dual-stack is held 3600 s)"
    record = run(*steps, (3601, [n(V4_A)]), hold=hold)[MAC_A]
    assert record.klass is IPV4_ONLY  # quiet for the whole hold, longer than the observation
    assert record.why == "only IPv4 seen for 3601 s"


def test_a_host_that_gains_ipv6_turns_dual_stack_at_once():
    records = run((0, [n(V4_A)]), (100, [n(V4_A)]), (101, [n(V4_A), n(GLOBAL_A)]))
    assert records[MAC_A].klass is DUAL


def test_a_returning_host_is_observed_again():
    steps = [(0, [n(V4_A)]), (60, [n(V4_A)]), (70, [])]
    assert run(*steps)[MAC_A].klass is IPV4_ONLY  # away briefly: remembered as it was
    later = run(*steps, (60 + 601, []))[MAC_A]
    assert (later.klass, later.why) == (UNKNOWN, "not in the neighbour tables for 601 s")
    back = run(*steps, (60 + 601, [n(V4_A)]))[MAC_A]
    assert (back.klass, back.first_seen) == (UNKNOWN, 661)


def test_forgotten_after_the_hold_and_memory_is_capped():
    assert run((0, [n(V4_A)]), (11, []), hold=10, reobserve_after=10) == {}
    records = run((0, [n(V4_A)]), (1, [n(V4_B, mac=MAC_B)]), max_hosts=1)
    assert list(records) == [MAC_B]


def test_mac_is_case_insensitive_and_addresses_follow_the_mac():
    records = run((0, [n(V4_A, mac=MAC_A.upper()), n(V4_B, mac=MAC_A.upper())]))
    assert records[MAC_A].ipv4s == {V4_A, V4_B}


def test_by_ipv4_prefers_the_current_then_the_cautious_claim():
    moved = run((0, [n(V4_A), n(GLOBAL_A)]), (70, [n(V4_A, mac=MAC_B)]))
    assert by_ipv4(moved)[V4_A].mac == MAC_B  # A remembers V4_A, B holds it now
    both = run((0, [n(V4_A), n(V4_A, mac=MAC_B), n(GLOBAL_A, mac=MAC_B)]))
    assert by_ipv4(both)[V4_A].mac == MAC_B  # same moment: the dual-stack claim wins


IGNORED = st.sampled_from([Nud.FAILED, Nud.INCOMPLETE, Nud.NONE, Nud.NOARP | Nud.PERMANENT])


@given(
    st.lists(st.tuples(st.sampled_from([V4_A, V4_B, GLOBAL_A, ULA_A, LL_A]), IGNORED)),
    st.floats(0, 10_000),
)
def test_entries_that_do_not_count_never_change_a_verdict(noise, at):
    base = [n(V4_A), n(LL_A)]
    plain = run((0, base), (at, base))
    noisy = run((0, base + [n(ip, state=s) for ip, s in noise]), (at, base))
    assert plain == noisy


@given(st.lists(st.sampled_from([V4_A, GLOBAL_A, ULA_A, LL_A]), min_size=1), st.floats(0, 1e5))
def test_a_mac_with_native_ipv6_in_the_tables_is_never_ipv4_only(ips, at):
    entries = [n(ip) for ip in ips]
    records = run((0, entries), (at, entries))
    if any(ip in (GLOBAL_A, ULA_A) for ip in ips):
        assert records[MAC_A].klass is DUAL
    else:
        assert MAC_A not in records or records[MAC_A].klass is not DUAL


# --- the memory between looks (the runtime feeds it each tick) ---------------------------------


def test_memory_answers_by_mac_and_ipv4_and_builds_the_sets():
    memory, now = HostMemory(observe=60), 1000.0
    memory.seen([n(V4_A), n(GLOBAL_A), n(V4_B, mac=MAC_B), n("fe80::b", mac=MAC_B)], now)
    assert memory.host(MAC_A.upper()) == Host(MAC_A, DUAL)
    assert memory.host(str(V4_B)) == Host(str(V4_B), UNKNOWN)
    assert memory.host("192.0.2.99") is None and memory.host("not-a-key") is None
    assert memory.host(str(GLOBAL_A)) is None  # clients are named by MAC or IPv4 only
    now += 60
    memory.seen([n(V4_A), n(GLOBAL_A), n(V4_B, mac=MAC_B), n("fe80::b", mac=MAC_B)], now)
    assert memory.host(MAC_B) == Host(MAC_B, IPV4_ONLY)
    assert (memory.dual_stack_ipv4s(), memory.ipv4_only_ipv4s()) == ({V4_A}, {V4_B})
    rows = {row["mac"]: row for row in memory.rows(now)}
    assert rows[MAC_B] == {
        "ipv4": str(V4_B),
        "mac": MAC_B,
        "class": "ipv4-only",
        "why": "only IPv4 seen for 60 s (link-local fe80::b does not count)",
        "last_seen": 0.0,
    }


def test_memory_is_unsure_until_a_good_look_and_after_a_failed_one():
    memory = HostMemory(observe=0)
    assert memory.host(MAC_B) is None and memory.ipv4_only_ipv4s() == set()
    memory.seen([n(V4_A), n(GLOBAL_A), n(V4_B, mac=MAC_B)], 1000.0)
    assert memory.host(MAC_B) == Host(MAC_B, IPV4_ONLY)
    memory.unreadable("PermissionError: netlink: Operation not permitted")
    assert memory.host(MAC_B) == Host(MAC_B, UNKNOWN)  # when unsure, do not optimize
    assert memory.ipv4_only_ipv4s() == set() and memory.dual_stack_ipv4s() == {V4_A}
    assert memory.last_error == "PermissionError: netlink: Operation not permitted"
    assert all("unreadable now" in row["why"] for row in memory.rows(1000.0))
