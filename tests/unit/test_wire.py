"""The wire-format walker: byte-exact forwarding, identity options stripped, RFC 5452 matching."""

from __future__ import annotations

import random
import struct

import pytest
from dnslib import EDNS0, QTYPE, RR, A, DNSRecord, EDNSOption

from clat_eamt.dns import wire
from clat_eamt.dns.wire import (
    FLAG_QR,
    OPTION_ECS,
    OPTION_MAC_BINARY,
    OPTION_MAC_TEXT,
    QTYPE_AAAA,
    RCODE_SERVFAIL,
    WireError,
    answers_question,
    bare_error,
    error_reply,
    read_query,
    side_query,
    with_id,
)

MAC = bytes.fromhex("020000000001")
COOKIE = (10, bytes(range(8)))


def query(name="ds.lab.example", qtype="A", options=(), do=False, ednssize=1232) -> bytes:
    record = DNSRecord.question(name, qtype)
    if options is not None:
        flags = "do" if do else ""
        opts = [EDNSOption(code, data) for code, data in options]
        record.add_ar(EDNS0(udp_len=ednssize, flags=flags, opts=opts))
    return record.pack()


def options_of(message: bytes) -> list[tuple[int, bytes]]:
    opt = next(r for r in DNSRecord.parse(message).ar if r.rtype == QTYPE.OPT)
    return [(o.code, o.data) for o in opt.rdata]


def test_a_query_without_identity_goes_upstream_byte_for_byte():
    data = query(options=[COOKIE])
    q = read_query(data)
    assert q.upstream == data
    assert q.is_a and q.question.name == "ds.lab.example"
    assert q.identity == ()


def test_identity_options_are_removed_and_everything_else_kept():
    ecs = struct.pack("!HBB", 1, 32, 0) + bytes([192, 0, 2, 100])
    data = query(
        options=[
            (OPTION_MAC_BINARY, MAC),
            COOKIE,
            (OPTION_MAC_TEXT, b"02:00:00:00:00:01"),
            (OPTION_ECS, ecs),
        ],
        do=True,
        ednssize=1400,
    )
    q = read_query(data)
    assert [code for code, _ in q.identity] == [OPTION_MAC_BINARY, OPTION_MAC_TEXT, OPTION_ECS]
    assert options_of(q.upstream) == [COOKIE]
    upstream = DNSRecord.parse(q.upstream)
    opt = upstream.ar[0]
    assert opt.rclass == 1400 and opt.ttl & 0x8000  # buffer size and DO bit survive
    assert upstream.q == DNSRecord.parse(data).q
    assert len(q.upstream) == len(data) - (4 + 6) - (4 + 17) - (4 + 8)


def test_query_with_only_identity_options_keeps_an_empty_opt():
    q = read_query(query(options=[(OPTION_MAC_BINARY, MAC)]))
    assert options_of(q.upstream) == []


