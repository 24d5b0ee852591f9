"""A answers read once per name while they repeat, but for their ID and TTLs; pure.

A home asks the same names over and over, and with dnsmasq's cache off (per-client options) every
answer reaches the proxy: the resolver gives the same records each time, their TTLs counted
down.  Reading such an answer again (``answers``: its records, the A addresses through the CNAME
chain, AAAA records in the Additional section) finds what the last reading of the name found,
but for the TTLs, and was about a sixth of the proxy's own work per repeated A answer (76,000
of 451,000 instructions, counted in one process: README, Benchmarks).  So the last A answer
read for each name is kept with where its TTL fields are (RFC 1035 section 4.1.3), and an
answer equal to it in every byte but the ID and those fields is given the same reading, with
the TTLs it carries now.

Nothing but the bytes goes into a reading, so equal bytes give an equal one and what is kept
never goes stale.  The OPT record's TTL field holds the extended RCODE and flags (RFC 6891
section 6.1.3), not a TTL: it is compared like any other byte.  Every answer that is not a
repeat is read in full, strictly, as before.  At most ``CAPACITY`` names, the oldest forgotten
first; a name costs about 0.8 KB plus its answer's size (tests/unit/test_repeated.py), and an
answer longer than ``MAX_KEPT`` bytes is read every time, never kept (issue 26): at most about
2 MB however large the answers.
"""

from __future__ import annotations

from typing import NamedTuple

from clat_eamt.dns import answers
from clat_eamt.dns.answers import AddressAnswer, Labels, least_ttl
from clat_eamt.dns.records import rrset_ttls
from clat_eamt.dns.wire import QTYPE_A, QTYPE_OPT

CAPACITY = 256  # names: a home's hot set (the bench's miss path asks 42, its LAN mix 105)
MAX_KEPT = 2048  # bytes of an answer kept (a CDN's A answer with DNSSEC is well below)
_ID = b"\x00\x00"  # the ID: the first two bytes of the header
_NO_TTL = b"\x00\x00\x00\x00"


class Reading(NamedTuple):
    """What the proxy reads of an A answer."""

    rrset: tuple[int, ...]  # where the TTLs of its A RRset are (``records.clamp_ttls``)
    a: AddressAnswer
    additional: AddressAnswer | None  # the name's AAAA records in the Additional section


def read_a(data: bytes, labels: Labels) -> Reading:
    """An A answer for the name ``labels``, read in full; WireError if it is malformed."""
    return _reading(answers.parse(data), labels)


def _reading(answer: answers.Answer, labels: Labels) -> Reading:
    a = answers.read_addresses(answer, labels, QTYPE_A)
    additional = answers.additional_aaaa(answer, a) if a.addresses else None
    return Reading(rrset_ttls(answer.records, QTYPE_A), a, additional)


class _Kept(NamedTuple):
    masked: bytes  # the answer with its ID and TTL fields zeroed
    ttl_at: tuple[int, ...]  # where those TTL fields are
    reading: Reading


def _masked(data: bytes, ttl_at: tuple[int, ...]) -> bytearray:
    out = bytearray(data)
    out[:2] = _ID
    for at in ttl_at:
        out[at : at + 4] = _NO_TTL
    return out


def _with_ttls(reading: Reading, data: bytes) -> Reading:
    """``reading`` with the TTLs of ``data`` (the same answer but for them)."""
    a, additional = reading.a, reading.additional
    if a.ttl_at:
        ttl = least_ttl(data, a.ttl_at)
        a = AddressAnswer(a.status, a.addresses, ttl, a.chain, a.authenticated, a.last, a.ttl_at)
    if additional is not None:
        x = additional
        ttl = least_ttl(data, x.ttl_at)
        additional = AddressAnswer(
            x.status, x.addresses, ttl, x.chain, x.authenticated, x.last, x.ttl_at
        )
    return Reading(reading.rrset, a, additional)


class RepeatedAnswers:
    def __init__(self, capacity: int = CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("the memory of A answers needs room for one name")
        self.capacity = capacity
        self._by_name: dict[bytes, _Kept] = {}  # a plain dict keeps insertion order: oldest first
        self.hits = 0

    def __len__(self) -> int:
        return len(self._by_name)

    def read(self, key: bytes, data: bytes, labels: Labels) -> Reading:
        """``read_a(data, labels)``, from the last reading of the name ``key`` (``name_key`` of
        ``labels``) when ``data`` repeats its answer; WireError if it is malformed."""
        kept = self._by_name.get(key)
        if (
            kept is not None
            and len(data) == len(kept.masked)
            and _masked(data, kept.ttl_at) == kept.masked
        ):
            self.hits += 1
            return _with_ttls(kept.reading, data)
        answer = answers.parse(data)
        reading = _reading(answer, labels)
        if len(data) > MAX_KEPT:
            return reading
        ttl_at = tuple(r.ttl_at for r in answer.records if r.rtype != QTYPE_OPT)
        self._by_name.pop(key, None)  # re-inserted: the newest
        self._by_name[key] = _Kept(bytes(_masked(data, ttl_at)), ttl_at, reading)
        if len(self._by_name) > self.capacity:
            del self._by_name[next(iter(self._by_name))]
        return reading
