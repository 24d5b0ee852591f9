"""Fuzzing the request and answer paths with random and mutated DNS messages: no exception
escapes the resolver seam, every reply carries the ID it answers, and the proxy still answers a
good query afterwards.  The upstream is a scripted peer (dnspeer) because a real resolver never
sends the broken answers this needs."""

from __future__ import annotations

import asyncio
import struct
from ipaddress import IPv4Address, ip_address

from dnslib import EDNS0, DNSRecord, EDNSOption
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clat_eamt.config.nettypes import ServerAddress
from clat_eamt.core.model import Observation
from clat_eamt.dns import answers
from clat_eamt.dns.proxy import Proxy, ProxySettings
from clat_eamt.dns.records import Unusable
from clat_eamt.dns.upstream import Upstreams
from clat_eamt.dns.wire import QTYPE_A, WireError, read_question
from tests.unit.dnspeer import ScriptedPeer, zone_answer

ZONE = {
    ("ds.lab.example", "A"): ["192.0.2.10", "192.0.2.11"],
    ("ds.lab.example", "AAAA"): ["2001:db8:1::10"],
}
PEER = IPv4Address("127.0.0.1")
FUZZ = settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)


def good_query(name: str = "ds.lab.example") -> bytes:
    record = DNSRecord.question(name, "A")
    record.add_ar(EDNS0(udp_len=1232, opts=[EDNSOption(65001, bytes(6)), EDNSOption(8, b"\0\1")]))
    return record.pack()


@st.composite
def mutated(draw: st.DrawFn, base: bytes) -> bytes:
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "count"]))
        if kind == "flip" and data:
            at = draw(st.integers(0, len(data) - 1))
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            data = data[: draw(st.integers(0, len(data)))]
        elif kind == "insert":
            at = draw(st.integers(0, len(data)))
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "count" and len(data) >= 12:
            at = draw(st.sampled_from([4, 6, 8, 10]))
            data[at : at + 2] = struct.pack("!H", draw(st.integers(0, 0xFFFF)))
    return bytes(data)


messages = st.one_of(st.binary(max_size=600), mutated(good_query()))


class Sink:
    def __init__(self) -> None:
        self.seen: list[Observation] = []

    async def __call__(self, obs: Observation) -> None:
        self.seen.append(obs)


def make_proxy(port: int) -> Proxy:
    servers = [ServerAddress(ip_address("127.0.0.1"), port)]
    return Proxy(Upstreams(lambda: servers, 0.05), Sink(), ProxySettings(hold=0.01))


def check_reply(query: bytes, reply: bytes | None) -> None:
    if reply is None:
        return
    header, _, _ = read_question(reply)
    assert header.qr
    assert reply[:2] == query[:2]


def test_request_path_survives_random_and_mutated_queries():
    with asyncio.Runner() as runner:
        peer = ScriptedPeer(zone_answer(ZONE))
        runner.run(peer.__aenter__())
        proxy = make_proxy(peer.port)

        @FUZZ
        @given(messages, st.booleans())
        def one(data: bytes, tcp: bool) -> None:
            check_reply(data, runner.run(proxy.handle(data, PEER, tcp)))

        try:
            one()
            after = runner.run(proxy.handle(good_query(), PEER, False))
        finally:
            runner.run(peer.__aexit__())
    assert after is not None and len(DNSRecord.parse(after).rr) == 2
    assert proxy.counters["errors.internal"] == 0


def test_answer_path_survives_broken_answers():
    """The peer keeps the ID and question (so the answer passes RFC 5452 matching) and breaks
    everything after them."""
    good = zone_answer(ZONE)
    damage: list[bytes] = [b""]

    def broken(query: bytes) -> list[bytes]:
        reply = good(query)[0]
        _, _, end = read_question(query)
        tail = damage[0]
        return [reply[:end] + tail] if tail != b"keep" else [reply]

    with asyncio.Runner() as runner:
        peer = ScriptedPeer(broken)
        runner.run(peer.__aenter__())
        proxy = make_proxy(peer.port)

        @FUZZ
        @given(st.one_of(st.binary(max_size=300), mutated(good(good_query())[0][40:])))
        def one(tail: bytes) -> None:
            damage[0] = tail
            query = good_query()
            check_reply(query, runner.run(proxy.handle(query, PEER, False)))

        try:
            one()
            damage[0] = b"keep"
            after = runner.run(proxy.handle(good_query(), PEER, False))
        finally:
            runner.run(peer.__aexit__())
    assert after is not None and len(DNSRecord.parse(after).rr) == 2
    assert proxy.counters["errors.internal"] == 0
    assert proxy.counters["malformed.answers"] > 0  # the broken answers were seen and counted


@FUZZ
@given(st.one_of(st.binary(max_size=600), mutated(zone_answer(ZONE)(good_query())[0])))
def test_answer_reader_raises_only_wire_errors_or_unusable(data: bytes):
    try:
        record = answers.parse(data)
        a = answers.read_addresses(record, "ds.lab.example", QTYPE_A)
        answers.additional_aaaa(record, a)
    except (WireError, Unusable):
        pass
