"""RFC 7050 discovery's life: found, kept while fresh when a re-check fails, dropped once
expired.  The resolver is a scripted peer whose answers change between rounds (a real DNS64 is
used in tests/integration/test_proxy_chain.py)."""

from __future__ import annotations

import asyncio
from ipaddress import IPv6Network, ip_address

from dnslib import RR, DNSRecord

from clat_eamt.config.nettypes import ServerAddress
from clat_eamt.dns.discovery import Pref64Discovery
from clat_eamt.dns.upstream import Upstreams
from tests.unit.dnspeer import ScriptedPeer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_found_kept_while_fresh_then_dropped():
    mode = ["dns64"]

    def resolver(data: bytes) -> list[bytes]:
        reply = DNSRecord.parse(data).reply()
        if mode[0] == "dns64":
            for wka in ("c000:aa", "c000:ab"):
                reply.add_answer(*RR.fromZone(f"ipv4only.arpa. 600 IN AAAA 2001:db8:64::{wka}"))
        elif mode[0] == "servfail":
            reply.header.rcode = 2
        return [reply.pack()]

    changes: list[tuple[tuple[IPv6Network, ...], str]] = []
    clock = Clock()

    async def scenario() -> list[float]:
        async with ScriptedPeer(resolver) as peer:
            servers = [ServerAddress(ip_address("127.0.0.1"), peer.port)]
            upstreams = Upstreams(lambda: servers, 1.0, clock)
            discovery = Pref64Discovery(upstreams, lambda p, s: changes.append((p, s)), clock)
            waits = [await discovery.check_once()]
            mode[0] = "servfail"
            clock.now += 300  # within the 600 s TTL: the prefix stays
            waits.append(await discovery.check_once(retry=7))
            mode[0] = "nodata"  # a resolver that is no DNS64
            clock.now += 301  # past the TTL: the prefix goes
            waits.append(await discovery.check_once(retry=9))
            assert discovery.problem is not None and "no DNS64" in discovery.problem
            return waits

    waits = asyncio.run(scenario())
    assert waits == [480.0, 7, 9]  # re-checked at 80 % of the TTL; retries as asked
    assert changes == [
        ((IPv6Network("2001:db8:64::/96"),), "dns (RFC 7050)"),
        ((), "none"),
    ]
