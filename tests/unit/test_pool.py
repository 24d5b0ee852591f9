"""The private mapping pool (SPEC section 5): allocation rules, reference counts, reconciliation
(adopt), exhaustion, and ``pool_problems``.  A hypothesis state machine checks the invariants
against a brute-force model of a small pool."""

from __future__ import annotations

import contextlib
import itertools
from ipaddress import IPv4Address, IPv4Network, IPv6Network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from clat_eamt.core.pool import Lease, Pool, PoolExhausted, pool_problems

N4 = IPv4Network
A4 = IPv4Address


def t(i: int) -> IPv6Network:
    """A learned target: one IPv6 address (/128) in documentation space."""
    return IPv6Network(f"2001:db8::{i:x}/128")


def prefix(i: int, length: int = 120) -> IPv6Network:
    """A static prefix target."""
    return IPv6Network(f"2001:db8:{i:x}::/{length}")


class SmallChunkPool(Pool):
    """Chunks of 8 addresses instead of 256: on the /27 of these tests the counters (the /27 down
    to the /29s) and the bits (below a /29) both hold leases, reserved ranges and blocks."""

    chunk_prefixlen = 29


def doc_pool() -> Pool:
    # 198.51.100.0/24 with .0-.3 reserved on top of the pool's own first and last address.
    return Pool(N4("198.51.100.0/24"), [N4("198.51.100.0/30")])


# --- singles, sharing, reference counts --------------------------------------------------------


def test_sizes_count_reserved_and_leases() -> None:
    pool = doc_pool()
    assert pool.network == N4("198.51.100.0/24")
    assert (pool.size, pool.used, pool.free) == (256 - 5, 0, 251)
    pool.acquire(t(1))
    pool.acquire(prefix(1), 29)
    assert (pool.used, pool.free) == (9, 242)


def test_singles_come_from_the_bottom_after_the_reserved_addresses() -> None:
    pool = doc_pool()
    assert [pool.acquire(t(i)) for i in range(3)] == [
        N4("198.51.100.4/32"),
        N4("198.51.100.5/32"),
        N4("198.51.100.6/32"),
    ]


def test_entries_with_the_same_target_share_one_lease() -> None:
    pool = doc_pool()
    first = pool.acquire(t(1))
    assert pool.acquire(t(1)) == first
    assert pool.acquire(t(1)) == first
    assert pool.lease_of(t(1)) == Lease(first, t(1), 3)
    assert pool.used == 1
    assert pool.acquire(t(2)) != first


def test_release_frees_only_at_the_last_reference() -> None:
    pool = doc_pool()
    block = pool.acquire(t(1))
    pool.acquire(t(1))
    assert pool.release(t(1)) is False
    assert pool.lease_of(t(1)) == Lease(block, t(1), 1)
    assert pool.owner_of(block.network_address) is not None
    assert pool.release(t(1)) is True
    assert pool.lease_of(t(1)) is None
    assert pool.owner_of(block.network_address) is None
    assert (pool.used, pool.leases()) == (0, ())
    with pytest.raises(KeyError):
        pool.release(t(1))


def test_release_of_an_unknown_target_raises_keyerror() -> None:
    with pytest.raises(KeyError):
        doc_pool().release(t(9))


def test_released_address_is_reused_lowest_first() -> None:
    pool = doc_pool()
    blocks = [pool.acquire(t(i)) for i in range(5)]
    pool.release(t(3))
    pool.release(t(1))
    assert pool.peek(t(7)) == blocks[1]
    assert pool.acquire(t(7)) == blocks[1]
    assert pool.acquire(t(8)) == blocks[3]
    assert pool.acquire(t(9)) == N4("198.51.100.9/32")


def test_other_prefix_length_for_a_leased_target_is_refused() -> None:
    pool = doc_pool()
    pool.acquire(prefix(1), 28)
    with pytest.raises(ValueError, match="already holds"):
        pool.acquire(prefix(1), 29)
    with pytest.raises(ValueError, match="already holds"):
        pool.peek(prefix(1))
    assert pool.lease_of(prefix(1)) == Lease(N4("198.51.100.224/28"), prefix(1), 1)


@pytest.mark.parametrize("prefixlen", [23, 33, -1])
def test_prefix_length_must_fit_the_pool(prefixlen: int) -> None:
    pool = doc_pool()
    with pytest.raises(ValueError, match="does not fit"):
        pool.acquire(t(1), prefixlen)
    with pytest.raises(ValueError, match="does not fit"):
        pool.peek(t(1), prefixlen)
    assert pool.leases() == ()