@pytest.mark.parametrize(
    ("data", "answerable"),
    [
        (b"", False),
        (b"\x12\x34\x01", False),  # shorter than a header
        (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05ab", True),  # name cut short
        (b"\x12\x34\x01\x00\x00\x02\x00\x00\x00\x00\x00\x00" + b"\x00\x00\x01\x00\x01" * 2, True),
        (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01", True),
        (with_id(query(options=None), 0x1234) + b"junk", True),  # trailing bytes
    ],
)
def test_malformed_queries_raise_with_the_id_when_one_can_be_answered(data, answerable):
    with pytest.raises(WireError) as caught:
        read_query(data)
    assert (caught.value.id == 0x1234) if answerable else caught.value.id is None


def test_a_response_sent_as_a_query_is_never_answered():
    data = bytearray(query())
    data[2] |= FLAG_QR >> 8
    with pytest.raises(WireError) as caught:
        read_query(bytes(data))
    assert caught.value.id is None


def test_two_opt_records_are_a_format_error():
    record = DNSRecord.question("ds.lab.example")
    record.add_ar(EDNS0())
    record.add_ar(EDNS0())
    with pytest.raises(WireError, match="OPT"):
        read_query(record.pack())


def test_compressed_name_loop_is_refused():
    # question name is a pointer to itself
    data = b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01"
    with pytest.raises(WireError, match="backwards"):
        read_query(data)


def test_answers_question_checks_id_question_and_qr():
    q = read_query(query())
    reply = DNSRecord.parse(query()).reply()
    reply.add_answer(RR("ds.lab.example", rdata=A("192.0.2.10")))
    good = with_id(reply.pack(), 4242)
    assert answers_question(good, 4242, q.question) is not None
    assert answers_question(good, 4243, q.question) is None  # wrong ID
    other = DNSRecord.parse(query("other.lab.example")).reply().pack()
    assert answers_question(with_id(other, 4242), 4242, q.question) is None  # wrong question
    assert answers_question(with_id(query(), 4242), 4242, q.question) is None  # not a response
    assert answers_question(b"\x10\x92", 4242, q.question) is None  # runt
    upper = DNSRecord.parse(query("DS.Lab.EXAMPLE")).reply().pack()
    assert answers_question(with_id(upper, 4242), 4242, q.question) is not None  # RFC 4343


def test_error_reply_echoes_question_and_opt():
    q = read_query(query(options=[], do=True))
    reply = DNSRecord.parse(error_reply(q, RCODE_SERVFAIL))
    assert (
        reply.header.rcode == RCODE_SERVFAIL and reply.header.qr and reply.header.id == q.header.id
    )
    assert reply.q.qname == "ds.lab.example."
    assert reply.ar[0].rtype == QTYPE.OPT and reply.ar[0].ttl & 0x8000


def test_bare_error_is_a_header_only_reply():
    reply = DNSRecord.parse(bare_error(0xBEEF, 0x0100, 1))
    assert reply.header.id == 0xBEEF and reply.header.rcode == 1 and reply.header.rd


def test_side_query_asks_aaaa_for_the_same_name_with_edns():
    q = read_query(query("Cname.Lab.Example"))
    side = DNSRecord.parse(side_query(7, q.question, QTYPE_AAAA, want_dnssec=True))
    assert side.q.qtype == QTYPE.AAAA and str(side.q.qname) == "Cname.Lab.Example."
    assert side.header.ad and side.header.rd and side.ar[0].ttl & 0x8000


def reading(read, data: bytes) -> object:
    try:
        return read(data)
    except WireError as error:
        return ("WireError", str(error), error.id)


@pytest.mark.parametrize("seed", range(4))
def test_a_repeated_query_is_read_as_a_full_reading_reads_it(seed):
    # read_query remembers the last queries by their bytes after the ID: a repeat with another
    # ID, or any other change, reads exactly as the full reader reads it.
    rng = random.Random(seed)
    names = ["ds.lab.example", "WWW.Lab.Example", "v4only1.lab.example"]
    identities = [(), ((OPTION_MAC_BINARY, MAC),), ((OPTION_ECS, b"\x00\x01\x20\x00" + bytes(4)),)]
    sent = [
        query(name, qtype, (*identity, *extra), do=do)
        for name in names
        for qtype in ("A", "AAAA")
        for identity in identities
        for extra in ((), (COOKIE,))
        for do in (False, True)
    ] + [query(name, options=None) for name in names]
    for _ in range(1500):
        data = bytearray(rng.choice(sent))
        kind = rng.random()
        if kind < 0.7:
            data[:2] = struct.pack("!H", rng.randrange(1 << 16))
        elif kind < 0.85:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        else:
            del data[rng.randrange(len(data)) :]
        message = bytes(data)
        assert reading(read_query, message) == reading(wire._read_query, message), message.hex()
    assert wire._queries  # the repeats were remembered
