"""The resolver seam on loopback sockets against a scripted upstream (dnspeer): the behaviour
real resolvers cannot be made to show on demand (spoofed IDs, silence, SERVFAIL, truncation).
The same paths against real dnsmasq, unbound and knot are in tests/integration."""

from __future__ import annotations

import asyncio
import itertools
import socket
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from dnslib import EDNS0, QTYPE, RR, DNSRecord, EDNSOption

from clat_eamt.config.nettypes import ServerAddress
from clat_eamt.core.model import AaaaStatus, Observation
from clat_eamt.dns.proxy import Proxy, ProxySettings
from clat_eamt.dns.transport import UDP_POOL, UDP_USES
from clat_eamt.dns.upstream import Upstreams
from clat_eamt.dns.wire import OPTION_MAC_BINARY
from tests.unit.dnspeer import ScriptedPeer, zone_answer

ZONE = {
    ("ds.lab.example", "A"): ["192.0.2.10"],
    ("ds.lab.example", "AAAA"): ["2001:db8:1::10"],
    ("v4only.lab.example", "A"): ["192.0.2.20"],
    ("txt.lab.example", "TXT"): ['"hello"'],
}
PEER = IPv4Address("127.0.0.1")


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.seen: list[Observation] = []
        self.fail = fail

    async def __call__(self, obs: Observation) -> None:
        self.seen.append(obs)
        if self.fail:
            raise RuntimeError("dataplane exploded")


def proxy_for(*ports: int, mapper=None, timeout=1.0, **settings) -> tuple[Proxy, Recorder]:
    servers = [ServerAddress(ip_address("127.0.0.1"), port) for port in ports]
    recorder = mapper or Recorder()
    return Proxy(Upstreams(lambda: servers, timeout), recorder, ProxySettings(**settings)), recorder


def ask(name: str, qtype: str = "A", options=()) -> bytes:
    record = DNSRecord.question(name, qtype)
    record.header.id = 0x4242
    record.add_ar(EDNS0(udp_len=1232, opts=[EDNSOption(c, d) for c, d in options]))
    return record.pack()


def run(coro):
    return asyncio.run(coro)


def test_dual_stack_answer_is_released_byte_for_byte_after_the_decision():
    async def scenario():
        async with ScriptedPeer(zone_answer(ZONE)) as peer:
            proxy, seen = proxy_for(peer.port)
            reply = await proxy.handle(ask("ds.lab.example"), PEER, False)
            upstream_a = next(q for q in peer.received if DNSRecord.parse(q).q.qtype == QTYPE.A)
            return reply, seen.seen, zone_answer(ZONE)(upstream_a)[0]

    reply, seen, direct = run(scenario())
    assert reply[2:] == direct[2:] and reply[:2] == b"\x42\x42"
    [obs] = seen
    assert obs.aaaa_status is AaaaStatus.ANSWER and obs.aaaa == (IPv6Address("2001:db8:1::10"),)
    assert obs.a == (IPv4Address("192.0.2.10"),) and obs.host is None


def test_ipv4_only_name_is_observed_as_nodata():
    async def scenario():
        async with ScriptedPeer(zone_answer(ZONE)) as peer:
            proxy, seen = proxy_for(peer.port)
            await proxy.handle(ask("v4only.lab.example"), PEER, False)
            return seen.seen

    [obs] = run(scenario())
    assert obs.aaaa_status is AaaaStatus.NODATA


def test_identity_options_never_reach_the_upstream_and_name_the_host():
    async def scenario():
        async with ScriptedPeer(zone_answer(ZONE)) as peer:
            proxy, seen = proxy_for(peer.port)
            mac = bytes.fromhex("0200c0000264")
            await proxy.handle(
                ask("ds.lab.example", options=[(OPTION_MAC_BINARY, mac)]), PEER, False
            )
            return peer.received, seen.seen

    received, [obs] = run(scenario())
    for data in received:
        for rr in DNSRecord.parse(data).ar:
            if rr.rtype == QTYPE.OPT:
                assert OPTION_MAC_BINARY not in [o.code for o in rr.rdata]
    assert obs.host is not None and obs.host.key == "02:00:c0:00:02:64"


