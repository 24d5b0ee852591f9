"""What one batch becomes in the kernel (SPEC 5, dataplane v2).

On a CLAT that translates by prefix, every batch is exactly one nftables transaction holding both
legs (the IPv4 leg D -> P with its note, the IPv6 leg T(P) -> X) and the CLAT is not touched.
With Jool in netfilter mode the IPv6 leg is Jool's stateless EAM entry, so the IPv4 legs that go
are removed before Jool's entries change and the new ones added after (a DNAT element never
points at a pool address Jool does not map).  The nft context and Jool are recording stand-ins
here; tests/integration runs nft, conntrack and tayga for real."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from ipaddress import IPv4Network, IPv6Network

from clat_eamt.core.dataplane import Note
from clat_eamt.core.model import EnsureDnat, EnsureTranslator, RemoveDnat, RemoveTranslator
from clat_eamt.core.translation import PoolTranslation
from clat_eamt.dataplane.kernel import ClatLeg, JoolEamClat, KernelDataplane
from clat_eamt.dataplane.nft import NftTable

D1, D2 = IPv4Network("192.0.2.10/32"), IPv4Network("192.0.2.11/32")
P1, P2 = IPv4Network("198.51.100.129/32"), IPv4Network("198.51.100.130/32")
X1, X2 = IPv6Network("2001:db8:1::10/128"), IPv6Network("2001:db8:1::11/128")
POOL = IPv4Network("198.51.100.128/25")
PREF64 = IPv6Network("2001:db8:64::/96")
LOG: list[str] = []


class RecordingNft:
    """Stands in for ``nftlib.Nft``: records each transaction, answers listings empty."""

    via = "recording"

    async def run(self, text: str, json: bool = False) -> str:
        if text.startswith("list "):
            return '{"nftables": []}'
        if "add element" in text or "delete element" in text:
            LOG.append(text)
        return ""


class Clat:
    kind = "recording"

    async def start(self) -> ClatLeg:
        return ClatLeg("clat", PoolTranslation(PREF64))

    def problem(self) -> str | None:
        return None

    async def stop(self, clean: bool) -> None:
        LOG.append("clat stop")


class Jool:
    instance, netns = "clat", None

    def __init__(self, held: dict[IPv4Network, IPv6Network]) -> None:
        self.held = dict(held)

    async def start(self) -> None: ...

    async def entries(self) -> dict[IPv4Network, IPv6Network]:
        return dict(self.held)

    async def apply(
        self, ensure: Mapping[IPv4Network, IPv6Network], remove: Iterable[IPv4Network]
    ) -> None:
        for p in remove:
            del self.held[p]
            LOG.append(f"jool del {p}")
        for p, x in ensure.items():
            self.held[p] = x
            LOG.append(f"jool add {p}")

    def problem(self) -> str | None:
        return None

    async def stop(self, clean: bool) -> None: ...


def run(ops, clat) -> list[str]:
    LOG.clear()
    plane = KernelDataplane(NftTable(RecordingNft()), clat, None, True, POOL)  # type: ignore[arg-type]
    plane.describe = lambda d: Note("dns", 1234.5, ("ds.example",)) if d == D2 else None

    async def scenario() -> None:
        await plane.start()
        plane.nft.dnat4 = {D1: P1}
        plane.nft.dnat6 = {IPv6Network("2001:db8:64::c633:6481/128"): X1}
        await plane.apply(ops)

    asyncio.run(scenario())
    return LOG


def test_a_new_mapping_is_one_transaction_with_both_legs_and_its_note():
    log = run([EnsureTranslator(P2, X2), EnsureDnat(D2, P2)], Clat())
    assert log == [
        "add element inet clat_eamt dnat6 { 2001:db8:64::c633:6482 : 2001:db8:1::11/128 }\n"
        'add element inet clat_eamt dnat4 { 192.0.2.11 comment "dns 1234.5 ds.example" '
        ": 198.51.100.130/32 }\n"
    ]


def test_a_target_moving_to_a_new_pool_address_is_still_one_transaction():
    ops = [RemoveDnat(D1), RemoveTranslator(P1, X1), EnsureTranslator(P2, X1), EnsureDnat(D2, P2)]
    [batch] = run(ops, Clat())
    assert batch.splitlines() == [
        "delete element inet clat_eamt dnat4 { 192.0.2.10 }",
        "delete element inet clat_eamt dnat6 { 2001:db8:64::c633:6481 }",
        "add element inet clat_eamt dnat6 { 2001:db8:64::c633:6482 : 2001:db8:1::10/128 }",
        'add element inet clat_eamt dnat4 { 192.0.2.11 comment "dns 1234.5 ds.example" '
        ": 198.51.100.130/32 }",
    ]


def test_with_jool_the_ipv4_legs_go_before_and_come_after_its_eam_entries():
    ops = [RemoveDnat(D1), RemoveTranslator(P1, X1), EnsureTranslator(P2, X1), EnsureDnat(D2, P2)]
    log = run(ops, JoolEamClat(Jool({P1: X1})))  # type: ignore[arg-type]
    assert [line.split(" : ")[0].strip() for line in log] == [
        "delete element inet clat_eamt dnat4 { 192.0.2.10 }",
        f"jool del {P1}",
        f"jool add {P2}",
        'add element inet clat_eamt dnat4 { 192.0.2.11 comment "dns 1234.5 ds.example"',
    ]


def test_the_suspended_set_changes_as_diffs_and_comes_back_after_a_restart_of_the_dataplane():
    """``core.suspend``'s changes: removals first in one transaction, nothing for what the set
    already holds; the table's rewrite at start empties the set, so a restart of the dataplane
    (a translator that died) puts back what the safety net still suspends."""
    LOG.clear()
    plane = KernelDataplane(NftTable(RecordingNft()), Clat(), None, True, POOL)  # type: ignore[arg-type]
    wide = IPv4Network("192.0.2.0/24")

    async def scenario() -> None:
        await plane.start()
        await plane.set_suspended([D1, D2], [])
        await plane.set_suspended([D1], [])  # held already: no transaction
        await plane.set_suspended([wide], [D1, D2])
        await plane.start()

    asyncio.run(scenario())
    assert LOG == [
        "add element inet clat_eamt suspended { 192.0.2.10/32 }\n"
        "add element inet clat_eamt suspended { 192.0.2.11/32 }\n",
        "delete element inet clat_eamt suspended { 192.0.2.10/32 }\n"
        "delete element inet clat_eamt suspended { 192.0.2.11/32 }\n"
        "add element inet clat_eamt suspended { 192.0.2.0/24 }\n",
        "add element inet clat_eamt suspended { 192.0.2.0/24 }\n",  # after the rewrite
    ]
    assert plane.suspended == plane.nft.suspended == {wide}
