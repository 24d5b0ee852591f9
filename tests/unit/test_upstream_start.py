"""``Upstreams.start``: the exchange the proxy sends beside an A answer runs without a task of
its own when a pooled socket is ready, its answer handled by a callback; ``exchange`` (the A
itself) awaits that socket's answer without a coroutine per layer.  These tests drive those
paths (the pool is filled first) against scripted peers (dnspeer): the first resolver
answering, failing over to the next on SERVFAIL and on silence, an identical question joining
it, and the RFC 5452 checks on its answers."""

from __future__ import annotations

import asyncio
from ipaddress import ip_address

import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from clat_eamt.config.nettypes import ServerAddress
from clat_eamt.dns.transport import UDP_POOL
from clat_eamt.dns.upstream import UpstreamError, Upstreams
from clat_eamt.dns.wire import read_question
from tests.unit.dnspeer import ScriptedPeer, zone_answer

ZONE = {("ds.lab.example", "AAAA"): ["2001:db8:1::10"]}


def question_of(data: bytes):
    _, question, _ = read_question(data)
    assert question is not None
    return question


def aaaa_query(name: str = "ds.lab.example") -> bytes:
    return DNSRecord.question(name, "AAAA").pack()


class Switch:
    """A peer's behaviour, changed while it runs: answer, SERVFAIL or silence."""

    def __init__(self) -> None:
        self.mode = "answer"
        self.answer = zone_answer(ZONE)

    def __call__(self, data: bytes) -> list[bytes]:
        if self.mode == "silent":
            return []
        if self.mode == "servfail":
            reply = DNSRecord.parse(data).reply()
            reply.header.rcode = RCODE.SERVFAIL
            return [reply.pack()]
        return self.answer(data)


async def filled(upstreams: Upstreams, server: ServerAddress) -> None:
    """Exchanges until the server's pool is full: from then on ``start`` sends at once."""
    query = aaaa_query("fill.lab.example")
    while len(upstreams.transport.udp.get(server, [])) < UDP_POOL:
        await upstreams.exchange(query, question_of(query))


def servers_of(*peers: ScriptedPeer) -> list[ServerAddress]:
    return [ServerAddress(ip_address("127.0.0.1"), p.port) for p in peers]


def test_start_sends_at_once_on_a_ready_socket_and_hands_the_answer_over():
    async def scenario():
        async with ScriptedPeer(Switch()) as peer:
            [server] = servers_of(peer)
            upstreams = Upstreams(lambda: [server], 1.0)
            await filled(upstreams, server)
            before = len(peer.received)
            query = aaaa_query()
            future = upstreams.start(query, question_of(query))
            assert not isinstance(future, asyncio.Task)  # the callback path, not a task
            data = await future
            upstreams.close()
            return data, len(peer.received) - before, upstreams.inflight

    data, sent, inflight = asyncio.run(scenario())
    assert [str(r.rdata) for r in DNSRecord.parse(data).rr] == ["2001:db8:1::10"]
    assert sent == 1 and inflight == {}


@pytest.mark.parametrize("entry", ["start", "exchange"])
def test_start_and_exchange_fail_over_on_servfail_and_on_silence(entry: str):
    async def scenario(mode: str):
        first, second = Switch(), Switch()
        async with ScriptedPeer(first) as one, ScriptedPeer(second) as two:
            servers = servers_of(one, two)
            upstreams = Upstreams(lambda: servers, 0.3)
            await filled(upstreams, servers[0])
            assert upstreams.order()[0] == servers[0]
            first.mode = mode
            query = aaaa_query()
            if entry == "start":
                data = await upstreams.start(query, question_of(query))
            else:
                data = await upstreams.exchange(query, question_of(query))
            upstreams.close()
            return data, upstreams.health[servers[0]], len(two.received), upstreams.inflight

    for mode in ("servfail", "silent"):
        data, health, second_got, inflight = asyncio.run(scenario(mode))
        assert DNSRecord.parse(data).header.rcode == RCODE.NOERROR
        assert [str(r.rdata) for r in DNSRecord.parse(data).rr] == ["2001:db8:1::10"]
        assert second_got == 1 and inflight == {}
        assert (health.failures == 1) == (mode == "silent")  # SERVFAIL is an answer


@pytest.mark.parametrize("entry", ["start", "exchange"])
def test_every_resolver_failing_is_an_upstream_error_or_the_last_servfail(entry: str):
    async def scenario(mode: str):
        switch = Switch()
        async with ScriptedPeer(switch) as peer:
            [server] = servers_of(peer)
            upstreams = Upstreams(lambda: [server], 0.2)
            await filled(upstreams, server)
            switch.mode = mode
            query = aaaa_query()
            asked = upstreams.start if entry == "start" else upstreams.exchange
            try:
                return DNSRecord.parse(await asked(query, question_of(query)))
            except UpstreamError as error:
                return error
            finally:
                upstreams.close()

    assert asyncio.run(scenario("servfail")).header.rcode == RCODE.SERVFAIL
    assert "no answer in 200 ms" in str(asyncio.run(scenario("silent")))


def test_an_identical_question_joins_the_started_exchange():
    async def scenario():
        switch = Switch()
        async with ScriptedPeer(switch) as peer:
            [server] = servers_of(peer)
            upstreams = Upstreams(lambda: [server], 1.0)
            await filled(upstreams, server)
            switch.mode = "silent"  # nothing answers until both asked
            before = len(peer.received)
            query = aaaa_query()
            started = upstreams.start(query, question_of(query))
            joined = asyncio.ensure_future(upstreams.exchange(query, question_of(query)))
            await asyncio.sleep(0.05)
            assert len(peer.received) - before == 1  # one upstream query for both
            port = peer.ports[-1]
            for reply in Switch()(peer.received[-1]):
                peer.send(reply, port)
            results = await asyncio.gather(started, joined)
            upstreams.close()
            return results, upstreams.counters

    (first, second), counters = asyncio.run(scenario())
    assert first == second and counters["upstream.coalesced"] == 1


def test_answers_to_a_started_exchange_are_checked_rfc5452():
    """A wrong ID or question is ignored; the right answer, after them, is taken."""

    async def scenario():
        switch = Switch()
        async with ScriptedPeer(switch) as peer:
            [server] = servers_of(peer)
            upstreams = Upstreams(lambda: [server], 1.0)
            await filled(upstreams, server)
            switch.mode = "silent"
            query = aaaa_query()
            future = upstreams.start(query, question_of(query))
            await asyncio.sleep(0.05)
            asked, port = peer.received[-1], peer.ports[-1]
            wrong_id = DNSRecord.parse(Switch()(asked)[0])
            wrong_id.header.id ^= 1
            other = DNSRecord.parse(asked)
            other.q.qtype = QTYPE.A
            for spoof in (wrong_id.pack(), Switch()(other.pack())[0]):
                peer.send(spoof, port)
            await asyncio.sleep(0.05)
            assert not future.done()
            peer.send(Switch()(asked)[0], port)
            data = await future
            upstreams.close()
            return data

    assert [str(r.rdata) for r in DNSRecord.parse(asyncio.run(scenario())).rr] == ["2001:db8:1::10"]