def test_spoofed_answers_are_ignored_rfc5452():
    good = zone_answer(ZONE)

    def spoofing(data: bytes) -> list[bytes]:
        real = good(data)[0]
        wrong_id = bytes([real[0] ^ 0xFF]) + real[1:]
        other = DNSRecord.parse(data)
        other.q.qname = "evil.lab.example"
        wrong_question = other.reply()
        wrong_question.add_answer(*RR.fromZone("evil.lab.example. 60 IN A 203.0.113.66"))
        return [wrong_id, wrong_question.pack(), b"\x00garbage", real]

    async def scenario():
        async with ScriptedPeer(spoofing) as peer:
            proxy, seen = proxy_for(peer.port)
            return await proxy.handle(ask("ds.lab.example"), PEER, False), seen.seen

    reply, [obs] = run(scenario())
    assert [str(r.rdata) for r in DNSRecord.parse(reply).rr] == ["192.0.2.10"]
    assert obs.a == (IPv4Address("192.0.2.10"),)


def test_every_upstream_query_has_its_own_random_id_and_source_port():
    async def scenario():
        async with ScriptedPeer(zone_answer(ZONE)) as peer:
            proxy, _ = proxy_for(peer.port, enabled=False)
            for _ in range(30):
                await proxy.handle(ask("ds.lab.example"), PEER, False)
            proxy.upstreams.close()
            return [DNSRecord.parse(q).header.id for q in peer.received], peer.ports

    ids, ports = run(scenario())
    # RFC 5452 section 4: 25 of 30 allows for chance collisions in a 16-bit space.
    assert len(set(ids)) >= 25 and 0x4242 not in ids
    assert len(set(ports)) >= UDP_POOL // 2  # a pool of sockets, not one


def test_source_ports_in_a_row_are_not_predictable_from_each_other():
    """RFC 5452 section 9.2 with a socket pool: each query takes one of UDP_POOL sockets at
    random, and each socket is replaced by one on a new random port after UDP_USES queries.
    So the next port is not the last one, nor the one that followed it before, nor the last
    one plus a constant, and the ports keep changing."""
    rounds = UDP_POOL * UDP_USES + 100

    async def scenario():
        async with ScriptedPeer(zone_answer(ZONE)) as peer:
            proxy, _ = proxy_for(peer.port, enabled=False)
            for i in range(rounds):
                await proxy.handle(ask(f"n{i}.lab.example", "TXT"), PEER, False)
            opened = proxy.upstreams.transport.sockets_opened
            proxy.upstreams.close()
            return peer.ports, opened

    ports, opened = run(scenario())
    pairs = list(itertools.pairwise(ports))
    assert sum(a == b for a, b in pairs) < len(pairs) / 3  # about 1 in UDP_POOL
    successors: dict[int, set[int]] = {}
    for a, b in pairs:
        successors.setdefault(a, set()).add(b)
    assert all(len(nexts) > 1 for a, nexts in successors.items() if ports.count(a) > 10)
    assert len({b - a for a, b in pairs if a != b}) > 10  # no constant step between ports
    assert opened > UDP_POOL and len(set(ports)) == opened  # retired sockets were replaced
    assert len(set(ports)) >= rounds // UDP_USES


