"""The dataplane's lab tests (SPEC 5, dataplane v2), each on both ways the router gets its CLAT:
"external" (the lab runs its CLAT as OpenWrt's 464xlat runs nat46: plain RFC 6052, no maps, the
LAN SNATed before it; the daemon finds it by the IPv4 default route and never touches it) and
"tayga" (the daemon runs tayga with one fixed configuration).  Every mapping is two nft
elements; every connection keeps the path it started on."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest

from clat_eamt.control.client import call
from tests.integration.routerkit import CLAT_IPV6, NAT64_PEER, Router, home_router, lab_router
from tests.labkit.netns import run
from tests.labkit.require import LAB_TOOLS, SERVER_TOOLS, require_root, require_tools

MODES = ("external", "tayga")


@pytest.fixture(scope="module", params=MODES)
def router(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Router]:
    mode = request.param
    yield from lab_router(
        tmp_path_factory, f"router-{mode}", translator=mode, ttl_min="0", stale_linger="1"
    )


@contextlib.contextmanager
def own_router(workdir: Path, **options: Any) -> Iterator[Router]:
    """A lab and router of the test's own (for options the module's router does not have)."""
    require_root()
    require_tools(*SERVER_TOOLS, *LAB_TOOLS)
    with home_router(workdir, **options) as router:
        yield router


def peer(router: Router, flow) -> str:
    return str(router.lab.accepted(flow.tag)["peer"])


def clat_pid(router: Router) -> int:
    """The CLAT's tayga: the lab's own (external) or the daemon's (from its pid file)."""
    if router.options["translator"] == "tayga":
        return int((Path(router.options["state_dir"]) / "tayga.pid").read_text())
    return router.lab.procs["clat"].pid


def consistent(router: Router) -> None:
    """The kernel holds exactly what the daemon's table wants: an IPv4 leg per Valid entry and
    an IPv6 leg per pool address in use (nothing orphaned)."""
    mappings = router.mappings()
    valid = {(m["ipv4"], m["pool"]) for m in mappings if m["state"] == "valid"}
    assert set(router.dnat_elements().items()) == valid
    assert set(router.ipv6_legs().values()) == {m["ipv6"] for m in mappings}


@pytest.mark.lab
def test_ipv4_only_server_through_clat_and_nat64(router: Router):
    lab = router.lab
    [address] = router.resolve(lab.lan, "v4only.lab.example")
    with lab.flow(lab.lan, address) as flow:
        flow.roundtrip("hello")
        assert peer(router, flow) == NAT64_PEER


@pytest.mark.lab
def test_dual_stack_name_goes_native_and_the_clat_is_never_changed(router: Router):
    lab = router.lab
    before = clat_pid(router)
    [address] = router.resolve(lab.lan, "ds1.lab.example")
    with lab.flow(lab.lan, address) as flow:
        flow.roundtrip("hello")
        assert peer(router, flow) == CLAT_IPV6
    pool = router.dnat_elements()[address]
    assert pool in {str(a) for a in ip_network(router.options["pool"])}
    assert router.translated("2001:db8:1::101")
    assert clat_pid(router) == before  # no restart, no reload: the mapping is nft only
    status = router.status()["dataplane"]
    assert status["nft"] == "libnftables" and status["clat"]["device"] == "clat"


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
        old.roundtrip("still there")
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
    assert list(router.ipv6_legs().values()).count("2001:db8:1::40") == 1
    assert len({router.dnat_elements()[a] for a in addresses}) == 1


@pytest.mark.lab
def test_sigkill_then_restart_adopts_valid_mappings_both_legs_and_leaves_no_orphan(
    router: Router,
):
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
        assert status["counters"].get("adopted.valid", 0) >= 1
        row = next(m for m in router.mappings() if m["ipv4"] == "192.0.2.103")
        assert row["state"] == "valid" and row["fqdns"] == ["ds3.lab.example"]
        # A device that cached the answer connects again without asking DNS: still native.
        with lab.flow(lab.lan, "192.0.2.103") as again:
            assert peer(router, again) == CLAT_IPV6
    consistent(router)


