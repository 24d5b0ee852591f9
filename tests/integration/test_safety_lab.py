"""Issue 25 in the lab: an IPv4-only device loses no connection to a broken native path.

Each case runs the product on the lab's home router (translator external: the lab's CLAT as
OpenWrt's 464xlat runs it) with the ISP breaking native IPv6 in its own way (safetykit) while
its NAT64 reaches the server's IPv4.  The client is the kernel's TCP (initial RTO 1 s).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clat_eamt.control.client import call
from tests.integration.routerkit import CLAT_IPV6, NAT64_PEER, Router, home_router
from tests.integration.safetykit import (
    BACKOFF,
    black_hole,
    connect,
    curl,
    echo_bulk,
    http_server,
    in_parallel,
    internet_broken,
    isp_failure,
    narrow_native_path,
    safety_router,
    udp_exchange,
)
from tests.labkit.netns import run
from tests.labkit.require import LAB_TOOLS, SERVER_TOOLS, require_root, require_tools


@pytest.fixture
def router(tmp_path: Path) -> Iterator[Router]:
    require_root()
    require_tools(*SERVER_TOOLS, *LAB_TOOLS)
    with safety_router(tmp_path) as router:
        yield router


def mapped(router: Router, name: str) -> str:
    [address] = router.resolve(router.lab.lan, name)
    assert address in router.dnat_elements(), f"{name} ({address}) was not mapped"
    return address


def safety(router: Router) -> dict:
    """The summary's safety counters (``clat-eamt status`` reads the same)."""
    return call(router.options["control_socket"], "status")["summary"]["safety"]


@pytest.mark.lab
def test_black_hole_loses_no_connection_and_native_comes_back_after_the_backoff(router: Router):
    target = "2001:db8:1::105"
    address = mapped(router, "ds5.lab.example")
    http_server(router)
    with isp_failure(router, black_hole(target)):
        first = curl(router, address)  # curl with its defaults, as a user would
        assert first.ok, first.error
        assert first.peer == NAT64_PEER
        assert 0.9 < first.seconds < 2.5  # one SYN retransmission (1 s), no more
        assert address not in router.dnat_elements()  # the mapping went Stale at once
        rest = [curl(router, address) for _ in range(3)]
        rest += [connect(router, address) for _ in range(7)]
        rest += in_parallel(router, address, 9)
        assert [a for a in rest if not a.ok] == []
        assert {a.peer for a in rest} == {NAT64_PEER}
        assert max(a.seconds for a in rest) < 0.5  # through the NAT64 at once
        # The name is asked again: its broken target is not mapped.
        assert router.resolve(router.lab.lan, "ds5.lab.example") == [address]
        assert address not in router.dnat_elements()
        counted = safety(router)
        assert counted["rescued"] == 1 and counted["stale_by_broken"] == 1
        verdicts = router.status()["safety"]["verdicts"]
        assert {"target": target, "verdict": "broken"}.items() <= verdicts[-1].items() or any(
            v["target"] == target and v["verdict"] == "broken" for v in verdicts
        )
    time.sleep(BACKOFF + 0.5)
    again = mapped(router, "ds5.lab.example")
    after = connect(router, again)
    assert after.ok and after.peer == CLAT_IPV6  # native again after the back-off
    assert safety(router)["verdicts_working"] >= 1


@pytest.mark.lab
def test_udp_first_exchange_succeeds_on_its_retry(router: Router):
    address = mapped(router, "ns.lab.example")  # the authoritative server, dual-stack name
    with isp_failure(router, black_hole("2001:db8:1::53")):
        answered, on_try = udp_exchange(router, address)
    assert answered and on_try == 2
    assert safety(router)["rescued"] == 1


@pytest.mark.lab
@pytest.mark.parametrize(
    "refusal",
    ["reject with icmpv6 type admin-prohibited", "meta l4proto tcp reject with tcp reset"],
)
def test_a_refused_native_path_loses_no_connection(router: Router, refusal: str):
    address = mapped(router, "ds6.lab.example")
    with isp_failure(router, [f"ip6 daddr 2001:db8:1::106 {refusal}"]):
        attempts = [connect(router, address) for _ in range(10)]
    assert [a for a in attempts if not a.ok] == []
    assert {a.peer for a in attempts} == {NAT64_PEER}
    assert safety(router)["rescued"] == 1