def test_identical_questions_in_flight_become_one_upstream_query():
    """The client's own AAAA for the name (a dual-stack client asks it beside the A) and the
    proxy's AAAA beside the A are one upstream exchange; so are clients asking one name."""
    answer = zone_answer(ZONE)

    def slow(data: bytes) -> list[bytes]:
        return []  # answered by hand below, after every query arrived

    async def scenario():
        async with ScriptedPeer(slow) as peer:
            proxy, seen = proxy_for(peer.port, hold=2.0)
            a = asyncio.create_task(proxy.handle(ask("ds.lab.example", "A"), PEER, False))
            aaaa = [
                asyncio.create_task(proxy.handle(ask("ds.lab.example", "AAAA"), PEER, False))
                for _ in range(3)
            ]
            while len(peer.received) < 2:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            for data, port in zip(list(peer.received), list(peer.ports), strict=True):
                for reply in answer(data):
                    peer.send(reply, port)
            replies = await asyncio.gather(a, *aaaa)
            proxy.upstreams.close()
            return peer.received, replies, seen.seen, proxy.upstreams.counters

    received, replies, seen, counters = run(scenario())
    types = sorted(DNSRecord.parse(q).q.qtype for q in received)
    assert types == [QTYPE.A, QTYPE.AAAA]  # 1 A + 4 AAAA asked, 2 sent
    assert counters["upstream.coalesced"] == 3
    for reply in replies[1:]:
        parsed = DNSRecord.parse(reply)
        assert parsed.header.id == 0x4242 and [str(r.rdata) for r in parsed.rr] == [
            "2001:db8:1::10"
        ]
    [obs] = seen
    assert obs.aaaa == (IPv6Address("2001:db8:1::10"),)


def test_dead_upstream_gives_servfail_at_once_and_the_next_one_is_used():
    async def scenario():
        dead = closed_port()
        proxy, _ = proxy_for(dead, timeout=30.0, enabled=False)
        alone = await asyncio.wait_for(proxy.handle(ask("ds.lab.example"), PEER, False), 5)
        async with ScriptedPeer(zone_answer(ZONE)) as peer:
            proxy, _ = proxy_for(dead, peer.port, timeout=30.0, enabled=False)
            first = await asyncio.wait_for(proxy.handle(ask("ds.lab.example"), PEER, False), 5)
            second = await proxy.handle(ask("ds.lab.example"), PEER, False)
            order = [str(s) for s in proxy.upstreams.order()]
            return alone, first, second, order, peer.port

    alone, first, second, order, live = run(scenario())
    assert DNSRecord.parse(alone).header.rcode == 2  # SERVFAIL, never NXDOMAIN
    assert DNSRecord.parse(first).header.rcode == 0 and DNSRecord.parse(second).header.rcode == 0
    assert order[0] == f"127.0.0.1#{live}"  # the live one goes first now


def test_servfail_from_one_upstream_makes_the_next_one_try():
    def servfail(data: bytes) -> list[bytes]:
        reply = DNSRecord.parse(data).reply()
        reply.header.rcode = 2
        return [reply.pack()]

    async def scenario():
        async with ScriptedPeer(servfail) as bad, ScriptedPeer(zone_answer(ZONE)) as good:
            proxy, _ = proxy_for(bad.port, good.port, enabled=False)
            return await proxy.handle(ask("ds.lab.example"), PEER, False)

    assert DNSRecord.parse(run(scenario())).header.rcode == 0


def test_silent_aaaa_releases_the_a_unmapped_after_the_hold():
    only_a = zone_answer(ZONE)

    def no_aaaa(data: bytes) -> list[bytes]:
        return [] if DNSRecord.parse(data).q.qtype == QTYPE.AAAA else only_a(data)

    async def scenario():
        async with ScriptedPeer(no_aaaa) as peer:
            proxy, seen = proxy_for(peer.port, hold=0.05)
            reply = await asyncio.wait_for(proxy.handle(ask("ds.lab.example"), PEER, False), 5)
            return reply, seen.seen, proxy.counters

    reply, [obs], counters = run(scenario())
    assert DNSRecord.parse(reply).rr
    assert obs.aaaa_status is AaaaStatus.TIMEOUT and counters["aaaa.timeout"] == 1


def test_aaaa_in_the_additional_section_needs_no_wait():
    def with_additional(data: bytes) -> list[bytes]:
        query = DNSRecord.parse(data)
        if query.q.qtype == QTYPE.AAAA:
            return []  # never answered: only the Additional section can help
        reply = query.reply()
        reply.add_answer(*RR.fromZone("ds.lab.example. 60 IN A 192.0.2.10"))
        reply.add_ar(*RR.fromZone("ds.lab.example. 60 IN AAAA 2001:db8:1::10"))
        return [reply.pack()]

    async def scenario():
        async with ScriptedPeer(with_additional) as peer:
            proxy, seen = proxy_for(peer.port, hold=5.0)
            await asyncio.wait_for(proxy.handle(ask("ds.lab.example"), PEER, False), 2)
            return seen.seen, proxy.counters

    [obs], counters = run(scenario())
    assert obs.aaaa == (IPv6Address("2001:db8:1::10"),) and counters["aaaa.additional"] == 1