@pytest.mark.lab
def test_a_service_restart_keeps_valid_mappings_valid(router: Router):
    """`service clat-eamt restart`: SIGTERM (the IPv4 legs go, handed over with their notes in
    the state directory), then a start that adopts them."""
    lab = router.lab
    assert router.resolve(lab.lan, "ds13.lab.example") == ["192.0.2.113"]
    os.kill(router.proc.pid, signal.SIGTERM)
    router.proc.popen.wait(10)
    assert "192.0.2.113" not in router.dnat_elements()  # nothing steered while it is down
    router.start()
    row = next(m for m in router.mappings() if m["ipv4"] == "192.0.2.113")
    assert row["state"] == "valid" and row["fqdns"] == ["ds13.lab.example"]
    with lab.flow(lab.lan, "192.0.2.113") as flow:  # no DNS asked again
        assert peer(router, flow) == CLAT_IPV6
    assert not (Path(router.options["state_dir"]) / "handover.json").exists()
    consistent(router)


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
        assert router.translated("2001:db8:1::60")  # kept while the native flow lives
    router.wait(lambda: not router.translated("2001:db8:1::60"), "the IPv6 leg to go", 15)


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
        assert router.translated("2001:db8:1::71")
    router.wait(lambda: not router.translated("2001:db8:1::71"), "the IPv6 leg to go", 15)


@pytest.mark.lab
def test_a_flow_picked_up_mid_stream_is_never_steered(router: Router):
    """conntrack forgets every flow (`conntrack -F`, as a firewall script may do) while a NAT64
    flow runs to a destination that is mapped meanwhile: its next packet is picked up as a new
    connection, and only a SYN may be steered, so it goes on through the NAT64 unharmed."""
    lab = router.lab
    with lab.flow(lab.lan, "192.0.2.104") as old:
        old.start_ticker(0.05)
        assert peer(router, old) == NAT64_PEER
        assert router.resolve(lab.lan, "ds4.lab.example") == ["192.0.2.104"]
        run(lab.ce, ["conntrack", "-F"])
        time.sleep(0.3)
        old.stop_ticker()
        old.roundtrip("still there after the flush")
        with lab.flow(lab.lan, "192.0.2.104") as new:
            assert peer(router, new) == CLAT_IPV6
    assert old.max_stall() < 3.0


@pytest.mark.lab
def test_a_pool_address_is_reused_for_another_target_only_when_its_flows_are_gone(
    router: Router,
):
    """P stays with X while a flow may use it (core.pool); once the flows are gone P goes to
    another X, and a new flow through P reaches the new X."""
    lab = router.lab
    socket = router.options["control_socket"]
    call(socket, "flush")  # earlier tests' entries go, so that pool addresses come in order
    router.wait(lambda: not router.ipv6_legs(), "the pool to be empty", 15)
    assert router.resolve(lab.lan, "ds5.lab.example") == ["192.0.2.105"]
    pool = router.dnat_elements()["192.0.2.105"]
    with lab.flow(lab.lan, "192.0.2.105") as running:
        assert lab.accepted(running.tag)["local"] == "2001:db8:1::105"
        call(
            router.options["control_socket"], "flush"
        )  # ds5's entry goes Stale; its flow keeps P and X
        assert router.resolve(lab.lan, "ds6.lab.example") == ["192.0.2.106"]
        assert router.dnat_elements()["192.0.2.106"] != pool  # P is still X's
        with lab.flow(lab.lan, "192.0.2.106") as other:
            assert lab.accepted(other.tag)["local"] == "2001:db8:1::106"
        running.roundtrip("still on its own target")
    router.wait(lambda: not router.translated("2001:db8:1::105"), "P to be free", 15)
    assert router.resolve(lab.lan, "ds7.lab.example") == ["192.0.2.107"]
    assert router.dnat_elements()["192.0.2.107"] == pool  # reused, for another target
    with lab.flow(lab.lan, "192.0.2.107") as reused:
        assert lab.accepted(reused.tag)["local"] == "2001:db8:1::107"