# --- reserved addresses ------------------------------------------------------------------------


def test_first_and_last_address_are_never_handed_out() -> None:
    pool = Pool(N4("10.0.0.0/29"))
    assert pool.size == 6
    got = {pool.acquire(t(i)) for i in range(6)}
    assert got == {N4(f"10.0.0.{i}/32") for i in range(1, 7)}
    assert pool.free == 0
    with pytest.raises(PoolExhausted):
        pool.acquire(t(6))


def test_reserved_ranges_are_never_handed_out() -> None:
    reserved = [N4("10.0.0.4/30"), N4("10.0.0.6/31"), N4("10.0.0.16/28"), N4("192.168.0.0/16")]
    pool = Pool(N4("10.0.0.0/27"), reserved)  # overlapping and foreign ranges are fine
    assert pool.size == 32 - 1 - 4 - 16  # the last address is inside 10.0.0.16/28
    got: list[IPv4Address] = []
    while pool.free:
        got.append(pool.acquire(t(len(got))).network_address)
    expected = [A4(f"10.0.0.{i}") for i in (1, 2, 3, *range(8, 16))]
    assert got == expected
    assert all(pool.owner_of(a) is None for a in (A4("10.0.0.4"), A4("10.0.0.20")))


def test_a_reserved_range_covering_the_pool_leaves_nothing() -> None:
    pool = Pool(N4("10.1.2.0/24"), [N4("10.0.0.0/8")])
    assert (pool.size, pool.free) == (0, 0)
    assert pool.peek(t(1)) is None
    with pytest.raises(PoolExhausted):
        pool.acquire(t(1))


# --- blocks (static prefix entries) ------------------------------------------------------------


def test_blocks_are_aligned_and_come_from_the_top() -> None:
    pool = Pool(N4("100.127.0.0/16"))
    # The last /24 holds the reserved last address, so the first /24 handed out is the one below.
    assert pool.acquire(prefix(1), 24) == N4("100.127.254.0/24")
    assert pool.acquire(prefix(2), 30) == N4("100.127.255.248/30")
    assert pool.acquire(prefix(3), 30) == N4("100.127.255.244/30")
    assert pool.acquire(prefix(4), 25) == N4("100.127.255.0/25")
    assert pool.acquire(prefix(5), 25) == N4("100.127.253.128/25")
    for lease in pool.leases():
        assert int(lease.block.network_address) % lease.block.num_addresses == 0


def test_blocks_and_singles_coexist_without_overlap() -> None:
    pool = Pool(N4("10.0.0.0/27"))
    block = pool.acquire(prefix(1), 29)  # 10.0.0.24/29 holds the reserved last address
    assert block == N4("10.0.0.16/29")
    singles = [pool.acquire(t(i)) for i in range(22)]
    assert singles == [N4(f"10.0.0.{i}/32") for i in (*range(1, 16), *range(24, 31))]
    with pytest.raises(PoolExhausted):
        pool.acquire(t(99))
    assert pool.owner_of(A4("10.0.0.20")) == Lease(block, prefix(1), 1)
    pool.release(prefix(1))
    assert pool.peek(prefix(2), 30) == N4("10.0.0.20/30")  # blocks: from the top of the gap
    assert pool.acquire(t(99)) == N4("10.0.0.16/32")  # singles: from the bottom
    assert pool.acquire(prefix(2), 30) == N4("10.0.0.20/30")


def test_a_block_needs_an_aligned_free_range_not_just_free_addresses() -> None:
    pool = Pool(N4("10.0.0.0/28"))
    for i in range(14):
        pool.acquire(t(i))
    for i in range(0, 14, 2):  # free every other address: 7 free, no free aligned pair
        pool.release(t(i))
    assert pool.free == 7
    assert pool.peek(prefix(1), 31) is None
    with pytest.raises(PoolExhausted):
        pool.acquire(prefix(1), 31)
    assert pool.acquire(t(100)) == N4("10.0.0.1/32")


# --- exhaustion, peek, determinism, copy -------------------------------------------------------