def test_truncated_answer_passes_without_a_decision():
    def truncated(data: bytes) -> list[bytes]:
        reply = DNSRecord.parse(data).reply()
        reply.header.tc = 1
        return [reply.pack()]

    async def scenario():
        async with ScriptedPeer(truncated) as peer:
            proxy, seen = proxy_for(peer.port)
            return await proxy.handle(ask("big.lab.example"), PEER, False), seen.seen

    reply, seen = run(scenario())
    assert DNSRecord.parse(reply).header.tc and seen == []


def test_other_types_pass_through_and_other_opcodes_are_notimp():
    async def scenario():
        async with ScriptedPeer(zone_answer(ZONE)) as peer:
            proxy, seen = proxy_for(peer.port)
            txt = await proxy.handle(ask("txt.lab.example", "TXT"), PEER, False)
            notify = DNSRecord.parse(ask("lab.example", "SOA"))
            notify.header.opcode = 4
            notimp = await proxy.handle(notify.pack(), PEER, False)
            return txt, notimp, seen.seen, len(peer.received)

    txt, notimp, seen, upstream_queries = run(scenario())
    assert str(DNSRecord.parse(txt).rr[0].rdata) == '"hello"'
    assert DNSRecord.parse(notimp).header.rcode == 4
    assert seen == [] and upstream_queries == 1  # no AAAA for a TXT query


def test_malformed_queries_get_formerr_or_nothing():
    async def scenario():
        proxy, _ = proxy_for(closed_port())
        runt = await proxy.handle(b"\x01\x02\x03", PEER, False)
        cut = await proxy.handle(ask("ds.lab.example")[:20], PEER, False)
        response = bytearray(ask("ds.lab.example"))
        response[2] |= 0x80
        reflected = await proxy.handle(bytes(response), PEER, False)
        return runt, cut, reflected, proxy.counters

    runt, cut, reflected, counters = run(scenario())
    assert runt is None and reflected is None
    header = DNSRecord.parse(cut).header
    assert header.id == 0x4242 and header.rcode == 1
    assert counters["malformed.queries"] == 3


def test_a_failing_mapper_still_releases_the_answer():
    async def scenario():
        async with ScriptedPeer(zone_answer(ZONE)) as peer:
            proxy, _recorder = proxy_for(peer.port, mapper=Recorder(fail=True))
            return await proxy.handle(ask("ds.lab.example"), PEER, False), proxy.counters

    reply, counters = run(scenario())
    assert DNSRecord.parse(reply).rr and counters["errors.mapper"] == 1


def test_require_dnssec_asks_for_ad_on_both_queries():
    async def scenario():
        async with ScriptedPeer(zone_answer(ZONE)) as peer:
            proxy, _ = proxy_for(peer.port, require_dnssec=True)
            await proxy.handle(ask("ds.lab.example"), PEER, False)
            return [DNSRecord.parse(q) for q in peer.received]

    queries = run(scenario())
    assert len(queries) == 2 and all(q.header.ad for q in queries)
    # RFC 6840 section 5.7: AD in the query asks a validating resolver for AD in the answer.
    # The AAAA is the A query with its type changed (so it can share the client's own AAAA).
    a, aaaa = sorted(queries, key=lambda q: q.q.qtype)
    assert aaaa.q.qtype == QTYPE.AAAA and aaaa.ar[0].edns_len == a.ar[0].edns_len


