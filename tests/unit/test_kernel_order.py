"""The order the kernel dataplane applies a batch in (SPEC 5): translator entries before the
DNAT elements that use them, removals after; an IPv6 target that moves to a new pool address
is added only after its old entry is gone (Jool and tayga hold a target once).  The nft table
and the translator are recording stand-ins here; tests/integration runs the real ones."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from ipaddress import IPv4Network, IPv6Network

from clat_eamt.core.model import EnsureDnat, EnsureTranslator, RemoveDnat, RemoveTranslator
from clat_eamt.dataplane.kernel import KernelDataplane
from clat_eamt.dataplane.translator import CommandResult

D1, D2 = IPv4Network("192.0.2.10/32"), IPv4Network("192.0.2.11/32")
P1, P2 = IPv4Network("198.51.100.129/32"), IPv4Network("198.51.100.130/32")
X1 = IPv6Network("2001:db8:1::10/128")
LOG: list[str] = []


class Translator:
    name = "recording"
    capabilities = frozenset({"live-update"})

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
            LOG.append(f"translator del {p}")
        for p, x in ensure.items():
            assert x not in self.held.values(), f"{x} held twice"
            self.held[p] = x
            LOG.append(f"translator add {p}")

    async def stop(self, clean: bool) -> None: ...


async def nft_runner(argv: Sequence[str], input: str | None = None) -> CommandResult:
    if input:
        LOG.extend(line for line in input.splitlines() if line.startswith(("add el", "delete el")))
    return CommandResult(0, '{"nftables": []}', "")


def run(ops, held):
    from clat_eamt.dataplane.nft import NftTable  # noqa: PLC0415

    LOG.clear()
    plane = KernelDataplane(NftTable(runner=nft_runner), Translator(held), None, True)

    async def scenario() -> None:
        await plane.start()
        plane.nft.current = {D1: P1}
        await plane.apply(ops)

    asyncio.run(scenario())
    return [
        line.split(" {")[0] + (" " + line.split("{ ")[1].split(" ")[0] if "{" in line else "")
        for line in LOG
    ]


def test_new_mapping_translator_first_then_dnat():
    log = run([EnsureTranslator(P2, IPv6Network("2001:db8:1::11/128")), EnsureDnat(D2, P2)], {})
    assert log == [f"translator add {P2}", "add element ip clat_eamt mapped 192.0.2.11"]


def test_a_target_moving_to_a_new_pool_address_waits_for_its_old_entry():
    ops = [RemoveDnat(D1), RemoveTranslator(P1, X1), EnsureTranslator(P2, X1), EnsureDnat(D2, P2)]
    log = run(ops, {P1: X1})
    assert log == [
        "delete element ip clat_eamt mapped 192.0.2.10",
        f"translator del {P1}",
        f"translator add {P2}",
        "add element ip clat_eamt mapped 192.0.2.11",
    ]