def test_exhaustion_raises_leaves_state_intact_and_recovers() -> None:
    pool = Pool(N4("10.0.0.0/29"))
    for i in range(6):
        pool.acquire(t(i))
    before = (pool.leases(), pool.used, pool.free)
    assert pool.peek(t(6)) is None
    with pytest.raises(PoolExhausted):
        pool.acquire(t(6))
    with pytest.raises(PoolExhausted):
        pool.acquire(prefix(1), 30)
    assert (pool.leases(), pool.used, pool.free) == before
    assert pool.lease_of(t(6)) is None
    assert pool.acquire(t(3)) == N4("10.0.0.4/32")  # an existing lease still gets a reference
    pool.release(t(2))
    assert pool.acquire(t(6)) == N4("10.0.0.3/32")


def test_acquire_with_the_wanted_block_shares_its_integer_or_refuses() -> None:
    pool = doc_pool()
    want = N4("198.51.100.4/32")  # what peek said, as an entry holds it
    assert pool.acquire(t(1), want=want) == want
    assert pool._singles[int(want.network_address)] == int(t(1).network_address)
    [start] = [s for s in pool._singles if s == int(want.network_address)]
    assert start is int(want.network_address)  # one integer for entry and lease
    before = pool.leases()
    with pytest.raises(
        ValueError, match=r"gives 198\.51\.100\.5/32 for .*, not 198\.51\.100\.9/32"
    ):
        pool.acquire(t(2), want=N4("198.51.100.9/32"))
    with pytest.raises(
        ValueError, match=r"gives 198\.51\.100\.4/32 for .*, not 198\.51\.100\.9/32"
    ):
        pool.acquire(t(1), want=N4("198.51.100.9/32"))  # t(1) holds .4
    assert pool.leases() == before
    assert pool.acquire(t(1), want=want) == want
    assert pool.lease_of(t(1)) == Lease(want, t(1), 2)


def test_peek_predicts_acquire_and_changes_nothing() -> None:
    pool = doc_pool()
    pool.acquire(t(1))
    for target, prefixlen in [(t(2), 32), (prefix(1), 26), (t(1), 32), (prefix(2), 30)]:
        leases = pool.leases()
        predicted = pool.peek(target, prefixlen)
        assert pool.leases() == leases
        assert pool.acquire(target, prefixlen) == predicted