@pytest.mark.lab
def test_legs_rewritten_under_a_running_flow_do_not_move_it(router: Router):
    """Both legs are pinned by conntrack: P re-pointed at another X by hand while a flow runs
    through it moves only the flows that start afterwards (why the v2 dataplane needs no
    translator entry for running flows)."""
    lab = router.lab
    assert router.resolve(lab.lan, "ds8.lab.example") == ["192.0.2.108"]
    pool = router.dnat_elements()["192.0.2.108"]
    [key] = [t for t, x in router.ipv6_legs().items() if x == "2001:db8:1::108"]
    with lab.flow(lab.lan, "192.0.2.108") as running:
        assert lab.accepted(running.tag)["local"] == "2001:db8:1::108"
        edit = (
            f"delete element inet clat_eamt dnat6 {{ {key} }}\n"
            f"add element inet clat_eamt dnat6 {{ {key} : 2001:db8:1::109/128 }}\n"
        )
        run(lab.ce, ["nft", "-f", "-"], input=edit)
        with lab.flow(lab.lan, "192.0.2.108") as new:
            assert lab.accepted(new.tag)["local"] == "2001:db8:1::109"
        running.roundtrip("still on its target")
        assert lab.accepted(running.tag)["local"] == "2001:db8:1::108"
    restore = (
        f"delete element inet clat_eamt dnat6 {{ {key} }}\n"
        f"add element inet clat_eamt dnat6 {{ {key} : 2001:db8:1::108/128 }}\n"
    )
    run(lab.ce, ["nft", "-f", "-"], input=restore)
    assert router.dnat_elements()["192.0.2.108"] == pool


@pytest.mark.lab
def test_a_missing_clat_device_keeps_dns_and_nat64_working_and_says_why(tmp_path: Path):
    with own_router(tmp_path, translator="external", clat_device="nosuch0") as router:
        lab = router.lab
        assert router.resolve(lab.lan, "ds9.lab.example") == ["192.0.2.109"]
        with lab.flow(lab.lan, "192.0.2.109") as flow:
            assert peer(router, flow) == NAT64_PEER
        error = router.status()["dataplane"]["error"] or ""
        assert "nosuch0" in error and "does not exist" in error
        # The CLAT going down is noticed too (nothing is steered into a dead device).
        run(lab.ce, ["ip", "link", "add", "nosuch0", "type", "veth", "peer", "name", "nosuch1"])
        run(lab.ce, ["ip", "link", "set", "nosuch0", "up"])
        router.wait(lambda: router.status()["dataplane"]["error"] is None, "the device", 20)
        run(lab.ce, ["ip", "link", "set", "nosuch0", "down"])
        router.wait(
            lambda: "down" in (router.status()["dataplane"]["error"] or ""), "it to go down", 10
        )
        assert router.resolve(lab.lan, "ds10.lab.example") == ["192.0.2.110"]


@pytest.mark.lab
def test_no_clat_at_all_means_decide_and_log_only(tmp_path: Path):
    with own_router(tmp_path, clat="none", translator="auto") as router:
        lab = router.lab
        assert router.resolve(lab.lan, "ds11.lab.example") == ["192.0.2.111"]
        error = router.status()["dataplane"]["error"] or ""
        assert error.startswith("ClatNotFoundError: no CLAT found"), error


@pytest.mark.lab
def test_missing_jool_keeps_dns_and_nat64_working(tmp_path: Path):
    with own_router(tmp_path, clat="lab", translator="jool") as router:
        lab = router.lab
        assert router.resolve(lab.lan, "ds12.lab.example") == ["192.0.2.112"]
        with lab.flow(lab.lan, "192.0.2.112") as flow:
            assert peer(router, flow) == NAT64_PEER
        status = router.status()
        assert "jool" in (status["dataplane"]["error"] or "")
        assert status["counters"]["answers.apply_failed"] >= 1


@pytest.mark.lab
def test_dual_stack_client_is_never_steered_an_ipv4_only_one_is(tmp_path: Path):
    options = {"host_mode": "ipv4-only", "host_observe": "0", "lan_interface": ["br-lan"]}
    with own_router(tmp_path, **options) as router:
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
    # 198.51.100.0/25 holds the LAN's 198.51.100.0/26: found on the router's own interfaces.
    with own_router(tmp_path, pool="198.51.100.0/25") as router:
        lab = router.lab
        assert router.resolve(lab.lan, "ds6.lab.example") == ["192.0.2.106"]
        with lab.flow(lab.lan, "192.0.2.106") as flow:
            assert peer(router, flow) == NAT64_PEER
        error = router.status()["dataplane"]["error"] or ""
        assert "pool" in error and "198.51.100.0/26" in error
