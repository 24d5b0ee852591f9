"""The private mapping pool (SPEC section 5).

An entry IPv4 D -> IPv6 X is realised as DNAT D -> P plus a translator entry P <-> X, where P
comes from this pool.  P never appears on the wire (conntrack rewrites it back to D), so the pool
only has to be private to the CE: it must not overlap the LAN, the WAN, the CLAT addresses or any
special address that is routed on the CE.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Network, summarize_address_range

from clat_eamt.core.addresses import IPV4_SPECIAL
from clat_eamt.core.model import IPNetwork

# Where a pool may live: private-use (RFC 1918), shared (RFC 6598) and benchmarking (RFC 2544)
# space never reaches the Internet from an IPv6-only CE.  Documentation space only in labs.
PRIVATE_POOL_RANGES: tuple[IPv4Network, ...] = (
    IPv4Network("10.0.0.0/8"),
    IPv4Network("172.16.0.0/12"),
    IPv4Network("192.168.0.0/16"),
    IPv4Network("100.64.0.0/10"),
    IPv4Network("198.18.0.0/15"),
)
MAX_POOL_PREFIXLEN = 30  # two usable addresses once the first and last are reserved


def pool_problems(
    network: IPv4Network, *, allow_documentation: bool = False, in_use: Iterable[IPNetwork] = ()
) -> list[str]:
    """Everything wrong with ``network`` as a mapping pool ([] when it is usable).

    ``in_use`` holds the LAN, WAN and CLAT prefixes the CE uses (from config or interfaces).
    """
    problems: list[str] = []
    ranges = list(PRIVATE_POOL_RANGES)
    if allow_documentation:
        ranges += [b.network for b in IPV4_SPECIAL if b.documentation]  # type: ignore[misc]
    if not any(network.subnet_of(r) for r in ranges):
        shown = ", ".join(str(r) for r in ranges)
        problems.append(f"pool {network} must lie inside private space ({shown})")
    if network.prefixlen > MAX_POOL_PREFIXLEN:
        problems.append(f"pool {network} is too small (at most /{MAX_POOL_PREFIXLEN})")
    for used in in_use:
        if isinstance(used, IPv4Network) and used.overlaps(network):
            problems.append(f"pool {network} overlaps {used}, which the CE uses")
    return problems


# --- The allocator ---------------------------------------------------------------------------
#
# The pool is a binary tree of aligned blocks: node (start, prefixlen) for every CIDR block inside
# it.  What is occupied (leased or reserved) is kept in two layers, so that nothing is stored per
# tree node per lease (issue 15; the tree of counters it replaces held about three per lease):
# - inside a chunk of ``CHUNK_PREFIXLEN`` (a /24, 256 addresses) one bit per address, one integer
#   per chunk that has any occupied address (``_bits``): a node inside a chunk is a popcount;
# - nodes of a chunk's size and larger count the occupied addresses inside them (``_count``, for
#   the nodes that have any): at most two per chunk in use, a few hundred for a /16 pool.
# Blocks larger than a chunk (static prefixes) are counted at their node and above only: a walk
# from the root never goes below a full node, so nothing asks for their bits.
# Because leases and reserved blocks never overlap, a node reached from the root is full exactly
# when its count equals its size, so:
# - the lowest free address is one walk from the root (take the lower child unless it is full):
#   at most 32 - pool prefixlen steps, whatever the number of leases;
# - the highest free aligned block is a depth-first walk, upper child first, that skips full
#   nodes and nodes with too few free addresses (blocks are rare: static prefix entries);
# - marking or clearing a lease updates its ancestors only, again at most 32 steps.
# Singles come from the bottom and blocks from the top, so static blocks do not split the
# singles region.  The choice depends only on what is occupied now, never on history, which is
# what makes allocation deterministic and lets ``peek`` predict ``acquire`` exactly.
#
# Memory per /32 lease (10,000 leases, tracemalloc of the daemon; make bench: scale): ``_leases``
# (the target's integer, which the entry holds already, as key; the start integer as value)
# and ``_singles`` (that start integer as key, the target as value), about 100 bytes; the bits
# and counters add under 1 byte.

Node = tuple[int, int]  # (first address as an int, prefix length)
# An IPv6 target: the address as an int for a /128 (the integer the entry holds already, no new
# object), (first address as an int, prefix length) for a prefix.
Target = int | tuple[int, int]
# A lease as stored: (block's first address, its prefix length, references).  Leases are kept as
# integers, not ``Lease`` objects of ``ipaddress`` networks (about 1 KB each): a router holds
# thousands; ``Lease`` objects are made when asked for.
Stored = tuple[int, int, int]
CHUNK_PREFIXLEN = 24  # nodes this long or shorter are counted, longer ones are bits of a chunk


def _target(net: IPv6Network) -> Target:
    address = int(net.network_address)
    return address if net.prefixlen == 128 else (address, net.prefixlen)


def _network(target: Target) -> IPv6Network:
    return IPv6Network((target, 128) if isinstance(target, int) else target)


class PoolExhausted(Exception):  # noqa: N818 - the name is the agreed API
    """No free block of the requested size is left; the pool is unchanged."""


@dataclass(frozen=True)
class Lease:
    """A block of the pool handed to one IPv6 target, shared by ``refs`` entries."""

    block: IPv4Network
    target: IPv6Network
    refs: int


def _lease(target: Target, stored: Stored) -> Lease:
    start, length, refs = stored
    return Lease(IPv4Network((start, length)), _network(target), refs)


def _second(item: tuple[Target, Stored]) -> Stored:
    return item[1]


def _span(prefixlen: int) -> int:
    return 1 << (32 - prefixlen)


def _node(net: IPv4Network) -> Node:
    return int(net.network_address), net.prefixlen


def _flat(node: Node) -> int:
    """A node as one integer, the key of ``_blocks`` and ``_count`` (a tuple key would cost
    another 60 bytes each)."""
    return node[0] << 6 | node[1]


class Pool:
    """Leases of pool blocks to IPv6 targets.  Pure: no I/O, no clock; ``copy`` for simulation."""

    chunk_prefixlen = CHUNK_PREFIXLEN  # a class attribute so tests can exercise both layers

    def __init__(self, network: IPv4Network, reserved: Iterable[IPv4Network] = ()) -> None:
        self._network = network
        self._root: Node = _node(network)
        self._singles: dict[int, Target] = {}  # /32 leases: start -> owner
        # every other occupied block, by _flat(node): its owner, None for a reserved range
        self._blocks: dict[int, Target | None] = {}
        self._count: dict[int, int] = {}  # by _flat(node), nodes of chunk size and larger
        self._bits: dict[int, int] = {}  # chunk's first address -> one bit per occupied address
        self._leases: dict[Target, int | Stored] = {}  # by _stored and _store only
        self._used = 0
        # The first and last address are never handed out (a pool address that looks like a
        # network or broadcast address confuses people and some tools).  Reserved ranges may
        # overlap each other or stick out of the pool: clip, merge, then split into CIDR blocks so
        # the occupied blocks stay disjoint.
        first, last = int(network.network_address), int(network.broadcast_address)
        spans = [(first, first), (last, last)]
        for net in reserved:
            if net.overlaps(network):  # CIDR blocks overlap only if one contains the other
                inner = network if network.subnet_of(net) else net
                spans.append((int(inner.network_address), int(inner.broadcast_address)))
        spans.sort()
        merged: list[list[int]] = []
        for lo, hi in spans:
            if merged and lo <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        self._reserved = 0
        for lo, hi in merged:
            for net in summarize_address_range(IPv4Address(lo), IPv4Address(hi)):
                self._mark(_node(net))
                self._blocks[_flat(_node(net))] = None
                self._reserved += net.num_addresses

    # --- queries ----------------------------------------------------------------------------

    @property
    def network(self) -> IPv4Network:
        return self._network

    @property
    def size(self) -> int:
        return self._network.num_addresses - self._reserved

    @property
    def used(self) -> int:
        return self._used

    @property
    def free(self) -> int:
        return self.size - self._used

    def lease_of(self, target: IPv6Network) -> Lease | None:
        stored = self._stored(_target(target))
        return None if stored is None else _lease(_target(target), stored)

    def leases(self) -> tuple[Lease, ...]:
        ordered = sorted(((target, self._held(target)) for target in self._leases), key=_second)
        return tuple(_lease(target, stored) for target, stored in ordered)

    def owner_of(self, address: IPv4Address) -> Lease | None:
        if address not in self._network:
            return None
        owner = self._singles.get(int(address))
        if owner is None:
            found = self._covering((int(address), 32))
            owner = None if found is None else self._blocks[found]
        return None if owner is None else _lease(owner, self._held(owner))

    def peek(self, target: IPv6Network, prefixlen: int = 32) -> IPv4Network | None:
        """The block ``acquire(target, prefixlen)`` would return now; None if it would raise
        PoolExhausted.  Changes nothing."""
        lease = self._existing(target, prefixlen)
        if lease is not None:
            return lease.block
        start = self._lowest_free() if prefixlen == 32 else self._highest_free(prefixlen)
        return None if start is None else IPv4Network((start, prefixlen))

    # --- changes ----------------------------------------------------------------------------

    def acquire(
        self, target: IPv6Network, prefixlen: int = 32, want: IPv4Network | None = None
    ) -> IPv4Network:
        """One more reference to ``target``'s block, leasing a new one if it has none.

        ``want``: the block the caller's entry holds.  The pool then keeps that very block's
        integer (entry and lease share it: 36 bytes less per lease) and raises ValueError,
        changing nothing, when it would give another block."""
        lease = self._existing(target, prefixlen)
        block = lease.block if lease is not None else self.peek(target, prefixlen)
        if block is None:
            raise PoolExhausted(f"no free /{prefixlen} left in pool {self._network}")
        if want is not None and want != block:
            raise ValueError(f"pool gives {block} for {target}, not {want}")
        if lease is not None:
            key = _target(target)
            start, length, refs = self._held(key)
            self._store(key, (start, length, refs + 1))
            return lease.block
        self._take(target, block if want is None else want, refs=1)
        return block

    def release(self, target: IPv6Network) -> bool:
        """Drop one reference; free the block (and return True) when none is left.  An adopted
        lease nobody acquired (refs 0) is freed at once: that is how reconciliation drops it."""
        key = _target(target)
        stored = self._stored(key)
        if stored is None:
            raise KeyError(target)
        start, length, refs = stored
        if refs > 1:
            self._store(key, (start, length, refs - 1))
            return False
        del self._leases[key]
        if length == 32:
            del self._singles[start]
        else:
            del self._blocks[_flat((start, length))]
        self._unmark((start, length))
        self._used -= _span(length)
        return True

    def adopt(self, target: IPv6Network, block: IPv4Network) -> None:
        """Record a block found in the kernel after a restart as leased to ``target`` with no
        references yet.  Adopting the exact lease again is a no-op."""
        lease = self.lease_of(target)
        if lease is not None:
            if lease.block == block:
                return
            raise ValueError(f"{target} already holds {lease.block}, cannot adopt {block}")
        if not block.subnet_of(self._network):
            raise ValueError(f"{block} is outside pool {self._network}")
        node = _node(block)
        if self._used_in(*node) or self._covering(node) is not None:
            raise ValueError(f"{block} overlaps a lease or a reserved range of the pool")
        self._take(target, block, refs=0)

    def hold(self, block: IPv4Network) -> None:
        """Keep a free block from every lease until ``unhold``, as a reserved range is (the
        quarantine of an address handed out in an A answer, ``core.ipv6only``)."""
        node = _node(block)
        if self._used_in(*node) or self._covering(node) is not None:
            raise ValueError(f"{block} is not free in pool {self._network}")
        self._mark(node)
        self._blocks[_flat(node)] = None

    def unhold(self, block: IPv4Network) -> None:
        """Free a block ``hold`` kept; one that is not held is left alone."""
        node = _node(block)
        if _flat(node) in self._blocks and self._blocks[_flat(node)] is None:
            del self._blocks[_flat(node)]
            self._unmark(node)

    def copy(self) -> Pool:
        # Keys and values are immutable (ints, tuples of ints): copying the dicts is a deep copy
        # for every purpose.
        other = Pool.__new__(type(self))
        other.__dict__.update(self.__dict__)
        for name in ("_singles", "_blocks", "_count", "_bits", "_leases"):
            setattr(other, name, dict(getattr(self, name)))
        return other

    def __repr__(self) -> str:
        return f"Pool({self._network}, used={self._used}/{self.size}, leases={len(self._leases)})"

    # --- the tree ---------------------------------------------------------------------------

    def _existing(self, target: IPv6Network, prefixlen: int) -> Lease | None:
        if not self._root[1] <= prefixlen <= 32:
            raise ValueError(f"prefix length {prefixlen} does not fit pool {self._network}")
        lease = self.lease_of(target)
        if lease is not None and lease.block.prefixlen != prefixlen:
            raise ValueError(f"{target} already holds {lease.block}, not a /{prefixlen}")
        return lease

    def _take(self, target: IPv6Network, block: IPv4Network, refs: int) -> None:
        key, (start, length) = _target(target), _node(block)
        self._mark((start, length))
        self._store(key, (start, length, refs))
        if length == 32:
            self._singles[start] = key  # the same integer object as in the stored lease
        else:
            self._blocks[_flat((start, length))] = key
        self._used += _span(length)

    def _stored(self, key: Target) -> Stored | None:
        return self._held(key) if key in self._leases else None

    def _held(self, key: Target) -> Stored:
        stored = self._leases[key]
        return (stored, 32, 1) if isinstance(stored, int) else stored

    def _store(self, key: Target, stored: Stored) -> None:
        """A /32 with one reference (nearly every lease) is kept as its start alone: a tuple
        would cost 64 bytes more per lease."""
        start, length, refs = stored
        self._leases[key] = start if length == 32 and refs == 1 else stored

    def _ancestors(self, node: Node) -> Iterable[Node]:
        """The node and every node above it up to the pool, root first."""
        start, prefixlen = node
        for q in range(self._root[1], prefixlen + 1):
            yield start >> (32 - q) << (32 - q), q

    def _covering(self, node: Node) -> int | None:
        """The ``_blocks`` key of the block that contains (or is) ``node``, if any (a /32
        lease is in ``_singles`` instead)."""
        return next((f for f in map(_flat, self._ancestors(node)) if f in self._blocks), None)

    def _used_in(self, start: int, q: int) -> int:
        """Occupied addresses in node (start, q): a counter, or a popcount inside a chunk."""
        if q <= self.chunk_prefixlen:
            return self._count.get(start << 6 | q, 0)
        chunk = start >> (32 - self.chunk_prefixlen) << (32 - self.chunk_prefixlen)
        bits = self._bits.get(chunk, 0) >> (start - chunk)
        return (bits & ((1 << _span(q)) - 1)).bit_count()

    def _change(self, node: Node, sign: int) -> None:
        """Add (sign 1) or remove (sign -1) the occupied block ``node`` in both layers."""
        start, q = node
        span = _span(q)
        for a_start, a_q in self._ancestors(node):
            if a_q > self.chunk_prefixlen:
                break
            key = a_start << 6 | a_q
            left = self._count.get(key, 0) + sign * span
            if left:
                self._count[key] = left
            else:
                del self._count[key]
        if q > self.chunk_prefixlen:
            chunk = start >> (32 - self.chunk_prefixlen) << (32 - self.chunk_prefixlen)
            bits = self._bits.get(chunk, 0) ^ ((1 << span) - 1) << (start - chunk)
            if bits:
                self._bits[chunk] = bits
            else:
                del self._bits[chunk]

    def _mark(self, node: Node) -> None:
        self._change(node, 1)

    def _unmark(self, node: Node) -> None:
        self._change(node, -1)

    def _lowest_free(self) -> int | None:
        start, q = self._root
        if self._used_in(start, q) >= _span(q):
            return None
        while q < 32:  # the node has room, so one of its children has
            q += 1
            if self._used_in(start, q) >= _span(q):
                start += _span(q)
        return start

    def _highest_free(self, prefixlen: int) -> int | None:
        stack = [self._root]
        while stack:
            start, q = stack.pop()
            used = self._used_in(start, q)
            if used == 0:  # wholly free: its top aligned block is the highest one left
                return start + _span(q) - _span(prefixlen)
            if q == prefixlen or _span(q) - used < _span(prefixlen):
                continue
            stack += [(start, q + 1), (start + _span(q + 1), q + 1)]  # upper child popped first
        return None
