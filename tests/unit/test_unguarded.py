"""The IPv6 legs the safety net leaves alone: those of IPv6-only entries (issues 25 and 27).

``core.unguarded`` decides per pool block (an IPv6-only entry uses it: no NAT64 behind its
flows) and keeps the set as diffs; the kernel dataplane writes the set's changes in the very
transaction that installs or removes the IPv6 leg, and puts them back after the table's rewrite
at start.  The nft context is a recording stand-in (as in test_kernel_order); the lab runs it
for real (tests/integration/test_ipv6only_lab.py).
"""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Network, IPv6Network

import pytest

from clat_eamt.core.model import (
    EnsureDnat,
    EnsureTranslator,
    Entry,
    Origin,
    RemoveDnat,
    RemoveTranslator,
    State,
)
from clat_eamt.core.pool import Pool
from clat_eamt.core.table import MappingTable
from clat_eamt.core.unguarded import UnguardedChange, UnguardedLegs, exempt
from clat_eamt.dataplane.kernel import KernelDataplane
from clat_eamt.dataplane.nft import NftTable
from clat_eamt.dataplane.nftlib import NftError
from tests.unit.test_kernel_order import LOG, POOL, Clat, RecordingNft

D1 = IPv4Network("192.0.2.10/32")
P1, P2 = IPv4Network("198.51.100.129/32"), IPv4Network("198.51.100.130/32")
X1, X2 = IPv6Network("2001:db8:1::70/128"), IPv6Network("2001:db8:1::10/128")
T1, T2 = "2001:db8:64::c633:6481", "2001:db8:64::c633:6482"  # T(P) under the CLAT's Pref64


def entry(ipv4: IPv4Network, ipv6: IPv6Network, pool: IPv4Network, origin: Origin) -> Entry:
    return Entry(ipv4, ipv6, pool, origin, State.VALID, 0.0, 0.0, 300.0, fqdns=("a.example",))


def test_a_block_is_exempt_while_an_ipv6_only_entry_uses_it():
    table = MappingTable(Pool(POOL))
    table.add(entry(P1, X1, P1, Origin.IPV6_ONLY))
    table.add(entry(D1, X2, P2, Origin.DNS))
    assert exempt(table, P1)
    assert not exempt(table, P2)  # a dns entry's leg: the NAT64 is behind it, guarded
    table.add(entry(P2, X2, P2, Origin.IPV6_ONLY))  # another name with only that AAAA
    assert exempt(table, P2)  # the dns entry's flows stay guarded on their IPv4 leg


def test_the_set_changes_as_diffs_per_installed_and_removed_leg():
    legs = UnguardedLegs()
    wanted = {P1}
    assert legs.update([P1, P2], [], wanted.__contains__) == UnguardedChange((P1,), ())
    assert not legs.update([P1, P2], [], wanted.__contains__)  # held already: no change
    wanted = {P2}  # P1 re-pointed to a dns entry's target, P2 to an IPv6-only one
    assert legs.update([P1, P2], [], wanted.__contains__) == UnguardedChange((P2,), (P1,))
    assert legs.update([], [P1, P2], wanted.__contains__) == UnguardedChange((), (P2,))
    assert legs.held == set()


class FailingNft(RecordingNft):
    fail = False

    async def run(self, text: str, json: bool = False) -> str:
        if self.fail and "element" in text:
            raise NftError("nft: Could not process rule: No buffer space available")
        return await super().run(text, json)


def test_the_set_changes_in_the_legs_transaction_and_comes_back_after_a_restart():
    """One transaction per batch holds the IPv6 leg and its set element (no flow of a new
    IPv6-only leg can be marked in between); the rewrite at start empties the set and the
    dataplane puts back what it holds; a failed transaction leaves the plan as it was."""
    LOG.clear()
    nft = FailingNft()
    plane = KernelDataplane(NftTable(nft), Clat(), None, True, POOL)  # type: ignore[arg-type]
    plane.exempt = {P1}.__contains__

    async def scenario() -> None:
        await plane.start()
        await plane.apply([EnsureTranslator(P1, X1), EnsureTranslator(P2, X2), EnsureDnat(D1, P2)])
        await plane.start()  # a restart of the dataplane (the CLAT came back)
        plane.nft.dnat4 = {D1: P2}  # what it reads back from the kernel (the stand-in: none)
        plane.nft.dnat6 = {IPv6Network(T1): X1, IPv6Network(T2): X2}
        nft.fail = True
        with pytest.raises(NftError):
            await plane.apply([RemoveTranslator(P1, X1)])
        assert plane.unguarded.held == {P1}
        nft.fail = False
        await plane.apply([RemoveDnat(D1), RemoveTranslator(P1, X1)])

    asyncio.run(scenario())
    assert [batch.splitlines() for batch in LOG] == [
        [
            f"add element inet clat_eamt dnat6 {{ {T1} : {X1} }}",
            f"add element inet clat_eamt dnat6 {{ {T2} : {X2} }}",
            "add element inet clat_eamt dnat4 { 192.0.2.10 : 198.51.100.130/32 }",
            f"add element inet clat_eamt unguarded {{ {T1}/128 }}",
        ],
        [f"add element inet clat_eamt unguarded {{ {T1}/128 }}"],  # after the rewrite
        [
            "delete element inet clat_eamt dnat4 { 192.0.2.10 }",
            f"delete element inet clat_eamt dnat6 {{ {T1} }}",
            f"delete element inet clat_eamt unguarded {{ {T1}/128 }}",
        ],
    ]
    assert plane.unguarded.held == set() and plane.nft.unguarded == set()
