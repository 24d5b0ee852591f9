"""The router runs its own DNS reader (dns/records.py, dns/answers.py) and rtnetlink codec
(dataplane/rtnl.py) instead of dnslib and pyroute2, for memory and speed (README, Benchmarks);
the two libraries, which the design names, stay as the oracles that check them (issue 26):

- DNS: random answers that dnslib builds, and hostile ones (every kind of record, class CH,
  TTLs with the top bit set, names with any byte, one-byte mutations, cuts), read by both.
  Whatever our strict reader accepts, dnslib must read to the same header, question and
  records, field by field (owner, type, class, TTL, RDATA, section), and the addresses the
  proxy takes from it (through the CNAME chain, the least TTL along it) must be those a reading
  of dnslib's objects gives.  Where dnslib accepts what ours refuses, ours names the reason
  (WireError, or Unusable for more than ``MAX_RECORDS`` records).
- rtnetlink: dumps recorded from a namespace (tests/unit/data/rtnl-dumps.json: a veth pair,
  documentation addresses, a point-to-point peer, permanent neighbours of both families, and
  what the kernel adds), this machine's kernel's own dumps as the test runs (dumps need no
  root) and generated messages (random names, addresses of both
  families, local and peer addresses, MACs, attributes neither knows, truncated tails), decoded
  by both: every field ours reads must equal pyroute2's.
"""

from __future__ import annotations

import json
import socket
import struct
from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