def test_ad_asked_for_the_client_is_not_passed_to_it():
    def validated(data: bytes) -> list[bytes]:
        reply = DNSRecord.parse(zone_answer(ZONE)(data)[0])
        reply.header.ad = 1
        return [reply.pack()]

    async def scenario():
        async with ScriptedPeer(validated) as peer:
            proxy, seen = proxy_for(peer.port, require_dnssec=True)
            plain = await proxy.handle(ask("ds.lab.example"), PEER, False)
            wanting = DNSRecord.parse(ask("ds.lab.example"))
            wanting.header.ad = 1
            asked = await proxy.handle(wanting.pack(), PEER, False)
            return plain, asked, seen.seen

    plain, asked, seen = run(scenario())
    assert not DNSRecord.parse(plain).header.ad  # as it would have been without the proxy
    assert DNSRecord.parse(asked).header.ad
    assert all(obs.authenticated for obs in seen)


def test_disabled_proxy_is_a_plain_forwarder():
    async def scenario():
        async with ScriptedPeer(zone_answer(ZONE)) as peer:
            proxy, seen = proxy_for(peer.port, enabled=False)
            await proxy.handle(ask("ds.lab.example"), PEER, False)
            return seen.seen, len(peer.received)

    assert run(scenario()) == ([], 1)


@pytest.mark.parametrize("tcp", [False, True])
def test_no_upstream_at_all_is_servfail(tcp):
    async def scenario():
        proxy = Proxy(Upstreams(lambda: (), 1.0), Recorder(), ProxySettings())
        return await proxy.handle(ask("ds.lab.example"), PEER, tcp)

    assert DNSRecord.parse(run(scenario())).header.rcode == 2


def test_ipv6_upstream_after_a_dead_ipv4_one():
    async def scenario():
        async with ScriptedPeer(zone_answer(ZONE), host="::1") as peer:
            servers = [
                ServerAddress(ip_address("127.0.0.1"), closed_port()),
                ServerAddress(ip_address("::1"), peer.port),
            ]
            proxy = Proxy(Upstreams(lambda: servers, 1.0), Recorder(), ProxySettings())
            return await proxy.handle(ask("ds.lab.example"), PEER, False), len(peer.received)

    reply, received = run(scenario())
    assert DNSRecord.parse(reply).header.rcode == 0 and received == 2  # A and the AAAA beside it


def test_unreadable_answer_becomes_servfail():
    def broken(data: bytes) -> list[bytes]:
        reply = bytearray(zone_answer(ZONE)(data)[0])
        return [bytes(reply[:-3])]  # the last record is cut short; header and question intact

    async def scenario():
        async with ScriptedPeer(broken) as peer:
            proxy, seen = proxy_for(peer.port)
            return await proxy.handle(ask("ds.lab.example"), PEER, False), seen.seen, proxy.counters

    reply, seen, counters = run(scenario())
    assert DNSRecord.parse(reply).header.rcode == 2 and seen == []
    assert counters["malformed.answers"] == 1


class LifeMapper(Recorder):
    """A mapper whose mapping of the answer lives ``life`` seconds more (None: no mapping)."""

    def __init__(self, life: float | None) -> None:
        super().__init__()
        self.life = life

    async def __call__(self, obs: Observation) -> float | None:
        await super().__call__(obs)
        return self.life


def long_a(data: bytes) -> list[bytes]:
    """ds.lab.example: A TTL 86400 (two records, one RRset) behind a CNAME, AAAA TTL 60."""
    query = DNSRecord.parse(data)
    reply = query.reply()
    if query.q.qtype == QTYPE.A:
        reply.add_answer(*RR.fromZone("ds.lab.example. 86400 IN CNAME edge.lab.example."))
        reply.add_answer(*RR.fromZone("edge.lab.example. 86400 IN A 192.0.2.10"))
        reply.add_answer(*RR.fromZone("edge.lab.example. 3600 IN A 192.0.2.11"))
    elif query.q.qtype == QTYPE.AAAA:
        reply.add_answer(*RR.fromZone("ds.lab.example. 86400 IN CNAME edge.lab.example."))
        reply.add_answer(*RR.fromZone("edge.lab.example. 60 IN AAAA 2001:db8:1::10"))
    return [reply.pack()]


