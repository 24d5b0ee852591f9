"""The A answer made for an IPv6-only name (issue 27): built with the project's codec, read back
with dnslib; the proxy's rules (RFC 6147 section 5.5: CD untouched, never AD; any failure ->
the upstream's answer as it came) against a scripted upstream on loopback."""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from dnslib import EDNS0, QTYPE, RCODE, DNSRecord

from clat_eamt.config.nettypes import ServerAddress
from clat_eamt.core.ipv6only import SyntheticA
from clat_eamt.core.model import AaaaStatus, Observation
from clat_eamt.dns import proxy
from clat_eamt.dns.answers import AddressAnswer
from clat_eamt.dns.proxy import Proxy, ProxySettings
from clat_eamt.dns.synthesize import synthesized_reply, wants_synthesis
from clat_eamt.dns.upstream import Upstreams
from clat_eamt.dns.wire import read_query
from tests.unit.dnspeer import ScriptedPeer, zone_answer

P = IPv4Address("100.127.0.7")
PLACEHOLDER = "192.0.2.99"
ZONE = {
    ("v6only.lab.example", "AAAA"): ["2001:db8:6::1"],
    ("null.lab.example", "A"): [PLACEHOLDER],
    ("null.lab.example", "AAAA"): ["2001:db8:6::2"],
    ("ds.lab.example", "A"): ["192.0.2.10"],
    ("ds.lab.example", "AAAA"): ["2001:db8:1::10"],
}
PEER = IPv4Address("127.0.0.1")


def ask(name: str, *, cd: bool = False, do: bool = False, edns: bool = True) -> bytes:
    record = DNSRecord.question(name, "A")
    record.header.id = 0x4242
    record.header.cd = int(cd)
    if edns:
        record.add_ar(EDNS0(udp_len=1232, flags="do" if do else ""))
    return record.pack()


@pytest.mark.parametrize("do", [False, True])
@pytest.mark.parametrize("edns", [False, True])
def test_the_reply_reads_back_with_dnslib(do: bool, edns: bool) -> None:
    data = ask("V6only.Lab.Example", do=do, edns=edns)
    reply = DNSRecord.parse(synthesized_reply(read_query(data), (P,), 42))
    header = reply.header
    assert (header.id, header.qr, header.ra, header.rd) == (0x4242, 1, 1, 1)
    assert (header.ad, header.cd, header.aa, header.tc, header.rcode) == (0, 0, 0, 0, RCODE.NOERROR)
    assert str(reply.q.qname) == "V6only.Lab.Example." and reply.q.qtype == QTYPE.A
    [record] = reply.rr
    assert (str(record.rname), record.rtype, record.ttl) == ("V6only.Lab.Example.", QTYPE.A, 42)
    assert str(record.rdata) == str(P)
    assert reply.auth == []
    opts = [r for r in reply.ar if r.rtype == QTYPE.OPT]
    assert len(opts) == int(edns)
    if edns:
        assert bool(opts[0].edns_do) == do


def test_when_an_a_may_be_made() -> None:
    placeholders = {IPv4Address(PLACEHOLDER)}
    nodata = AddressAnswer(AaaaStatus.NODATA)
    null = AddressAnswer(AaaaStatus.ANSWER, (IPv4Address(PLACEHOLDER),))
    mixed = AddressAnswer(AaaaStatus.ANSWER, (IPv4Address(PLACEHOLDER), IPv4Address("192.0.2.1")))
    query, cd = read_query(ask("x.example")), read_query(ask("x.example", cd=True))
    assert wants_synthesis(query, nodata, placeholders)
    assert wants_synthesis(query, null, placeholders)
    assert not wants_synthesis(query, mixed, placeholders)
    assert not wants_synthesis(query, null, ())
    assert not wants_synthesis(query, AddressAnswer(AaaaStatus.NXDOMAIN), placeholders)
    assert not wants_synthesis(query, AddressAnswer(AaaaStatus.SERVFAIL), placeholders)
    assert not wants_synthesis(cd, nodata, placeholders)  # RFC 6147 section 5.5


MADE = SyntheticA(P, 60)


class Mapper:
    def __init__(self, give: SyntheticA | float | None = MADE, fail: bool = False):
        self.seen: list[Observation] = []
        self.give, self.fail = give, fail

    async def __call__(self, obs: Observation) -> SyntheticA | float | None:
        self.seen.append(obs)
        if self.fail:
            raise RuntimeError("dataplane exploded")
        return self.give


