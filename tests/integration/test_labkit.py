"""Self-tests of tests/labkit: the servers answer what the zone data says, the lab tricks
(truncation, DNS64, slow AAAA, dnsmasq's MAC option, the sniffer) do what the proxy tests
will rely on, and nothing a test starts outlives it."""

from __future__ import annotations

import base64
import ipaddress
import struct
import subprocess
from pathlib import Path

import pytest
from dnslib import DNSRecord

from tests.labkit import (
    IPV4ONLY,
    LAB,
    SLOW,
    WKA,
    DnsChain,
    Dnsmasq,
    Netns,
    ProcessGroup,
    ReadyTimeoutError,
    Sniffer,
    answers,
    dns64,
    edns_option,
    edns_option_codes,
    free_port,
    make_query,
    port_is_free,
    qtype_offset_bits,
    query,
    rcode,
    slow_aaaa_drops,
    socket_in,
    veth,
)
from tests.labkit.lan import Lan
from tests.labkit.netns import PREFIX, ip, list_lab_namespaces, netns_id
from tests.labkit.procs import process_gone as gone
from tests.labkit.procs import tool, wait_ready
from tests.labkit.require import LAB_TOOLS, SERVER_TOOLS, require_tools
from tests.labkit.zone import DOCUMENTATION_NETS, NEGATIVE_TTL, all_zones


# -- pure helpers (no servers) ------------------------------------------------------------------
def test_zone_addresses_are_documentation_addresses_only() -> None:
    for zone in all_zones():
        for rec in zone.records:
            if rec.rtype not in ("A", "AAAA"):
                continue
            addr = ipaddress.ip_address(rec.rdata)
            if zone is IPV4ONLY:
                assert rec.rdata in WKA
            else:
                assert any(addr in net for net in DOCUMENTATION_NETS), (zone.origin, rec)


def test_qtype_offset_points_at_qtype_in_udp_and_tcp() -> None:
    wire = make_query(SLOW.origin, "AAAA").pack()
    udp_segment = b"\0" * 8 + wire  # offset counted from the UDP header
    at = qtype_offset_bits(SLOW.origin) // 8
    assert udp_segment[at : at + 2] == b"\x00\x1c"
    tcp_payload = struct.pack("!H", len(wire)) + wire  # offset counted from the TCP payload
    at = qtype_offset_bits(SLOW.origin, tcp=True) // 8
    assert tcp_payload[at : at + 2] == b"\x00\x1c"


def test_free_port_is_free_for_udp_and_tcp_and_never_repeated() -> None:
    ports = {free_port() for _ in range(20)}
    assert len(ports) == 20
    assert all(port_is_free(p) for p in ports)


def test_process_group_stops_the_whole_group(tmp_path: Path) -> None:
    with ProcessGroup(tmp_path) as group:
        proc = group.start("sh", [tool("sh"), "-c", "sleep 300 & echo child=$!; wait"])
        wait_ready(lambda: "child=" in proc.log_text(), 10, proc=proc)
        child = int(proc.log_text().split("child=")[1].split()[0])
        assert not gone(child)
    assert gone(proc.pid)
    wait_ready(lambda: gone(child), 10, what="child gone")


def test_wait_ready_reports_an_early_exit_with_its_log(tmp_path: Path) -> None:
    with ProcessGroup(tmp_path) as group, pytest.raises(ReadyTimeoutError, match="boom"):
        group.start("dies", [tool("sh"), "-c", "echo boom; exit 3"], ready=lambda: False)


# -- the loopback chain (no root) ---------------------------------------------------------------
def test_knot_answers_authoritatively(dns_chain: DnsChain) -> None:
    r = query("127.0.0.1", dns_chain.knot_port, "ds.lab.example", "A")
    assert r.header.aa
    assert answers(r, "A") == ["192.0.2.10"]
    assert rcode(query("127.0.0.1", dns_chain.knot_port, "nope.lab.example")) == "NXDOMAIN"
    nodata = query("127.0.0.1", dns_chain.knot_port, "v4only.lab.example", "AAAA")
    assert (rcode(nodata), answers(nodata)) == ("NOERROR", [])
    assert nodata.auth[0].rdata.times[-1] == NEGATIVE_TTL
    slow = query("127.0.0.1", dns_chain.slow_port, "slow.lab.example", "AAAA")
    assert answers(slow) == ["2001:db8:1::50"]


