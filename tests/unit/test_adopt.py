"""Restart after a crash: what the kernel still holds is adopted as Stale, so running flows keep
their translation and nothing is orphaned (the dataplane issue's reconciliation, pure part)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Network

from clat_eamt.core.dataplane import DataplaneState, Note, desired_state, diff, left_behind
from clat_eamt.core.model import LiveFlows, RemoveDnat, RemoveTranslator, StaleReason, State
from tests.unit.corekit import engine, obs

D1, D2, D3 = (IPv4Network(f"192.0.2.{i}/32") for i in (10, 11, 12))
P1, P2, P9 = (IPv4Network(f"198.51.100.{i}/32") for i in (129, 130, 200))
X1, X2, X9 = (IPv6Network(f"2001:db8:1::{i}/128") for i in (10, 11, 99))
POOL = IPv4Network("198.51.100.128/25")
FLOW_D2 = LiveFlows(frozenset({(IPv4Address("192.0.2.11"), IPv4Address("198.51.100.130"))}))


def kernel() -> DataplaneState:
    return DataplaneState(dnat={D1: P1}, translator={P1: X1, P2: X2, P9: X9})


def test_left_behind_takes_dnat_elements_and_live_flows_not_orphans():
    assert left_behind(kernel(), FLOW_D2) == [(D1, P1, X1), (D2, P2, X2)]
    assert left_behind(kernel(), None) == [(D1, P1, X1)]  # no oracle: only what nft shows


def test_adopted_entries_are_stale_keep_their_translation_and_lose_their_dnat():
    e = engine(pool=POOL)
    adopted = e.adopt(left_behind(kernel(), FLOW_D2), now=100.0)
    assert [(a.ipv4, a.pool, a.ipv6) for a in adopted] == [(D1, P1, X1), (D2, P2, X2)]
    assert all(a.state is State.STALE and a.stale_reason is StaleReason.RESTARTED for a in adopted)
    ops = diff(kernel(), desired_state(e.table))
    assert ops == (RemoveDnat(D1), RemoveTranslator(P9, X9))  # the orphan goes, flows stay
    e.table.check_invariants()


def test_adopted_entry_is_revived_by_the_same_answer():
    e = engine(pool=POOL, host_mode="all")
    e.adopt([(D1, P1, X1)], now=100.0)
    outcome = e.observe(obs("video.example", a="192.0.2.10", aaaa="2001:db8:1::10"), 101.0)
    [entry] = [x for x in e.table if x.ipv4 == D1]
    assert entry.state is State.VALID and entry.pool == P1 and entry.fqdns == ("video.example",)
    assert [event.kind for event in outcome.events] == ["revived"]


def test_adopted_entry_goes_when_its_flows_are_gone():
    e = engine(pool=POOL, stale_linger=0)
    e.adopt([(D1, P1, X1)], now=100.0)
    flow = LiveFlows(frozenset({(IPv4Address("192.0.2.10"), IPv4Address("198.51.100.129"))}))
    e.tick(101.0, flow)
    assert len(e.table) == 1
    outcome = e.tick(102.0, LiveFlows())
    assert len(e.table) == 0 and RemoveTranslator(P1, X1) in outcome.ops


def test_clashing_finds_are_not_adopted():
    e = engine(pool=POOL)
    outside = (D3, IPv4Network("203.0.113.1/32"), X9)  # not in the pool
    twice = (D2, P2, X1)  # X1 already holds P1 below
    adopted = e.adopt([(D1, P1, X1), outside, twice], now=1.0)
    assert [a.ipv4 for a in adopted] == [D1]


def test_a_note_with_names_and_a_future_expiry_is_adopted_valid_until_then():
    e = engine(pool=POOL)
    notes = {
        D1: Note("dns", 160.0, ("video.example",)),  # Valid again until 160
        D2: Note("dns", 90.0, ("old.example",)),  # expired before the restart: Stale
    }
    adopted = e.adopt(left_behind(kernel(), FLOW_D2), 100.0, notes)
    valid, stale = adopted
    assert (valid.state, valid.expires, valid.fqdns) == (State.VALID, 160.0, ("video.example",))
    assert stale.state is State.STALE and stale.stale_reason is StaleReason.RESTARTED
    assert diff(kernel(), desired_state(e.table)) == (RemoveTranslator(P9, X9),)  # D1 stays
    e.table.check_invariants()
    assert e.tick(161.0, FLOW_D2).events[0].entry.state is State.STALE  # expires as noted


def test_notes_that_cannot_vouch_give_stale():
    for note in (
        Note("~dns", 160.0, (), complete=False),  # names did not fit the comment
        Note("static", None, ()),  # static entries come from the configuration
        Note("dns", 160.0, ()),  # no name
    ):
        e = engine(pool=POOL)
        [entry] = e.adopt([(D1, P1, X1)], 100.0, {D1: note})
        assert entry.state is State.STALE, note


def test_a_note_round_trips_through_its_comment_text():
    note = Note("dns", 1234.5, ("a.example", "b.example"))
    assert Note.parse(note.text(128)) == note
    long = Note("dns", 1.0, ("x" * 200 + ".example",))
    assert Note.parse(long.text(128)) == Note("dns", 1.0, (), complete=False)
    assert len(long.text(128)) <= 128 and Note.parse("garbage") is None
    hostile = Note("dns", 1.0, ('a"b; flush ruleset.example',))
    assert hostile.text(128) == "~dns 1.0"  # never into nft's parser