import pytest
from dnslib import (
    AAAA,
    CNAME,
    EDNS0,
    MX,
    QTYPE,
    RR,
    SOA,
    TXT,
    A,
    DNSError,
    DNSHeader,
    DNSLabel,
    DNSQuestion,
    DNSRecord,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from pyroute2.netlink.rtnl.marshal import MarshalRtnl

from clat_eamt.dataplane import rtnl
from clat_eamt.dns import answers
from clat_eamt.dns.records import SECTION_ADDITIONAL, SECTION_ANSWER, Unusable, read_records
from clat_eamt.dns.wire import QTYPE_A, QTYPE_AAAA, WireError, read_name

# --- DNS ---------------------------------------------------------------------------------------

# Labels of text in most answers (dnslib reads only labels that are UTF-8), of any byte in some.
text_labels = st.lists(
    st.text(min_size=1, max_size=12).map(str.encode).filter(lambda x: len(x) <= 63),
    min_size=1,
    max_size=4,
)
binary_labels = st.lists(st.binary(min_size=1, max_size=20), min_size=1, max_size=4)
KNOWN = "dnslib refuses a label that is not UTF-8 (RFC 2181 section 11 allows any octet)"
OPAQUE = "dnslib decodes RDATA that ours passes through unread"
DECODED = {(QTYPE.A, 1), (QTYPE.AAAA, 1), (QTYPE.CNAME, 1)}  # what ours reads of RDATA
NAME_RDATA = {QTYPE.NS, QTYPE.CNAME, QTYPE.SOA, QTYPE.PTR, QTYPE.MX}  # a name in the RDATA
ttls = st.one_of(st.integers(0, 86400), st.integers(0x7FFFFFF0, 0xFFFFFFFF))


@st.composite
def records(draw: st.DrawFn, names: list[tuple[bytes, ...]], every: bool) -> RR:
    owner = DNSLabel(list(draw(st.sampled_from(names))))
    kinds = ["A", "AAAA", "CNAME", "TXT", "MX", "SOA"] if every else ["A", "AAAA", "CNAME"]
    kind = draw(st.sampled_from(kinds))
    ttl = draw(ttls)
    rclass = draw(st.sampled_from([1, 1, 1, 3] if every else [1]))  # IN mostly, CH too
    target = DNSLabel(list(draw(st.sampled_from(names))))
    rdata = {
        "A": lambda: A(str(IPv4Address(draw(st.integers(0, 2**32 - 1))))),
        "AAAA": lambda: AAAA(str(IPv6Address(draw(st.integers(0, 2**128 - 1))))),
        "CNAME": lambda: CNAME(target),
        "TXT": lambda: TXT(draw(st.binary(max_size=40))),
        "MX": lambda: MX(target, draw(st.integers(0, 65535))),
        "SOA": lambda: SOA(target, target, (1, 2, 3, 4, draw(st.integers(0, 86400)))),
    }[kind]()
    return RR(owner, getattr(QTYPE, kind), rclass=rclass, ttl=ttl, rdata=rdata)


@st.composite
def dns_answers(draw: st.DrawFn, every: bool = True) -> bytes:
    """``every``: records of every kind and class; else only those ours reads (A, AAAA, CNAME
    of class IN), so that whatever dnslib refuses after a mutation is a disagreement."""
    labels = binary_labels if draw(st.integers(0, 4)) == 0 else text_labels
    qname = draw(labels)
    names = [tuple(qname), *draw(st.lists(labels, min_size=1, max_size=4))]
    names = [tuple(n) for n in names]
    header = DNSHeader(
        id=draw(st.integers(0, 65535)), qr=1, ra=1, rcode=draw(st.sampled_from([0, 0, 0, 2, 3]))
    )
    qtype = draw(st.sampled_from([QTYPE.A, QTYPE.AAAA]))
    reply = DNSRecord(header, q=DNSQuestion(DNSLabel(list(qname)), qtype))
    for add in (reply.add_answer, reply.add_auth, reply.add_ar):
        for rr in draw(st.lists(records(names, every), max_size=6)):
            add(rr)
    if every and draw(st.booleans()):
        reply.add_ar(EDNS0(udp_len=1232))
    return bytes(reply.pack())


def _ttl(value: int) -> int:
    return 0 if value > 0x7FFFFFFF else value  # RFC 2181 section 8, as ours reads it


def compare_with_dnslib(data: bytes) -> str:
    """'same' when both read ``data`` alike, 'refused' when ours refuses it (and why), never a
    disagreement (that fails)."""
    try:
        header, question, ours = read_records(data)
    except (WireError, Unusable) as error:
        return f"refused: {type(error).__name__}"
    try:
        theirs = DNSRecord.parse(data)  # ours accepted it: the oracle must too
    except Exception as error:  # DNSError; a UnicodeDecodeError for a CAA tag not UTF-8
        if isinstance(error, DNSError) and "Invalid label" in str(error):
            return KNOWN
        if any((r.rtype, r.rclass) not in DECODED for r in ours):
            return OPAQUE  # an MX, TXT, SOA or OPT, or a class but IN: bytes to ours
        raise
    h = theirs.header
    assert (header.id, header.qdcount, header.ancount, header.nscount, header.arcount) == (
        h.id, h.q, h.a, h.auth, h.ar
    )  # fmt: skip
    assert header.qr == bool(h.qr) and header.rcode == h.rcode and header.opcode == h.opcode
    assert header.truncated == bool(h.tc) and header.authenticated == bool(h.ad)
    if question is not None:
        q = theirs.q
        assert (question.labels, question.qtype, question.qclass) == (
            tuple(q.qname.label), q.qtype, q.qclass
        )  # fmt: skip
    sections = [(SECTION_ANSWER, rr) for rr in theirs.rr]
    sections += [(1, rr) for rr in theirs.auth] + [(SECTION_ADDITIONAL, rr) for rr in theirs.ar]
    shape = [(r.section, r.owner, r.rtype, r.rclass) for r in ours]
    their_shape = [
        (section, tuple(label.lower() for label in rr.rname.label), rr.rtype, rr.rclass)
        for section, rr in sections
    ]
    # dnslib reads the name in a PTR's (NS, MX, SOA ...) RDATA without bounding it by RDLENGTH,
    # so the records after one whose name is shorter shift; ours skips RDLENGTH bytes of RDATA
    # it does not decode (RFC 1035 section 4.1.3).  Only a shift after such a record is theirs.
    first = next(
        (i for i, (x, y) in enumerate(zip(shape, their_shape, strict=False)) if x != y),
        min(len(shape), len(their_shape)),
    )
    if shape != their_shape and any(
        r.rtype in NAME_RDATA and (r.rtype, r.rclass) not in DECODED for r in ours[:first]
    ):
        return OPAQUE
    assert len(ours) == len(sections)
    for record, (section, rr) in zip(ours, sections, strict=True):
        assert record.section == section
        assert record.owner == tuple(label.lower() for label in rr.rname.label)
        assert (record.rtype, record.rclass) == (rr.rtype, rr.rclass)
        if rr.rtype != QTYPE.OPT:  # the OPT's TTL field is flags (RFC 6891)
            assert int.from_bytes(data[record.ttl_at : record.ttl_at + 4]) == rr.ttl
        raw = data[record.rdata : record.rdata + record.rdlength]
        if rr.rtype in (QTYPE.A, QTYPE.AAAA) and rr.rclass == 1:
            assert ip_address(raw) == ip_address(str(rr.rdata))
        elif rr.rtype == QTYPE.CNAME and rr.rclass == 1:
            assert read_name(data, record.rdata)[0] == tuple(rr.rdata.label.label)
    compare_addresses(data, theirs)
    return "same"


def compare_addresses(data: bytes, theirs: DNSRecord) -> None:
    """What the proxy takes from an answer (``answers.read_addresses``) against the same
    reading of dnslib's objects: the CNAME chain from the question, the records of its last
    name in order without repeats, the least TTL along it."""
    if theirs.header.rcode != 0 or not theirs.questions:
        return
    qname = tuple(label.lower() for label in theirs.q.qname.label)
    for rtype in (QTYPE_A, QTYPE_AAAA):
        try:
            got = answers.read_addresses(answers.parse(data), qname, rtype)
        except Unusable:
            continue  # a chain that loops or is longer than 16: not read (proxy doc)
        links = {}
        for rr in theirs.rr:
            if rr.rtype == QTYPE.CNAME and rr.rclass == 1:
                links.setdefault(tuple(x.lower() for x in rr.rname.label), rr)
        current, ttl_list, seen = qname, [], {qname}
        while current in links:
            ttl_list.append(links[current].ttl)
            current = tuple(x.lower() for x in links[current].rdata.label.label)
            # ours refuses (Unusable) a chain that loops or is longer than 16: never followed
            assert current not in seen and len(ttl_list) <= 16, (qname, current)
            seen.add(current)
        found = [
            rr
            for rr in theirs.rr
            if rr.rtype == rtype and rr.rclass == 1
            and tuple(x.lower() for x in rr.rname.label) == current
        ]  # fmt: skip
        expected = tuple(dict.fromkeys(ip_address(str(rr.rdata)) for rr in found))
        assert got.addresses == expected
        if found:
            assert got.ttl == min(_ttl(t) for t in [rr.ttl for rr in found] + ttl_list)


@settings(max_examples=300)
@given(dns_answers())
def test_random_answers_read_as_dnslib_reads_them(data: bytes) -> None:
    assert compare_with_dnslib(data) in ("same", KNOWN)  # well-formed RDATA: dnslib reads it


@settings(max_examples=150)
@given(st.one_of(dns_answers(), dns_answers(every=False)), st.data())
def test_hostile_answers_ours_accepts_read_as_dnslib_reads_them(data: bytes, draw) -> None:
    """One-byte mutations and cuts: a disagreement fails; refusals are ours to make."""
    for _ in range(20):
        offset = draw.draw(st.integers(0, len(data) - 1))
        if draw.draw(st.booleans()):
            value = draw.draw(st.sampled_from([0x00, 0x01, 0x0C, 0x3F, 0xC0, 0xFF]))
            mutated = data[:offset] + bytes([value]) + data[offset + 1 :]
        else:
            mutated = data[: max(12, offset)]
        compare_with_dnslib(mutated)


def test_a_ptr_whose_name_is_shorter_than_its_rdata_is_opaque_not_a_disagreement() -> None:
    """Found by the test above: dnslib reads the PTR's name (the root, one byte) and takes the
    next two bytes for the following record; ours skips the PTR's three bytes of RDATA."""
    question = b"\x01a\x00\x00\x01\x00\x01"
    ptr = b"\xc0\x0c\x00\x0c\x00\x01\x00\x00\x00\x3c\x00\x03\x00\x00\x00"
    a = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xc0\x00\x02\x01"
    data = b"\x00\x01\x81\x80\x00\x01\x00\x00\x00\x00\x00\x02" + question + ptr + a
    _, _, ours = read_records(data)
    assert [(r.rtype, r.owner) for r in ours] == [(12, (b"a",)), (1, (b"a",))]
    assert compare_with_dnslib(data) == OPAQUE


def test_an_answer_of_thousands_of_records_is_refused_from_its_header() -> None:
    reply = DNSRecord.question("a.example").reply()
    for i in range(4000):
        reply.add_answer(RR("a.example", QTYPE.A, rdata=A(str(IPv4Address(0xC6120000 + i)))))
    assert compare_with_dnslib(bytes(reply.pack())) == "refused: Unusable"


# --- rtnetlink ---------------------------------------------------------------------------------


def _attr(kind: int, payload: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(payload), kind) + payload
    return raw + b"\0" * (-len(raw) % 4)


def _message(kind: int, payload: bytes, seq: int = 1) -> bytes:
    raw = struct.pack("=IHHII", 16 + len(payload), kind, 2, seq, 0) + payload
    return raw + b"\0" * (-len(raw) % 4)


def compare_with_pyroute2(datagram: bytes) -> int:
    """Every message of one dump datagram decoded by both; how many were compared."""
    theirs = [m for m in MarshalRtnl().parse(datagram) if m["header"]["type"] != rtnl.NLMSG_DONE]
    ours = [(k, p) for k, p in rtnl.messages(datagram) if k != rtnl.NLMSG_DONE]
    assert len(ours) == len(theirs)
    for (kind, payload), message in zip(ours, theirs, strict=True):
        assert kind == message["header"]["type"]
        if kind == rtnl.RTM_NEWLINK:
            link = rtnl.parse_link(payload)
            name = message.get_attr("IFLA_IFNAME")
            expected = (message["index"], name) if name is not None else None
            assert ((link.index, link.name) if link else None) == expected
        elif kind == rtnl.RTM_NEWADDR:
            address = rtnl.parse_address(payload)
            local = message.get_attr("IFA_LOCAL") or message.get_attr("IFA_ADDRESS")
            if local is None:
                assert address is None
            else:
                assert address is not None
                assert (address.index, address.prefixlen) == (
                    message["index"],
                    message["prefixlen"],
                )
                assert address.address == ip_address(local)
        elif kind == rtnl.RTM_NEWNEIGH:
            entry = rtnl.parse_neighbour(payload)
            assert entry is not None
            assert (entry.ifindex, entry.state) == (message["ifindex"], message["state"])
            dst = message.get_attr("NDA_DST")
            assert entry.dst == (ip_address(dst) if dst is not None else None)
            lladdr = message.get_attr("NDA_LLADDR")
            assert entry.lladdr == (lladdr if lladdr else None)
    return len(ours)


RECORDED = json.loads((Path(__file__).parent / "data" / "rtnl-dumps.json").read_text())


def test_recorded_dumps_decode_as_pyroute2_decodes_them_and_as_they_were_made() -> None:
    """Recorded with `ip netns add`, a veth pair lan0/lan1, 192.0.2.1/24 and 2001:db8::1/64 on
    lan0, 198.51.100.2 peer 198.51.100.1 on lan1, permanent neighbours 192.0.2.7 and
    2001:db8::7, then the three dumps through rtnl's own request (the namespace removed)."""
    for grams in RECORDED.values():
        assert sum(compare_with_pyroute2(bytes.fromhex(g)) for g in grams) > 0
    got = {
        name: [parse(p) for g in RECORDED[name] for k, p in rtnl.messages(bytes.fromhex(g))
               if k != rtnl.NLMSG_DONE]
        for name, parse in (("links", rtnl.parse_link), ("addresses", rtnl.parse_address),
                            ("neighbours", rtnl.parse_neighbour))
    }  # fmt: skip
    assert {x.name for x in got["links"]} == {"lo", "lan0", "lan1"}
    addresses = {(str(x.address), x.prefixlen) for x in got["addresses"]}
    assert {("192.0.2.1", 24), ("2001:db8::1", 64), ("198.51.100.2", 32)} <= addresses
    neighbours = {(str(x.dst), x.lladdr, x.state) for x in got["neighbours"]}
    assert {
        ("192.0.2.7", "02:00:00:00:00:07", 0x80),
        ("2001:db8::7", "02:00:00:00:00:08", 0x80),
    } <= neighbours


@pytest.mark.parametrize("kind", [rtnl.RTM_GETLINK, rtnl.RTM_GETADDR, rtnl.RTM_GETNEIGH])
def test_this_kernels_dumps_decode_as_pyroute2_decodes_them(kind: int) -> None:
    _, body = rtnl._REQUESTS[kind]
    compared = 0
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, socket.NETLINK_ROUTE) as sock:
        sock.settimeout(5)
        sock.sendto(rtnl.request(kind, body), (0, 0))
        while True:
            datagram = sock.recv(65536)
            compared += compare_with_pyroute2(datagram)
            if any(k == rtnl.NLMSG_DONE for k, _ in rtnl.messages(datagram)):
                break
    assert compared > 0 or kind == rtnl.RTM_GETNEIGH  # a machine may have no neighbours


