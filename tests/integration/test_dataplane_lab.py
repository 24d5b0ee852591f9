"""The dataplane issue's lab tests: the daemon on the lab's home router runs tayga as the CLAT,
DNATs mapped destinations into its pool, and every connection keeps the path it started on."""

from __future__ import annotations

import time
from collections.abc import Iterator
from ipaddress import ip_network
from pathlib import Path

import pytest

from tests.integration.routerkit import CLAT_IPV6, NAT64_PEER, Router, home_router, lab_router
from tests.labkit.require import LAB_TOOLS, SERVER_TOOLS, require_root, require_tools


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Router]:
    yield from lab_router(tmp_path_factory, "router", ttl_min="0", stale_linger="1")


def peer(router: Router, flow) -> str:
    return str(router.lab.accepted(flow.tag)["peer"])


@pytest.mark.lab
def test_ipv4_only_server_through_clat_and_nat64(router: Router):
    lab = router.lab
    [address] = router.resolve(lab.lan, "v4only.lab.example")
    with lab.flow(lab.lan, address) as flow:
        flow.roundtrip("hello")
        assert peer(router, flow) == NAT64_PEER


@pytest.mark.lab
def test_dual_stack_name_goes_native_from_the_clat_ipv6(router: Router):
    lab = router.lab
    [address] = router.resolve(lab.lan, "ds1.lab.example")
    with lab.flow(lab.lan, address) as flow:
        flow.roundtrip("hello")
        assert peer(router, flow) == CLAT_IPV6
    [mapping] = [line for line in router.tayga_maps() if line.endswith(" 2001:db8:1::101")]
    assert mapping.split()[1] in {str(a) for a in ip_network(router.options["pool"])}


@pytest.mark.lab
def test_a_nat64_flow_survives_its_destination_being_mapped(router: Router):
    lab = router.lab
    with lab.flow(lab.lan, "192.0.2.102") as old:  # before any DNS answer: NAT64
        old.start_ticker(0.05)
        assert peer(router, old) == NAT64_PEER
        assert router.resolve(lab.lan, "ds2.lab.example") == ["192.0.2.102"]  # maps it
        with lab.flow(lab.lan, "192.0.2.102") as new:
            assert peer(router, new) == CLAT_IPV6
        time.sleep(0.3)
        old.stop_ticker()
        old.roundtrip("still there")  # no reset through the tayga restart
        assert old.max_stall() < 3.0


@pytest.mark.lab
def test_several_a_records_go_native_through_one_pool_address(router: Router):
    lab = router.lab
    addresses = sorted(router.resolve(lab.lan, "multi.lab.example"))
    assert addresses == ["192.0.2.41", "192.0.2.42", "192.0.2.43"]
    for address in addresses:
        with lab.flow(lab.lan, address) as flow:
            assert peer(router, flow) == CLAT_IPV6
            assert router.lab.accepted(flow.tag)["local"] == "2001:db8:1::40"
    maps = [line for line in router.tayga_maps() if line.endswith(" 2001:db8:1::40")]
    assert len(maps) == 1


@pytest.mark.lab
def test_sigkill_mid_flow_then_restart_keeps_the_flow_and_leaves_no_orphan(router: Router):
    lab = router.lab
    assert router.resolve(lab.lan, "ds3.lab.example") == ["192.0.2.103"]
    with lab.flow(lab.lan, "192.0.2.103") as flow:
        assert peer(router, flow) == CLAT_IPV6
        flow.start_ticker(0.05)
        router.kill()
        time.sleep(0.2)
        router.start()
        time.sleep(0.3)
        flow.stop_ticker()
        flow.roundtrip("after the restart")
        status = router.status()
        assert status["dataplane"]["error"] is None
        assert status["counters"].get("adopted", 0) >= 1
        # A new flow to the same name: DNS again, and it goes native again.
        assert router.resolve(lab.lan, "ds3.lab.example") == ["192.0.2.103"]
        with lab.flow(lab.lan, "192.0.2.103") as again:
            assert peer(router, again) == CLAT_IPV6
    # Nothing orphaned: the kernel holds exactly what the restarted daemon's table wants.
    mappings = router.mappings()
    valid = {(m["ipv4"], m["pool"]) for m in mappings if m["state"] == "valid"}
    assert set(router.dnat_elements().items()) == valid
    pools = {m["pool"] for m in mappings}
    assert {line.split()[1] for line in router.tayga_maps()[1:]} == pools


