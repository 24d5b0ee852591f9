"""Reading addresses, TTLs and CNAME chains from answers, and the Observation made of them."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv6Address

import pytest
from dnslib import AAAA, CNAME, QTYPE, RCODE, RR, A, DNSRecord

from clat_eamt.core.model import AaaaStatus, Host
from clat_eamt.dns import answers
from clat_eamt.dns.records import Unusable
from clat_eamt.dns.wire import QTYPE_A, QTYPE_AAAA, WireError


def build(name: str, qtype: str, *records: RR, rcode: int = 0, ad: bool = False) -> DNSRecord:
    record = DNSRecord.question(name, qtype).reply()
    record.header.rcode = rcode
    record.header.ad = int(ad)
    for rr in records:
        record.add_answer(rr)
    return record


def reply(name: str, qtype: str, *records: RR, rcode: int = 0, ad: bool = False) -> answers.Answer:
    return answers.parse(build(name, qtype, *records, rcode=rcode, ad=ad).pack())


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


def test_cname_loop_is_unusable_not_malformed():
    """Not read, passed to the client as it came (issue 26), never SERVFAIL."""
    r = reply(
        "a.lab.example",
        "A",
        RR("a.lab.example", QTYPE.CNAME, rdata=CNAME("b.lab.example")),
        RR("b.lab.example", QTYPE.CNAME, rdata=CNAME("a.lab.example")),
    )
    with pytest.raises(Unusable, match="loops"):
        answers.read_addresses(r, "a.lab.example", QTYPE_A)


def test_two_cnames_for_one_name_are_unusable():
    """A name has one CNAME at most (RFC 2181 section 10.1); which of two to follow would be a
    guess (one of them may loop: found by the differential test), so the answer is not read."""
    r = reply(
        "a.lab.example",
        "A",
        RR("a.lab.example", QTYPE.CNAME, rdata=CNAME("a.lab.example")),
        RR("A.lab.example", QTYPE.CNAME, rdata=CNAME("c.lab.example")),
        RR("c.lab.example", rdata=A("192.0.2.30")),
    )
    with pytest.raises(Unusable, match="more than one CNAME"):
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
    built = build("ds.lab.example", "A", RR("ds.lab.example", rdata=A("192.0.2.10"), ttl=100))
    built.add_ar(RR("ds.lab.example", QTYPE.AAAA, rdata=AAAA("2001:db8:1::10"), ttl=50))
    r = answers.parse(built.pack())
    a = answers.read_addresses(r, "ds.lab.example", QTYPE_A)
    extra = answers.additional_aaaa(r, a)
    assert extra is not None and extra.addresses == (IPv6Address("2001:db8:1::10"),)
    assert extra.ttl == 50
    assert answers.additional_aaaa(reply("x.lab.example", "A"), a) is None


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


# --- strict reading (issue 15's defect, fixed with the parser): a malformed record never
# reaches a decision.  Each of these was read as an address by the dnslib-based reader.


def a_answer(rclass: int = 1, rdlength: int = 4, rdata: bytes = bytes([192, 0, 2, 10])) -> bytes:
    """ds.lab.example A with a hand-made record: owner, type A, class, TTL 60, RDATA."""
    head = DNSRecord.question("ds.lab.example", "A").reply()
    head.header.id = 7
    data = bytearray(head.pack())
    data[6:8] = (1).to_bytes(2, "big")  # ANCOUNT 1
    owner = b"\xc0\x0c"  # the question's name
    record = owner + struct.pack("!HHIH", 1, rclass, 60, rdlength) + rdata
    return bytes(data) + record


def test_a_record_of_another_class_is_no_address():
    chaos = answers.parse(a_answer(rclass=3))  # CH: not an Internet address (RFC 1035 3.2.4)
    got = answers.read_addresses(chaos, "ds.lab.example", QTYPE_A)
    assert got.status is AaaaStatus.NODATA and got.addresses == ()
    assert answers.read_addresses(answers.parse(a_answer()), "ds.lab.example", QTYPE_A).addresses


@pytest.mark.parametrize(
    "bad",
    [
        a_answer(rdlength=5, rdata=bytes([192, 0, 2, 10, 1])),  # an A of 5 octets
        a_answer(rdlength=3, rdata=bytes([192, 0, 2])),  # ... of 3
        a_answer(rdlength=16, rdata=bytes(16)),  # an A holding an IPv6 address
        a_answer() + b"\x00",  # a byte after the last record
        a_answer(rdlength=6),  # RDATA runs past the end
    ],
    ids=["rdlength-5", "rdlength-3", "rdlength-16", "trailing", "past-the-end"],
)
def test_a_record_with_the_wrong_length_makes_the_answer_unreadable(bad: bytes):
    with pytest.raises(WireError):
        answers.read_addresses(answers.parse(bad), "ds.lab.example", QTYPE_A)


def test_a_ttl_with_the_top_bit_set_reads_as_zero():
    data = bytearray(a_answer())
    data[-10:-6] = (0x80000000).to_bytes(4, "big")  # RFC 2181 section 8
    assert answers.read_addresses(answers.parse(bytes(data)), "ds.lab.example", QTYPE_A).ttl == 0
