"""dns/records.py against dnslib, an independent implementation: for answers dnslib builds
(compressed names, CNAME chains, both sections, AD and RCODE), the same records; every cut of
a message is either read or refused with WireError, never another exception."""

from __future__ import annotations

from ipaddress import ip_address

import pytest
from dnslib import AAAA, CNAME, QTYPE, RR, TXT, A, DNSRecord

from clat_eamt.dns.records import QTYPE_CNAME, parse_message
from clat_eamt.dns.wire import WireError


def sample() -> bytes:
    record = DNSRecord.question("WWW.Lab.example", "A").reply()
    record.header.ad = 1
    record.add_answer(RR("www.lab.example", QTYPE.CNAME, rdata=CNAME("edge.cdn.example"), ttl=60))
    record.add_answer(RR("edge.cdn.example", rdata=A("192.0.2.10"), ttl=30))
    record.add_answer(RR("edge.cdn.example", QTYPE.TXT, rdata=TXT("hello"), ttl=30))
    record.add_ar(RR("edge.cdn.example", QTYPE.AAAA, rdata=AAAA("2001:db8::10"), ttl=20))
    return bytes(record.pack())


def test_same_records_as_dnslib() -> None:
    data = sample()
    mine, theirs = parse_message(data), DNSRecord.parse(data)
    assert mine.rcode == theirs.header.rcode and mine.authenticated
    for ours, ref in ((mine.answers, theirs.rr), (mine.additional, theirs.ar)):
        assert [(r.owner, r.rtype, r.ttl) for r in ours] == [
            (str(x.rname).rstrip(".").lower(), x.rtype, x.ttl) for x in ref
        ]
    cname = mine.answers[0]
    assert cname.rtype == QTYPE_CNAME and cname.target == "edge.cdn.example"
    assert ip_address(mine.answers[1].rdata) == ip_address("192.0.2.10")
    assert ip_address(mine.additional[0].rdata) == ip_address("2001:db8::10")


def test_nxdomain_and_servfail_codes() -> None:
    for rcode in (2, 3):
        record = DNSRecord.question("x.lab.example", "A").reply()
        record.header.rcode = rcode
        assert parse_message(bytes(record.pack())).rcode == rcode


@pytest.mark.parametrize("cut", range(1, 40))
def test_every_cut_is_read_or_refused(cut: int) -> None:
    data = sample()
    try:
        parse_message(data[:-cut])
    except WireError:
        return
    raise AssertionError(f"a message cut by {cut} bytes was read")


def test_a_record_of_the_wrong_size_is_refused() -> None:
    record = DNSRecord.question("x.lab.example", "A").reply()
    record.add_answer(RR("x.lab.example", rdata=A("192.0.2.1")))
    data = bytearray(record.pack())
    data[-6:-4] = (5).to_bytes(2, "big")  # rdlength 5 where A has 4
    with pytest.raises(WireError):
        parse_message(bytes(data) + b"\0")
