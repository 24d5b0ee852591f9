"""The operator's table (the slides' third approach, "CLAT-provider-EAMT"; SPEC section 2): its
text format, its checks and when to fetch it again.  Pure: the shells fetch the text and check
its signature (``clat_eamt.provider``), the runtime installs what passes (``runtime.provider``).

The format, one line per statement (README, "The operator's table"):

    # anything after a '#' is a comment; on an entry's line it is the entry's comment
    serial 2026120701            # an integer that grows with every change of the table
    refresh 3600                 # seconds until the router fetches the table again
    192.0.2.0/24   2001:db8:cafe::/120  ttl=86400      # IPv4 prefix, IPv6 prefix, lifetime
    198.51.100.7   2001:db8:1::7        expires=2027-01-31T00:00:00Z

A table is taken whole or not at all: one bad line, a serial lower than the one in place (or
the same serial with other contents), a table too large, and nothing of it is used; the
entries in place then stay until their own end (``ttl`` from when the table was taken, or the
absolute ``expires``).  RFC 7757 section 3: an entry maps the suffix bits of one prefix onto
the other, so both prefixes leave the same number of host bits (a bare address is /32 or /128).
"""

from __future__ import annotations

import base64
import binascii
import itertools
import re
from collections.abc import Generator, Iterable
from ipaddress import IPv4Network, IPv6Network
from typing import NamedTuple

from clat_eamt.core.addresses import AddressPolicy
from clat_eamt.core.model import show

MAX_TABLE_BYTES = 4 * 1024 * 1024  # read no more of a fetched or pushed table (memory bound)
MAX_LINE = 512  # characters per line
MAX_COMMENT = 200  # as a static entry's comment
SERIAL_MAX = 2**63 - 1
REFRESH_MIN, REFRESH_MAX = 60, 7 * 86400  # the table's own refresh time, seconds
TTL_MAX = 2**31 - 1  # RFC 2181 section 8's bound on a TTL
RETRY_FIRST, RETRY_MAX = 30.0, 3600.0  # back-off of failed fetches, seconds
_EXPIRES = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\Z")  # RFC 3339, UTC only
_IPV4 = re.compile(r"[0-9.]+(/\d{1,2})?\Z")
_IPV6 = re.compile(r"[0-9A-Fa-f:.]+(/\d{1,3})?\Z")


class TableError(ValueError):
    """The table is refused whole; the message names the line and what to change."""


class ProviderEntry(NamedTuple):
    """One entry of a table.  The prefixes are kept as integers and lengths (a table of 10,000
    entries held as ``ipaddress`` networks took 15 MB while it was read, now about 3 MB);
    ``ipv4`` and ``ipv6`` build the network objects when asked, a slice at a time.  Named
    tuples, not dataclasses, here and below: each dataclass costs the idle daemon about 50 KB
    of generated code (tracemalloc), these cost a few."""

    v4: int
    v4len: int
    v6: int
    v6len: int
    ttl: int | None  # seconds from when the table is taken, or
    expires_at: float | None  # an absolute end (Unix time)
    comment: str = ""

    @property
    def ipv4(self) -> IPv4Network:
        return IPv4Network((self.v4, self.v4len))

    @property
    def ipv6(self) -> IPv6Network:
        return IPv6Network((self.v6, self.v6len))

    def ends(self, now: float, wall: float) -> float:
        """The entry's end on the monotonic clock ``now`` whose time of day is ``wall``."""
        if self.ttl is not None:
            return now + self.ttl
        assert self.expires_at is not None
        return now + (self.expires_at - wall)


class ProviderTable(NamedTuple):
    serial: int
    refresh: int
    entries: tuple[ProviderEntry, ...]
    digest: int  # of the text (this process's hash): the same serial must mean the same table

    def live(self, wall: float) -> tuple[ProviderEntry, ...]:
        """The entries that have not ended by the time of day ``wall`` (an ``expires`` past)."""
        return tuple(e for e in self.entries if e.expires_at is None or e.expires_at > wall)


def parse_table(data: bytes, max_entries: int) -> ProviderTable:
    """The table in ``data``, or TableError for the first thing wrong with it."""
    steps = parse_steps(data, max_entries)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


