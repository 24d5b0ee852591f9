"""The mapping table: entries, their indexes and the invariants that hold between them.

The table stores entries and keeps the pool's leases in step with them (one reference per entry;
a pool block is released when the last entry using its IPv6 target is deleted).  It decides
nothing: ``decide`` and ``engine`` say what to change, ``lifecycle`` says which changes are legal.

Every question ``decide`` and ``engine`` ask per DNS answer is answered from an index, so an
answer costs the same with 10,000 entries as with ten (issue 15): entries by IPv4 prefix, by
IPv6 target, by pool block, the Valid dns entries each name vouches for, counts per origin and
state, the Valid entries by expiry (a heap) and the Stale ones.  Indexes hold the entries'
integer identities (``Entry.ident``), never copies of entries.

Memory per dns mapping (tracemalloc of the daemon on loopback with 10,000 entries, translator
none; issue 15): about 1,000 bytes, which ``make bench`` (scale) sees as about 1.1 MB of
resident memory per 1,000 entries.  Of it: the entry 176 bytes (``Entry``: slots, no dict),
its name tuple and times 96, the name's string 95 and the IPv4 and IPv6 integers 76 (one copy
each, shared by the entry, these indexes, the pool and the memory of answers seen); this
table about 250 (the identity tuple, the four dict indexes, the expiry heap's item); the pool's
lease about 100 (``pool``); the memory of answers seen about 150 (``seen``).  Before: 1,650
bytes, of them a second copy of the table in the disabled dataplane (200, now none) and the
pool's tree of counters with tuples per lease (400).

Invariants (checked by ``check_invariants``, exercised by the property tests):
- at most one Valid entry covers any IPv4 address, whatever its origin;
- every entry's pool block is the pool's lease for its IPv6 target, and a lease has exactly as
  many references as entries use it;
- dns entries are /32 -> /128;
- every index equals the one rebuilt from the entries.
"""

from __future__ import annotations

import bisect
import heapq
from collections import Counter
from collections.abc import Hashable, Iterable, Iterator
from ipaddress import IPv4Address, IPv4Network, IPv6Network

from clat_eamt.core.model import Entry, EntryKey, Ident, Origin, State
from clat_eamt.core.pool import Pool

# An index maps a key to one identity (the common case: one entry per IPv4, per name) or to a
# set of them, so a 10,000-entry table does not pay for 10,000 one-element sets.
Slot = Ident | set[Ident]
Index = dict[Hashable, Slot]


def _put(index: Index, key: Hashable, ident: Ident) -> None:
    slot = index.get(key)
    if slot is None:
        index[key] = ident
    elif isinstance(slot, set):
        slot.add(ident)
    elif slot != ident:
        index[key] = {slot, ident}


def _drop(index: Index, key: Hashable, ident: Ident) -> None:
    slot = index.get(key)
    if isinstance(slot, set):
        slot.discard(ident)
        if len(slot) == 1:
            index[key] = next(iter(slot))
    elif slot == ident:
        del index[key]


def _idents(index: Index, key: Hashable) -> Iterable[Ident]:
    slot = index.get(key)
    if slot is None:
        return ()
    return slot if isinstance(slot, set) else (slot,)


def _prefix_key(address: int, prefixlen: int, full: int) -> Hashable:
    """The index key of a prefix: the bare integer for a single address (no extra object: the
    entry holds that integer already), (integer, length) for a shorter prefix."""
    return address if prefixlen == full else (address, prefixlen)


def _ident_of(key: EntryKey) -> Ident:
    ipv4, ipv6 = key
    return int(ipv4.network_address), ipv4.prefixlen, int(ipv6.network_address), ipv6.prefixlen


def _vouched(entry: Entry) -> bool:
    """Entries the names index lists: Valid learned entries (what ``valid_targets_of`` asks)."""
    return entry.state is State.VALID and entry.origin.learned


