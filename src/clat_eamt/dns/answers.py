"""What an answer says about a name's addresses, and the core's Observation built from it; pure.

The name asked may lead through CNAMEs (a CDN's usual shape: www.example -> edge.cdn.example);
the addresses are those owned by the last name of the chain, and the TTL that counts is the
smallest along the chain, because the mapping is only as fresh as its weakest link (SPEC 3:
TTL = min(A TTL, AAAA TTL)).  The FQDN recorded is the name the client asked; the chain is kept
for display.

An answer is read once, by ``records.read_records`` (strict: a malformed record makes the whole
answer unreadable), and only the A, AAAA and CNAME records of class IN are decoded here.  dnslib
did this before; it decoded every record into objects and was most of the proxy's cost per
answer (measured: README, Benchmarks), and it read an A record of any length or class.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from typing import NamedTuple, cast

from clat_eamt.core.model import AaaaStatus, Host, Observation
from clat_eamt.core.names import labels, normalize, presentation
from clat_eamt.dns.records import (
    SECTION_ADDITIONAL,
    SECTION_ANSWER,
    SECTION_AUTHORITY,
    Record,
    Unusable,
    read_records,
    read_ttl,
)
from clat_eamt.dns.wire import (
    CLASS_IN,
    QTYPE_A,
    QTYPE_AAAA,
    QTYPE_CNAME,
    QTYPE_SOA,
    RCODE_NOERROR,
    RCODE_NXDOMAIN,
    Header,
    read_name,
)

_MAX_CHAIN = 16  # longer CNAME chains are not followed (resolvers stop near 8-16 too)
# Names of a chain kept for display (the log, an entry's cnames): the first three and the last,
# so an entry holds at most about 1 KB of them (issue 26: bounded in bytes).
_SHOWN_CHAIN = 4
Labels = tuple[bytes, ...]


class AddressAnswer(NamedTuple):
    """The addresses one answer gives for a name (A or AAAA).  A NamedTuple, as immutable as a
    frozen dataclass and built several times faster (one or two per A answer)."""

    status: AaaaStatus  # ANSWER, NODATA, NXDOMAIN or SERVFAIL (any other failure)
    addresses: tuple[IPv4Address | IPv6Address, ...] = ()
    ttl: int = 0
    chain: tuple[str, ...] = ()
    authenticated: bool = False
    last: Labels = ()  # the owner of the addresses (the chain's last name)
    # Where the TTLs whose least is ``ttl`` are in the answer (a repeated answer's are read
    # there: ``repeated``).
    ttl_at: tuple[int, ...] = ()


class Answer(NamedTuple):
    """A response read once: its bytes, header and records (``records.Record``)."""

    data: bytes
    header: Header
    records: list[Record]


def parse(message: bytes) -> Answer:
    """The records of a response; WireError if it is malformed anywhere, Unusable if it holds
    more records than are read (``records.MAX_RECORDS``)."""
    message = bytes(message)  # slices of it become addresses, which take only bytes
    header, _, records = read_records(message)
    return Answer(message, header, records)


def labels_of(name: str | Labels) -> Labels:
    if isinstance(name, tuple):
        return tuple(bytes(label).lower() for label in name)
    return labels(normalize(name))


_text = presentation  # names from the wire are shown escaped, as everywhere (core.names)


def _follow(answer: Answer, name: Labels) -> tuple[Labels, tuple[str, ...], tuple[int, ...]]:
    """The last name of the CNAME chain from ``name``, the chain, and where its TTLs are."""
    links: dict[Labels, Record] = {}
    for r in answer.records:
        if r.section == SECTION_ANSWER and r.rtype == QTYPE_CNAME and r.rclass == CLASS_IN:
            if r.owner in links:  # a name has one CNAME at most (RFC 2181 section 10.1)
                raise Unusable(f"{_text(r.owner)} has more than one CNAME")
            links[r.owner] = r
    if not links:  # the usual answer
        return name, (), ()
    chain: list[Labels] = []
    ttl_at: list[int] = []
    current = name
    for _ in range(_MAX_CHAIN):
        link = links.get(current)
        if link is None:
            shown = chain if len(chain) <= _SHOWN_CHAIN else [*chain[:3], chain[-1]]
            return current, tuple(_text(c) for c in shown), tuple(ttl_at)
        target, _ = read_name(answer.data, link.rdata)
        current = tuple(label.lower() for label in target)
        if current in chain or current == name:
            break  # a CNAME loop: no addresses can be trusted
        chain.append(current)
        ttl_at.append(link.ttl_at)
    # Not malformed, only more than the optimization follows: the answer goes out as it came.
    raise Unusable(f"CNAME chain from {_text(name)} loops or is longer than {_MAX_CHAIN}")


def _decode(answer: Answer, record: Record) -> IPv4Address | IPv6Address:
    raw = answer.data[record.rdata : record.rdata + record.rdlength]
    return IPv4Address(raw) if record.rtype == QTYPE_A else IPv6Address(raw)


def read_addresses(answer: Answer, name: str | Labels, rtype: int) -> AddressAnswer:
    """The ``rtype`` (A or AAAA) addresses ``answer`` gives for ``name``."""
    rcode = answer.header.rcode
    ad = answer.header.authenticated
    if rcode == RCODE_NXDOMAIN:
        return AddressAnswer(AaaaStatus.NXDOMAIN, authenticated=ad)
    if rcode != RCODE_NOERROR:
        return AddressAnswer(AaaaStatus.SERVFAIL)
    last, chain, chain_ttl_at = _follow(answer, labels_of(name))
    found = [
        r
        for r in answer.records
        if r.section == SECTION_ANSWER
        and r.rtype == rtype
        and r.rclass == CLASS_IN
        and r.owner == last
    ]
    if not found:
        return AddressAnswer(AaaaStatus.NODATA, chain=chain, authenticated=ad, last=last)
    ttl_at = (*(r.ttl_at for r in found), *chain_ttl_at)  # the chain counts (module doc)
    addresses = tuple(dict.fromkeys(_decode(answer, r) for r in found))
    return AddressAnswer(
        AaaaStatus.ANSWER, addresses, least_ttl(answer.data, ttl_at), chain, ad, last, ttl_at
    )


def least_ttl(data: bytes, ttl_at: tuple[int, ...]) -> int:
    """The smallest of the TTLs at ``ttl_at`` (at least one)."""
    return min(read_ttl(data, at) for at in ttl_at)


def keep_for(answer: Answer, read: AddressAnswer) -> int:
    """How long ``read`` (read from ``answer``) may be kept: its TTL for records; for NODATA
    and NXDOMAIN the negative TTL, the smaller of the SOA record's TTL and its MINIMUM field
    (RFC 2308 section 5), 0 without an SOA in the authority section; 0 for anything else."""
    if read.status is AaaaStatus.ANSWER:
        return read.ttl
    if read.status not in (AaaaStatus.NODATA, AaaaStatus.NXDOMAIN):
        return 0
    ttls = [
        min(
            read_ttl(answer.data, r.ttl_at),
            int.from_bytes(answer.data[r.rdata + r.rdlength - 4 : r.rdata + r.rdlength]),
        )
        for r in answer.records
        if r.section == SECTION_AUTHORITY
        and r.rtype == QTYPE_SOA
        and r.rclass == CLASS_IN
        and r.rdlength >= 22  # two names of one octet at least, and five 32-bit fields
    ]
    return min(ttls, default=0)


def additional_aaaa(answer: Answer, a: AddressAnswer) -> AddressAnswer | None:
    """AAAA records for the A answer's last name in the Additional section, if a server put
    them there (SPEC 3: then no AAAA query is needed)."""
    found = [
        r
        for r in answer.records
        if r.section == SECTION_ADDITIONAL
        and r.rtype == QTYPE_AAAA
        and r.rclass == CLASS_IN
        and r.owner == a.last
    ]
    if not found:
        return None
    ttl_at = (*a.ttl_at, *(r.ttl_at for r in found))
    addresses = tuple(dict.fromkeys(_decode(answer, r) for r in found))
    return AddressAnswer(
        AaaaStatus.ANSWER, addresses, least_ttl(answer.data, ttl_at), a.chain, a.authenticated,
        a.last, ttl_at,
    )  # fmt: skip


def observation(
    name: str, a: AddressAnswer, aaaa: AddressAnswer | AaaaStatus, host: Host | None
) -> Observation:
    """The decision's input for one A query (``aaaa`` is TIMEOUT when the hold ran out)."""
    if isinstance(aaaa, AaaaStatus):
        aaaa = AddressAnswer(aaaa)
    # The addresses as read (``read_addresses`` decodes only the type asked): the same objects
    # for a repeated answer (``repeated``, ``remembered``), which the engine compares.
    return Observation(
        name=normalize(name),
        a=cast(tuple[IPv4Address, ...], a.addresses),
        a_ttl=a.ttl,
        aaaa_status=aaaa.status,
        aaaa=cast(tuple[IPv6Address, ...], aaaa.addresses),
        aaaa_ttl=aaaa.ttl,
        authenticated=a.authenticated and aaaa.authenticated,
        host=host,
        chain=a.chain,
    )