@pytest.mark.parametrize("life", [42.7, None])
def test_a_ttls_are_lowered_to_the_mappings_life_rfc2181(life):
    async def scenario():
        async with ScriptedPeer(long_a) as peer:
            proxy, _ = proxy_for(peer.port, mapper=LifeMapper(life))
            reply = await proxy.handle(ask("ds.lab.example"), PEER, False)
            proxy.upstreams.close()
            upstream_a = next(q for q in peer.received if DNSRecord.parse(q).q.qtype == QTYPE.A)
            return reply, long_a(upstream_a)[0], proxy.counters

    reply, direct, counters = run(scenario())
    if life is None:  # the addresses map to nothing: released byte for byte
        assert reply[2:] == direct[2:] and counters["answers.ttl_clamped"] == 0
        return
    records = DNSRecord.parse(reply).rr
    assert [(r.rtype, r.ttl) for r in records] == [
        (QTYPE.CNAME, 86400),  # the chain is left as it was
        (QTYPE.A, 42),  # both A records equal (RFC 2181 5.2), never above the mapping's life
        (QTYPE.A, 42),
    ]
    assert [str(r.rdata) for r in records[1:]] == ["192.0.2.10", "192.0.2.11"]
    assert counters["answers.ttl_clamped"] == 1
    # Everything but the TTL fields is what the resolver sent.
    assert len(reply) == len(direct)
    assert sum(a != b for a, b in zip(reply[2:], direct[2:], strict=True)) <= 8


def test_a_ttl_already_within_the_life_is_untouched():
    async def scenario():
        async with ScriptedPeer(zone_answer(ZONE, ttl=60)) as peer:
            proxy, _ = proxy_for(peer.port, mapper=LifeMapper(300.0))
            reply = await proxy.handle(ask("ds.lab.example"), PEER, False)
            proxy.upstreams.close()
            return reply

    assert [r.ttl for r in DNSRecord.parse(run(scenario())).rr] == [60]


def test_an_answer_from_another_port_is_ignored_rfc5452():
    """A spoofer who sees the query (ID and question right) answers first, from another port of
    the resolver's address: the pool's sockets are connected, so the kernel drops it, and the
    real answer that comes later is the one used."""
    real = zone_answer(ZONE)

    async def scenario():
        loop = asyncio.get_running_loop()
        spoofer, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
        )
        pending: list[tuple[bytes, int]] = []

        def respond(data: bytes) -> list[bytes]:
            fake = DNSRecord.parse(real(data)[0])
            fake.rr = []
            fake.add_answer(*RR.fromZone(f"{fake.q.qname} 60 IN A 203.0.113.66"))
            pending.append((data, 0))
            spoofer.sendto(fake.pack(), ("127.0.0.1", peer.ports[-1]))
            return []

        async with ScriptedPeer(respond) as peer:
            proxy, _ = proxy_for(peer.port, enabled=False)
            task = asyncio.create_task(proxy.handle(ask("ds.lab.example"), PEER, False))
            while not pending:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)  # the spoofed answer had every chance to land
            assert not task.done()
            peer.send(real(pending[0][0])[0], peer.ports[-1])
            reply = await task
            proxy.upstreams.close()
        spoofer.close()
        return reply

    reply = run(scenario())
    assert [str(r.rdata) for r in DNSRecord.parse(reply).rr] == ["192.0.2.10"]


class TcpPeer:
    """A scripted DNS-over-TCP resolver (RFC 7766 framing): answers from ``respond``; counts
    connections; ``drop_after`` closes a connection after that many answers on it."""

    def __init__(self, respond, drop_after: int | None = None) -> None:
        self.respond, self.drop_after = respond, drop_after
        self.connections = 0
        self.port = 0

    async def __aenter__(self) -> TcpPeer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()

    async def _serve(self, reader, writer) -> None:
        self.connections += 1
        answered = 0
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(2), "big")
                data = await reader.readexactly(size)
                if self.drop_after is not None and answered >= self.drop_after:
                    break  # the server closes an idle connection just as a query comes
                for reply in self.respond(data):
                    writer.write(len(reply).to_bytes(2, "big") + reply)
                answered += 1
        except asyncio.IncompleteReadError:
            pass
        writer.close()