@pytest.mark.lab
def test_the_brake_engages_when_native_ipv6_is_broken_and_resumes_after_repair(router: Router):
    names = ["ds7.lab.example", "b7.lab.example", "ds7.demo.example", "ds8.demo.example"]
    addresses = [mapped(router, n) for n in names[:3]]
    began = time.monotonic()
    with isp_failure(router, internet_broken()):
        attempts = [connect(router, a) for a in addresses]
        engaged_after = time.monotonic() - began
        status = call(router.options["control_socket"], "status")
        assert status["safety"]["brake"]["state"] == "engaged"
        assert status["summary"]["safety"]["brake_engaged"] == 1
        # Nothing is steered while the brake holds (ds8.demo's /64 is broken too by now).
        [later] = router.resolve(router.lab.lan, names[3])
        attempts.append(connect(router, later))
        brake = run(router.lab.ce, ["nft", "list", "set", "inet", "clat_eamt", "brake"]).stdout
        assert "0.0.0.0/0" in brake
    assert [a for a in attempts if not a.ok] == []
    assert {a.peer for a in attempts[3:]} == {NAT64_PEER}
    assert engaged_after < 8.0
    time.sleep(BACKOFF + 0.5)  # the brake's back-off: steering on trial
    fresh = mapped(router, "ds9.demo.example")
    trial = connect(router, fresh)
    assert trial.ok and trial.peer == CLAT_IPV6
    router.wait(lambda: router.status()["safety"]["brake"]["state"] == "released", "release")


@pytest.mark.lab
@pytest.mark.parametrize("ptb", [True, False], ids=["ptb-delivered", "ptb-dropped"])
def test_a_narrow_native_path_carries_2_mb_with_or_without_packet_too_big(
    router: Router, ptb: bool
):
    target = "2001:db8:1::108"
    address = mapped(router, "ds8.lab.example")
    with narrow_native_path(router, target, ptb=ptb):
        got, peer = echo_bulk(router, address)
    assert peer == CLAT_IPV6  # native, through the narrow path
    assert got >= 1_999_000


@pytest.mark.lab
@pytest.mark.parametrize("ptb", [True, False], ids=["ptb-delivered", "ptb-dropped"])
def test_without_the_clamp_packet_too_big_must_reach_the_device(tmp_path: Path, ptb: bool):
    """No clamp: with Packet Too Big delivered (conntrack relates it to the flow, the CLAT
    turns it into ICMPv4 Fragmentation Needed, RFC 7915 5.2) the transfer completes; with it
    dropped it stalls (a PMTU black hole: what the clamp is for)."""
    require_root()
    require_tools(*SERVER_TOOLS, *LAB_TOOLS)
    with home_router(tmp_path, ttl_min="0", mss_clamp="0") as router:
        address = mapped(router, "ds8.lab.example")
        with narrow_native_path(router, "2001:db8:1::108", ptb=ptb):
            got, peer = echo_bulk(router, address, seconds=20 if ptb else 4)
        assert peer == CLAT_IPV6
        assert (got >= 1_999_000) if ptb else (got < 1_000_000)


@pytest.mark.lab
def test_dnsmasq_s_queries_to_the_proxy_make_no_conntrack_entries(router: Router):
    # The readiness probes before the daemon's table was loaded left theirs: gone first.
    run(router.lab.ce, ["conntrack", "-D", "-p", "udp", "--dport", "5353"], check=False)
    for i in range(10, 15):
        router.resolve(router.lab.lan, f"ds{i}.lab.example")
    listed = run(router.lab.ce, ["conntrack", "-L", "-p", "udp", "--dport", "5353"], check=False)
    assert "dport=5353" not in listed.stdout
    upstream = run(router.lab.ce, ["conntrack", "-L", "-p", "udp", "--dport", "53"], check=False)
    assert "dport=53 " in upstream.stdout  # conntrack works here: the proxy's own upstream
