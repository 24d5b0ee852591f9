"""DNS wire format, only as far as the proxy must read and touch it; pure, no I/O.

The proxy forwards bytes, not re-encoded messages: a query goes upstream as the client sent it
except for a fresh ID and the removal of the LAN-private EDNS options (client identity), and an
answer goes back exactly as the upstream sent it except for the client's ID (and, for an A
answer that made a mapping, its A records' TTLs: ``records.clamp_ttls``).  So this module walks
the header, the question and the resource records (RFC 1035 section 4.1) without building more
than the decision needs, and edits the OPT record in place (RFC 6891 section 6.1).  An answer's
records are read by ``records``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Hashable
from typing import NamedTuple, TypeVar

from clat_eamt.core.names import presentation

HEADER = struct.Struct("!HHHHHH")
RR_FIXED = struct.Struct("!HHIH")  # type, class, ttl, rdlength
QTYPE_A, QTYPE_CNAME, QTYPE_SOA, QTYPE_AAAA, QTYPE_OPT = 1, 5, 6, 28, 41
CLASS_IN = 1
OPCODE_QUERY = 0
RCODE_NOERROR, RCODE_FORMERR, RCODE_SERVFAIL, RCODE_NXDOMAIN, RCODE_NOTIMP = 0, 1, 2, 3, 4
FLAG_QR, FLAG_TC, FLAG_RD, FLAG_RA, FLAG_AD, FLAG_CD = 0x8000, 0x0200, 0x0100, 0x80, 0x20, 0x10
EDNS_DO = 0x8000  # in the OPT record's TTL field (RFC 3225)

# EDNS options dnsmasq adds to tell who asked.  They describe the LAN and never go upstream:
# 65001 binary MAC (--add-mac), 65073 text/base64 MAC (--add-mac=text|base64), 8 client subnet
# (RFC 7871, --add-subnet).
OPTION_MAC_BINARY, OPTION_MAC_TEXT, OPTION_ECS = 65001, 65073, 8
IDENTITY_OPTIONS = frozenset({OPTION_MAC_BINARY, OPTION_MAC_TEXT, OPTION_ECS})

_MAX_NAME = 255  # RFC 1035 section 2.3.4
MAX_NAME_STEPS = 64  # labels and compression pointers of one name
# Records beside the question in a client's query: an OPT (RFC 6891), a TSIG (RFC 8945) or a
# cookie's OPT; a query carries none in the answer and authority sections.
MAX_QUERY_RECORDS = 8


class WireError(ValueError):
    """Not a usable DNS message.  ``id`` is set when the header could be read (so the sender can
    be told FORMERR), None when the bytes are too short to answer at all."""

    def __init__(self, message: str, id: int | None = None) -> None:
        super().__init__(message)
        self.id = id


class Header(NamedTuple):
    # NamedTuples, not frozen dataclasses, for what every message makes: as immutable, and
    # built several times faster (a frozen dataclass sets each field through object.__setattr__).
    id: int
    flags: int
    qdcount: int
    ancount: int
    nscount: int
    arcount: int

    @property
    def qr(self) -> bool:
        return bool(self.flags & FLAG_QR)

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF

    @property
    def rcode(self) -> int:
        return self.flags & 0xF

    @property
    def truncated(self) -> bool:
        return bool(self.flags & FLAG_TC)

    @property
    def authenticated(self) -> bool:
        return bool(self.flags & FLAG_AD)


class Question(NamedTuple):
    labels: tuple[bytes, ...]
    qtype: int
    qclass: int

    @property
    def name(self) -> str:
        """Presentation form without the final dot ('' for the root), escaped (issue 26)."""
        return presentation(self.labels)

    def key(self) -> tuple[tuple[bytes, ...], int, int]:
        # RFC 5452 section 9.1: the answer must carry the question asked; names compare
        # case-insensitively (RFC 4343).
        return (tuple(label.lower() for label in self.labels), self.qtype, self.qclass)

    def wire(self) -> bytes:
        parts = [bytes([len(label)]) + label for label in self.labels]
        return b"".join(parts) + b"\x00" + struct.pack("!HH", self.qtype, self.qclass)


def rcode(data: bytes) -> int:
    """The RCODE of a message already known to hold a whole header (an answer matched to its
    query): without reading the header into a ``Header``, once per answer."""
    return data[3] & 0x0F


def read_header(data: bytes) -> Header:
    if len(data) < HEADER.size:
        raise WireError(f"{len(data)} bytes is shorter than a DNS header")
    return Header._make(HEADER.unpack_from(data))


def read_name(data: bytes, offset: int) -> tuple[tuple[bytes, ...], int]:
    """The labels of the name at ``offset`` and the offset after it (RFC 1035 section 4.1.4)."""
    labels: list[bytes] = []
    end: int | None = None
    length = 1
    total = len(data)
    for _ in range(MAX_NAME_STEPS):
        if offset >= total:
            raise WireError("name runs past the end of the message")
        size = data[offset]
        if size & 0xC0 == 0xC0:
            if offset + 1 >= total:
                raise WireError("compression pointer runs past the end")
            target = ((size & 0x3F) << 8) | data[offset + 1]
            if end is None:
                end = offset + 2
            if target >= offset:
                raise WireError("compression pointer does not point backwards")
            offset = target
            continue
        if size & 0xC0:
            raise WireError(f"unknown label type {size >> 6:#x}")
        if size == 0:
            return tuple(labels), (offset + 1 if end is None else end)
        label = data[offset + 1 : offset + 1 + size]
        if len(label) != size:
            raise WireError("label runs past the end of the message")
        length += size + 1
        if length > _MAX_NAME:
            raise WireError("name longer than 255 octets")
        labels.append(label)
        offset += 1 + size
    raise WireError("too many compression pointers")


def read_question(data: bytes) -> tuple[Header, Question | None, int]:
    """Header, the first question (None if there is none) and the offset after the questions."""
    header = read_header(data)
    offset = HEADER.size
    question: Question | None = None
    if header.qdcount > 1:  # RFC 9619: QDCOUNT is 0 or 1; never walk thousands of them
        raise WireError(f"{header.qdcount} questions (exactly one is allowed)", header.id)
    try:
        for index in range(header.qdcount):
            labels, offset = read_name(data, offset)
            if offset + 4 > len(data):
                raise WireError("question runs past the end of the message")
            qtype, qclass = struct.unpack_from("!HH", data, offset)
            offset += 4
            if index == 0:
                question = Question(labels, qtype, qclass)
    except WireError as error:
        raise WireError(str(error), header.id) from None
    return header, question, offset


class Opt(NamedTuple):
    """The OPT pseudo-record of a message (RFC 6891 section 6.1.2)."""

    udp_size: int
    ttl: int  # extended rcode, version, DO and Z flags
    options: tuple[tuple[int, bytes], ...]
    start: int  # offset of the record in the message
    rdata_start: int
    end: int

    @property
    def do(self) -> bool:
        return bool(self.ttl & EDNS_DO)


class ClientQuery(NamedTuple):
    """A query from dnsmasq, read and made ready to go upstream."""

    header: Header
    question: Question
    opt: Opt | None
    upstream: bytes  # the message to forward (ID still the client's; see with_id)
    identity: tuple[tuple[int, bytes], ...]  # the LAN-private options that were removed
    question_end: int = 0  # offset after the question in ``upstream`` (``retyped``)

    @property
    def is_a(self) -> bool:
        return self.question.qtype == QTYPE_A and self.question.qclass == CLASS_IN


def _read_options(data: bytes, start: int, end: int, id: int) -> tuple[tuple[int, bytes], ...]:
    options: list[tuple[int, bytes]] = []
    offset = start
    while offset < end:
        if offset + 4 > end:
            raise WireError("EDNS option header runs past the OPT record", id)
        code, size = struct.unpack_from("!HH", data, offset)
        if offset + 4 + size > end:
            raise WireError(f"EDNS option {code} runs past the OPT record", id)
        options.append((code, data[offset + 4 : offset + 4 + size]))
        offset += 4 + size
    return tuple(options)


def find_opt(data: bytes, header: Header, offset: int) -> Opt | None:
    """Walk the answer, authority and additional records after ``offset``; return the OPT.
    Raises WireError for records that run past the end, a second OPT or trailing bytes."""
    opt: Opt | None = None
    records = header.ancount + header.nscount + header.arcount
    if records > MAX_QUERY_RECORDS:  # bounded work per query: never walk thousands
        raise WireError(f"{records} records in a query (at most {MAX_QUERY_RECORDS})", header.id)
    labels: tuple[bytes, ...]
    for index in range(records):
        start = offset
        if offset < len(data) and data[offset] == 0:  # the root, as an OPT's owner is
            labels, offset = (), offset + 1
        else:
            try:
                labels, offset = read_name(data, offset)
            except WireError as error:
                raise WireError(str(error), header.id) from None
        if offset + RR_FIXED.size > len(data):
            raise WireError("resource record runs past the end of the message", header.id)
        rtype, rclass, ttl, rdlength = RR_FIXED.unpack_from(data, offset)
        rdata_start = offset + RR_FIXED.size
        offset = rdata_start + rdlength
        if offset > len(data):
            raise WireError("record data runs past the end of the message", header.id)
        if rtype != QTYPE_OPT:
            continue
        # RFC 6891 section 6.1.1: one OPT, in the additional section, owned by the root.
        if opt is not None or labels or index < header.ancount + header.nscount:
            raise WireError("misplaced or repeated OPT record", header.id)
        options = _read_options(data, rdata_start, offset, header.id)
        opt = Opt(rclass, ttl, options, start, rdata_start, offset)
    if offset != len(data):
        raise WireError(f"{len(data) - offset} bytes after the last record", header.id)
    return opt


def read_query(data: bytes) -> ClientQuery:
    """A client's query, checked, with its client-identity options taken out of the copy that
    goes upstream.  Raises WireError; answer it with FORMERR when ``error.id`` is set.

    dnsmasq sends the same query for a name again and again but for the ID, which nothing read
    here depends on: the last queries read are remembered by their bytes after the ID, and a
    repeat is given the same reading with its own ID (in the header and the copy upstream)."""
    if len(data) > _REMEMBERED_QUERY:  # not dnsmasq's: read, not kept (bounded in bytes)
        return _read_query(data)
    kept = _remembered(_queries, data[2:], lambda _: _read_query(data))
    qid = (data[0] << 8) | data[1]
    if kept.header.id == qid:
        return kept  # read just now (or the same ID again)
    # The copy upstream is the query itself unless identity options were taken out of it.
    upstream = data[:2] + kept.upstream[2:] if kept.identity else data
    header = Header(qid, *kept.header[1:])
    return ClientQuery(header, kept.question, kept.opt, upstream, kept.identity, kept.question_end)


def _read_query(data: bytes) -> ClientQuery:
    header, question, offset = read_question(data)
    if header.qr:
        raise WireError("a response, not a query")  # never answer one: that could loop
    if header.qdcount != 1 or question is None:
        raise WireError(f"{header.qdcount} questions (exactly one is allowed)", header.id)
    opt = find_opt(data, header, offset)
    identity = tuple(o for o in opt.options if o[0] in IDENTITY_OPTIONS) if opt else ()
    upstream = data
    if opt is not None and identity:
        kept = b"".join(
            struct.pack("!HH", code, len(value)) + value
            for code, value in opt.options
            if code not in IDENTITY_OPTIONS
        )
        rdlength = struct.pack("!H", len(kept))
        upstream = data[: opt.rdata_start - 2] + rdlength + kept + data[opt.end :]
    return ClientQuery(header, question, opt, upstream, identity, offset)


def retyped(query: ClientQuery, data: bytes, qtype: int) -> bytes:
    """``data`` (the query as it goes upstream) asking ``qtype`` instead: the AAAA beside a
    client's A is the client's own query in every other byte, so it equals the AAAA the client
    asks next and the two become one upstream exchange (``upstream``'s coalescing)."""
    at = query.question_end - 4
    return data[:at] + struct.pack("!H", qtype) + data[at + 2 :]


def with_id(data: bytes, id: int) -> bytes:
    return struct.pack("!H", id) + data[2:]


def name_bytes(labels: tuple[bytes, ...]) -> bytes:
    """A name's labels as on the wire, uncompressed, without the root, in lower case (RFC 4343):
    one bytes object per name, equal for names that compare equal."""
    return _remembered(_names, labels, _name_bytes)


def question_bytes(question: Question) -> bytes:
    """``question`` as it is on the wire, uncompressed, with its name in lower case."""
    return _remembered(_questions, question, _question_bytes)


def _name_bytes(labels: tuple[bytes, ...]) -> bytes:
    return b"".join(bytes((len(label),)) + label.lower() for label in labels)


def _question_bytes(question: Question) -> bytes:
    packed = struct.pack("!HH", question.qtype, question.qclass)
    return _name_bytes(question.labels) + b"\x00" + packed


def _remembered(memory: dict[_K, _V], key: _K, make: Callable[[_K], _V]) -> _V:
    """``make(key)``, a pure function's result, remembered in ``memory``: every query and
    answer asks for the wire forms of their names, and a home repeats its names and queries.
    At most ``_REMEMBERED`` keys; the memory starts over when full."""
    try:
        found = memory.get(key)
    except TypeError:  # not bytes (a caller's bytearray): nothing to remember
        return make(key)
    if found is None:
        if len(memory) >= _REMEMBERED:
            memory.clear()
        found = memory[key] = make(key)
    return found


_REMEMBERED = 256  # of each kind: at most about 0.5 MB together (queries of _REMEMBERED_QUERY)
_REMEMBERED_QUERY = 512  # bytes: dnsmasq's queries with its options take about 60-100
_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")
_names: dict[tuple[bytes, ...], bytes] = {}
_queries: dict[bytes, ClientQuery] = {}  # by the bytes after the ID
_questions: dict[Question, bytes] = {}


def answers_question(data: bytes, id: int, question: Question) -> Header | None:
    """The header of ``data`` if it is a response to query ``id`` about ``question`` (RFC 5452
    section 9.1), else None.  The caller has already checked the source address and port."""
    # The usual answer: one question, uncompressed, its bytes those asked but for the case of
    # the name's letters (RFC 4343).  Length octets are at most 63, below the letters, so
    # lowering the bytes changes letters only; anything else takes the full reading below.
    expected = question_bytes(question)
    size = len(expected) - 4
    if (
        len(data) >= 12 + size + 4
        and data[2] & 0x80  # QR
        and ((data[0] << 8) | data[1]) == id
        and data[4:6] == b"\x00\x01"
        and data[12 : 12 + size].lower() == expected[:size]
        and data[12 + size : 16 + size] == expected[size:]
    ):
        return read_header(data)
    try:
        header, got, _ = read_question(data)
    except WireError:
        return None
    if not header.qr or header.id != id or got is None or got.key() != question.key():
        return None
    return header


def bare_error(id: int, flags: int, rcode: int) -> bytes:
    """A reply with only a header (for a query whose question could not be read)."""
    kept = flags & (0x7800 | FLAG_RD | FLAG_CD)  # opcode, RD and CD are echoed (RFC 1035 4.1.1)
    return HEADER.pack(id, FLAG_QR | FLAG_RA | kept | rcode, 0, 0, 0, 0)


def error_reply(query: ClientQuery, rcode: int) -> bytes:
    """A reply carrying only ``rcode``, with the question echoed and an OPT when the query had
    one (RFC 6891 section 7: a responder that saw OPT includes one)."""
    flags = query.header.flags & (0x7800 | FLAG_RD | FLAG_CD)
    opt = b""
    if query.opt is not None:
        opt = b"\x00" + RR_FIXED.pack(QTYPE_OPT, 1232, EDNS_DO if query.opt.do else 0, 0)
    head = HEADER.pack(query.header.id, FLAG_QR | FLAG_RA | flags | rcode, 1, 0, 0, int(bool(opt)))
    return head + query.question.wire() + opt


def with_flag(data: bytes, flag: int, on: bool = True) -> bytes:
    (flags,) = struct.unpack_from("!H", data, 2)
    flags = flags | flag if on else flags & ~flag
    return data[:2] + struct.pack("!H", flags) + data[4:]


def side_query(id: int, question: Question, qtype: int, want_dnssec: bool) -> bytes:
    """Our own query for another type of the same name (the AAAA beside a client's A, SPEC 3):
    recursion desired, EDNS with a 1232-byte buffer (DNS flag day 2020), and when DNSSEC is
    required the AD bit (RFC 6840 section 5.7) and DO so a validating resolver says AD."""
    flags = FLAG_RD | (FLAG_AD if want_dnssec else 0)
    opt = b"\x00" + RR_FIXED.pack(QTYPE_OPT, 1232, EDNS_DO if want_dnssec else 0, 0)
    asked = Question(question.labels, qtype, question.qclass)
    return HEADER.pack(id, flags, 1, 0, 0, 1) + asked.wire() + opt