def test_upstream_tcp_connections_are_reused_and_a_closed_one_is_retried_rfc7766():
    async def scenario(drop_after):
        async with TcpPeer(zone_answer(ZONE), drop_after) as peer:
            proxy, _ = proxy_for(peer.port, enabled=False)
            replies = [
                await proxy.handle(ask(f"{name}.lab.example"), PEER, True)
                for name in ("ds", "v4only", "ds")
            ]
            proxy.upstreams.close()
            return [answers_of(r) for r in replies], peer.connections

    expected = [["192.0.2.10"], ["192.0.2.20"], ["192.0.2.10"]]
    assert run(scenario(None)) == (expected, 1)  # one connection for all three
    assert run(scenario(1)) == (expected, 3)  # closed under each next query: retried on a new one


def answers_of(reply: bytes) -> list[str]:
    return [str(r.rdata) for r in DNSRecord.parse(reply).rr]


def test_a_refresh_waits_for_a_slow_aaaa_a_client_answer_does_not():
    """Refresh ahead asks at a mapping's end, when the resolver must fetch the AAAA afresh:
    nobody waits for that answer, so it is held for the upstream timeout, not hold_ms."""
    answer = zone_answer(ZONE)

    peers: list[ScriptedPeer] = []

    def respond(data: bytes) -> list[bytes]:
        peer = peers[0]
        port = peer.ports[-1]
        delay = 0.15 if DNSRecord.parse(data).q.qtype == QTYPE.AAAA else 0
        for reply in answer(data):
            asyncio.get_running_loop().call_later(delay, peer.send, reply, port)
        return []

    async def scenario():
        async with ScriptedPeer(respond) as peer:
            peers.append(peer)
            proxy, seen = proxy_for(peer.port, hold=0.05, timeout=2.0)
            await proxy.handle(ask("ds.lab.example"), PEER, False)
            assert await proxy.refresh("ds.lab.example")
            proxy.upstreams.close()
            return seen.seen

    client, refresh = run(scenario())
    assert client.aaaa_status is AaaaStatus.TIMEOUT  # the client's answer waited 50 ms only
    assert refresh.aaaa == (IPv6Address("2001:db8:1::10"),)


def test_a_resolver_that_failed_thousands_of_times_backs_off_without_overflowing():
    """A resolver down for minutes fails thousands of times in a row: the back-off stays at its
    cap (2 ** failures as a float overflows past 2 ** 1023 and used to raise on every query)."""
    server = ServerAddress(ip_address("192.0.2.53"))
    clock = itertools.count(0.0, 0.001).__next__
    upstreams = Upstreams(lambda: [server], 1.0, clock)
    for _ in range(2000):
        upstreams._failed(server, "timeout")
    [row] = upstreams.status()
    assert row["failures"] == 2000 and row["state"] == "down"


def test_a_truncated_aaaa_beside_the_a_is_asked_again_over_tcp_within_the_hold():
    """The AAAA beside an A comes truncated over UDP: it is asked over TCP (RFC 7766), and the
    decision sees the full AAAA set, all within the hold."""
    answer = zone_answer(ZONE)

    def udp(data: bytes) -> list[bytes]:
        query = DNSRecord.parse(data)
        if query.q.qtype != QTYPE.AAAA:
            return answer(data)
        reply = query.reply()
        reply.header.tc = 1
        return [reply.pack()]

    async def scenario():
        async with TcpPeer(answer) as tcp, ScriptedPeer(udp, port=tcp.port):
            proxy, seen = proxy_for(tcp.port, hold=2.0)
            reply = await proxy.handle(ask("ds.lab.example"), PEER, False)
            proxy.upstreams.close()
            return reply, seen.seen, tcp.connections

    reply, [obs], connections = run(scenario())
    assert answers_of(reply) == ["192.0.2.10"] and connections == 1
    assert obs.aaaa_status is AaaaStatus.ANSWER and obs.aaaa == (IPv6Address("2001:db8:1::10"),)
