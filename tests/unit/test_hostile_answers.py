"""Issue 26, answers the optimization does not read: a CNAME chain longer than it follows, more
records than it reads, through the proxy against a scripted upstream on loopback.  They reach
the client byte for byte as the upstream sent them (but for the ID), unmapped; SERVFAIL is for
an upstream that failed."""

from __future__ import annotations

import asyncio
import logging
import struct
from ipaddress import IPv4Address, IPv6Address

import pytest
from dnslib import CNAME, QTYPE, RR, A, DNSRecord

from clat_eamt.announce import Announcer
from clat_eamt.core.decide import HostMode
from clat_eamt.dns.records import MAX_RECORDS
from clat_eamt.dns.wire import MAX_QUERY_RECORDS
from tests.unit.corekit import engine
from tests.unit.dnspeer import ScriptedPeer, zone_answer
from tests.unit.test_proxy import PEER, ask, proxy_for

AAAA_ZONE = {("ds.lab.example", "AAAA"): ["2001:db8:1::10"]}


def chained(links: int, a_records: int = 1):
    """ds.lab.example's A answer: ``links`` CNAMEs, then ``a_records`` A records."""

    def respond(data: bytes) -> list[bytes]:
        query = DNSRecord.parse(data)
        if query.q.qtype != QTYPE.A:
            return zone_answer(AAAA_ZONE)(data)
        reply = query.reply()
        owner = "ds.lab.example"
        for n in range(links):
            reply.add_answer(RR(owner, QTYPE.CNAME, rdata=CNAME(f"c{n}.lab.example"), ttl=60))
            owner = f"c{n}.lab.example"
        for i in range(a_records):
            address = IPv4Address("192.0.2.0") + i % 256
            reply.add_answer(RR(owner, QTYPE.A, rdata=A(str(address)), ttl=60))
        return [reply.pack()]

    return respond


def through_proxy(respond):
    async def scenario():
        async with ScriptedPeer(respond) as peer:
            proxy, seen = proxy_for(peer.port)
            reply = await proxy.handle(ask("ds.lab.example"), PEER, False)
            upstream_a = next(q for q in peer.received if DNSRecord.parse(q).q.qtype == QTYPE.A)
            return reply, respond(upstream_a)[0], seen.seen, proxy.counters

    return asyncio.run(scenario())


def test_an_answer_with_a_chain_of_16_cnames_reaches_the_client_unchanged():
    """As measured: 16 CNAMEs then the A (338 bytes, NOERROR upstream) became SERVFAIL."""
    reply, sent, seen, counters = through_proxy(chained(16))
    assert reply[2:] == sent[2:] and reply[:2] == b"\x42\x42"
    assert DNSRecord.parse(reply).header.rcode == 0
    assert seen == [] and counters["answers.unusable"] == 1
    assert counters["replies.servfail"] == 0


def test_a_chain_of_15_cnames_is_still_followed_and_mapped():
    _, _, [obs], counters = through_proxy(chained(15))
    assert obs.a == (IPv4Address("192.0.2.0"),)
    # shown: the first three links and the last (bounded in bytes, an entry keeps them)
    assert obs.chain == ("c0.lab.example", "c1.lab.example", "c2.lab.example", "c14.lab.example")
    assert counters["answers.unusable"] == 0


@pytest.mark.parametrize("records", [MAX_RECORDS + 1, 4000])
def test_an_answer_with_more_records_than_are_read_passes_unread_and_unmapped(records):
    reply, sent, seen, counters = through_proxy(chained(0, records))
    assert reply[2:] == sent[2:] and len(DNSRecord.parse(reply).rr) == records
    assert seen == [] and counters["answers.unusable"] == 1


def test_an_answer_of_as_many_records_as_are_read_is_read():
    _, _, [obs], _ = through_proxy(chained(0, MAX_RECORDS))
    assert len(obs.a) == MAX_RECORDS


def test_a_query_with_many_questions_or_records_is_formerr_unwalked():
    """A LAN client's 64 KB query of thousands of questions or records is refused from its
    header (RFC 9619: one question), not walked."""
    base = DNSRecord.question("ds.lab.example", "A").pack()

    async def scenario(data):
        async with ScriptedPeer(zone_answer({})) as peer:
            proxy, _ = proxy_for(peer.port)
            return await proxy.handle(data, PEER, False), peer.received

    questions = struct.pack("!HHHHHH", 7, 0x0100, 4000, 0, 0, 0) + base[12:] * 4000
    records = struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, MAX_QUERY_RECORDS + 1) + base[12:]
    for data in (questions, records):
        reply, received = asyncio.run(scenario(data))
        assert DNSRecord.parse(reply).header.rcode == 1 and received == []  # FORMERR


def raw_answer(a: str, aaaa: str):
    """Answers built from the query's own bytes, whatever its name holds (dnslib would read a
    name with a newline in a label as text)."""

    def respond(data: bytes) -> list[bytes]:
        end = 12
        while data[end]:  # the labels, whatever bytes they hold
            end += data[end] + 1
        end += 5
        qtype = int.from_bytes(data[end - 4 : end - 2])
        record = (
            struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + IPv4Address(a).packed
            if qtype == 1
            else struct.pack("!HHHIH", 0xC00C, 28, 1, 60, 16) + IPv6Address(aaaa).packed
        )
        header = data[:2] + b"\x81\x80" + struct.pack("!HHHH", 1, 1, 0, 0)
        return [header + data[12:end] + record]

    return respond


@pytest.mark.parametrize("byte", [b"\n", b"\r", b"\x1b", b"\x00", b"\x07", b"\x7f"])
def test_a_name_with_a_control_byte_is_escaped_in_the_decision_log(byte, caplog):
    """As measured: a first label x<newline>y got NOERROR and its INFO decision line was split
    in two, so a LAN client could forge log lines."""
    labels = [b"x" + byte + b"y", b"lab", b"example"]
    name = b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"
    data = struct.pack("!HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + name + b"\x00\x01\x00\x01"
    core = engine(host_mode=HostMode.ALL)
    announcer = Announcer(lambda: 1.0)

    async def mapper(obs):
        announcer.publish(core.observe(obs, 1.0), "dns", obs)

    async def scenario():
        async with ScriptedPeer(raw_answer("192.0.2.10", "2001:db8:1::10")) as peer:
            proxy, _ = proxy_for(peer.port, mapper=mapper)
            return await proxy.handle(data, PEER, False)

    with caplog.at_level(logging.INFO, logger="clat_eamt.decision"):
        reply = asyncio.run(scenario())
    assert reply[3] & 0x0F == 0 and len(core.table) == 1  # mapped, and said so
    [line] = [r.getMessage() for r in caplog.records if r.name == "clat_eamt.decision"]
    shown = f"x\\{byte[0]:03d}y.lab.example"
    assert line.startswith(shown) and line.isprintable()
    [entry] = core.table
    assert entry.fqdns == (shown,)  # status and ubus show the same text