def with_ad(respond):  # type: ignore[no-untyped-def]
    """The upstream validates: AD on every answer."""

    def signed(data: bytes) -> list[bytes]:
        out = []
        for reply in respond(data):
            record = DNSRecord.parse(reply)
            record.header.ad = 1
            out.append(record.pack())
        return out

    return signed


def exchange(query: bytes, mapper: Mapper, respond=None, **settings) -> tuple[bytes, bytes]:  # type: ignore[no-untyped-def]
    """The proxy's reply and the upstream's own answer to the same A query."""
    respond = respond or zone_answer(ZONE)

    async def scenario() -> tuple[bytes, bytes]:
        async with ScriptedPeer(respond) as peer:
            servers = [ServerAddress(ip_address("127.0.0.1"), peer.port)]
            seam = Proxy(Upstreams(lambda: servers, 1.0), mapper, ProxySettings(**settings))
            reply = await seam.handle(query, PEER, False)
            assert reply is not None
            upstream_a = next(q for q in peer.received if DNSRecord.parse(q).q.qtype == QTYPE.A)
            return reply, respond(upstream_a)[0]

    return asyncio.run(scenario())


ON = {"ipv6_only": True, "placeholders": frozenset({IPv4Address(PLACEHOLDER)})}


def test_an_ipv6_only_name_gets_the_mappers_a_and_never_ad() -> None:
    mapper = Mapper()
    reply, _ = exchange(ask("v6only.lab.example"), mapper, with_ad(zone_answer(ZONE)), **ON)
    record = DNSRecord.parse(reply)
    assert [str(r.rdata) for r in record.rr] == [str(P)] and record.rr[0].ttl == 60
    assert record.header.ad == 0 and record.header.id == 0x4242
    [obs] = mapper.seen
    assert obs.a == () and obs.aaaa == (IPv6Address("2001:db8:6::1"),)


def test_a_placeholder_answer_is_replaced_per_name() -> None:
    mapper = Mapper()
    reply, _ = exchange(ask("null.lab.example"), mapper, **ON)
    assert [str(r.rdata) for r in DNSRecord.parse(reply).rr] == [str(P)]
    [obs] = mapper.seen
    assert obs.a == (IPv4Address(PLACEHOLDER),) and obs.aaaa == (IPv6Address("2001:db8:6::2"),)


@pytest.mark.parametrize("name", ["v6only.lab.example", "null.lab.example"])
def test_a_query_with_cd_gets_the_upstreams_answer_unchanged(name: str) -> None:
    mapper = Mapper()
    reply, direct = exchange(ask(name, cd=True), mapper, with_ad(zone_answer(ZONE)), **ON)
    assert reply[2:] == direct[2:] and mapper.seen == []


def test_option_off_the_name_has_no_a_as_before() -> None:
    mapper = Mapper()
    reply, direct = exchange(ask("v6only.lab.example"), mapper)
    assert reply[2:] == direct[2:] and DNSRecord.parse(reply).rr == [] and mapper.seen == []


@pytest.mark.parametrize("mapper", [Mapper(fail=True), Mapper(give=None)])
def test_any_failure_or_refusal_releases_the_upstreams_answer(mapper: Mapper) -> None:
    reply, direct = exchange(ask("v6only.lab.example"), mapper, **ON)
    assert reply[2:] == direct[2:] and DNSRecord.parse(reply).rr == []


def test_a_failure_building_the_answer_releases_the_upstreams(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def broken(*_: object) -> bytes:
        raise ValueError("codec bug")

    monkeypatch.setattr(proxy, "synthesized_reply", broken)
    reply, direct = exchange(ask("v6only.lab.example"), Mapper(), **ON)
    assert reply[2:] == direct[2:]


def nxdomain(data: bytes) -> list[bytes]:
    reply = DNSRecord.parse(data).reply()
    reply.header.rcode = RCODE.NXDOMAIN
    return [reply.pack()]


def test_nxdomain_and_real_a_answers_take_their_usual_path() -> None:
    mapper = Mapper()
    reply, direct = exchange(ask("missing.lab.example"), mapper, nxdomain, **ON)
    assert reply[2:] == direct[2:] and mapper.seen == []  # NXDOMAIN stays NXDOMAIN
    mapper = Mapper(give=30.0)
    reply, _ = exchange(ask("ds.lab.example"), mapper, **ON)
    assert [str(r.rdata) for r in DNSRecord.parse(reply).rr] == ["192.0.2.10"]
    assert mapper.seen[0].a == (IPv4Address("192.0.2.10"),)
