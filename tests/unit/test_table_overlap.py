"""The table's overlap index (issue 28): ``valid_overlapping`` answers by bisection what a scan of
every entry answers, for any mix of prefixes, origins and states; the engine's overlap check of
a static or provider entry uses it (it scanned the table per add before)."""

from ipaddress import IPv4Network, IPv6Network

from hypothesis import given, settings
from hypothesis import strategies as st

from clat_eamt.core.model import Origin, State

from .corekit import engine, obs, v4, v6

# Prefixes inside 192.0.2.0/24 of every length from /24 to /32, so they nest and overlap.
PREFIXES = st.builds(
    lambda length, host: IPv4Network((0xC0000200 | host, length), strict=False),
    st.integers(24, 32),
    st.integers(0, 255),
)
STEP = st.tuples(st.sampled_from(["provider", "static", "dns", "delete", "tick"]), PREFIXES)


def scan(eng, ipv4):
    """What the engine asked before the index: every Valid entry whose prefix overlaps."""
    found = [e for e in eng.table if e.state is State.VALID and e.ipv4.overlaps(ipv4)]
    return sorted(found, key=lambda e: e.ident)


def target(ipv4: IPv4Network, serial: int) -> IPv6Network:
    suffix = 32 - ipv4.prefixlen
    base = (0x20010DB8_0007 << 80) | (serial << 16) | (int(ipv4.network_address) & 0xFF)
    return IPv6Network((base >> suffix << suffix, 128 - suffix))


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(STEP, max_size=40), queries=st.lists(PREFIXES, min_size=1, max_size=10))
def test_valid_overlapping_equals_a_scan(steps, queries):
    eng = engine(pool=v4("100.127.0.0/16"))
    for now, (kind, ipv4) in enumerate(steps):
        if kind == "provider":
            eng.upsert_provider(ipv4, target(ipv4, now), ttl=20, now=now)
        elif kind == "static":
            eng.add_static(ipv4, target(ipv4, now), now)
        elif kind == "dns":
            address = str(ipv4.network_address)
            eng.observe(obs(f"n{now}.example", address, f"2001:db8:1::{now + 1:x}", ttl=20), now)
        elif kind == "delete":
            eng.delete(ipv4, now)
        else:
            eng.tick(now + 15, live=None)
        for query in queries:
            assert eng.table.valid_overlapping(query) == scan(eng, query)
    eng.table.check_invariants()  # the index equals the one rebuilt from the entries


def test_a_prefix_finds_the_entries_inside_it_and_the_one_around_it():
    eng = engine(pool=v4("100.127.0.0/16"))
    eng.upsert_provider(v4("192.0.2.0/25"), v6("2001:db8:7::/121"), ttl=100, now=0)
    eng.upsert_provider(v4("192.0.2.130/32"), v6("2001:db8:7::1:82/128"), ttl=100, now=0)
    eng.upsert_provider(v4("192.0.2.200/32"), v6("2001:db8:7::1:c8/128"), ttl=100, now=0)
    found = eng.table.valid_overlapping(v4("192.0.2.128/26"))
    assert [str(e.ipv4) for e in found] == ["192.0.2.130/32"]
    found = eng.table.valid_overlapping(v4("192.0.2.64/32"))
    assert [str(e.ipv4) for e in found] == ["192.0.2.0/25"]
    assert len(eng.table.valid_overlapping(v4("192.0.2.0/24"))) == 3


def test_a_provider_prefix_outranks_every_dns_entry_inside_it():
    eng = engine(pool=v4("100.127.0.0/16"))
    for i in range(1, 6):
        eng.observe(obs(f"n{i}.example", f"192.0.2.{i}", f"2001:db8:1::{i}"), 0)
    eng.observe(obs("out.example", "192.0.2.100", "2001:db8:1::100"), 0)
    eng.upsert_provider(v4("192.0.2.0/29"), v6("2001:db8:7::/125"), ttl=100, now=1)
    states = {str(e.ipv4): (e.origin, e.state) for e in eng.table}
    assert all(states[f"192.0.2.{i}/32"] == (Origin.DNS, State.STALE) for i in range(1, 6))
    assert states["192.0.2.100/32"] == (Origin.DNS, State.VALID)
    assert states["192.0.2.0/29"] == (Origin.PROVIDER, State.VALID)
