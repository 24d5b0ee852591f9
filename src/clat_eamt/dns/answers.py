"""What an answer says about a name's addresses, and the core's Observation built from it; pure.

The name asked may lead through CNAMEs (a CDN's usual shape: www.example -> edge.cdn.example);
the addresses are those owned by the last name of the chain, and the TTL that counts is the
smallest along the chain, because the mapping is only as fresh as its weakest link (SPEC 3:
TTL = min(A TTL, AAAA TTL)).  The FQDN recorded is the name the client asked; the chain is kept
for display.  ``records`` reads them: this is the one place where answers are decoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from clat_eamt.core.model import AaaaStatus, Host, Observation
from clat_eamt.core.names import normalize
from clat_eamt.dns.records import QTYPE_CNAME, Message, Record, parse_message
from clat_eamt.dns.wire import QTYPE_A, QTYPE_AAAA, WireError

RCODE_NOERROR, RCODE_NXDOMAIN = 0, 3

_MAX_CHAIN = 16  # longer CNAME chains are treated as broken (resolvers stop near 8-16 too)
_FAMILY: dict[int, type[IPv4Address] | type[IPv6Address]] = {
    QTYPE_A: IPv4Address,
    QTYPE_AAAA: IPv6Address,
}


@dataclass(frozen=True)
class AddressAnswer:
    """The addresses one answer gives for a name (A or AAAA)."""

    status: AaaaStatus  # ANSWER, NODATA, NXDOMAIN or SERVFAIL (any other failure)
    addresses: tuple[IPv4Address | IPv6Address, ...] = ()
    ttl: int = 0
    chain: tuple[str, ...] = ()
    authenticated: bool = False


def _follow(records: tuple[Record, ...], name: str) -> tuple[str, tuple[str, ...], int | None]:
    """The last name of the CNAME chain from ``name``, the chain, and its smallest TTL."""
    chain: list[str] = []
    ttl: int | None = None
    current = name
    for _ in range(_MAX_CHAIN):
        link = next((r for r in records if r.rtype == QTYPE_CNAME and r.owner == current), None)
        if link is None or link.target is None:
            return current, tuple(chain), ttl
        current = link.target
        if current in chain or current == name:
            break  # a CNAME loop: no addresses can be trusted
        chain.append(current)
        ttl = link.ttl if ttl is None else min(ttl, link.ttl)
    raise WireError(f"CNAME chain from {name} loops or is longer than {_MAX_CHAIN}")


def parse(message: bytes) -> Message:
    """WireError when the answer cannot be read."""
    return parse_message(message)


def read_addresses(record: Message, name: str, rtype: int) -> AddressAnswer:
    """The ``rtype`` (A or AAAA) addresses ``record`` gives for ``name``."""
    ad = record.authenticated
    if record.rcode == RCODE_NXDOMAIN:
        return AddressAnswer(AaaaStatus.NXDOMAIN, authenticated=ad)
    if record.rcode != RCODE_NOERROR:
        return AddressAnswer(AaaaStatus.SERVFAIL)
    last, chain, chain_ttl = _follow(record.answers, normalize(name))
    family = _FAMILY[rtype]
    found = [r for r in record.answers if r.rtype == rtype and r.owner == last]
    if not found:
        return AddressAnswer(AaaaStatus.NODATA, chain=chain, authenticated=ad)
    ttl = min(r.ttl for r in found)
    if chain_ttl is not None:
        ttl = min(ttl, chain_ttl)
    addresses = tuple(dict.fromkeys(family(r.rdata) for r in found))
    return AddressAnswer(AaaaStatus.ANSWER, addresses, ttl, chain, ad)


def additional_aaaa(record: Message, a: AddressAnswer, name: str) -> AddressAnswer | None:
    """AAAA records for the answer's last name in the Additional section, if a server put them
    there (SPEC 3: then no AAAA query is needed)."""
    last = a.chain[-1] if a.chain else normalize(name)
    found = [r for r in record.additional if r.rtype == QTYPE_AAAA and r.owner == last]
    if not found:
        return None
    ttl = min(a.ttl, *(r.ttl for r in found))
    addresses = tuple(dict.fromkeys(IPv6Address(r.rdata) for r in found))
    return AddressAnswer(AaaaStatus.ANSWER, addresses, ttl, a.chain, a.authenticated)


def observation(
    name: str, a: AddressAnswer, aaaa: AddressAnswer | AaaaStatus, host: Host | None
) -> Observation:
    """The decision's input for one A query (``aaaa`` is TIMEOUT when the hold ran out)."""
    if isinstance(aaaa, AaaaStatus):
        aaaa = AddressAnswer(aaaa)
    return Observation(
        name=normalize(name),
        a=tuple(x for x in a.addresses if isinstance(x, IPv4Address)),
        a_ttl=a.ttl,
        aaaa_status=aaaa.status,
        aaaa=tuple(x for x in aaaa.addresses if isinstance(x, IPv6Address)),
        aaaa_ttl=aaaa.ttl,
        authenticated=a.authenticated and aaaa.authenticated,
        host=host,
        chain=a.chain,
    )