@pytest.mark.lab
def test_missing_translator_keeps_dns_and_nat64_working(tmp_path: Path):
    require_root()
    require_tools(*SERVER_TOOLS, *LAB_TOOLS)
    # The lab runs its own CLAT; the daemon is told to drive a Jool that is not installed.
    with home_router(tmp_path, clat="lab", translator="jool") as router:
        lab = router.lab
        assert router.resolve(lab.lan, "ds4.lab.example") == ["192.0.2.104"]
        with lab.flow(lab.lan, "192.0.2.104") as flow:
            assert peer(router, flow) == NAT64_PEER
        status = router.status()
        assert "jool" in (status["dataplane"]["error"] or "")
        assert status["counters"]["answers.apply_failed"] >= 1


def translated(router: Router, ipv6: str) -> bool:
    return any(line.endswith(" " + ipv6) for line in router.tayga_maps())


@pytest.mark.lab
def test_native_flow_outlives_expiry_then_its_entry_goes_with_it(router: Router):
    lab = router.lab
    assert router.resolve(lab.lan, "short.lab.example") == ["192.0.2.60"]  # TTL 2 s
    with lab.flow(lab.lan, "192.0.2.60") as native:
        assert peer(router, native) == CLAT_IPV6
        router.wait(lambda: router.state_of("192.0.2.60") == "stale", "the entry to go Stale")
        with lab.flow(lab.lan, "192.0.2.60") as later:
            assert peer(router, later) == NAT64_PEER  # new flows: NAT64 again
        native.roundtrip("still native")
        assert translated(router, "2001:db8:1::60")  # kept while the native flow lives
    # The flow ended: the entry goes, and so do its pool address and tayga map.
    router.wait(lambda: not translated(router, "2001:db8:1::60"), "the tayga map to go", 15)


@pytest.mark.lab
def test_native_flow_outlives_a_conflicting_answer(router: Router):
    lab = router.lab
    assert router.resolve(lab.lan, "conflict-a.lab.example") == ["192.0.2.71"]
    with lab.flow(lab.lan, "192.0.2.71") as native:
        assert lab.accepted(native.tag)["local"] == "2001:db8:1::71"
        assert router.resolve(lab.lan, "conflict-b.lab.example") == ["192.0.2.71"]
        with lab.flow(lab.lan, "192.0.2.71") as later:
            assert peer(router, later) == NAT64_PEER  # Stale by conflict: no new native flow
        native.roundtrip("still native")
        assert translated(router, "2001:db8:1::71")
    router.wait(lambda: not translated(router, "2001:db8:1::71"), "the tayga map to go", 15)


@pytest.mark.lab
def test_dual_stack_client_is_never_steered_an_ipv4_only_one_is(tmp_path: Path):
    require_root()
    require_tools(*SERVER_TOOLS, *LAB_TOOLS)
    options = {"host_mode": "ipv4-only", "host_observe": "0", "lan_interface": ["br-lan"]}
    with home_router(tmp_path, **options) as router:
        lab = router.lab
        # Both clients talk to the router; the dual-stack one also over IPv6.
        router.resolve(lab.lan, "lab.example")
        router.resolve(lab.lan6, "lab.example")
        with lab.flow(lab.lan6, "2001:db8:1::10") as v6:
            assert peer(router, v6) == "2001:db8:ce:1::11"
        router.wait(
            lambda: (
                router.status()["hosts"]
                == {"ipv4_only": 1, "dual_stack": 1, "unsure": False, "error": None}
            ),
            "both clients classified",
        )
        assert router.resolve(lab.lan, "ds5.lab.example") == ["192.0.2.105"]
        with lab.flow(lab.lan, "192.0.2.105") as steered:
            assert peer(router, steered) == CLAT_IPV6
        with lab.flow(lab.lan6, "192.0.2.105") as kept:
            assert peer(router, kept) == NAT64_PEER  # its IPv4 flows are never DNATed


@pytest.mark.lab
def test_a_pool_overlapping_the_lan_is_refused_and_dns_goes_on(tmp_path: Path):
    require_root()
    require_tools(*SERVER_TOOLS, *LAB_TOOLS)
    # 198.51.100.0/25 holds the LAN's 198.51.100.0/26: found on the router's own interfaces.
    with home_router(tmp_path, clat="lab", translator="jool", pool="198.51.100.0/25") as router:
        lab = router.lab
        assert router.resolve(lab.lan, "ds6.lab.example") == ["192.0.2.106"]
        with lab.flow(lab.lan, "192.0.2.106") as flow:
            assert peer(router, flow) == NAT64_PEER
        error = router.status()["dataplane"]["error"] or ""
        assert "pool" in error and "198.51.100.0/26" in error
