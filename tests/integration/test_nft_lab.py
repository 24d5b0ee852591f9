"""The daemon's nftables table in a namespace of its own (lab), driven in process through
libnftables: created or adopted, both legs changed as diffs in one transaction, element notes
read back, nothing outside it touched, removed on clean stop."""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address, IPv4Network, IPv6Network

import pytest

from clat_eamt.core.dataplane import Note
from clat_eamt.dataplane.nft import TABLE, NftError, NftTable, Steering
from clat_eamt.dataplane.nftlib import Nft
from tests.labkit import Netns
from tests.labkit.netns import run

D1, D2, STATIC = (
    IPv4Network("192.0.2.10/32"),
    IPv4Network("192.0.2.11/32"),
    IPv4Network("203.0.113.0/25"),
)
P1, P2, PSTATIC = (
    IPv4Network("198.51.100.129/32"),
    IPv4Network("198.51.100.130/32"),
    IPv4Network("198.51.100.0/25"),
)
T1, X1 = IPv6Network("2001:db8:64::c633:6481/128"), IPv6Network("2001:db8:1::10/128")
TSTATIC, XSTATIC = IPv6Network("2001:db8:64::c633:6400/121"), IPv6Network("2001:db8:2::/121")
OTHER = "table ip someone_else {\n chain c { type nat hook prerouting priority 0; }\n}\n"
STEER = Steering(True, "clat", None, (IPv6Network("2001:db8:64::c633:6480/121"),))


def ruleset(ns: Netns) -> str:
    return run(ns, ["nft", "list", "ruleset"]).stdout


@pytest.mark.lab
def test_table_lifecycle_touches_nothing_else(lab_ns: Netns):
    run(ns := lab_ns, ["nft", "-f", "-"], input=OTHER)
    other_before = run(ns, ["nft", "list", "table", "ip", "someone_else"]).stdout
    note = Note("dns", 1234.5, ("ds.example", "www.ds.example"))

    async def scenario() -> dict[str, object]:
        table = NftTable(Nft(netns=ns.name))
        assert table.nft.via == "libnftables"
        await table.ensure(STEER)
        await table.apply({D1: (P1, note), STATIC: (PSTATIC, None)}, [], {T1: X1}, [])
        await table.apply({}, [], {TSTATIC: XSTATIC}, [])
        first = dict(table.dnat4), dict(table.dnat6)
        await table.apply({D1: (P2, None), D2: (P2, None)}, [STATIC], {}, [TSTATIC])
        second = dict(table.dnat4), dict(table.dnat6)
        await table.set_hosts({IPv4Address("198.51.100.11")}, {IPv4Address("198.51.100.10")})
        # A restarted daemon adopts the table: elements, notes and sets are still there.
        await table.apply({D1: (P1, note)}, [], {}, [])
        again = NftTable(Nft(netns=ns.name))
        await again.ensure(Steering(False, "clat"))
        adopted = again.dnat4, again.notes, again.dnat6, again.hosts
        rules = ruleset(ns)
        await again.remove()
        await again.remove()  # absent is fine
        return {"first": first, "second": second, "adopted": adopted, "rules": rules}

    got = asyncio.run(scenario())
    assert got["first"] == (
        {D1: P1, STATIC: PSTATIC},
        {T1: X1, TSTATIC: XSTATIC},
    )
    assert got["second"] == ({D1: P2, D2: P2}, {T1: X1})
    dnat4, notes, dnat6, hosts = got["adopted"]  # type: ignore[misc]
    assert dnat4 == {D1: P1, D2: P2} and dnat6 == {T1: X1}
    assert notes == {D1: note}
    assert hosts == {
        "dual_stack": {IPv4Address("198.51.100.11")},
        "ipv4_only": {IPv4Address("198.51.100.10")},
    }
    rules = str(got["rules"])
    assert "ip saddr @dual_stack return" in rules
    assert "ip saddr != @ipv4_only return" not in rules  # ensure(False) rewrote the rules
    assert 'iifname "clat" ct state new dnat ip6 prefix to ip6 daddr map @dnat6' in rules
    assert "tcp flags & (syn | ack) != syn return" in rules or "tcp flags != syn" in rules
    assert TABLE not in ruleset(ns)
    assert run(ns, ["nft", "list", "table", "ip", "someone_else"]).stdout == other_before


@pytest.mark.lab
def test_the_nft_binary_stands_in_when_the_library_is_missing(lab_ns: Netns):
    async def scenario() -> tuple[str, dict[IPv4Network, IPv4Network]]:
        table = NftTable(Nft(netns=lab_ns.name, use_library=False))
        await table.ensure(STEER)
        await table.apply({D1: (P1, None)}, [], {T1: X1}, [])
        again = NftTable(Nft(netns=lab_ns.name))
        await again.ensure(STEER)
        found = dict(again.dnat4)
        await again.remove()
        return table.nft.via, found

    via, found = asyncio.run(scenario())
    assert via == "nft binary" and found == {D1: P1}


@pytest.mark.lab
def test_a_table_removed_underneath_is_an_error_with_nfts_words(lab_ns: Netns):
    async def scenario() -> str:
        table = NftTable(Nft(netns=lab_ns.name))
        await table.ensure(STEER)
        run(lab_ns, ["nft", "flush", "ruleset"])  # someone else wiped the firewall
        try:
            await table.apply({D1: (P1, None)}, [], {}, [])
        except NftError as error:
            return str(error)
        return "no error"

    text = asyncio.run(scenario())
    assert text.startswith("nft: ") and "No such file or directory" in text
