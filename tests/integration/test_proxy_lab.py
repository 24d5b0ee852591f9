"""The proxy in namespaces (lab): a LAN client behind a veth, so dnsmasq sees its MAC, and a
resolver whose AAAA answers are held up by an nft drop rule (no netem on these machines)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration.proxykit import start_daemon
from tests.labkit import DnsChain, Netns, answers, edns_option_codes, query, slow_aaaa_drops
from tests.labkit.lan import Lan
from tests.labkit.require import LAB_TOOLS, SERVER_TOOLS, require_tools

IDENTITY = {65001, 65073, 8}


@pytest.mark.lab
@pytest.mark.parametrize("variant", ["binary", "text", "base64"])
def test_client_identity_names_the_host_and_never_reaches_unbound(lab_lan: Lan, variant: str):
    chain = lab_lan.chain
    daemon = start_daemon(chain, f"clat-eamt-{variant}")
    to_proxy = chain.sniffer(daemon.port, name="to-proxy")
    to_unbound = chain.sniffer(chain.unbound_port, name="to-unbound")
    dm = chain.dnsmasq(daemon.target, addr=lab_lan.router_addr, add_mac=variant, cache_size=0)
    reply = query(dm.addr, dm.port, "ds10.lab.example", "A", netns=lab_lan.client)
    assert answers(reply, "A") == ["192.0.2.110"]

    decision = daemon.wait_decision("ds10.lab.example")
    assert decision["observation"]["host"] == lab_lan.client_mac
    # dnsmasq did send the identity to the proxy ...
    to_proxy.wait_for(lambda _: bool(to_proxy.queries("ds10.lab.example")))
    [asked] = to_proxy.queries("ds10.lab.example")
    assert IDENTITY & set(edns_option_codes(asked)) == {65001 if variant == "binary" else 65073, 8}
    # ... and none of it went on to the ISP's resolver, for the A nor for the AAAA query.
    to_unbound.wait_for(lambda _: len(to_unbound.queries("ds10.lab.example")) >= 2)
    upstream = to_unbound.queries("ds10.lab.example")
    assert sorted(q.q.qtype for q in upstream) == [1, 28]
    for message in upstream:
        assert not IDENTITY & set(edns_option_codes(message)), message


@pytest.mark.lab
def test_aaaa_slower_than_the_hold_releases_the_a_unmapped_on_time(tmp_path: Path):
    require_tools(*SERVER_TOOLS, *LAB_TOOLS)
    with Netns("hold") as ns, DnsChain(tmp_path, netns=ns, slow="lost") as chain:
        # A 10 s upstream timeout: without the 50 ms hold, the A would wait that long.
        daemon = start_daemon(chain, upstream_timeout_ms="10000", hold_ms="50")
        start = time.monotonic()
        reply = daemon.query("slow.lab.example", timeout=15)
        elapsed = time.monotonic() - start
        assert answers(reply, "A") == ["192.0.2.50"]
        decision = daemon.wait_decision("slow.lab.example")
        assert decision["observation"]["aaaa_status"] == "timeout"
        assert decision["outcome"]["events"] == [] and decision["outcome"]["ops"] == []
        assert slow_aaaa_drops(ns) >= 1  # the AAAA really was held up on its way to knot
        assert elapsed < 1.0, f"A answer took {elapsed:.2f} s"  # 20 times the hold: noise-proof
        assert daemon.status()["counters"]["aaaa.timeout"] == 1
