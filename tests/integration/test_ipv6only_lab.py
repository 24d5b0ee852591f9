"""Issue 27 in the lab: IPv6-only services for IPv4-only devices, with ``ipv6_only`` on.

The home router of the lab (routerkit: knot's zone, unbound DNS64 at the ISP, dnsmasq on the
router, the CLAT as OpenWrt's 464xlat runs it, clat-eamt behind dnsmasq).  Judged from outside:
the DNS answers the clients get, who the echo server saw (the CLAT's IPv6: native) and on which
of its addresses, the daemon's table and nft elements.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from ipaddress import ip_address, ip_network

import pytest
from dnslib import DNSRecord

from clat_eamt.control.client import call
from tests.integration.proxykit import uci
from tests.integration.routerkit import CLAT_IPV6, Router, lab_router
from tests.labkit import Xlat
from tests.labkit.client import answers, make_query, query_raw
from tests.labkit.netns import run

PLACEHOLDER = "192.0.2.98"
POOL = ip_network(Xlat.EAM_POOL)
CLOSED = 9  # a port nothing of the lab's servers listens on: the server's kernel sends an RST


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Router]:
    yield from lab_router(
        tmp_path_factory,
        "ipv6only",
        ipv6_only="1",
        ipv6_only_placeholder=[PLACEHOLDER],
        ipv6_only_quarantine="600",
        ttl_min="0",
        stale_linger="1",
        apply_timeout_ms="2000",  # a busy machine: the answer waits for its IPv6 leg
    )


def reached(router: Router, client, address: str) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """(who the server saw, which of its addresses was reached) for a flow to ``address``."""
    with router.lab.flow(client, address) as flow:
        flow.roundtrip()
        event = router.lab.accepted(flow.tag)
    return str(event["peer"]), str(event["local"])


def pool_address(router: Router, client, name: str) -> str:  # type: ignore[no-untyped-def]
    [address] = router.resolve(client, name)
    assert ip_address(address) in POOL, f"{name}: {address} is not a pool address"
    return address


def rescues(router: Router) -> int:
    return int(call(router.options["control_socket"], "status")["summary"]["safety"]["rescued"])


def row(router: Router, name: str) -> dict:  # type: ignore[type-arg]
    [found] = [m for m in router.mappings() if name in m["fqdns"]]
    return found


@pytest.mark.lab
def test_an_ipv4_only_client_reaches_an_ipv6_only_server_by_name(router: Router):
    lab = router.lab
    p = pool_address(router, lab.lan, "v6only.lab.example")
    mapping = row(router, "v6only.lab.example")
    assert (mapping["origin"], mapping["ipv4"], mapping["ipv6"]) == (
        "ipv6-only",
        p,
        "2001:db8:1::70",
    )
    assert "2001:db8:1::70" in router.ipv6_legs().values()
    assert p not in router.dnat_elements().values()  # the IPv6 leg only: no IPv4 D to DNAT
    assert reached(router, lab.lan, p) == (CLAT_IPV6, "2001:db8:1::70")
    assert router.resolve(lab.lan, "v6only.lab.example") == [p]  # stable across refreshes


@pytest.mark.lab
def test_a_dual_stack_client_reaches_it_over_ipv6_and_its_ipv4_to_p_goes_native(router: Router):
    lab = router.lab
    reply = query_raw(
        lab.CE_LAN_ADDR4, 53, make_query("v6only.lab.example", "AAAA").pack(), netns=lab.lan6
    )
    assert answers(DNSRecord.parse(reply), "AAAA") == ["2001:db8:1::70"]
    assert reached(router, lab.lan6, "2001:db8:1::70") == (lab.LAN6_ADDR6, "2001:db8:1::70")
    p = pool_address(router, lab.lan6, "v6only.lab.example")  # dnsmasq's LAN gets P too
    assert reached(router, lab.lan6, p) == (CLAT_IPV6, "2001:db8:1::70")


@pytest.mark.lab
def test_two_names_sharing_one_placeholder_reach_their_own_servers(router: Router):
    lab = router.lab
    p1 = pool_address(router, lab.lan, "null1.lab.example")
    p2 = pool_address(router, lab.lan, "null2.lab.example")
    assert p1 != p2
    assert reached(router, lab.lan, p1) == (CLAT_IPV6, "2001:db8:1::91")
    assert reached(router, lab.lan, p2) == (CLAT_IPV6, "2001:db8:1::92")
    assert PLACEHOLDER not in router.dnat_elements()  # the placeholder is nobody's destination
    assert not router.status()["counters"].get("refused.conflict")


@pytest.mark.lab
@pytest.mark.parametrize("name", ["v6only.lab.example", "null1.lab.example"])
def test_a_query_with_cd_gets_the_upstreams_answer_unchanged(router: Router, name: str):
    lab = router.lab
    message = make_query(name, "A")
    message.header.cd = 1
    through = DNSRecord.parse(query_raw(lab.CE_LAN_ADDR4, 53, message.pack(), netns=lab.lan))
    host, port = lab.unbound_target.rsplit("#", 1)
    direct = DNSRecord.parse(query_raw(host, int(port), message.pack(), netns=lab.ce))
    assert through.header.rcode == direct.header.rcode
    assert answers(through, "A") == answers(direct, "A")  # NODATA, or the placeholder itself
    assert all(ip_address(a) not in POOL for a in answers(through, "A"))


@pytest.mark.lab
def test_an_old_p_goes_nowhere_after_its_mapping_ended_and_is_not_handed_out(router: Router):
    lab = router.lab
    p = pool_address(router, lab.lan, "v6gone.lab.example")  # its AAAA lives 2 s
    assert reached(router, lab.lan, p) == (CLAT_IPV6, "2001:db8:1::93")
    router.wait(
        lambda: not any("v6gone.lab.example" in m["fqdns"] for m in router.mappings()),
        "the mapping of v6gone to end",
        timeout=15,
    )
    assert "2001:db8:1::93" not in router.ipv6_legs().values()
    with pytest.raises(OSError):  # a device that kept P reaches nothing (timeout or refusal)
        lab.flow(lab.lan, p, timeout=2.0).close()
    assert router.status()["ipv6_only"]["quarantined"] >= 1
    fresh = pool_address(router, lab.lan, "v6next.lab.example")
    assert fresh != p  # P is not given to another name during its quarantine
    assert reached(router, lab.lan, fresh) == (CLAT_IPV6, "2001:db8:1::94")


@pytest.mark.lab
def test_a_closed_port_is_refused_at_once_and_the_entry_stays_valid(router: Router):
    """The safety net leaves an IPv6-only entry's flows alone (no NAT64 behind them): the RST
    the server sends over native IPv6 reaches the device as "connection refused", at once,
    not held back into a connect timeout; nothing is rescued, the target is not broken."""
    lab = router.lab
    p = pool_address(router, lab.lan, "v6only.lab.example")
    [leg] = [t for t, x in router.ipv6_legs().items() if x == "2001:db8:1::70"]
    listed = run(lab.ce, ["nft", "list", "set", "inet", "clat_eamt", "unguarded"]).stdout
    assert leg in listed  # T(P), the IPv6 leg's key: left alone by the guard
    rescued = rescues(router)
    began = time.monotonic()
    got = run(lab.lan, ["curl", "-sS", "--connect-timeout", "5", "-o", "/dev/null",
                        f"http://{p}:{CLOSED}/"], check=False)  # fmt: skip
    seconds = time.monotonic() - began
    assert got.returncode == 7, f"curl exit {got.returncode}: {got.stderr.strip()}"
    assert seconds < 0.9, f"{seconds:.2f} s: less than the device's first SYN retransmission"
    with pytest.raises(ConnectionRefusedError):  # the kernel's TCP says why: ECONNREFUSED
        lab.flow(lab.lan, p, CLOSED, timeout=5.0).close()
    time.sleep(1.0)  # past the rescue window (700 ms): a held flow would have been rescued
    assert rescues(router) == rescued
    assert row(router, "v6only.lab.example")["state"] == "valid"
    verdicts = router.status()["safety"]["verdicts"]
    assert not [v for v in verdicts if v["target"] == "2001:db8:1::70" and v["verdict"] == "broken"]
    assert reached(router, lab.lan, p) == (CLAT_IPV6, "2001:db8:1::70")  # and it still works


@pytest.mark.lab
def test_with_the_option_off_the_name_has_no_a_and_nothing_is_mapped(router: Router):
    """Last in the module: a reload turns the option off, then back on."""
    lab = router.lab
    before = {m["ipv4"] for m in router.mappings()}
    options = dict(router.options, ipv6_only="0")
    try:
        router.config.write_text(uci(options))
        os.kill(router.proc.pid, signal.SIGHUP)
        router.wait(lambda: not router.status()["ipv6_only"]["enabled"], "the reload")
        assert router.resolve(lab.lan, "v6only.lab.example") == []
        assert router.resolve(lab.lan, "null2.lab.example") == [PLACEHOLDER]
        after = {m["ipv4"] for m in router.mappings() if m["origin"] == "ipv6-only"}
        assert after <= before  # nothing new
    finally:
        router.config.write_text(uci(router.options))
        os.kill(router.proc.pid, signal.SIGHUP)