class MappingTable:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self._entries: dict[Ident, Entry] = {}
        self._by_ipv4: Index = {}
        self._ipv4_lens: Counter[int] = Counter()  # prefix lengths present (static: a few)
        self._by_target: Index = {}
        self._by_pool: Index = {}
        self._by_name: Index = {}  # name -> Valid dns entries it vouches for
        self._counts: Counter[tuple[Origin, State]] = Counter()
        self._expiry: list[tuple[float, Ident]] = []  # Valid entries by expiry; lazily cleaned
        self._stale: dict[Ident, None] = {}
        # The Valid entries' identities in order (an identity starts with the IPv4 prefix's
        # first address): the entries a prefix overlaps are found by bisection
        # (``valid_overlapping``), not by a scan of the table.
        self._valid: list[Ident] = []
        # SPEC section 3, conflict: an IPv4 that two names map to different IPv6 addresses is not
        # mapped again by dns until both answers have expired.
        self.quarantine: dict[IPv4Network, float] = {}
        # Counts every change a decision could see besides a refresh (an entry added, deleted,
        # changing state, origin or names): a decision remembered at one generation holds while
        # it lasts (``core.repeat``).  The quarantine's writers count theirs (``engine``).
        self.generation = 0

    # --- reading ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(list(self._entries.values()))

    def __contains__(self, key: object) -> bool:
        return isinstance(key, tuple) and _ident_of(key) in self._entries

    def get(self, key: EntryKey) -> Entry | None:
        return self._entries.get(_ident_of(key))

    def sorted(self) -> list[Entry]:
        """Every entry, by IPv4 then IPv6 (the order of ``key``), cheaply."""
        return [self._entries[i] for i in sorted(self._entries)]

    def covering(self, address: IPv4Address) -> list[Entry]:
        """Every entry (any state, any origin) whose IPv4 prefix contains ``address``: one
        lookup per prefix length present in the table."""
        a = int(address)
        idents: list[Ident] = []
        for prefixlen in self._ipv4_lens:
            first = a >> (32 - prefixlen) << (32 - prefixlen)
            idents += _idents(self._by_ipv4, _prefix_key(first, prefixlen, 32))
        return [self._entries[i] for i in sorted(idents)]

    def valid_covering(self, address: IPv4Address) -> Entry | None:
        return next((e for e in self.covering(address) if e.state is State.VALID), None)

    def valid_overlapping(self, ipv4: IPv4Network) -> list[Entry]:
        """Every Valid entry whose IPv4 prefix overlaps ``ipv4``: the ones that cover its first
        address (one lookup per prefix length present) and the ones that start inside it (a
        bisection of the Valid entries in order, then only those).  O(log n) plus the entries
        found, whatever the size of the table; the overlap check of every static or provider
        entry (``engine``), so 10,000 provider entries load in O(n log n), not O(n^2)."""
        first = int(ipv4.network_address)
        last = first | (1 << (32 - ipv4.prefixlen)) - 1
        found = {e.ident: e for e in self.covering(ipv4.network_address) if e.state is State.VALID}
        lo = bisect.bisect_left(self._valid, (first,))
        hi = bisect.bisect_right(self._valid, (last, 33))  # past every identity starting at last
        for ident in self._valid[lo:hi]:
            found[ident] = self._entries[ident]
        return [found[i] for i in sorted(found)]

    def count(self, origin: Origin | None = None, state: State | None = None) -> int:
        if origin is None and state is None:
            return len(self._entries)
        return sum(
            n for (o, s), n in self._counts.items() if origin in (None, o) and state in (None, s)
        )

    def valid_targets_of(self, fqdn: str) -> list[Entry]:
        """Valid dns entries that ``fqdn`` vouches for (used to keep a name's choice stable)."""
        return [self._entries[i] for i in sorted(_idents(self._by_name, fqdn))]

    def with_target(self, ipv6: IPv6Network) -> list[Entry]:
        """Every entry mapping to this IPv6 prefix (they share its pool block)."""
        key = _prefix_key(int(ipv6.network_address), ipv6.prefixlen, 128)
        return [self._entries[i] for i in sorted(_idents(self._by_target, key))]

    def using_pool(self, block: IPv4Network) -> list[Entry]:
        """Every entry whose DNAT target is this pool block."""
        key = _prefix_key(int(block.network_address), block.prefixlen, 32)
        return [self._entries[i] for i in sorted(_idents(self._by_pool, key))]

    def expired(self, now: float) -> list[Entry]:
        """Valid entries whose expiry is ``now`` or earlier, in expiry order: a heap walk that
        touches only those (and drops heap items of entries that changed since)."""
        return self.expiring(now)

    def expiring(self, until: float) -> list[Entry]:
        """Valid entries whose expiry is ``until`` or earlier (``expired``; refresh ahead asks
        for those ending soon), touching only them, whatever the size of the table."""
        now = until
        due: dict[tuple[float, Ident], None] = {}  # an item pushed twice counts once
        while self._expiry and self._expiry[0][0] <= now:
            item = heapq.heappop(self._expiry)
            entry = self._entries.get(item[1])
            if entry is not None and entry.state is State.VALID and entry.expires == item[0]:
                due[item] = None
        for item in due:  # still Valid until the caller changes them: keep them indexed
            heapq.heappush(self._expiry, item)
        return [self._entries[i] for _, i in due]

    def stale(self) -> list[Entry]:
        return [self._entries[i] for i in self._stale]

    @property
    def has_stale(self) -> bool:
        return bool(self._stale)

    def quarantined(self, ipv4: IPv4Network, now: float) -> bool:
        until = self.quarantine.get(ipv4)
        return until is not None and until > now

    # --- writing ------------------------------------------------------------------------------

    def add(self, entry: Entry) -> None:
        """Insert a new entry and take a reference on its pool lease."""
        ident = entry.ident
        if ident in self._entries:
            raise KeyError(f"entry {entry.ipv4} -> {entry.ipv6} already exists")
        pool = entry.pool  # the lease keeps this block's integer, shared with the entry
        self.pool.acquire(entry.ipv6, pool.prefixlen, want=pool)
        self._index(ident, entry)
        self.generation += 1

    def _index(self, ident: Ident, entry: Entry) -> None:
        """Store a new entry and put it in every index (``add``; the invariant check)."""
        self._entries[ident] = entry
        v4, v4len, v6, v6len = ident
        _put(self._by_ipv4, _prefix_key(v4, v4len, 32), ident)
        self._ipv4_lens[v4len] += 1
        _put(self._by_target, _prefix_key(v6, v6len, 128), ident)
        _put(self._by_pool, _prefix_key(*entry.pool_int, 32), ident)
        self._index_state(ident, None, entry)

    def replace(self, entry: Entry) -> None:
        """Store a changed version of an existing entry (same key, same pool block)."""
        wanted = entry.ident
        old = self._entries[wanted]
        if old.pool_int != entry.pool_int:
            raise ValueError("an entry keeps its pool block for life")
        ident = self._ident(wanted)  # the one identity object the indexes hold
        self._entries[ident] = entry
        if old.state is entry.state and old.origin is entry.origin and old.fqdns == entry.fqdns:
            self._index_expiry(ident, old, entry)  # a refresh (most answers): only that moves
            return
        self._index_state(ident, old, entry)
        if (
            old.state is not entry.state
            or old.origin is not entry.origin
            or set(old.fqdns) != set(entry.fqdns)  # not the order
        ):
            self.generation += 1

    def delete(self, key: EntryKey) -> Entry:
        """Remove an entry and drop its pool reference (the block is freed with the last one)."""
        ident = _ident_of(key)
        entry = self._entries.pop(ident)
        v4, v4len, v6, v6len = ident
        _drop(self._by_ipv4, _prefix_key(v4, v4len, 32), ident)
        self._ipv4_lens[v4len] -= 1
        if not self._ipv4_lens[v4len]:
            del self._ipv4_lens[v4len]
        _drop(self._by_target, _prefix_key(v6, v6len, 128), ident)
        _drop(self._by_pool, _prefix_key(*entry.pool_int, 32), ident)
        self._index_state(ident, entry, None)
        self.pool.release(entry.ipv6)
        self.generation += 1
        return entry

    def expire_quarantine(self, now: float) -> list[IPv4Network]:
        done = [ipv4 for ipv4, until in self.quarantine.items() if until <= now]
        for ipv4 in done:
            del self.quarantine[ipv4]
        self.generation += bool(done)
        return done

    def _ident(self, ident: Ident) -> Ident:
        """The identity object the table already holds for ``ident`` (indexes share it)."""
        slot = self._by_ipv4.get(_prefix_key(ident[0], ident[1], 32))
        for held in slot if isinstance(slot, set) else (slot,) if slot else ():
            if held == ident:
                return held
        return ident

    def _index_state(self, ident: Ident, old: Entry | None, new: Entry | None) -> None:
        """Move an entry between the state-dependent indexes (names, counts, expiry, stale)."""
        if old is not None:
            if old.state is State.VALID:
                index = bisect.bisect_left(self._valid, ident)
                if index < len(self._valid) and self._valid[index] == ident:
                    del self._valid[index]
            self._counts[(old.origin, old.state)] -= 1
            if not self._counts[(old.origin, old.state)]:
                del self._counts[(old.origin, old.state)]
            if _vouched(old):
                for name in old.fqdns:
                    _drop(self._by_name, name, ident)
            self._stale.pop(ident, None)
        if new is None:
            return
        self._counts[(new.origin, new.state)] += 1
        if new.state is State.VALID:
            bisect.insort(self._valid, ident)
        if _vouched(new):
            for name in new.fqdns:
                _put(self._by_name, name, ident)
        if new.state is State.STALE:
            self._stale[ident] = None
        self._index_expiry(ident, old, new)

    def _index_expiry(self, ident: Ident, old: Entry | None, new: Entry) -> None:
        """The expiry heap's item for a Valid entry whose expiry moved (old ones are dropped
        lazily)."""
        moved = old is None or old.expires != new.expires or old.state is not State.VALID
        if new.state is State.VALID and new.expires is not None and moved:
            heapq.heappush(self._expiry, (new.expires, ident))
            if len(self._expiry) > 2 * len(self._entries) + 64:  # refreshes left old items
                self._expiry = [
                    (e.expires, i)
                    for i, e in self._entries.items()
                    if e.state is State.VALID and e.expires is not None
                ]
                heapq.heapify(self._expiry)

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
        for ident, entry in self._entries.items():
            assert ident == entry.ident, f"{entry} filed under {ident}"
            lease = leases[entry.ipv6]
            assert lease.block == entry.pool, f"{entry} does not hold its lease {lease}"
            assert lease.refs == refs[entry.ipv6], f"lease {lease} refs != {refs[entry.ipv6]}"
            if entry.origin.learned:
                assert entry.ipv4.prefixlen == 32 and entry.ipv6.prefixlen == 128, entry
            assert entry.state is not State.INVALID, f"Invalid entry kept: {entry}"
        self._check_indexes()

    def _check_indexes(self) -> None:
        """Every index equals the one rebuilt from the entries, and answers as a scan would."""
        fresh = MappingTable(self.pool)
        for ident, entry in self._entries.items():
            fresh._index(ident, entry)
        for name in ("_by_ipv4", "_ipv4_lens", "_by_target", "_by_pool", "_by_name", "_counts"):
            mine, want = getattr(self, name), getattr(fresh, name)
            assert mine == want, f"index {name} is {mine}, the entries say {want}"
        assert set(self._stale) == set(fresh._stale), f"stale index {self._stale}"
        assert self._valid == fresh._valid, f"Valid index {self._valid}, not {fresh._valid}"
        heap = {item for item in self._expiry if self._entries.get(item[1]) is not None}
        for ident, entry in self._entries.items():
            if entry.state is State.VALID and entry.expires is not None:
                assert (entry.expires, ident) in heap, f"{entry} missing from the expiry heap"
        entries = list(self._entries.values())
        for entry in entries:  # the indexed answers equal the answers of a scan
            address = entry.ipv4.network_address
            assert self.covering(address) == sorted(
                (e for e in entries if address in e.ipv4), key=lambda e: e.ident
            ), f"covering({address}) disagrees with a scan"
            assert self.valid_overlapping(entry.ipv4) == sorted(
                (e for e in entries if e.state is State.VALID and e.ipv4.overlaps(entry.ipv4)),
                key=lambda e: e.ident,
            ), f"valid_overlapping({entry.ipv4}) disagrees with a scan"
            for fqdn in entry.fqdns:
                assert self.valid_targets_of(fqdn) == sorted(
                    (e for e in entries if _vouched(e) and fqdn in e.fqdns),
                    key=lambda e: e.ident,
                ), f"valid_targets_of({fqdn}) disagrees with a scan"
        for origin in Origin:
            assert self.count(origin) == sum(1 for e in entries if e.origin is origin)
