"""The A answer the proxy makes for an IPv6-only name (issue 27, ``core.ipv6only``).

When to make one follows DNS64's rules for the records it makes (RFC 6147):

- only for an answer that says the name exists with no A (NOERROR; NXDOMAIN stays NXDOMAIN,
  section 5.1.2 for DNS64), or that holds only configured placeholder addresses;
- never for a query with CD set: such a client validates for itself and must get the records
  as they were signed (section 5.5); the upstream answer goes out untouched;
- a made record cannot validate: the answer never carries AD (section 5.5, and RFC 4035
  section 3.2.3: AD only for data the server itself verified).

The answer: the client's header with QR and RA set, AD clear, RCODE NOERROR; the question as
the client wrote it; one A record for the question's name (a compression pointer to it, RFC
1035 section 4.1.4) with the TTL the core gave; an OPT record when the query had one (RFC 6891
section 7), echoing DO.  Everything is built here, from the query alone: the upstream's own
records (its NODATA SOA, a placeholder's A) are not copied into an answer they do not belong to.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from ipaddress import IPv4Address

from clat_eamt.core.model import AaaaStatus
from clat_eamt.dns.answers import AddressAnswer
from clat_eamt.dns.wire import (
    CLASS_IN,
    EDNS_DO,
    FLAG_CD,
    FLAG_QR,
    FLAG_RA,
    FLAG_RD,
    HEADER,
    QTYPE_A,
    QTYPE_OPT,
    RR_FIXED,
    ClientQuery,
)

_POINTER_TO_QUESTION = b"\xc0\x0c"  # the question's name starts right after the header
_UDP_SIZE = 1232  # as the proxy's own queries say (DNS flag day 2020)
_MAX_TTL = 0x7FFFFFFF  # RFC 2181 section 8


def wants_synthesis(
    query: ClientQuery, a: AddressAnswer, placeholders: Collection[IPv4Address]
) -> bool:
    """May this A answer be replaced by one the router makes?  NOERROR with no A record, or
    with only placeholders, and no CD in the query (module docstring)."""
    if query.header.flags & FLAG_CD:
        return False
    if a.status is AaaaStatus.NODATA:
        return True
    return a.status is AaaaStatus.ANSWER and all(x in placeholders for x in a.addresses)


def synthesized_reply(query: ClientQuery, addresses: Sequence[IPv4Address], ttl: int) -> bytes:
    """The reply to ``query`` with these A records (module docstring)."""
    header = query.header
    kept = header.flags & (0x7800 | FLAG_RD)  # opcode and RD echoed; AD and CD never set here
    flags = FLAG_QR | FLAG_RA | kept  # RCODE 0
    opt = b""
    if query.opt is not None:
        opt = b"\x00" + RR_FIXED.pack(QTYPE_OPT, _UDP_SIZE, EDNS_DO if query.opt.do else 0, 0)
    ttl = min(max(0, ttl), _MAX_TTL)
    records = b"".join(
        _POINTER_TO_QUESTION + RR_FIXED.pack(QTYPE_A, CLASS_IN, ttl, 4) + address.packed
        for address in addresses
    )
    head = HEADER.pack(header.id, flags, 1, len(addresses), 0, int(bool(opt)))
    return head + query.question.wire() + records + opt
