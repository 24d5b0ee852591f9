"""Issue 13 in the lab: dnsmasq as clat-eamt's hook now leaves it (cache on, no addmac or
addsubnet), the A answers that leave the proxy fit inside their mappings, used mappings are
refreshed ahead of their end, and hostile names cannot take a victim's IPv4.

The home router of the lab (routerkit) with host_mode ipv4-only: the neighbour tables decide
which clients are steered; dnsmasq runs with its default cache and without per-client options.
Everything is judged from outside: DNS answers as the clients get them, who the echo server saw
(the NAT64's IPv4: through the NAT64; the CLAT's IPv6: native), the daemon's status and table.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.integration.routerkit import CLAT_IPV6, NAT64_PEER, Router, lab_router
from tests.labkit.client import answers, query

# dnsmasq as the hook leaves it by default (client_identity off): its cache on (its default
# size), no add-mac, no add-subnet.
DNSMASQ_DEFAULT = {"cache_size": None, "add_mac": None, "add_subnet": None}


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Router]:
    yield from lab_router(
        tmp_path_factory,
        "dnsv2",
        dnsmasq=DNSMASQ_DEFAULT,
        host_mode="ipv4-only",
        host_observe="0",
        lan_interface=["br-lan"],
        ttl_min="0",
        stale_linger="1",
        # A busy test machine may take longer than the 50 ms default to restart tayga; these
        # tests are about DNS, so an answer waits for its mapping (as the demo's does).
        apply_timeout_ms="2000",
    )


def peer(router: Router, flow) -> str:
    return str(router.lab.accepted(flow.tag)["peer"])


def ask(router: Router, client, name: str):
    return query(router.lab.CE_LAN_ADDR4, 53, name, "A", netns=client, timeout=5)


def a_queries(router: Router, name: str) -> int:
    """How many A answers for ``name`` reached the daemon (one decision each)."""
    return len(router.decisions(name))


@pytest.fixture(scope="module")
def classified(router: Router) -> Router:
    """Both clients known to the neighbour tables: lan IPv4-only, lan6 dual-stack."""
    lab = router.lab
    router.resolve(lab.lan, "lab.example")
    router.resolve(lab.lan6, "lab.example")
    with lab.flow(lab.lan6, "2001:db8:1::10"):
        pass
    router.wait(
        lambda: (
            router.status()["hosts"]
            == {"ipv4_only": 1, "dual_stack": 1, "unsure": False, "error": None}
        ),
        "both clients classified",
    )
    return router


@pytest.mark.lab
def test_dual_stack_client_first_then_ipv4_only_client_from_dnsmasqs_cache_goes_native(
    classified: Router,
):
    router, lab = classified, classified.lab
    assert router.resolve(lab.lan6, "ds7.lab.example") == ["192.0.2.107"]
    router.wait_decision("ds7.lab.example")
    # The IPv4-only client's answer comes from dnsmasq's cache: the daemon never sees it.
    assert router.resolve(lab.lan, "ds7.lab.example") == ["192.0.2.107"]
    time.sleep(0.2)
    assert a_queries(router, "ds7.lab.example") == 1
    with lab.flow(lab.lan, "192.0.2.107") as flow:
        assert peer(router, flow) == CLAT_IPV6  # native
    with lab.flow(lab.lan6, "192.0.2.107") as flow:
        assert peer(router, flow) == NAT64_PEER  # the dual-stack client is never steered


@pytest.mark.lab
def test_a_ttl_never_outlives_the_mapping(classified: Router):
    """longttl.lab.example: A TTL 86400, AAAA TTL 60, so its mapping lives 60 s; the A that
    reaches the client, first from the daemon and then from dnsmasq's cache, says no more."""
    router, lab = classified, classified.lab
    first = ask(router, lab.lan, "longttl.lab.example")
    assert answers(first, "A") == ["192.0.2.80"]
    [mapping] = [m for m in router.mappings() if m["ipv4"] == "192.0.2.80"]
    assert mapping["state"] == "valid" and mapping["expires_in"] <= 60
    [record] = first.rr
    assert 0 < record.ttl <= 60 and record.ttl <= mapping["expires_in"] + 1
    time.sleep(1.1)
    cached = ask(router, lab.lan, "longttl.lab.example")
    assert cached.rr[0].ttl <= record.ttl - 1  # dnsmasq counts it down from what we said
    assert a_queries(router, "longttl.lab.example") == 1
    # An answer whose addresses map to nothing keeps its TTL (v4only: 300 s in the zone).
    assert 250 < ask(router, lab.lan, "v4only.lab.example").rr[0].ttl <= 300


