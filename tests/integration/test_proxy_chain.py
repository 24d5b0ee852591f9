"""The daemon's DNS proxy between real servers, as on a router: dnsmasq (configured the way
OpenWrt does: server=ADDR#PORT, noresolv, add-mac, add-subnet=32,128) -> clat-eamt -> unbound
with DNS64 (the ISP resolver) -> knot (the authoritative server of lab.example)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from dnslib import QTYPE, DNSRecord

from tests.integration.proxykit import Daemon, start_daemon
from tests.labkit import DnsChain
from tests.labkit.client import answers, query, query_raw, rcode
from tests.labkit.dnsmasq import Dnsmasq


@pytest.fixture(scope="module")
def daemon(dns_chain: DnsChain) -> Iterator[Daemon]:
    """No pref64 configured: the daemon discovers it (RFC 7050) through unbound."""
    d = start_daemon(dns_chain, "clat-eamt-chain")
    yield d
    dns_chain.procs.stop(d.proc.name)


@pytest.fixture(scope="module")
def dnsmasq(dns_chain: DnsChain, daemon: Daemon) -> Iterator[Dnsmasq]:
    dm = dns_chain.dnsmasq(daemon.target, name="dnsmasq-chain", cache_size=0)
    yield dm
    dns_chain.procs.stop(dm.name)


def ask(dm: Dnsmasq, name: str, qtype: str = "A", **kwargs) -> DNSRecord:
    return query(dm.addr, dm.port, name, qtype, **kwargs)


def events(decision: dict) -> list[tuple[str, str, str]]:
    return [
        (e["kind"], e["entry"]["ipv4"], e["entry"]["ipv6"]) for e in decision["outcome"]["events"]
    ]


def test_dual_stack_name_maps_before_the_answer_is_released(daemon, dnsmasq, dns_chain):
    reply = ask(dnsmasq, "ds1.lab.example")
    assert answers(reply, "A") == ["192.0.2.101"]
    decision = daemon.wait_decision("ds1.lab.example")
    assert events(decision) == [("added", "192.0.2.101", "2001:db8:1::101")]
    ops = decision["outcome"]["ops"]
    assert ops[0].startswith("ipv6 leg add ") and ops[1].startswith("ipv4 leg add 192.0.2.101 -> ")
    # Released as unbound sent it: the same records as asking unbound directly.
    direct = dns_chain.query("ds1.lab.example")
    assert sorted(answers(reply)) == sorted(answers(direct))
    # dnsmasq's ECS (add-subnet=32,128) named the client.
    assert decision["observation"]["host"] == "127.0.0.1"


def test_ipv4_only_name_gets_a_synthesized_aaaa_and_maps_nothing(daemon, dnsmasq):
    assert answers(ask(dnsmasq, "v4only.lab.example"), "A") == ["192.0.2.20"]
    decision = daemon.wait_decision("v4only.lab.example")
    assert decision["observation"]["aaaa"] == ["2001:db8:64::c000:214"]  # made by unbound's DNS64
    assert events(decision) == []
    reasons = [r["reason"] for r in decision["outcome"]["decision"]["refusals"]]
    assert reasons == ["synthesized"]


def test_pref64_is_discovered_from_ipv4only_arpa(daemon, dnsmasq):
    ask(dnsmasq, "v4only.lab.example")
    status = daemon.status()
    assert status["pref64"]["prefixes"] == ["2001:db8:64::/96"]
    assert status["pref64"]["source"] == "dns (RFC 7050)"
    assert status["pref64"]["discovery"]["problem"] is None


def test_cname_chain_records_the_query_name_and_keeps_the_chain(daemon, dnsmasq):
    reply = ask(dnsmasq, "cname.lab.example")
    assert answers(reply, "A") == ["192.0.2.30"]
    decision = daemon.wait_decision("cname.lab.example")
    assert decision["observation"]["chain"] == ["edge.cdn.lab.example"]
    [(kind, ipv4, ipv6)] = events(decision)
    assert (kind, ipv4, ipv6) == ("added", "192.0.2.30", "2001:db8:1::30")
    assert decision["outcome"]["events"][0]["entry"]["fqdn"] == "cname.lab.example"
    assert decision["outcome"]["events"][0]["entry"]["cnames"] == ["edge.cdn.lab.example"]


def test_several_a_records_share_one_pool_address(daemon, dnsmasq):
    ask(dnsmasq, "multi.lab.example")
    decision = daemon.wait_decision("multi.lab.example")
    entries = [e["entry"] for e in decision["outcome"]["events"]]
    assert sorted(e["ipv4"] for e in entries) == ["192.0.2.41", "192.0.2.42", "192.0.2.43"]
    assert {e["ipv6"] for e in entries} == {"2001:db8:1::40"}
    assert len({e["pool"] for e in entries}) == 1


def test_large_answer_truncates_over_udp_and_completes_over_tcp(daemon, dnsmasq):
    """120 A records: truncated over UDP, whole over TCP, and more records than the proxy
    reads (records.MAX_RECORDS, issue 26): the client gets it as the resolver sent it, unread
    and unmapped."""
    before = daemon.status()["counters"]
    udp = ask(dnsmasq, "big.lab.example")
    assert udp.header.tc
    tcp = ask(dnsmasq, "big.lab.example", tcp=True)
    assert not tcp.header.tc and len(answers(tcp, "A")) == 120
    after = daemon.status()["counters"]
    assert after["queries.tcp"] > before.get("queries.tcp", 0)  # dnsmasq came to us over TCP
    assert after["answers.unusable"] > before.get("answers.unusable", 0)  # passed unread
    assert after.get("observed", 0) == before.get("observed", 0)  # no decision on it


def test_other_query_types_pass_through(daemon, dnsmasq):
    reply = ask(dnsmasq, "lab.example", "SOA")
    assert rcode(reply) == "NOERROR" and reply.rr[0].rtype == QTYPE.SOA
    assert ask(dnsmasq, "nothere.lab.example").header.rcode == 3  # NXDOMAIN passes as is


def test_malformed_packets_are_answered_or_dropped_and_the_proxy_lives_on(daemon):
    good = bytes(DNSRecord.question("ds2.lab.example").pack())
    header_only = good[:12]
    cases = {
        b"": None,
        b"\x01": None,
        good[:2] + b"\x81\x00" + good[4:]: None,  # a response: never answered
        good[:20]: 1,  # question cut: FORMERR
        good + b"\x00\x00\x00": 1,  # trailing garbage: FORMERR
        header_only[:4] + b"\x00\x02" + header_only[6:]: 1,  # two questions announced, none sent
        bytes(range(256)) * 2: 1,
    }
    for payload, expected in cases.items():
        try:
            got = DNSRecord.parse(query_raw(daemon.addr, daemon.port, payload, timeout=0.3))
        except TimeoutError:
            got = None
        assert (got.header.rcode if got else None) == expected, payload[:24]
    # TCP: a length prefix promising more than is sent, then closing.
    import socket  # noqa: PLC0415

    with socket.create_connection((daemon.addr, daemon.port), timeout=2) as sock:
        sock.sendall(b"\x00\x40" + good[:10])
    assert answers(daemon.query("ds2.lab.example"), "A") == ["192.0.2.102"]
    assert daemon.proc.alive()
    assert daemon.status()["counters"]["malformed.queries"] >= 6


def test_upstream_down_gives_servfail_quickly_and_a_live_one_is_used_next(dns_chain):
    dead = f"127.0.0.1#{dns_chain.free_port()}"
    alone = start_daemon(dns_chain, "clat-eamt-dead", upstream=dead, upstream_timeout_ms="10000")
    try:
        start = time.monotonic()
        reply = alone.query("ds3.lab.example", timeout=8)
        elapsed = time.monotonic() - start
        assert rcode(reply) == "SERVFAIL"
        assert elapsed < 5  # port unreachable is seen at once, not after the 10 s timeout
    finally:
        dns_chain.procs.stop(alone.proc.name)
    both = start_daemon(dns_chain, "clat-eamt-failover", upstream=[dead, dns_chain.unbound_target])
    try:
        assert answers(both.query("ds3.lab.example"), "A") == ["192.0.2.103"]
        assert answers(both.query("ds4.lab.example"), "A") == ["192.0.2.104"]
        servers = {s["server"]: s for s in both.status()["upstreams"]["servers"]}
        # The start-up already asked (the readiness probe, Pref64 discovery): the dead one failed
        # then, and again if its first 1 s back-off ran out before these queries (a busy
        # machine); what counts is that it is down and the live one answers.
        assert servers[dead]["state"] == "down" and servers[dead]["failures"] >= 1
        assert servers[dns_chain.unbound_target]["preferred"]
    finally:
        dns_chain.procs.stop(both.proc.name)


def test_resolv_conf_is_followed_when_the_wan_changes(dns_chain, tmp_path):
    resolv = tmp_path / "resolv.conf.auto"
    resolv.write_text("nameserver 192.0.2.253\n")  # nothing answers there
    d = start_daemon(
        dns_chain,
        "clat-eamt-resolv",
        upstream="",
        resolv_file=str(resolv),
        upstream_timeout_ms="200",
    )
    try:
        assert rcode(d.query("ds5.lab.example", timeout=3)) == "SERVFAIL"
        # netifd rewrites the file; resolv.conf names no port, so point it at a port-53 resolver:
        # the daemon's own status shows the new server list instead of a query.
        resolv.write_text("nameserver 2001:db8::53\nnameserver 127.0.0.1\n")
        time.sleep(1.2)  # the file is checked at most once a second
        servers = [s["server"] for s in d.status()["upstreams"]["servers"]]
        assert servers == ["2001:db8::53"]  # the loopback entry (dnsmasq itself) is skipped
    finally:
        dns_chain.procs.stop(d.proc.name)