def test_unbound_synthesizes_aaaa_for_v4only(dns_chain: DnsChain) -> None:
    r = dns_chain.query("v4only.lab.example", "AAAA")
    assert answers(r, "AAAA") == ["2001:db8:64::c000:214"] == [dns64("192.0.2.20")]


@pytest.mark.parametrize("name", ["ds", "multi", "ds7", "edge.cdn"])
def test_unbound_passes_the_real_aaaa(dns_chain: DnsChain, name: str) -> None:
    r = dns_chain.query(f"{name}.lab.example", "AAAA")
    assert set(answers(r, "AAAA")) == LAB.addresses(name, "AAAA")
    a = dns_chain.query(f"{name}.lab.example", "A")
    assert set(answers(a, "A")) == LAB.addresses(name, "A")


def test_unbound_follows_the_cname(dns_chain: DnsChain) -> None:
    r = dns_chain.query("cname.lab.example", "AAAA")
    assert answers(r) == ["edge.cdn.lab.example.", "2001:db8:1::30"]


def test_ipv4only_arpa_gives_the_pref64(dns_chain: DnsChain) -> None:
    r = dns_chain.query("ipv4only.arpa", "AAAA")
    assert set(answers(r, "AAAA")) == {"2001:db8:64::c000:aa", "2001:db8:64::c000:ab"}


def test_big_truncates_over_udp_and_is_complete_over_tcp(dns_chain: DnsChain) -> None:
    udp = dns_chain.query("big.lab.example", "A", bufsize=1232)
    assert udp.header.tc
    tcp = dns_chain.query("big.lab.example", "A", tcp=True)
    assert not tcp.header.tc
    assert set(answers(tcp, "A")) == LAB.addresses("big", "A")
    assert len(tcp.pack()) > 1232


def test_names_outside_the_lab_fail_locally(dns_chain: DnsChain) -> None:
    """The root stub points at knot: no query leaves the machine, the answer is SERVFAIL."""
    assert rcode(dns_chain.query("www.example.com", "A", timeout=20)) == "SERVFAIL"


def test_dnsmasq_forwards_to_unbound(dns_chain: DnsChain, tmp_path: Path) -> None:
    with Dnsmasq(tmp_path, servers=dns_chain.unbound_target, cache_size=0) as dm:
        r = query(dm.addr, dm.port, "ds2.lab.example", "AAAA")
        assert answers(r, "AAAA") == ["2001:db8:1::102"]
        r = query(dm.addr, dm.port, "v4only.lab.example", "AAAA", tcp=True)
        assert answers(r, "AAAA") == [dns64("192.0.2.20")]
        log = dm.log_text()
    assert f"forwarded ds2.lab.example to {dns_chain.unbound_target}" in log


def test_chain_and_started_processes_are_gone_after_exit() -> None:
    require_tools(*SERVER_TOOLS)
    with pytest.raises(RuntimeError, match="boom"), DnsChain() as chain:
        chain.start("middle", [tool("sleep"), "300"])
        chain.dnsmasq(chain.unbound_target)
        pids = [p.pid for p in chain.procs]
        workdir = chain.workdir
        assert len(pids) == 5 and not any(gone(pid) for pid in pids)
        raise RuntimeError("boom")
    assert all(gone(pid) for pid in pids)
    assert not workdir.exists()


# -- namespaces (lab) ---------------------------------------------------------------------------
@pytest.mark.lab
def test_lab_chain_runs_inside_its_namespace(lab_chain: DnsChain) -> None:
    r = lab_chain.query("v4only.lab.example", "AAAA")
    assert answers(r, "AAAA") == [dns64("192.0.2.20")]
    ns_inode = netns_id(lab_chain.netns)
    assert {netns_id(pid=p.pid) for p in lab_chain.procs} == {ns_inode}
    assert netns_id() != ns_inode


