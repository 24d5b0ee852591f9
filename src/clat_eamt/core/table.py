"""The mapping table: entries, their indexes and the invariants that hold between them.

The table stores entries and keeps the pool's leases in step with them (one reference per entry;
a pool block is released when the last entry using its IPv6 target is deleted).  It decides
nothing: ``decide`` and ``engine`` say what to change, ``lifecycle`` says which changes are legal.

Invariants (checked by ``check_invariants``, exercised by the property tests):
- at most one Valid entry covers any IPv4 address, whatever its origin;
- every entry's pool block is the pool's lease for its IPv6 target, and a lease has exactly as
  many references as entries use it;
- dns entries are /32 -> /128.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network

from clat_eamt.core.model import Entry, EntryKey, Origin, State
from clat_eamt.core.pool import Pool


class MappingTable:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self._entries: dict[EntryKey, Entry] = {}
        self._by_ipv4: dict[IPv4Network, set[EntryKey]] = {}  # all entries per IPv4 prefix
        self._prefix_ipv4: set[IPv4Network] = set()  # IPv4 prefixes shorter than /32 (static)
        # SPEC section 3, conflict: an IPv4 that two names map to different IPv6 addresses is not
        # mapped again by dns until both answers have expired.
        self.quarantine: dict[IPv4Network, float] = {}

    # --- reading ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(list(self._entries.values()))

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def get(self, key: EntryKey) -> Entry | None:
        return self._entries.get(key)

    def covering(self, address: IPv4Address) -> list[Entry]:
        """Every entry (any state, any origin) whose IPv4 prefix contains ``address``."""
        keys = set(self._by_ipv4.get(IPv4Network(address), ()))
        for prefix in self._prefix_ipv4:
            if address in prefix:
                keys |= self._by_ipv4[prefix]
        return [self._entries[k] for k in sorted(keys, key=str)]

    def valid_covering(self, address: IPv4Address) -> Entry | None:
        return next((e for e in self.covering(address) if e.state is State.VALID), None)

    def count(self, origin: Origin | None = None) -> int:
        if origin is None:
            return len(self._entries)
        return sum(1 for e in self._entries.values() if e.origin is origin)

    def valid_targets_of(self, fqdn: str) -> list[Entry]:
        """Valid dns entries that ``fqdn`` vouches for (used to keep a name's choice stable)."""
        return [
            e
            for e in self._entries.values()
            if e.state is State.VALID and e.origin is Origin.DNS and fqdn in e.fqdns
        ]

    def quarantined(self, ipv4: IPv4Network, now: float) -> bool:
        until = self.quarantine.get(ipv4)
        return until is not None and until > now

    # --- writing ------------------------------------------------------------------------------

    def add(self, entry: Entry) -> None:
        """Insert a new entry and take a reference on its pool lease."""
        if entry.key in self._entries:
            raise KeyError(f"entry {entry.ipv4} -> {entry.ipv6} already exists")
        block = self.pool.acquire(entry.ipv6, entry.pool.prefixlen)
        if block != entry.pool:
            self.pool.release(entry.ipv6)
            raise ValueError(f"pool gave {block} for {entry.ipv6}, entry expected {entry.pool}")
        self._entries[entry.key] = entry
        self._by_ipv4.setdefault(entry.ipv4, set()).add(entry.key)
        if entry.ipv4.prefixlen < 32:
            self._prefix_ipv4.add(entry.ipv4)

    def replace(self, entry: Entry) -> None:
        """Store a changed version of an existing entry (same key, same pool block)."""
        old = self._entries[entry.key]
        if old.pool != entry.pool:
            raise ValueError("an entry keeps its pool block for life")
        self._entries[entry.key] = entry

    def delete(self, key: EntryKey) -> Entry:
        """Remove an entry and drop its pool reference (the block is freed with the last one)."""
        entry = self._entries.pop(key)
        keys = self._by_ipv4[entry.ipv4]
        keys.discard(key)
        if not keys:
            del self._by_ipv4[entry.ipv4]
            self._prefix_ipv4.discard(entry.ipv4)
        self.pool.release(entry.ipv6)
        return entry

    def expire_quarantine(self, now: float) -> list[IPv4Network]:
        done = [ipv4 for ipv4, until in self.quarantine.items() if until <= now]
        for ipv4 in done:
            del self.quarantine[ipv4]
        return done

    # --- checking -----------------------------------------------------------------------------

    def check_invariants(self) -> None:
        """Raise AssertionError naming the first broken invariant (used by tests)."""
        valid = [e for e in self._entries.values() if e.state is State.VALID]
        for i, a in enumerate(valid):
            for b in valid[i + 1 :]:
                assert not a.ipv4.overlaps(b.ipv4), f"two Valid entries cover {a.ipv4}: {a}, {b}"
        refs = Counter(e.ipv6 for e in self._entries.values())
        leases = {lease.target: lease for lease in self.pool.leases()}
        assert set(leases) == set(refs), f"leases {set(leases)} != targets {set(refs)}"
        for entry in self._entries.values():
            lease = leases[entry.ipv6]
            assert lease.block == entry.pool, f"{entry} does not hold its lease {lease}"
            assert lease.refs == refs[entry.ipv6], f"lease {lease} refs != {refs[entry.ipv6]}"
            if entry.origin is Origin.DNS:
                assert entry.ipv4.prefixlen == 32 and entry.ipv6.prefixlen == 128, entry
            assert entry.state is not State.INVALID, f"Invalid entry kept: {entry}"
