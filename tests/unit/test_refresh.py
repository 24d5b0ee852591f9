"""Issue 13: TTL coherence (valid_life) and refresh ahead (core.refresh), pure."""

from __future__ import annotations

from ipaddress import IPv4Address

from clat_eamt.core.model import LiveFlows
from clat_eamt.core.refresh import RefreshAhead, RefreshSettings, decided_ends, valid_life

from .corekit import engine, obs, v4, v6


def live_on(eng, ipv4: str) -> LiveFlows:
    [entry] = [e for e in eng.table if e.ipv4 == v4(ipv4 + "/32")]
    return LiveFlows(frozenset({(entry.ipv4.network_address, entry.pool.network_address)}))


def test_valid_life_is_the_shortest_remaining_life_of_the_answers_mappings():
    eng = engine(ttl_min=0)
    eng.observe(obs("a.example", "192.0.2.1", "2001:db8:1::1", ttl=86400, aaaa_ttl=60), 0)
    eng.observe(obs("b.example", "192.0.2.2", "2001:db8:1::2", ttl=300), 0)
    addresses = [IPv4Address("192.0.2.1"), IPv4Address("192.0.2.2")]
    assert valid_life(eng.table, addresses, 10) == 50  # the AAAA's 60 s bounds the mapping
    assert valid_life(eng.table, [IPv4Address("192.0.2.9")], 10) is None  # maps to nothing
    eng.tick(61, None)  # a.example went Stale: only Valid mappings count
    assert valid_life(eng.table, addresses, 61) == 239


def test_static_entries_set_no_ceiling():
    eng = engine()
    eng.add_static(v4("192.0.2.99/32"), v6("2001:db8:1::99/128"), 0)
    assert valid_life(eng.table, [IPv4Address("192.0.2.99")], 5) is None


def test_a_used_mapping_near_its_end_is_refreshed_once_an_unused_one_never():
    eng = engine(ttl_min=0)
    eng.observe(obs("used.example", "192.0.2.1", "2001:db8:1::1", ttl=60), 0)
    eng.observe(obs("idle.example", "192.0.2.2", "2001:db8:1::2", ttl=60), 0)
    refresh = RefreshAhead()
    live = LiveFlows(live_on(eng, "192.0.2.1").pairs)
    assert refresh.due(eng.table, live, 40) == []  # not near its end yet
    assert refresh.due(eng.table, live, 51) == ["used.example"]
    assert refresh.due(eng.table, live, 52) == []  # asked already; its answer decides
    assert refresh.due(eng.table, LiveFlows(), 55) == []


def test_a_refresh_that_extended_nothing_is_asked_again_at_the_end_and_held_valid():
    """A caching resolver answers with its copy's remaining TTL: the ask ahead changed no end.
    At the end the name is asked once more, and the engine keeps the entry Valid while that
    ask is in flight (REFRESH_GRACE), then lets it expire if nothing came of it."""
    eng = engine(ttl_min=0)
    eng.observe(obs("used.example", "192.0.2.1", "2001:db8:1::1", ttl=60), 0)
    refresh = RefreshAhead()
    live = live_on(eng, "192.0.2.1")
    assert refresh.due(eng.table, live, 51) == ["used.example"]
    eng.observe(obs("used.example", "192.0.2.1", "2001:db8:1::1", ttl=9), 51)  # same end: 60
    assert refresh.due(eng.table, live, 59) == []
    assert refresh.holding(60.4) == {"used.example"}
    assert not eng.tick(60.4, live, refresh.holding(60.4)).events  # held for the ask to come
    assert refresh.due(eng.table, live, 60.4) == []  # caches count whole seconds: not yet
    assert refresh.due(eng.table, live, 61.3) == ["used.example"]  # just after the end
    assert refresh.holding(61.3) == set()  # now only while the ask is in flight
    assert not eng.tick(61.3, live, {"used.example"}).events
    assert refresh.due(eng.table, live, 62) == []  # twice for one end is all
    assert [e.kind for e in eng.tick(62, live).events] == ["stale"]  # the ask is over
    # An answer at the end with a fresh TTL starts a new life, refreshed ahead again later.
    eng2 = engine(ttl_min=0)
    eng2.observe(obs("used.example", "192.0.2.1", "2001:db8:1::1", ttl=60), 0)
    refresh2 = RefreshAhead()
    live2 = live_on(eng2, "192.0.2.1")
    assert refresh2.due(eng2.table, live2, 61.3) == ["used.example"]
    eng2.tick(61.3, live2, {"used.example"})
    eng2.observe(obs("used.example", "192.0.2.1", "2001:db8:1::1", ttl=60), 61.4)
    assert refresh2.due(eng2.table, live2, 112) == ["used.example"]
    assert eng2.tick(65, live2, {"used.example"}).events == ()
    assert not [e for e in eng2.table if e.state.value != "valid"]


def test_a_recent_client_answer_counts_as_use_until_it_is_old():
    eng = engine(ttl_min=0)
    eng.observe(obs("asked.example", "192.0.2.1", "2001:db8:1::1", ttl=60), 0)
    refresh = RefreshAhead(RefreshSettings(recent=100))
    refresh.client_answer("asked.example", 0)
    assert refresh.due(eng.table, LiveFlows(), 51) == ["asked.example"]
    eng.observe(obs("asked.example", "192.0.2.1", "2001:db8:1::1", ttl=60), 51)  # our refresh
    assert refresh.due(eng.table, LiveFlows(), 105) == []  # the client asked 105 s ago


def test_refreshes_are_rate_limited_and_short_lives_are_not_refreshed():
    eng = engine(ttl_min=0)
    for i in range(1, 11):
        eng.observe(obs(f"n{i}.example", f"192.0.2.{i}", f"2001:db8:1::{i}", ttl=60), 0)
    eng.observe(obs("short.example", "192.0.2.50", "2001:db8:1::50", ttl=2), 0)
    refresh = RefreshAhead(RefreshSettings(rate=1, burst=3))
    for entry in eng.table:
        refresh.client_answer(entry.fqdns[0], 0)
    assert refresh.due(eng.table, None, 1) == []  # 2 s of life: not refreshed ahead
    assert len(refresh.due(eng.table, None, 51)) == 3 and refresh.skipped == 7
    assert len(refresh.due(eng.table, None, 53)) == 2  # 2 s later, 2 more tokens


def test_valid_life_from_the_decision_equals_the_tables():
    eng = engine(ttl_min=0)
    out = eng.observe(obs("m.example", ["192.0.2.1", "192.0.2.2"], "2001:db8:1::1", ttl=90), 0)
    addresses = [IPv4Address("192.0.2.1"), IPv4Address("192.0.2.2")]
    assert decided_ends(out.events) == {int(a): 90 for a in addresses}
    again = eng.observe(obs("m.example", ["192.0.2.1", "192.0.2.2"], "2001:db8:1::1", ttl=40), 5)
    ends = decided_ends(again.events)
    assert valid_life(eng.table, addresses, 5, ends) == valid_life(eng.table, addresses, 5) == 85