def _mac(draw: st.DrawFn) -> bytes:
    return bytes(draw(st.lists(st.integers(0, 255), min_size=6, max_size=6)))


@st.composite
def netlink_dumps(draw: st.DrawFn) -> bytes:
    """One dump datagram of generated messages (module doc), then NLMSG_DONE."""
    parts = []
    for seq in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from([rtnl.RTM_NEWLINK, rtnl.RTM_NEWADDR, rtnl.RTM_NEWNEIGH]))
        extra = _attr(draw(st.integers(40, 60)), draw(st.binary(max_size=9)))  # unknown to both
        if kind == rtnl.RTM_NEWLINK:
            name = draw(st.text("abcdefghijklmnopqrstuvwxyz0123456789-._", min_size=1, max_size=15))
            body = struct.pack("=BxHiII", 0, 1, draw(st.integers(1, 2**31 - 1)), 0, 0)
            body += extra + _attr(rtnl.IFLA_IFNAME, name.encode() + b"\0")
        elif kind == rtnl.RTM_NEWADDR:
            family = draw(st.sampled_from([socket.AF_INET, socket.AF_INET6]))
            size = 4 if family == socket.AF_INET else 16
            prefix = draw(st.integers(0, 8 * size))
            body = struct.pack("=BBBBI", family, prefix, 0, 0, draw(st.integers(1, 2**31 - 1)))
            for which in (rtnl.IFA_ADDRESS, rtnl.IFA_LOCAL):
                if draw(st.booleans()):
                    body += _attr(which, bytes(draw(st.lists(st.integers(0, 255), min_size=size,
                                                             max_size=size))))  # fmt: skip
            body += extra
        else:
            family = draw(st.sampled_from([socket.AF_INET, socket.AF_INET6]))
            size = 4 if family == socket.AF_INET else 16
            state = draw(st.sampled_from([0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80]))
            body = struct.pack("=BxxxiHBB", family, draw(st.integers(1, 2**31 - 1)), state, 0, 1)
            if draw(st.booleans()):
                dst = bytes(draw(st.lists(st.integers(0, 255), min_size=size, max_size=size)))
                body += _attr(rtnl.NDA_DST, dst)
            if draw(st.booleans()):
                body += _attr(rtnl.NDA_LLADDR, _mac(draw))
            body += extra
        parts.append(_message(kind, body, seq + 1))
    parts.append(_message(rtnl.NLMSG_DONE, struct.pack("=i", 0), 99))
    return b"".join(parts)


