"""The daemon's nftables table in a namespace of its own (lab): created or adopted, elements
changed as diffs, nothing outside it touched, removed on clean stop."""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address, IPv4Network

import pytest

from clat_eamt.dataplane.nft import TABLE, NftTable
from tests.labkit import Netns
from tests.labkit.netns import run

D1, D2, STATIC = (
    IPv4Network("192.0.2.10/32"),
    IPv4Network("192.0.2.11/32"),
    IPv4Network("203.0.113.0/24"),
)
P1, P2, PSTATIC = (
    IPv4Network("198.51.100.129/32"),
    IPv4Network("198.51.100.130/32"),
    IPv4Network("198.51.100.0/24"),
)
OTHER = "table ip someone_else {\n chain c { type nat hook prerouting priority 0; }\n}\n"


def ruleset(ns: Netns) -> str:
    return run(ns, ["nft", "list", "ruleset"]).stdout


@pytest.mark.lab
def test_table_lifecycle_touches_nothing_else(lab_ns: Netns):
    run(ns := lab_ns, ["nft", "-f", "-"], input=OTHER)
    other_before = run(ns, ["nft", "list", "table", "ip", "someone_else"]).stdout

    async def scenario() -> dict[str, object]:
        table = NftTable(netns=ns.name)
        await table.ensure(only_ipv4_only_hosts=True)
        await table.apply({D1: P1, STATIC: PSTATIC}, [])
        first = await table.mapped()
        await table.apply({D1: P2, D2: P2}, [STATIC])  # D1 re-pointed, STATIC deleted
        second = await table.mapped()
        await table.set_hosts({IPv4Address("198.51.100.11")}, {IPv4Address("198.51.100.10")})
        # A restarted daemon adopts the table: elements and sets are still there.
        again = NftTable(netns=ns.name)
        await again.ensure(only_ipv4_only_hosts=False)
        adopted = again.current, again.hosts
        rules = ruleset(ns)
        await again.remove()
        await again.remove()  # absent is fine
        return {"first": first, "second": second, "adopted": adopted, "rules": rules}

    got = asyncio.run(scenario())
    assert got["first"] == {D1: P1, STATIC: PSTATIC}
    assert got["second"] == {D1: P2, D2: P2}
    current, hosts = got["adopted"]  # type: ignore[misc]
    assert current == {D1: P2, D2: P2}
    assert hosts == {
        "dual_stack": {IPv4Address("198.51.100.11")},
        "ipv4_only": {IPv4Address("198.51.100.10")},
    }
    rules = str(got["rules"])
    assert "ip saddr @dual_stack return" in rules
    assert "ip saddr != @ipv4_only return" not in rules  # ensure(False) rewrote the rules
    assert TABLE not in ruleset(ns)
    assert run(ns, ["nft", "list", "table", "ip", "someone_else"]).stdout == other_before


@pytest.mark.lab
def test_a_table_removed_underneath_is_an_error_with_nfts_words(lab_ns: Netns):
    from clat_eamt.dataplane.nft import NftError  # noqa: PLC0415

    async def scenario() -> str:
        table = NftTable(netns=lab_ns.name)
        await table.ensure(only_ipv4_only_hosts=True)
        run(lab_ns, ["nft", "flush", "ruleset"])  # someone else wiped the firewall
        try:
            await table.apply({D1: P1}, [])
        except NftError as error:
            return str(error)
        return "no error"

    text = asyncio.run(scenario())
    assert text.startswith("nft: ") and "No such file or directory" in text
