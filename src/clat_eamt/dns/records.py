"""The records of a DNS answer, read strictly and only as far as the proxy needs; pure.

Answers are read strictly (``read_records``): an A or AAAA record of class IN whose RDATA is not
exactly 4 or 16 octets, a name or record running past its RDATA or the message, or bytes after
the last record make the whole answer unreadable, so a malformed record can never reach a
decision; records of another class are no addresses and are skipped by ``answers``.  A record
is where its parts are in the message; ``clamp_ttls`` rewrites TTLs there (RFC 2181 5.2).

Work per answer is bounded whatever the answer holds (issue 26): an answer whose header counts
more than ``MAX_RECORDS`` records is ``Unusable`` and not read at all (its header alone is looked
at), so the proxy's cost of a 4,000-record answer is that of a one-record answer; the proxy
passes such an answer to the client unchanged and unmapped.  ``MAX_RECORDS`` leaves room for
what a real A answer holds: a CNAME chain of 16 with an RRSIG per link, 16 A records and their
RRSIG, the authority and additional sections of a validating resolver.  Each record read costs
a bounded amount too (a name is at most ``MAX_NAME_STEPS`` labels and pointers).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import NamedTuple

from clat_eamt.dns.wire import (
    CLASS_IN,
    HEADER,
    MAX_NAME_STEPS,
    QTYPE_A,
    QTYPE_AAAA,
    QTYPE_CNAME,
    RR_FIXED,
    Header,
    Question,
    WireError,
    read_name,
    read_question,
)

MAX_RECORDS = 64  # records of all sections an answer may hold to be read (module doc)
_MAX_TTL = 0x7FFFFFFF  # RFC 2181 section 8: a TTL with the top bit set is read as zero
_RDATA_SIZE = {QTYPE_A: 4, QTYPE_AAAA: 16}
SECTION_ANSWER, SECTION_AUTHORITY, SECTION_ADDITIONAL = 0, 1, 2


class Unusable(Exception):  # noqa: N818 - a verdict on an answer, not a failure of the code
    """A well-formed answer, maybe, that the optimization does not read (more records than
    ``MAX_RECORDS``, a CNAME chain too long or looping): passed to the client unchanged and
    unmapped, never SERVFAIL (the upstream did answer)."""


class Record(NamedTuple):
    """One resource record of an answer: where its parts are in the message, nothing decoded
    beyond the fixed fields.  ``owner`` is lower-cased (RFC 4343).  The TTL is read where it
    is (``read_ttl``): a repeated answer's records are where the first one's were, with other TTLs
    (``repeated``)."""

    owner: tuple[bytes, ...]
    rtype: int
    rclass: int
    ttl_at: int  # offset of the TTL field (``clamp_ttls`` rewrites it there)
    rdata: int  # offset of the RDATA
    rdlength: int
    section: int


def read_ttl(data: bytes, at: int) -> int:
    """The TTL whose field is at ``at``; one with the top bit set reads as zero (RFC 2181
    section 8)."""
    value = int.from_bytes(data[at : at + 4])
    return 0 if value > _MAX_TTL else value


def read_records(
    data: bytes, shortcuts: bool = True
) -> tuple[Header, Question | None, list[Record]]:
    """Header, first question and every record of a response, read strictly (module doc).
    Raises WireError for anything malformed, Unusable for more than ``MAX_RECORDS`` records
    (before reading any).  ``shortcuts`` False reads every owner name in full (the tests
    compare the two)."""
    header, question, offset = read_question(data)
    total = header.ancount + header.nscount + header.arcount
    if total > MAX_RECORDS:
        raise Unusable(f"{total} records (more than {MAX_RECORDS} are not read)")
    records: list[Record] = []
    sections = (
        (SECTION_ANSWER, header.ancount),
        (SECTION_AUTHORITY, header.nscount),
        (SECTION_ADDITIONAL, header.arcount),
    )
    size = len(data)
    # Most owners are a pointer to the question's name (0xC00C) or, for the OPT, the root:
    # both are taken without walking the name.  Through the pointer, read_name would read the
    # question's labels again, in one step more than they took; the shortcut holds when they
    # are plain labels (their bytes fill the question) and so few that the steps stay within
    # its limit.
    owner_of_c00c: tuple[bytes, ...] | None = None
    if shortcuts and question is not None and header.qdcount == 1:
        labels = question.labels
        plain = HEADER.size + sum(len(label) + 1 for label in labels) + 5 == offset
        if plain and len(labels) + 2 <= MAX_NAME_STEPS:
            owner_of_c00c = tuple(label.lower() for label in labels)
    owner: tuple[bytes, ...]
    for section, count in sections:
        for _ in range(count):
            if shortcuts and offset < size and data[offset] == 0:
                offset, owner = offset + 1, ()
            elif (
                owner_of_c00c is not None
                and offset + 1 < size
                and data[offset] == 0xC0
                and data[offset + 1] == HEADER.size
            ):
                offset, owner = offset + 2, owner_of_c00c
            else:
                labels, offset = read_name(data, offset)
                owner = tuple(label.lower() for label in labels)
            if offset + 10 > size:
                raise WireError("resource record runs past the end of the message", header.id)
            rtype, rclass, _, rdlength = RR_FIXED.unpack_from(data, offset)
            rdata = offset + 10
            end = rdata + rdlength
            if end > size:
                raise WireError("record data runs past the end of the message", header.id)
            if rclass == CLASS_IN:
                expected = _RDATA_SIZE.get(rtype)
                if expected is not None and rdlength != expected:
                    raise WireError(
                        f"type {rtype} record with {rdlength} octets of data, not {expected}",
                        header.id,
                    )
                if rtype == QTYPE_CNAME and read_name(data, rdata)[1] != end:
                    raise WireError("CNAME target does not fill its record data", header.id)
            records.append(Record(owner, rtype, rclass, offset + 4, rdata, rdlength, section))
            offset = end
    if offset != size:
        raise WireError(f"{size - offset} bytes after the last record", header.id)
    return header, question, records


def rrset_ttls(records: Sequence[Record], rtype: int) -> tuple[int, ...]:
    """Where the TTL fields of the answer section's ``rtype`` RRset of class IN are."""
    return tuple(
        r.ttl_at
        for r in records
        if r.section == SECTION_ANSWER and r.rtype == rtype and r.rclass == CLASS_IN
    )


def clamp_ttls(data: bytes, rrset: tuple[int, ...], ceiling: int) -> bytes:
    """``data`` with the TTL fields at ``rrset`` (``rrset_ttls``) set to the smallest of
    ``ceiling`` and their own TTLs: one value for the whole RRset (RFC 2181 section 5.2).
    Nothing else changes; without a TTL above ``ceiling`` the bytes are returned."""
    if not rrset:
        return data
    ttls = [read_ttl(data, at) for at in rrset]
    value = min(ceiling, *ttls)
    if max(ttls) == value:  # all equal, none above the ceiling: nothing to change
        return data
    out = bytearray(data)
    packed = struct.pack("!I", max(0, value))
    for at in rrset:
        out[at : at + 4] = packed
    return bytes(out)
