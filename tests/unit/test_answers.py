"""Reading addresses, TTLs and CNAME chains from answers, and the Observation made of them."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest
from dnslib import AAAA, CNAME, QTYPE, RCODE, RR, A, DNSRecord

from clat_eamt.core.model import AaaaStatus, Host
from clat_eamt.dns import answers
from clat_eamt.dns.records import Message
from clat_eamt.dns.wire import QTYPE_A, QTYPE_AAAA, WireError


def message(name: str, qtype: str, *records: RR, rcode: int = 0, ad: bool = False) -> DNSRecord:
    """An answer built by dnslib (an independent encoder), as a resolver would send it."""
    record = DNSRecord.question(name, qtype).reply()
    record.header.rcode = rcode
    record.header.ad = int(ad)
    for rr in records:
        record.add_answer(rr)
    return record


def reply(name: str, qtype: str, *records: RR, rcode: int = 0, ad: bool = False) -> Message:
    return answers.parse(message(name, qtype, *records, rcode=rcode, ad=ad).pack())


def test_addresses_ttl_and_no_chain():
    r = reply("ds.lab.example", "A", RR("ds.lab.example", rdata=A("192.0.2.10"), ttl=120))
    got = answers.read_addresses(r, "ds.lab.example", QTYPE_A)
    assert got.status is AaaaStatus.ANSWER
    assert got.addresses == (IPv4Address("192.0.2.10"),) and got.ttl == 120 and got.chain == ()


def test_cname_chain_is_followed_and_its_smallest_ttl_counts():
    r = reply(
        "www.lab.example",
        "A",
        RR("www.lab.example", QTYPE.CNAME, rdata=CNAME("Edge.CDN.lab.example"), ttl=30),
        RR("edge.cdn.lab.example", QTYPE.CNAME, rdata=CNAME("e1.cdn.lab.example"), ttl=300),
        RR("e1.cdn.lab.example", rdata=A("192.0.2.30"), ttl=60),
        RR("e1.cdn.lab.example", rdata=A("192.0.2.31"), ttl=60),
        RR("unrelated.lab.example", rdata=A("192.0.2.99"), ttl=5),
    )
    got = answers.read_addresses(r, "WWW.lab.example.", QTYPE_A)
    assert got.chain == ("edge.cdn.lab.example", "e1.cdn.lab.example")
    assert got.addresses == (IPv4Address("192.0.2.30"), IPv4Address("192.0.2.31"))
    assert got.ttl == 30


def test_cname_loop_is_an_error():
    r = reply(
        "a.lab.example",
        "A",
        RR("a.lab.example", QTYPE.CNAME, rdata=CNAME("b.lab.example")),
        RR("b.lab.example", QTYPE.CNAME, rdata=CNAME("a.lab.example")),
    )
    with pytest.raises(WireError, match="loops"):
        answers.read_addresses(r, "a.lab.example", QTYPE_A)


@pytest.mark.parametrize(
    ("rcode", "status"),
    [
        (RCODE.NXDOMAIN, AaaaStatus.NXDOMAIN),
        (RCODE.SERVFAIL, AaaaStatus.SERVFAIL),
        (RCODE.REFUSED, AaaaStatus.SERVFAIL),
        (RCODE.NOERROR, AaaaStatus.NODATA),
    ],
)
def test_status_from_rcode(rcode, status):
    r = reply("v4only.lab.example", "AAAA", rcode=rcode)
    assert answers.read_addresses(r, "v4only.lab.example", QTYPE_AAAA).status is status


def test_aaaa_in_the_additional_section_is_used():
    built = message("ds.lab.example", "A", RR("ds.lab.example", rdata=A("192.0.2.10"), ttl=100))
    built.add_ar(RR("ds.lab.example", QTYPE.AAAA, rdata=AAAA("2001:db8:1::10"), ttl=50))
    r = answers.parse(built.pack())
    a = answers.read_addresses(r, "ds.lab.example", QTYPE_A)
    extra = answers.additional_aaaa(r, a, "ds.lab.example")
    assert extra is not None and extra.addresses == (IPv6Address("2001:db8:1::10"),)
    assert extra.ttl == 50
    assert answers.additional_aaaa(reply("x.lab.example", "A"), a, "x.lab.example") is None


def test_observation_needs_ad_on_both_answers():
    a = answers.AddressAnswer(AaaaStatus.ANSWER, (IPv4Address("192.0.2.10"),), 60, (), True)
    aaaa = answers.AddressAnswer(AaaaStatus.ANSWER, (IPv6Address("2001:db8:1::10"),), 30, (), False)
    obs = answers.observation("DS.lab.example.", a, aaaa, Host("h"))
    assert obs.name == "ds.lab.example" and not obs.authenticated
    assert obs.a_ttl == 60 and obs.aaaa_ttl == 30 and obs.host == Host("h")
    timed_out = answers.observation("ds.lab.example", a, AaaaStatus.TIMEOUT, None)
    assert timed_out.aaaa_status is AaaaStatus.TIMEOUT and timed_out.aaaa == ()


def test_unreadable_answer_is_a_wire_error():
    with pytest.raises(WireError):
        answers.parse(b"\x00\x01\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00\x03abc")
