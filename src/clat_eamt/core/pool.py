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
# it.  ``_occupied`` maps each leased or reserved block to its owner, and ``_count`` holds, for
# every node that has any, how many occupied addresses lie inside it (nodes at zero are dropped
# so the dict stays as small as the leases).  Because leases and reserved blocks never overlap,
# a node reached from the root is full exactly when its count equals its size, so:
# - the lowest free address is one walk from the root (take the lower child unless it is full):
#   at most 32 - pool prefixlen steps, whatever the number of leases;
# - the highest free aligned block is a depth-first walk, upper child first, that skips full
#   nodes and nodes with too few free addresses (blocks are rare: static prefix entries);
# - marking or clearing a lease updates its ancestors only, again at most 32 steps.
# Singles come from the bottom and blocks from the top, so static blocks do not split the
# singles region.  The choice depends only on what is occupied now, never on history, which is
# what makes allocation deterministic and lets ``peek`` predict ``acquire`` exactly.

Node = tuple[int, int]  # (first address as an int, prefix length)
Target = tuple[int, int]  # an IPv6 target as (first address as an int, prefix length)
# A lease as stored: (block's first address, its prefix length, references).  Leases are kept as
# integers, not ``Lease`` objects of ``ipaddress`` networks (about 1 KB each): a router holds
# thousands; ``Lease`` objects are made when asked for.
Stored = tuple[int, int, int]


def _target(net: IPv6Network) -> Target:
    return int(net.network_address), net.prefixlen


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
    return Lease(IPv4Network((start, length)), IPv6Network(target), refs)


def _span(prefixlen: int) -> int:
    return 1 << (32 - prefixlen)


def _node(net: IPv4Network) -> Node:
    return int(net.network_address), net.prefixlen


def _flat(node: Node) -> int:
    """A node as one integer, the key of ``_occupied`` and ``_count`` (two tree nodes per
    lease: a tuple key would cost another 60 bytes each)."""
    return node[0] << 6 | node[1]


class Pool:
    """Leases of pool blocks to IPv6 targets.  Pure: no I/O, no clock; ``copy`` for simulation."""

    def __init__(self, network: IPv4Network, reserved: Iterable[IPv4Network] = ()) -> None:
        self._network = network
        self._root: Node = _node(network)
        self._occupied: dict[int, Target | None] = {}  # by _flat(node); None: reserved
        self._count: dict[int, int] = {}  # by _flat(node)
        self._leases: dict[Target, Stored] = {}
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
                self._mark(_node(net), None)
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
        stored = self._leases.get(_target(target))
        return None if stored is None else _lease(_target(target), stored)

    def leases(self) -> tuple[Lease, ...]:
        ordered = sorted(self._leases.items(), key=lambda item: item[1])
        return tuple(_lease(target, stored) for target, stored in ordered)

    def owner_of(self, address: IPv4Address) -> Lease | None:
        if address not in self._network:
            return None
        found = self._covering((int(address), 32))
        owner = None if found is None else self._occupied[_flat(found)]
        return None if owner is None else _lease(owner, self._leases[owner])

    def peek(self, target: IPv6Network, prefixlen: int = 32) -> IPv4Network | None:
        """The block ``acquire(target, prefixlen)`` would return now; None if it would raise
        PoolExhausted.  Changes nothing."""
        lease = self._existing(target, prefixlen)
        if lease is not None:
            return lease.block
        start = self._lowest_free() if prefixlen == 32 else self._highest_free(prefixlen)
        return None if start is None else IPv4Network((start, prefixlen))

    # --- changes ----------------------------------------------------------------------------

    def acquire(self, target: IPv6Network, prefixlen: int = 32) -> IPv4Network:
        """One more reference to ``target``'s block, leasing a new one if it has none."""
        lease = self._existing(target, prefixlen)
        if lease is not None:
            start, length, refs = self._leases[_target(target)]
            self._leases[_target(target)] = (start, length, refs + 1)
            return lease.block
        block = self.peek(target, prefixlen)
        if block is None:
            raise PoolExhausted(f"no free /{prefixlen} left in pool {self._network}")
        self._take(target, block, refs=1)
        return block

    def release(self, target: IPv6Network) -> bool:
        """Drop one reference; free the block (and return True) when none is left.  An adopted
        lease nobody acquired (refs 0) is freed at once: that is how reconciliation drops it."""
        key = _target(target)
        stored = self._leases.get(key)
        if stored is None:
            raise KeyError(target)
        if stored[2] > 1:
            self._leases[key] = (stored[0], stored[1], stored[2] - 1)
            return False
        lease = _lease(key, self._leases.pop(key))
        self._unmark(_node(lease.block))
        self._used -= lease.block.num_addresses
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
        if self._count.get(_flat(node), 0) or self._covering(node) is not None:
            raise ValueError(f"{block} overlaps a lease or a reserved range of the pool")
        self._take(target, block, refs=0)

    def copy(self) -> Pool:
        # Keys and values are immutable (ints, networks, frozen leases): copying the dicts is a
        # deep copy for every purpose.
        other = Pool.__new__(Pool)
        other.__dict__.update(self.__dict__)
        other._occupied = dict(self._occupied)
        other._count = dict(self._count)
        other._leases = dict(self._leases)
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
        key = _target(target)
        self._mark(_node(block), key)
        self._leases[key] = (int(block.network_address), block.prefixlen, refs)
        self._used += block.num_addresses

    def _ancestors(self, node: Node) -> Iterable[Node]:
        """The node and every node above it up to the pool, root first."""
        start, prefixlen = node
        for q in range(self._root[1], prefixlen + 1):
            yield start >> (32 - q) << (32 - q), q

    def _covering(self, node: Node) -> Node | None:
        """The occupied block that contains (or is) ``node``, if any."""
        return next((a for a in self._ancestors(node) if _flat(a) in self._occupied), None)

    def _mark(self, node: Node, owner: Target | None) -> None:
        for a in map(_flat, self._ancestors(node)):
            self._count[a] = self._count.get(a, 0) + _span(node[1])
        self._occupied[_flat(node)] = owner

    def _unmark(self, node: Node) -> None:
        for a in map(_flat, self._ancestors(node)):
            left = self._count[a] - _span(node[1])
            if left:
                self._count[a] = left
            else:
                del self._count[a]
        del self._occupied[_flat(node)]

    def _lowest_free(self) -> int | None:
        start, q = self._root
        if self._count.get(_flat(self._root), 0) >= _span(q):
            return None
        while q < 32:  # the node has room, so one of its children has
            q += 1
            if self._count.get(start << 6 | q, 0) >= _span(q):
                start += _span(q)
        return start

    def _highest_free(self, prefixlen: int) -> int | None:
        stack = [self._root]
        while stack:
            start, q = stack.pop()
            used = self._count.get(start << 6 | q, 0)
            if used == 0:  # wholly free: its top aligned block is the highest one left
                return start + _span(q) - _span(prefixlen)
            if q == prefixlen or _span(q) - used < _span(prefixlen):
                continue
            stack += [(start, q + 1), (start + _span(q + 1), q + 1)]  # upper child popped first
        return None