@pytest.mark.lab
def test_sniffer_captures_queries_with_edns_options(lab_ns: Netns, tmp_path: Path) -> None:
    port, other = free_port(netns=lab_ns), free_port(netns=lab_ns)
    option = (65001, bytes.fromhex("020000000001"))
    with ProcessGroup(tmp_path) as group:
        sniffer = Sniffer(group, tmp_path / "cap.txt", port, netns=lab_ns).start()
        with socket_in(lab_ns) as sock:
            for name, dport in (("ds3.lab.example", other), ("ds4.lab.example", port)):
                sock.sendto(make_query(name, options=[option]).pack(), ("127.0.0.1", dport))
        msgs = sniffer.wait_for(lambda ms: any(str(m.q.qname) == "ds4.lab.example." for m in ms))
    assert [str(m.q.qname) for m in msgs] == ["ds4.lab.example."]  # not ds3: other port
    assert edns_option_codes(msgs[0]) == [65001]
    assert edns_option(msgs[0], 65001) == option[1]


def _forwarded(lan: Lan, sniffer: Sniffer, name: str) -> DNSRecord:
    """The query dnsmasq forwarded to unbound for `name` (as unbound received it)."""
    fq = name + "."
    msgs = sniffer.wait_for(lambda ms: any(str(m.q.qname) == fq for m in ms))
    return next(m for m in msgs if str(m.q.qname) == fq)


@pytest.mark.lab
@pytest.mark.parametrize(
    ("variant", "code"), [("binary", 65001), ("text", 65073), ("base64", 65073)]
)
def test_dnsmasq_adds_the_client_mac_across_a_veth(lab_lan: Lan, variant: str, code: int) -> None:
    chain = lab_lan.chain
    sniffer = chain.sniffer(chain.unbound_port)
    dm = chain.dnsmasq(chain.unbound_target, addr=lab_lan.router_addr, add_mac=variant)
    r = query(dm.addr, dm.port, "ds5.lab.example", "AAAA", netns=lab_lan.client)
    assert answers(r, "AAAA") == ["2001:db8:1::105"]

    forwarded = _forwarded(lab_lan, sniffer, "ds5.lab.example")
    mac_text = lab_lan.client_mac
    mac = bytes.fromhex(mac_text.replace(":", ""))
    expected = {"binary": mac, "text": mac_text.encode(), "base64": base64.b64encode(mac)}
    assert edns_option(forwarded, code) == expected[variant]
    # --add-subnet=32,128: ECS family 1, source /32, scope 0, the client's address.
    ecs = bytes([0, 1, 32, 0]) + ipaddress.IPv4Address(lab_lan.client_addr).packed
    assert edns_option(forwarded, 8) == ecs


@pytest.mark.lab
def test_dnsmasq_ipv6_client_gets_mac_and_ecs_128(lab_lan: Lan) -> None:
    chain = lab_lan.chain
    sniffer = chain.sniffer(chain.unbound_port)
    dm = chain.dnsmasq(chain.unbound_target, addr=lab_lan.router_addr6)
    r = query(dm.addr, dm.port, "ds6.lab.example", "A", netns=lab_lan.client)
    assert answers(r, "A") == ["192.0.2.106"]
    forwarded = _forwarded(lab_lan, sniffer, "ds6.lab.example")
    assert edns_option(forwarded, 65001) == bytes.fromhex(lab_lan.client_mac.replace(":", ""))
    ecs = bytes([0, 2, 128, 0]) + ipaddress.IPv6Address(lab_lan.client_addr6).packed
    assert edns_option(forwarded, 8) == ecs


@pytest.mark.lab
def test_dnsmasq_adds_no_mac_for_a_client_on_its_own_host(lab_lan: Lan) -> None:
    chain = lab_lan.chain
    sniffer = chain.sniffer(chain.unbound_port)
    dm = chain.dnsmasq(chain.unbound_target, addr=lab_lan.router_addr)
    r = query(dm.addr, dm.port, "ds8.lab.example", "AAAA", netns=lab_lan.router)
    assert answers(r, "AAAA") == ["2001:db8:1::108"]
    forwarded = _forwarded(lab_lan, sniffer, "ds8.lab.example")
    assert 65001 not in edns_option_codes(forwarded)
    assert 8 in edns_option_codes(forwarded)