def parse_steps(
    data: bytes, max_entries: int, lines: int = 128
) -> Generator[None, None, ProviderTable]:
    """``parse_table`` a slice at a time: it yields after every ``lines`` lines, so a caller on
    an event loop lets it turn in between (10,000 lines take a good part of a second on a
    router), and returns the table (StopIteration's value)."""
    if len(data) > MAX_TABLE_BYTES:
        raise TableError(f"the table is {len(data)} bytes; at most {MAX_TABLE_BYTES} are read")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise TableError(f"the table is not UTF-8 text (byte {error.start})") from None
    serial: int | None = None
    refresh: int | None = None
    entries: list[ProviderEntry] = []
    for number, raw in enumerate(text.splitlines(), 1):
        if number % lines == 0:
            yield
        if len(raw) > MAX_LINE:
            raise TableError(f"line {number}: longer than {MAX_LINE} characters")
        body, _, comment = raw.partition("#")
        words = body.split()
        if not words:
            continue
        try:
            if words[0] in ("serial", "refresh"):
                if len(words) != 2:
                    raise ValueError(f"{words[0]} takes one number, e.g. '{words[0]} 3600'")
                if (serial if words[0] == "serial" else refresh) is not None:
                    raise ValueError(f"a second '{words[0]}' line")
                if words[0] == "serial":
                    serial = _number(words[1], 1, SERIAL_MAX, "serial")
                else:
                    refresh = _number(words[1], REFRESH_MIN, REFRESH_MAX, "refresh")
                continue
            entries.append(_entry(words, comment.strip()))
        except ValueError as error:
            raise TableError(f"line {number}: {error}") from None
        if len(entries) > max_entries:
            raise TableError(f"more than {max_entries} entries (provider_max_entries)")
    if serial is None:
        raise TableError("no 'serial' line (e.g. 'serial 2026120701')")
    if refresh is None:
        raise TableError("no 'refresh' line (e.g. 'refresh 3600')")
    _no_overlaps(entries)
    # hash(), not hashlib: hashlib would load OpenSSL's libcrypto into the daemon (the digest is
    # only ever compared within this process)
    return ProviderTable(serial, refresh, tuple(entries), hash(data))


def url_problem(url: str) -> str | None:
    """None for an acceptable ``provider_url`` (empty: none), else why not.  The fetcher gets it
    as one argument: no spaces or control characters, and it cannot pass for an option."""
    if not url:
        return None
    if not url.startswith(("https://", "http://")) or len(url.split("/")[2]) == 0:
        return f"expected an https:// (or http://) URL, got {url!r}"
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return "a URL has no spaces or control characters"
    return None


def public_key_problem(key: str) -> str | None:
    """None for a usign/signify Ed25519 public key (the base64 line of a .pub file: 'Ed', an
    8-byte key number, 32 bytes of key; usign main.c, signify.c), or empty; else why not."""
    if not key:
        return None
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        return "expected the base64 line of a usign .pub file, e.g. RWRjZjh3Z1lY..."
    if len(raw) != 42 or raw[:2] != b"Ed":
        return "not a usign public key: its base64 line decodes to 'Ed', 8 + 32 bytes"
    return None


def key_number(key: str) -> str:
    """The 8-byte key number of a usign public key, as hex (what ``usign -F`` prints)."""
    return base64.b64decode(key)[2:10].hex()


def _number(word: str, low: int, high: int, what: str) -> int:
    if not (word.isascii() and word.isdigit()) or not low <= int(word) <= high:
        raise ValueError(f"{what} must be a whole number from {low} to {high}, not {word!r}")
    return int(word)


def _entry(words: list[str], comment: str) -> ProviderEntry:
    if len(words) != 3:
        raise ValueError(
            "an entry is 'IPV4[/LEN] IPV6[/LEN] ttl=SECONDS' or '... expires=YYYY-MM-DDTHH:MM:SSZ'"
            f", not {len(words)} words"
        )
    if not _IPV4.match(words[0]):
        raise ValueError(f"{words[0]!r} is not an IPv4 address or prefix")
    if ":" not in words[1] or not _IPV6.match(words[1]):
        raise ValueError(f"{words[1]!r} is not an IPv6 address or prefix")
    ipv4, ipv6 = IPv4Network(words[0]), IPv6Network(words[1])  # strict: no host bits
    suffix4, suffix6 = 32 - ipv4.prefixlen, 128 - ipv6.prefixlen
    if suffix4 != suffix6:  # RFC 7757 section 3
        raise ValueError(
            f"{show(ipv6)} leaves {suffix6} host bits but {show(ipv4)} leaves {suffix4}; with "
            f"/{ipv4.prefixlen} the IPv6 prefix must be /{128 - suffix4} (RFC 7757 section 3)"
        )
    key, _, value = words[2].partition("=")
    if len(comment) > MAX_COMMENT:
        raise ValueError(f"comment longer than {MAX_COMMENT} characters")
    v4, v6 = int(ipv4.network_address), int(ipv6.network_address)
    if key == "ttl":
        ttl = _number(value, 1, TTL_MAX, "ttl")
        return ProviderEntry(v4, ipv4.prefixlen, v6, ipv6.prefixlen, ttl, None, comment)
    if key == "expires" and _EXPIRES.match(value):
        when = _unix_time(value)
        return ProviderEntry(v4, ipv4.prefixlen, v6, ipv6.prefixlen, None, when, comment)
    raise ValueError(f"{words[2]!r}: the lifetime is ttl=SECONDS or expires=YYYY-MM-DDTHH:MM:SSZ")


