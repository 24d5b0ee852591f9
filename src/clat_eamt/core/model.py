"""The core's vocabulary: plain, frozen data shared by every core module and by the shells."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network


def show(net: IPNetwork | IPAddress) -> str:
    """A prefix as people write it: a single address without /32 or /128."""
    if isinstance(net, IPv4Network | IPv6Network) and net.num_addresses == 1:
        return str(net.network_address)
    return str(net)


class Origin(enum.StrEnum):
    """Where an entry came from, highest rank first (SPEC section 3 and 5)."""

    STATIC = (
        "static"  # the operator's configuration or `clat-eamt add`; never changed automatically
    )
    PROVIDER = "provider"  # the ISP's table (CLAT-provider-EAMT); outranks dns
    DNS = "dns"  # learned from an A + AAAA answer pair (CLAT/DNS-proxy-EAMT)
    # An IPv6-only name's A answered with its pool address P (issue 27, ``core.ipv6only``): the
    # IPv4 prefix is P itself, there is no IPv4 leg to DNAT.
    IPV6_ONLY = "ipv6-only"

    @property
    def rank(self) -> int:
        return {Origin.STATIC: 3, Origin.PROVIDER: 2, Origin.DNS: 1, Origin.IPV6_ONLY: 1}[self]

    @property
    def learned(self) -> bool:
        """Made from DNS answers: the table cap and the creation rate count it."""
        return self in (Origin.DNS, Origin.IPV6_ONLY)


class State(enum.StrEnum):
    """Entry states of draft-ietf-v6ops-464xlat-optimization (SPEC section 3)."""

    VALID = "valid"  # used for new flows
    STALE = "stale"  # kept only for the flows that started on it
    INVALID = "invalid"  # no flows left; deleted in the same step


class StaleReason(enum.StrEnum):
    EXPIRED = "expired"  # TTL ran out
    CONFLICT = "conflict"  # another name maps the same IPv4 to another IPv6
    WITHDRAWN = "withdrawn"  # the names that vouched for it no longer do (no AAAA, synthesized)
    OUTRANKED = "outranked"  # a provider or static entry now covers the IPv4
    FLUSHED = "flushed"  # operator flushed the dns entries
    DELETED = "deleted"  # operator deleted it (static or provider removal)
    RESTARTED = "restarted"  # found in the kernel after a restart: kept for its running flows
    BROKEN = "broken"  # its target's native path failed a steered flow (core.safety)


class Reason(enum.StrEnum):
    """Why something was not mapped.  Counted per reason and shown to the user."""

    DISABLED = "disabled"
    NOT_A_QUERY = "not-a-query"  # not an A query: nothing to do
    NO_A = "no-a"  # the A answer had no addresses
    NAME_DENIED = "name-denied"
    NAME_NOT_ALLOWED = "name-not-allowed"
    NO_AAAA = "no-aaaa"  # NODATA / NXDOMAIN for AAAA: the name is IPv4-only
    AAAA_UNKNOWN = "aaaa-unknown"  # AAAA timed out or SERVFAIL: nothing learned
    SYNTHESIZED = "synthesized"  # AAAA made by DNS64 (inside a Pref64 or embedding the A)
    SPECIAL_PURPOSE = "special-purpose"  # IANA special-purpose registry
    NOT_GLOBAL_UNICAST = "not-global-unicast"
    EXCLUDED = "excluded"  # CE, LAN, resolver or deny-listed prefix
    PREFIX_NOT_ALLOWED = "prefix-not-allowed"
    NOT_VALIDATED = "not-validated"  # DNSSEC required and the answer had no AD
    HOST_NOT_ELIGIBLE = "host-not-eligible"  # dual-stack or unknown host
    COVERED = "covered"  # a static or provider entry already covers the IPv4
    CONFLICT = "conflict"  # a Valid entry of another name maps the IPv4 elsewhere
    TABLE_FULL = "table-full"
    RATE_LIMITED = "rate-limited"
    HOST_RATE_LIMITED = "host-rate-limited"
    POOL_EXHAUSTED = "pool-exhausted"
    UNVOUCHED = "unvouched"  # another name's unexpired answer holds the IPv4 without this IPv6
    TARGET_CAP = "target-cap"  # as many IPv4s map to this IPv6 as allowed (per name, in all)
    TOO_MANY_ADDRESSES = "too-many-addresses"  # records beyond the per-answer cap (issue 15)
    TARGET_BROKEN = "target-broken"  # its native path failed recently (core.safety, issue 25)


@dataclass(frozen=True)
class Refusal:
    """One address (or the whole answer, when ``address`` is None) that was not mapped."""

    reason: Reason
    detail: str
    address: IPAddress | None = None


class HostClass(enum.StrEnum):
    """SPEC section 3: only IPv4-only hosts are optimized; when unsure, do not optimize."""

    IPV4_ONLY = "ipv4-only"
    DUAL_STACK = "dual-stack"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Host:
    """The client that asked, as far as the proxy knows it (MAC and/or IPv4 from dnsmasq)."""

    key: str  # stable identity for rate limiting: MAC if known, else IPv4
    klass: HostClass = HostClass.UNKNOWN


class AaaaStatus(enum.StrEnum):
    ANSWER = "answer"  # records present (may still all be synthesized)
    NODATA = "nodata"  # name exists, no AAAA
    NXDOMAIN = "nxdomain"
    SERVFAIL = "servfail"
    TIMEOUT = "timeout"  # the hold time ran out first


@dataclass(frozen=True)
class Observation:
    """One A query and what DNS said about the name (the decision function's input).

    ``a_ttl`` / ``aaaa_ttl`` are the smallest TTL along each answer's chain (CNAMEs included).
    ``authenticated`` is True when both answers carried AD from a trusted resolver.
    """

    name: str
    a: tuple[IPv4Address, ...]
    a_ttl: int
    aaaa_status: AaaaStatus
    aaaa: tuple[IPv6Address, ...] = ()
    aaaa_ttl: int = 0
    authenticated: bool = False
    host: Host | None = None
    qtype: str = "A"
    chain: tuple[str, ...] = ()  # CNAME targets from the name to the records, for display


_ENTRY_FIELDS = (
    "ipv4", "ipv6", "pool", "origin", "state", "created", "refreshed", "expires", "fqdns",
    "host", "comment", "stale_reason", "stale_since", "refreshes", "cnames",
)  # fmt: skip
_FIELD_SET = frozenset(_ENTRY_FIELDS)
_NETS = frozenset({"ipv4", "ipv6", "pool"})

Ident = tuple[int, int, int, int]  # (IPv4 as int, its prefix length, IPv6 as int, its length)


class Entry:
    """One mapping: IPv4 prefix -> IPv6 prefix through a pool prefix of the same size.

    dns entries are always /32 -> /128; static and provider entries may be prefixes of equal
    suffix length (RFC 7757 section 3).  ``expires`` is None for static entries.

    Immutable, like a frozen dataclass (``replace`` makes a changed copy).  A router keeps
    thousands of these, so the three prefixes are stored as integers and prefix lengths (an
    ``ipaddress`` network object costs about 350 bytes, an entry of three of them over 1 KB);
    ``ipv4``, ``ipv6`` and ``pool`` build the network objects when asked.  An entry is 176
    bytes with slots (the whole mapping's memory: ``table``'s docstring).
    """

    __slots__ = (
        "_pool",
        "_poollen",
        "_v4",
        "_v4len",
        "_v6",
        "_v6len",
        "cnames",
        "comment",
        "created",
        "expires",
        "fqdns",
        "host",
        "origin",
        "refreshed",
        "refreshes",
        "stale_reason",
        "stale_since",
        "state",
    )  # fmt: skip

    _v4: int
    _v4len: int
    _v6: int
    _v6len: int
    _pool: int
    _poollen: int
    origin: Origin
    state: State
    created: float
    refreshed: float
    expires: float | None
    fqdns: tuple[str, ...]
    host: str | None  # the host whose query created it
    comment: str
    stale_reason: StaleReason | None
    stale_since: float | None
    refreshes: int
    cnames: tuple[str, ...]  # the CNAME chain of the answer that created it (display only)

    def __init__(  # noqa: PLR0917 - positional, as the dataclass it replaces took them
        self,
        ipv4: IPv4Network,
        ipv6: IPv6Network,
        pool: IPv4Network,
        origin: Origin,
        state: State,
        created: float,
        refreshed: float,
        expires: float | None,
        fqdns: tuple[str, ...] = (),
        host: str | None = None,
        comment: str = "",
        stale_reason: StaleReason | None = None,
        stale_since: float | None = None,
        refreshes: int = 0,
        cnames: tuple[str, ...] = (),
    ) -> None:
        put = object.__setattr__
        put(self, "_v4", int(ipv4.network_address))
        put(self, "_v4len", ipv4.prefixlen)
        put(self, "_v6", int(ipv6.network_address))
        put(self, "_v6len", ipv6.prefixlen)
        put(self, "_pool", int(pool.network_address))
        put(self, "_poollen", pool.prefixlen)
        for name, value in (
            ("origin", origin), ("state", state), ("created", created), ("refreshed", refreshed),
            ("expires", expires), ("fqdns", tuple(fqdns)), ("host", host), ("comment", comment),
            ("stale_reason", stale_reason), ("stale_since", stale_since),
            ("refreshes", refreshes), ("cnames", tuple(cnames)),
        ):  # fmt: skip
            put(self, name, value)

    # --- the prefixes, as network objects and as integers ------------------------------------

    @property
    def ipv4(self) -> IPv4Network:
        return IPv4Network((self._v4, self._v4len))

    @property
    def ipv6(self) -> IPv6Network:
        return IPv6Network((self._v6, self._v6len))

    @property
    def pool(self) -> IPv4Network:
        return IPv4Network((self._pool, self._poollen))

    @property
    def ipv4_int(self) -> tuple[int, int]:
        """(first IPv4 address as an int, prefix length)."""
        return self._v4, self._v4len

    @property
    def ipv6_int(self) -> tuple[int, int]:
        return self._v6, self._v6len

    @property
    def pool_int(self) -> tuple[int, int]:
        return self._pool, self._poollen

    @property
    def ident(self) -> Ident:
        """``key`` as integers: what the table indexes by."""
        return self._v4, self._v4len, self._v6, self._v6len

    @property
    def key(self) -> EntryKey:
        return (self.ipv4, self.ipv6)

    # --- value semantics, as a frozen dataclass has them --------------------------------------

    def replace(self, **changes: object) -> Entry:
        """A copy with ``changes`` (field names as in the constructor)."""
        if not _FIELD_SET.issuperset(changes):
            unknown = set(changes) - _FIELD_SET
            raise TypeError(f"Entry has no field {sorted(unknown)[0]!r}")
        new = object.__new__(Entry)
        put = object.__setattr__
        for slot in _SLOTS:  # a refresh per answer makes one: kept lean
            put(new, slot, getattr(self, slot))
        for name in _NETS.intersection(changes):
            net = changes.pop(name)
            if net is not None:
                assert isinstance(net, IPv4Network | IPv6Network)
                prefix = {"ipv4": "_v4", "ipv6": "_v6", "pool": "_pool"}[name]
                object.__setattr__(new, prefix, int(net.network_address))
                object.__setattr__(new, f"{prefix}len", net.prefixlen)
        for name, value in changes.items():
            if name in ("fqdns", "cnames"):
                assert isinstance(value, tuple | list)
                object.__setattr__(new, name, tuple(value))
            else:
                object.__setattr__(new, name, value)
        return new

    def with_refresh(self, now: float, expires: float | None, fqdns: tuple[str, ...]) -> Entry:
        """The entry Valid again after a REFRESH at ``now`` (``lifecycle.transition`` decides
        the values): what every A answer for a mapped name makes, so written out field by field
        (two thirds of ``replace``'s time, which looks every field up by name; a test checks
        both give the same entry)."""
        new = object.__new__(Entry)
        put = object.__setattr__
        put(new, "_v4", self._v4)
        put(new, "_v4len", self._v4len)
        put(new, "_v6", self._v6)
        put(new, "_v6len", self._v6len)
        put(new, "_pool", self._pool)
        put(new, "_poollen", self._poollen)
        put(new, "origin", self.origin)
        put(new, "state", State.VALID)
        put(new, "created", self.created)
        put(new, "refreshed", now)
        put(new, "expires", expires)
        put(new, "fqdns", fqdns)
        put(new, "host", self.host)
        put(new, "comment", self.comment)
        put(new, "stale_reason", None)
        put(new, "stale_since", None)
        put(new, "refreshes", self.refreshes + 1)
        put(new, "cnames", self.cnames)
        return new

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, slot) for slot in Entry.__slots__)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Entry):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Entry is immutable: cannot set {name!r} (use replace)")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Entry is immutable: cannot delete {name!r}")

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in _ENTRY_FIELDS)
        return f"Entry({fields})"


_SLOTS = Entry.__slots__
EntryKey = tuple[IPv4Network, IPv6Network]


@dataclass(frozen=True)
class EntryEvent:
    """What happened to one entry: added, refreshed, revived, stale, removed
    (``counters.EntryKind``)."""

    kind: str
    entry: Entry


# --- dataplane operations (what the shells do), in the order they must be applied -------------


@dataclass(frozen=True)
class EnsureTranslator:
    """Translator EAMT entry pool <-> ipv6 (RFC 7757) must exist."""

    pool: IPv4Network
    ipv6: IPv6Network


@dataclass(frozen=True)
class EnsureDnat:
    """nftables DNAT map element ipv4 -> pool must exist (new flows to ipv4 go native)."""

    ipv4: IPv4Network
    pool: IPv4Network


@dataclass(frozen=True)
class RemoveDnat:
    """Remove the DNAT element of ipv4; running flows keep their translation (conntrack)."""

    ipv4: IPv4Network


@dataclass(frozen=True)
class RemoveTranslator:
    """Remove the translator entry of pool: no flow and no entry uses it any more."""

    pool: IPv4Network
    ipv6: IPv6Network


DataplaneOp = EnsureTranslator | EnsureDnat | RemoveDnat | RemoveTranslator


@dataclass(frozen=True)
class LiveFlows:
    """The flow oracle's answer: (original destination, pool address) of every live flow."""

    pairs: frozenset[tuple[IPv4Address, IPv4Address]] = field(default_factory=frozenset)

    def uses(self, entry: Entry) -> bool:
        """True when a live flow started on this entry's DNAT element (O(1) for dns entries)."""
        (d, dlen), (p, plen) = entry.ipv4_int, entry.pool_int
        if dlen == 32 and plen == 32:
            return (IPv4Address(d), IPv4Address(p)) in self.pairs
        return any(d in entry.ipv4 and p in entry.pool for d, p in self.pairs)


_BROADCAST = IPv4Address("255.255.255.255")
FlowPair = tuple[IPv4Address, IPv4Address]  # (original destination D, DNAT target P)


@dataclass(frozen=True)
class FlowCensus:
    """Status's count of the live IPv4 flows conntrack holds: per (D, P) for the flows DNATed
    into the pool (native, through an EAM entry), per destination for every other one."""

    native: Mapping[FlowPair, int] = field(default_factory=dict)
    other: Mapping[IPv4Address, int] = field(default_factory=dict)

    def flows_of(self, entry: Entry) -> int:
        """Live flows that started on this entry's DNAT element."""
        (d, dlen), (p, plen) = entry.ipv4_int, entry.pool_int
        if dlen == 32 and plen == 32:
            return self.native.get((IPv4Address(d), IPv4Address(p)), 0)
        return sum(n for (d, p), n in self.native.items() if d in entry.ipv4 and p in entry.pool)

    def totals(self, local: Iterable[IPNetwork]) -> dict[str, int]:
        """native: flows through an EAM entry; nat64: the other IPv4 flows leaving the router
        (the plain CLAT path): all but those to ``local`` (the router's own and LAN prefixes:
        DNS to dnsmasq, LAN-internal traffic) and to addresses that never leave the link
        (loopback, link-local, multicast such as IGMP, broadcast)."""
        nets = [n for n in local if n.version == 4]

        def leaves(d: IPv4Address) -> bool:
            on_link = d.is_loopback or d.is_link_local or d.is_multicast or d == _BROADCAST
            return not on_link and not d.is_unspecified and not any(d in net for net in nets)

        nat64 = sum(n for d, n in self.other.items() if leaves(d))
        return {"native": sum(self.native.values()), "nat64": nat64}