@settings(max_examples=300)
@given(netlink_dumps())
def test_generated_dumps_decode_as_pyroute2_decodes_them(datagram: bytes) -> None:
    assert compare_with_pyroute2(datagram) >= 1


def test_the_comparisons_fail_on_a_wrong_reading(monkeypatch) -> None:
    """Either comparison fails when our codec reads one field wrong (they can fail)."""
    reply = DNSRecord.question("a.example").reply()
    reply.add_answer(RR("a.example", QTYPE.A, rdata=A("192.0.2.1"), ttl=60))
    data = bytes(reply.pack())
    assert compare_with_dnslib(data) == "same"

    read = read_records

    def wrong_class(data: bytes):  # type: ignore[no-untyped-def]
        header, question, found = read(data)
        return header, question, [r._replace(rclass=3) for r in found]

    monkeypatch.setattr(__import__(__name__, fromlist=["x"]), "read_records", wrong_class)
    with pytest.raises(AssertionError):
        compare_with_dnslib(data)
    body = struct.pack("=BxxxiHBB", socket.AF_INET, 3, 0x02, 0, 1)
    dump = _message(rtnl.RTM_NEWNEIGH, body + _attr(rtnl.NDA_DST, bytes([192, 0, 2, 7])))
    assert compare_with_pyroute2(dump) == 1
    real = rtnl.parse_neighbour
    monkeypatch.setattr(rtnl, "parse_neighbour", lambda p: replace(real(p), state=0x04))
    with pytest.raises(AssertionError):
        compare_with_pyroute2(dump)