@pytest.mark.lab
def test_slow_aaaa_late_answers_a_at_once_and_aaaa_late_and_synthesized(tmp_path: Path) -> None:
    require_tools(*SERVER_TOOLS, *LAB_TOOLS)
    with Netns("slow") as ns, DnsChain(tmp_path, netns=ns, slow="late") as chain:
        a = chain.query("slow.lab.example", "A", timeout=10)
        assert answers(a, "A") == ["192.0.2.50"]
        with pytest.raises(TimeoutError):
            chain.query("slow.lab.example", "AAAA", timeout=0.05)
        late = chain.query("slow.lab.example", "AAAA", timeout=30)
        # The real AAAA (2001:db8:1::50) never reached unbound; DNS64 synthesized from A.
        assert answers(late, "AAAA") == [dns64("192.0.2.50")]
        assert slow_aaaa_drops(ns) >= 1
        # The rule is only for AAAA to knot-slow: A over UDP and TCP, other servers untouched.
        for tcp in (False, True):
            direct = query("127.0.0.1", chain.slow_port, SLOW.origin, "A", tcp=tcp, netns=ns)
            assert answers(direct) == ["192.0.2.50"]
            with pytest.raises(TimeoutError):
                query(
                    "127.0.0.1",
                    chain.slow_port,
                    SLOW.origin,
                    "AAAA",
                    tcp=tcp,
                    timeout=0.5,
                    netns=ns,
                )
        assert answers(chain.query("ds9.lab.example", "AAAA")) == ["2001:db8:1::109"]


@pytest.mark.lab
def test_slow_aaaa_lost_gives_no_aaaa_answer(tmp_path: Path) -> None:
    require_tools(*SERVER_TOOLS, *LAB_TOOLS)
    with Netns("lost") as ns, DnsChain(tmp_path, netns=ns, slow="lost") as chain:
        assert answers(chain.query("slow.lab.example", "A", timeout=10)) == ["192.0.2.50"]
        with pytest.raises(TimeoutError):
            chain.query("slow.lab.example", "AAAA", timeout=0.05)
        wait_ready(lambda: slow_aaaa_drops(ns) >= 1, 10, what="AAAA drop counted")


@pytest.mark.lab
def test_namespaces_and_processes_are_gone_after_a_failure() -> None:
    require_tools(*SERVER_TOOLS, *LAB_TOOLS)
    with pytest.raises(RuntimeError, match="boom"), Netns("gone") as ns, Netns("peer") as peer:
        veth(ns, peer, "192.0.2.1/24", "192.0.2.2/24")
        with DnsChain(netns=ns, slow="lost") as chain:
            chain.start("middle", [tool("sleep"), "300"])
            chain.dnsmasq(chain.unbound_target, addr="192.0.2.1")
            chain.sniffer(chain.unbound_port)
            pids = [p.pid for p in chain.procs]
            names, workdir = [ns.name, peer.name], chain.workdir
            assert len(pids) == 6 and not any(gone(pid) for pid in pids)
            raise RuntimeError("boom")
    assert all(gone(pid) for pid in pids)
    assert not set(names) & set(list_lab_namespaces())
    assert not workdir.exists()


@pytest.mark.lab
def test_stale_namespaces_of_a_dead_run_are_removed(lab_ns: Netns) -> None:
    dead = subprocess.Popen([tool("true")])
    dead.wait()
    stale = f"{PREFIX}{dead.pid}-1-stale"
    ip("netns", "add", stale)
    try:
        with Netns("fresh") as fresh:
            assert fresh.exists()
            assert stale not in list_lab_namespaces()
            assert lab_ns.exists()  # ours (a live pid): kept
    finally:
        ip("netns", "del", stale, check=False)