def test_allocation_is_deterministic() -> None:
    def run(pool_class: type[Pool]) -> list[IPv4Network]:
        pool = pool_class(N4("100.127.0.0/16"), [N4("100.127.1.0/24")])
        got = []
        for i in range(600):
            got.append(pool.acquire(t(i % 450), 32 if i % 50 else 28))
            if i % 3 == 0:
                pool.release(t(i // 2))
        return got + [lease.block for lease in pool.leases()]

    assert run(Pool) == run(Pool) == run(SmallChunkPool)


def test_copy_is_independent() -> None:
    pool = doc_pool()
    pool.acquire(t(1))
    clone = pool.copy()
    clone.acquire(t(1))
    clone.acquire(t(2))
    clone.release(t(1))
    clone.release(t(1))
    assert pool.lease_of(t(1)) == Lease(N4("198.51.100.4/32"), t(1), 1)
    assert pool.lease_of(t(2)) is None
    assert pool.peek(t(2)) == N4("198.51.100.5/32")
    assert clone.peek(t(3)) == N4("198.51.100.4/32")
    assert (pool.used, clone.used) == (1, 1)


@pytest.mark.parametrize("pool_class", [Pool, SmallChunkPool])
def test_many_leases_in_a_large_pool(pool_class: type[Pool]) -> None:
    pool = pool_class(N4("10.0.0.0/8"))
    for i in range(3000):
        pool.acquire(t(i))
    for i in range(0, 3000, 2):
        pool.release(t(i))
    assert pool.used == 1500
    assert pool.acquire(t(5000)) == N4("10.0.0.1/32")
    assert pool.acquire(prefix(1), 16) == N4("10.254.0.0/16")
    assert pool.acquire(prefix(2), 30) == N4("10.255.255.248/30")  # below the last address
    assert pool.owner_of(A4("10.254.1.2")) == Lease(N4("10.254.0.0/16"), prefix(1), 1)
    assert pool.owner_of(A4("10.0.0.2")) == Lease(N4("10.0.0.2/32"), t(1), 1)
    assert pool.owner_of(A4("10.0.0.3")) is None  # t(2)'s, released above
    with pytest.raises(ValueError, match="overlaps"):
        pool.adopt(prefix(3), N4("10.254.3.0/24"))  # inside the /16 block


def test_a_large_pool_costs_no_memory_per_tree_node() -> None:
    """Issue 15: the allocator's own structures stay a few hundred items for thousands of
    leases (the old tree of counters held about three per lease)."""
    pool = Pool(N4("10.0.0.0/8"))
    for i in range(3000):
        pool.acquire(t(i))
    assert len(pool._count) <= 2 * 32  # /8 down to the 12 /24s in use, and their ancestors
    # 3,001 addresses from the bottom (the first is reserved): 12 chunks of 256; and the chunk
    # of the reserved last address
    assert len(pool._bits) == 13


# --- owner_of ----------------------------------------------------------------------------------


def test_owner_of() -> None:
    pool = doc_pool()
    single = pool.acquire(t(1))
    block = pool.acquire(prefix(1), 28)
    assert pool.owner_of(single.network_address) == Lease(single, t(1), 1)
    assert pool.owner_of(A4("198.51.100.230")) == Lease(block, prefix(1), 1)
    assert pool.owner_of(A4("198.51.100.1")) is None  # reserved
    assert pool.owner_of(A4("198.51.100.100")) is None  # free
    assert pool.owner_of(A4("203.0.113.5")) is None  # outside the pool


# --- adopt (restart reconciliation) ------------------------------------------------------------


def test_adopt_records_a_lease_without_references() -> None:
    pool = doc_pool()
    pool.adopt(t(1), N4("198.51.100.4/32"))
    pool.adopt(prefix(1), N4("198.51.100.64/26"))
    assert pool.lease_of(t(1)) == Lease(N4("198.51.100.4/32"), t(1), 0)
    assert pool.used == 65
    assert pool.acquire(t(2)) == N4("198.51.100.5/32")  # adopted addresses are skipped
    assert pool.peek(t(1)) == N4("198.51.100.4/32")
    assert pool.acquire(t(1)) == N4("198.51.100.4/32")
    assert pool.lease_of(t(1)) == Lease(N4("198.51.100.4/32"), t(1), 1)
    pool.adopt(t(1), N4("198.51.100.4/32"))  # the same lease again: nothing changes
    assert pool.lease_of(t(1)) == Lease(N4("198.51.100.4/32"), t(1), 1)


def test_release_of_an_unreferenced_adopted_lease_frees_it() -> None:
    pool = doc_pool()
    pool.adopt(prefix(1), N4("198.51.100.64/26"))
    assert pool.release(prefix(1)) is True
    assert (pool.leases(), pool.used) == ((), 0)


@pytest.mark.parametrize(
    ("target", "block", "message"),
    [
        (t(2), N4("198.51.101.0/32"), "outside"),
        (t(2), N4("198.51.100.0/23"), "outside"),
        (t(2), N4("198.51.100.2/32"), "overlaps"),  # reserved range
        (t(2), N4("198.51.100.255/32"), "overlaps"),  # the pool's last address
        (t(2), N4("198.51.100.10/32"), "overlaps"),  # the lease of t(1)
        (t(2), N4("198.51.100.8/29"), "overlaps"),  # contains that lease
        (t(2), N4("198.51.100.66/32"), "overlaps"),  # inside the /26 lease
        (t(1), N4("198.51.100.20/32"), "already holds"),  # t(1) is leased elsewhere
    ],
)
def test_adopt_refuses(target: IPv6Network, block: IPv4Network, message: str) -> None:
    pool = doc_pool()
    pool.adopt(t(1), N4("198.51.100.10/32"))
    pool.adopt(prefix(1), N4("198.51.100.64/26"))
    before = pool.leases()
    with pytest.raises(ValueError, match=message):
        pool.adopt(target, block)
    assert pool.leases() == before


# --- the state machine -------------------------------------------------------------------------

TARGETS = [t(i) for i in range(5)] + [prefix(i) for i in range(1, 4)]
PREFIXLENS = [32, 30, 29]
POOL = N4("198.51.100.32/27")
RESERVED_CHOICES = [(), (N4("198.51.100.40/30"),), (N4("198.51.100.48/29"), N4("10.0.0.0/8"))]
ALL_BLOCKS = [b for plen in range(27, 33) for b in POOL.subnets(new_prefix=plen)] + [
    N4("198.51.100.0/27"),
    N4("198.51.100.64/32"),
]


class PoolMachine(RuleBasedStateMachine):
    """Random acquire/release/adopt sequences on a /27, checked against a brute-force model.
    The /27 lies inside one chunk of the real pool: only its bits are used."""

    pool_class: type[Pool] = Pool
    pool: Pool
    reserved: set[IPv4Address]
    refs: dict[IPv6Network, int]

    @initialize(reserved=st.sampled_from(RESERVED_CHOICES))
    def start(self, reserved: tuple[IPv4Network, ...]) -> None:
        self.pool = self.pool_class(POOL, reserved)
        self.reserved = {POOL.network_address, POOL.broadcast_address}
        self.reserved |= {a for net in reserved if net.overlaps(POOL) for a in net}
        self.refs = {}

    # The brute-force model: which addresses are free, and what the allocator must pick.
    def free_addresses(self) -> set[IPv4Address]:
        taken = {a for lease in self.pool.leases() for a in lease.block}
        return set(POOL) - self.reserved - taken

    def expected_block(self, prefixlen: int) -> IPv4Network | None:
        free = self.free_addresses()
        fits = [b for b in POOL.subnets(new_prefix=prefixlen) if set(b) <= free]
        if not fits:
            return None
        return fits[0] if prefixlen == 32 else fits[-1]  # singles lowest, blocks highest

    @rule(who=st.sampled_from(TARGETS), prefixlen=st.sampled_from(PREFIXLENS))
    def acquire(self, who: IPv6Network, prefixlen: int) -> None:
        lease = self.pool.lease_of(who)
        before = self.pool.leases()
        if lease is not None and lease.block.prefixlen != prefixlen:
            with pytest.raises(ValueError):
                self.pool.acquire(who, prefixlen)
            assert self.pool.leases() == before
            return
        predicted = self.pool.peek(who, prefixlen)
        assert self.pool.leases() == before
        expected = lease.block if lease is not None else self.expected_block(prefixlen)
        assert predicted == expected
        if expected is None:
            with pytest.raises(PoolExhausted):
                self.pool.acquire(who, prefixlen)
            assert self.pool.leases() == before
            return
        assert self.pool.acquire(who, prefixlen) == expected
        self.refs[who] = self.refs.get(who, 0) + 1

    @rule(who=st.sampled_from(TARGETS))
    def release(self, who: IPv6Network) -> None:
        if who not in self.refs:
            with pytest.raises(KeyError):
                self.pool.release(who)
            return
        freed = self.pool.release(who)
        assert freed == (self.refs[who] <= 1)
        if freed:
            del self.refs[who]
        else:
            self.refs[who] -= 1

    @rule(who=st.sampled_from(TARGETS), block=st.sampled_from(ALL_BLOCKS))
    def adopt(self, who: IPv6Network, block: IPv4Network) -> None:
        lease = self.pool.lease_of(who)
        before = self.pool.leases()
        if lease is not None and lease.block == block:
            self.pool.adopt(who, block)
            assert self.pool.leases() == before
            return
        ok = lease is None and block.subnet_of(POOL) and set(block) <= self.free_addresses()
        if not ok:
            with pytest.raises(ValueError):
                self.pool.adopt(who, block)
            assert self.pool.leases() == before
            return
        self.pool.adopt(who, block)
        assert self.pool.lease_of(who) == Lease(block, who, 0)
        self.refs[who] = 0

    @rule(who=st.sampled_from(TARGETS), prefixlen=st.sampled_from(PREFIXLENS))
    def copies_are_independent(self, who: IPv6Network, prefixlen: int) -> None:
        before = self.pool.leases()
        clone = self.pool.copy()
        assert clone.leases() == before
        for lease in before:
            clone.release(lease.target)
        with contextlib.suppress(PoolExhausted, ValueError):
            clone.acquire(who, prefixlen)
        assert self.pool.leases() == before

    @precondition(lambda self: bool(self.refs))
    @rule()
    def release_everything(self) -> None:
        for who in list(self.refs):
            while not self.pool.release(who):
                pass
        self.refs.clear()
        assert self.pool.leases() == ()
        assert (self.pool.used, self.pool.free) == (0, self.pool.size)
        assert self.free_addresses() == set(POOL) - self.reserved

    @invariant()
    def leases_are_consistent(self) -> None:
        leases = self.pool.leases()
        assert [lease.block for lease in leases] == sorted(lease.block for lease in leases)
        assert len({lease.target for lease in leases}) == len(leases)
        assert {lease.target: lease.refs for lease in leases} == self.refs
        for a, b in itertools.combinations(leases, 2):
            assert not a.block.overlaps(b.block)
        for lease in leases:
            assert lease.block.subnet_of(POOL)
            assert int(lease.block.network_address) % lease.block.num_addresses == 0
            assert not set(lease.block) & self.reserved
            assert self.pool.lease_of(lease.target) == lease
        assert self.pool.used == sum(lease.block.num_addresses for lease in leases)
        assert self.pool.size == 32 - len(self.reserved)
        assert self.pool.free == self.pool.size - self.pool.used == len(self.free_addresses())

    @invariant()
    def owner_of_matches_the_leases(self) -> None:
        owners = {a: lease for lease in self.pool.leases() for a in lease.block}
        for address in POOL:
            assert self.pool.owner_of(address) == owners.get(address)

    def teardown(self) -> None:
        if hasattr(self, "pool"):
            self.release_everything()


PoolMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestPoolMachine = PoolMachine.TestCase


class SmallChunkPoolMachine(PoolMachine):
    """The same machine with both layers of the allocator in play."""

    pool_class = SmallChunkPool


SmallChunkPoolMachine.TestCase.settings = PoolMachine.TestCase.settings
TestSmallChunkPoolMachine = SmallChunkPoolMachine.TestCase


OPS = st.lists(
    st.tuples(st.booleans(), st.sampled_from(TARGETS), st.sampled_from(PREFIXLENS)), max_size=60
)


@given(OPS)
@settings(deadline=None)
def test_same_calls_give_same_addresses(ops: list[tuple[bool, IPv6Network, int]]) -> None:
    def run(pool_class: type[Pool]) -> list[object]:
        pool = pool_class(POOL, [N4("198.51.100.40/30")])
        out: list[object] = []
        for is_acquire, target, prefixlen in ops:
            try:
                out.append(pool.acquire(target, prefixlen) if is_acquire else pool.release(target))
            except (PoolExhausted, ValueError, KeyError) as error:
                out.append(type(error))
        return [*out, pool.leases()]

    assert run(Pool) == run(Pool) == run(SmallChunkPool)


# --- pool_problems -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "network", ["10.0.0.0/8", "10.200.0.0/16", "172.16.0.0/12", "192.168.77.0/24", "100.127.0.0/16"]
)
def test_private_ranges_make_good_pools(network: str) -> None:
    assert pool_problems(N4(network)) == []


@pytest.mark.parametrize(
    "network",
    [
        "172.32.0.0/16",  # just past 172.16.0.0/12
        "100.128.0.0/16",  # just past the shared address space
        "127.0.0.0/16",
        "169.254.0.0/16",
        "192.0.0.0/24",
        "224.0.0.0/24",
        "240.0.0.0/8",
        "10.0.0.0/7",  # containing 10.0.0.0/8 is not lying inside it
    ],
)
def test_public_and_special_ranges_are_refused(network: str) -> None:
    problems = pool_problems(N4(network))
    assert len(problems) == 1
    assert "private space" in problems[0]


def test_documentation_space_only_with_the_flag() -> None:
    assert pool_problems(N4("198.51.100.0/24")) != []
    assert pool_problems(N4("198.51.100.0/24"), allow_documentation=True) == []
    assert pool_problems(N4("203.0.113.64/26"), allow_documentation=True) == []
    assert pool_problems(N4("172.32.0.0/16"), allow_documentation=True) != []


@pytest.mark.parametrize(("prefixlen", "ok"), [(30, True), (31, False), (32, False)])
def test_too_small_pools_are_refused(prefixlen: int, ok: bool) -> None:
    problems = pool_problems(N4(f"10.1.2.0/{prefixlen}"))
    assert (problems == []) is ok
    if not ok:
        assert any("too small" in p for p in problems)


def test_overlap_with_addresses_in_use_is_refused() -> None:
    in_use: list[IPv4Network | IPv6Network] = [
        N4("10.0.5.0/24"),  # the LAN, inside the pool
        N4("10.0.0.0/8"),  # containing the pool
        N4("192.168.1.0/24"),  # elsewhere: fine
        IPv6Network("2001:db8::/64"),  # IPv6 never overlaps an IPv4 pool
    ]
    problems = pool_problems(N4("10.0.0.0/16"), in_use=in_use)
    assert len(problems) == 2
    assert all("overlaps" in p for p in problems)
    assert "10.0.5.0/24" in problems[0]
    assert "10.0.0.0/8" in problems[1]


def test_every_problem_is_reported() -> None:
    problems = pool_problems(N4("198.51.100.7/32"), in_use=[N4("198.51.100.0/24")])
    assert len(problems) == 3
