"""The records of a DNS answer, as far as the decision needs them (pure): the header's RCODE
and AD bit, and the Answer and Additional sections' owner, type, TTL and data (RFC 1035
section 4.1; names with compression, wire.read_name).  Its own small reader instead of dnslib:
dnslib's import costs the daemon 1.7 MB of a router's memory for these few fields.
"""

from __future__ import annotations

from dataclasses import dataclass

from clat_eamt.core.names import normalize
from clat_eamt.dns.wire import (
    HEADER,
    QTYPE_A,
    QTYPE_AAAA,
    RR_FIXED,
    WireError,
    read_header,
    read_name,
)

QTYPE_CNAME = 5
_SIZE = {QTYPE_A: 4, QTYPE_AAAA: 16}


@dataclass(frozen=True)
class Record:
    owner: str  # normalized (core.names): lower case, no final dot
    rtype: int
    ttl: int
    rdata: bytes
    target: str | None = None  # a CNAME's target, normalized


@dataclass(frozen=True)
class Message:
    rcode: int
    authenticated: bool  # the AD bit
    answers: tuple[Record, ...]
    additional: tuple[Record, ...]


def _name(labels: tuple[bytes, ...]) -> str:
    # the presentation form wire.Question.name gives the name asked, so that they compare
    return normalize(".".join(label.decode("ascii", "backslashreplace") for label in labels))


def _records(data: bytes, offset: int, count: int) -> tuple[list[Record], int]:
    found: list[Record] = []
    for _ in range(count):
        labels, offset = read_name(data, offset)
        if offset + RR_FIXED.size > len(data):
            raise WireError("record runs past the end of the message")
        rtype, _rclass, ttl, size = RR_FIXED.unpack_from(data, offset)
        start = offset + RR_FIXED.size
        offset = start + size
        if offset > len(data):
            raise WireError("record data runs past the end of the message")
        rdata = data[start:offset]
        target = None
        if rtype in _SIZE and size != _SIZE[rtype]:
            raise WireError(f"type {rtype} record with {size} bytes of data")
        if rtype == QTYPE_CNAME:
            cname, end = read_name(data, start)
            if end != offset:
                raise WireError("CNAME data is not one name")
            target = _name(cname)
        found.append(Record(_name(labels), rtype, ttl, rdata, target))
    return found, offset


def parse_message(data: bytes) -> Message:
    """WireError when the message cannot be read."""
    data = bytes(data)  # a bytearray's slices would be bytearrays (ipaddress wants bytes)
    header = read_header(data)
    offset = HEADER.size
    for _ in range(header.qdcount):
        _labels, offset = read_name(data, offset)
        offset += 4
        if offset > len(data):
            raise WireError("question runs past the end of the message")
    answers, offset = _records(data, offset, header.ancount)
    _authority, offset = _records(data, offset, header.nscount)
    additional, offset = _records(data, offset, header.arcount)
    return Message(header.rcode, header.authenticated, tuple(answers), tuple(additional))