def _unix_time(text: str) -> float:
    """An RFC 3339 UTC time (``_EXPIRES``) as Unix time; ValueError for a date that does not
    exist.  Imported here: a daemon without an ``expires`` entry never loads datetime."""
    from datetime import UTC, datetime  # noqa: PLC0415 - only tables with absolute ends

    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise ValueError(f"expires={text}: no such date and time") from None


def _no_overlaps(entries: list[ProviderEntry]) -> None:
    """No two entries share an IPv4 address (sorted once: O(n log n))."""
    spans = sorted((e.v4, e.v4 | ((1 << (32 - e.v4len)) - 1), i) for i, e in enumerate(entries))
    for (_, last, a), (first, _, b) in itertools.pairwise(spans):
        if first <= last:
            one, other = entries[b].ipv4, entries[a].ipv4
            raise TableError(f"{show(one)} overlaps {show(other)}: an IPv4 maps to one IPv6")


def entry_problems(
    entries: Iterable[ProviderEntry],
    addresses: AddressPolicy,
    translated: Iterable[IPv6Network],
    pool: IPv4Network,
) -> str | None:
    """The first entry the router must not install, and why (SPEC section 4: never a
    special-purpose, local or excluded address; never a target inside a NAT64 prefix, never the
    mapping pool), or None."""
    translated = tuple(translated)
    for entry in entries:
        ipv4, ipv6 = entry.ipv4, entry.ipv6
        for prefix in (ipv4, ipv6):
            # a single address is asked as one (no network object rebuilt: 10,000 entries)
            one = prefix.network_address if prefix.num_addresses == 1 else prefix
            refusal = addresses.refusal(one)
            if refusal is not None:
                return f"{show(ipv4)} -> {show(ipv6)}: {refusal.detail}"
        inside = next((p for p in translated if ipv6.overlaps(p)), None)
        if inside is not None:
            return f"{show(ipv6)} lies inside the NAT64 prefix {inside}"
        if ipv4.overlaps(pool):
            return f"{show(ipv4)} overlaps the mapping pool {pool}"
    return None


def serial_problem(
    table: ProviderTable, current: ProviderTable | None, floor: int | None = None
) -> str | None:
    """A serial only grows: lower than the one in place is refused, and so is the same serial
    with other contents (the operator changed the table and forgot the serial).  With no table
    in place, ``floor`` is the serial taken last (before a restart or a switch-off): a lower
    one is refused, so an old signed table cannot be replayed then."""
    if current is None:
        if floor is not None and table.serial < floor:
            return f"serial {table.serial} is lower than {floor}, the last one taken"
        return None
    if table.serial > current.serial:
        return None
    if table.serial == current.serial and table.digest == current.digest:
        return None  # the same table again: its entries' lifetimes start again
    if table.serial == current.serial:
        return f"serial {table.serial} is the one in place, with other contents"
    return f"serial {table.serial} is lower than {current.serial}, the one in place"


class FetchSchedule:
    """When to fetch the table: at start, then at the table's refresh time; after a failure
    again in ``RETRY_FIRST`` seconds, doubling up to ``RETRY_MAX`` (or the refresh time, when
    it is shorter)."""

    __slots__ = ("delay", "due_at", "running")

    def __init__(self, due_at: float) -> None:
        self.due_at, self.delay, self.running = due_at, RETRY_FIRST, False

    def due(self, now: float) -> bool:
        return not self.running and now >= self.due_at

    def succeeded(self, now: float, refresh: float) -> None:
        self.due_at, self.delay = now + refresh, RETRY_FIRST

    def failed(self, now: float, refresh: float | None) -> None:
        self.due_at = now + self.delay
        self.delay = min(self.delay * 2, RETRY_MAX, refresh or RETRY_MAX)