def refresh_report(router: Router, name: str) -> str:
    """What the daemon did about ``name`` (for a failure message)."""
    lines = [f"mappings: {[m for m in router.mappings() if m['fqdn'] == name]}"]
    counters = router.status()["counters"]
    lines.append(f"counters: { {k: v for k, v in counters.items() if 'refresh' in k} }")
    for d in router.decisions(name):
        obs, out = d["observation"], d["outcome"]
        lines.append(f"{d['time']}: aaaa {obs.get('aaaa_status')} {obs.get('aaaa')}, {out}")
    return "\n".join(lines)


@pytest.mark.lab
def test_a_device_reusing_an_address_past_its_ttl_with_a_flow_running_stays_native(
    classified: Router,
):
    """reuse.lab.example: A TTL 86400, AAAA TTL 12.  The device asks once, keeps a stream
    running, and opens new connections to the same address after 12 s without asking DNS
    again: the daemon refreshed the used mapping ahead of its end, so they go native."""
    router, lab = classified, classified.lab
    assert router.resolve(lab.lan, "reuse.lab.example") == ["192.0.2.81"]
    with lab.flow(lab.lan, "192.0.2.81") as stream:
        assert peer(router, stream) == CLAT_IPV6
        stream.start_ticker(0.2)
        time.sleep(16)  # past the 12 s the mapping had when the device asked
        with lab.flow(lab.lan, "192.0.2.81") as later:
            assert peer(router, later) == CLAT_IPV6, refresh_report(router, "reuse.lab.example")
        stream.stop_ticker()
        stream.roundtrip("still native")
    status = router.status()
    assert status["counters"].get("refresh.ahead", 0) >= 1
    assert router.state_of("192.0.2.81") == "valid"


@pytest.mark.lab
def test_a_hostile_name_after_the_victims_cached_answer_gets_no_mapping(classified: Router):
    """v4only.lab.example is the victim (192.0.2.20, no IPv6 of its own: its AAAA is DNS64's);
    its answer passed the daemon and now lives in dnsmasq's cache.  hostile.lab.example then
    says 192.0.2.20 has the attacker's IPv6 2001:db8:1::66."""
    router, lab = classified, classified.lab
    assert router.resolve(lab.lan, "v4only.lab.example") == ["192.0.2.20"]
    assert router.resolve(lab.lan, "v4only.lab.example") == ["192.0.2.20"]  # dnsmasq's cache
    assert router.resolve(lab.lan, "hostile.lab.example") == ["192.0.2.20"]
    decision = router.wait_decision("hostile.lab.example")
    reasons = {r["reason"] for r in decision["outcome"]["decision"]["refusals"]}
    assert reasons == {"unvouched"} and decision["outcome"]["events"] == []
    assert not [m for m in router.mappings() if m["ipv4"] == "192.0.2.20"]
    with lab.flow(lab.lan, "192.0.2.20") as flow:
        assert peer(router, flow) == NAT64_PEER
        assert lab.accepted(flow.tag)["local"] != "2001:db8:1::66"


@pytest.mark.lab
def test_hostile_name_first_then_the_victim_the_mapping_is_stale_before_its_answer(
    classified: Router,
):
    router, lab = classified, classified.lab
    assert router.resolve(lab.lan, "hostile2.lab.example") == ["192.0.2.82"]
    assert router.state_of("192.0.2.82") == "valid"  # nobody had said otherwise yet
    # By the time the victim's answer reaches the client, the mapping is Stale: the decision
    # and its dataplane change come before the answer is released.
    assert router.resolve(lab.lan, "victim.lab.example") == ["192.0.2.82"]
    assert router.state_of("192.0.2.82") == "stale"
    with lab.flow(lab.lan, "192.0.2.82") as flow:
        assert peer(router, flow) == NAT64_PEER
        assert lab.accepted(flow.tag)["local"] != "2001:db8:1::67"
