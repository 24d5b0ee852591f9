"""The daemon's one nftables table: both legs of every mapping (SPEC section 5, dataplane v2).

    table inet clat_eamt
      map dnat4        D -> P        ip DNAT of the LAN's IPv4-only hosts into the pool
      map dnat6        T(P) -> X     ip6 DNAT of what the CLAT emits for P to the real IPv6
      set dual_stack   LAN hosts never steered (they reach X over IPv6 themselves)
      set ipv4_only    in host_mode ipv4-only, the only hosts that are steered
      set brake, suspended  the safety net's: no IPv4 leg DNATed to them (``dataplane.guard``)
      set unguarded    the safety net's: IPv6 legs of IPv6-only entries it leaves alone
      chain prerouting nat, dstnat: the LAN's IPv4 (dnat4) and the CLAT's IPv6 (dnat6)
      chain output     nat, dstnat: the router's own IPv4 flows (dnat4)
      chain postrouting nat, srcnat: only for a tayga run by the daemon, the LAN SNATed to
                       clat_ipv4 on its way into the tun (tayga maps that one IPv4 only)
      chain forward    filter: T(pool) never leaves the router untranslated

conntrack fixes both legs of a connection when its first packet passes, so adding, changing or
deleting elements never moves a running flow (SPEC 7).  Steering acts on connection-opening
packets only (a TCP SYN; a mid-stream pickup by conntrack, seen when the table was loaded under
a running flow, must never be DNATed: it would reset the flow).  The CLAT itself is never
changed per mapping.  Each change is one atomic nft transaction; the chains' rules are
configuration and are rewritten in the transaction that creates or adopts the table, elements
are changed as diffs, never by flushing.  A dnat4 element's comment records the mapping's origin,
expiry and names, so a restarted daemon adopts a Valid mapping as Valid (``core.dataplane.Note``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Network
from typing import Any

from clat_eamt.core.dataplane import Note
from clat_eamt.dataplane.guard import (
    Guard,
    brake_batch,
    brake_lines,
    brake_rules,
    guard_lines,
    suspended_batch,
    unguarded_lines,
)
from clat_eamt.dataplane.nftlib import Nft, NftError

TABLE = "clat_eamt"
DNAT4, DNAT6 = "dnat4", "dnat6"
DUAL_STACK, IPV4_ONLY = "dual_stack", "ipv4_only"
COMMENT_MAX = 128  # NFTNL_UDATA_COMMENT_MAXLEN: nft refuses longer element comments
_T = f"inet {TABLE}"

__all__ = ["DNAT4", "DNAT6", "TABLE", "NftError", "NftTable", "Steering"]


@dataclass(frozen=True)
class Steering:
    """What the table's rules say (configuration, not state)."""

    only_ipv4_only_hosts: bool
    clat_device: str | None  # dnat6 acts on packets from it; None: no ip6 leg (Jool netfilter)
    nat44: tuple[str, IPv4Address] | None = None  # (tun, clat_ipv4): SNAT the LAN into tayga
    unsteered: tuple[IPv6Network, ...] = ()  # T(pool): dropped if it would leave untranslated
    guard: Guard | None = None  # the safety net's rules (``dataplane.guard``, issue 25)


def _v4(net: IPv4Network) -> str:
    return str(net.network_address) if net.prefixlen == 32 else str(net)


def _v6(net: IPv6Network) -> str:
    return str(net.network_address) if net.prefixlen == 128 else str(net)


def table_batch(steering: Steering) -> str:
    """Create the table if absent and (re)write its rules; elements stay as they are."""
    lines = [
        f"add table {_T}",
        f"add map {_T} {DNAT4} {{ type ipv4_addr : interval ipv4_addr; flags interval; }}",
        f"add map {_T} {DNAT6} {{ type ipv6_addr : interval ipv6_addr; flags interval; }}",
        f"add set {_T} {DUAL_STACK} {{ type ipv4_addr; }}",
        f"add set {_T} {IPV4_ONLY} {{ type ipv4_addr; }}",
        *brake_lines(_T),
    ]
    chains = {  # -100 is "dstnat"; nft 1.0.6 accepts the name for prerouting only
        "prerouting": "type nat hook prerouting priority -100",
        "output": "type nat hook output priority -100",
        "postrouting": "type nat hook postrouting priority 100",
        "forward": "type filter hook forward priority 0",
    }
    for chain, spec in chains.items():
        lines += [
            f"add chain {_T} {chain} {{ {spec}; policy accept; }}",
            f"flush chain {_T} {chain}",
        ]
    opening = "tcp flags & (syn | ack) != syn return"  # only a SYN opens a TCP connection
    dnat4 = f"ct state new dnat ip prefix to ip daddr map @{DNAT4}"
    rule = f"add rule {_T}"
    lines += [
        f"{rule} prerouting meta l4proto tcp {opening}",
        f"{rule} prerouting meta nfproto ipv4 ip saddr @{DUAL_STACK} return",
    ]
    if steering.only_ipv4_only_hosts:  # SPEC 3: when unsure, do not optimize
        lines.append(f"{rule} prerouting meta nfproto ipv4 ip saddr != @{IPV4_ONLY} return")
    lines += brake_rules(_T, "prerouting")
    lines.append(f"{rule} prerouting meta nfproto ipv4 {dnat4}")
    if steering.clat_device is not None:
        device = json.dumps(steering.clat_device)
        lines.append(
            f"{rule} prerouting iifname {device} meta nfproto ipv6 "
            f"ct state new dnat ip6 prefix to ip6 daddr map @{DNAT6}"
        )
    lines += [
        f"{rule} output meta l4proto tcp {opening}",
        *brake_rules(_T, "output"),
        f"{rule} output meta nfproto ipv4 {dnat4}",
    ]
    if steering.nat44 is not None:
        tun, clat_ipv4 = steering.nat44
        lines.append(
            f"{rule} postrouting oifname {json.dumps(tun)} meta nfproto ipv4 "
            f"ip saddr != {clat_ipv4} snat ip to {clat_ipv4}"
        )
    if steering.unsteered:
        listed = ", ".join(str(n) for n in steering.unsteered)
        lines.append(f"{rule} forward meta nfproto ipv6 ip6 daddr {{ {listed} }} drop")
    if steering.guard is not None:
        lines += guard_lines(_T, steering.guard, steering.clat_device, steering.unsteered)
    return "\n".join(lines) + "\n"


def elements_batch(
    add4: Mapping[IPv4Network, tuple[IPv4Network, Note | None]],
    del4: Iterable[IPv4Network],
    add6: Mapping[IPv6Network, IPv6Network],
    del6: Iterable[IPv6Network],
) -> str:
    """One transaction: deletions first (``del4``/``del6`` hold only present keys, including
    those ``add4``/``add6`` re-point), then additions."""
    lines = [f"delete element {_T} {DNAT4} {{ {_v4(d)} }}" for d in del4]
    lines += [f"delete element {_T} {DNAT6} {{ {_v6(t)} }}" for t in del6]
    for t, x in add6.items():
        lines.append(f"add element {_T} {DNAT6} {{ {_v6(t)} : {x} }}")
    for d, (p, note) in add4.items():
        comment = f" comment {json.dumps(note.text(COMMENT_MAX))}" if note is not None else ""
        lines.append(f"add element {_T} {DNAT4} {{ {_v4(d)}{comment} : {p} }}")
    return "\n".join(lines) + "\n" if lines else ""


def set_batch(name: str, wanted: set[IPv4Address], current: set[IPv4Address]) -> str:
    lines = [f"delete element {_T} {name} {{ {a} }}" for a in sorted(current - wanted)]
    lines += [f"add element {_T} {name} {{ {a} }}" for a in sorted(wanted - current)]
    return "\n".join(lines) + "\n" if lines else ""


def _prefix(value: Any) -> str:
    if isinstance(value, dict) and "elem" in value:
        value = value["elem"]["val"]
    if isinstance(value, dict) and "prefix" in value:
        return f"{value['prefix']['addr']}/{value['prefix']['len']}"
    return str(value)


def _comment(value: Any) -> str | None:
    if isinstance(value, dict) and "elem" in value:
        comment = value["elem"].get("comment")
        return str(comment) if comment is not None else None
    return None


def parse_elements(text: str) -> list[tuple[str, str, str | None]]:
    """(key, value, comment) of the elements in ``nft -j list map`` output."""
    for item in json.loads(text).get("nftables", []):
        if "map" in item:
            return [(_prefix(k), _prefix(v), _comment(k)) for k, v in item["map"].get("elem", [])]
    return []


def parse_set(text: str) -> set[IPv4Address]:
    for item in json.loads(text).get("nftables", []):
        if "set" in item:
            return {IPv4Address(str(e)) for e in item["set"].get("elem", []) if isinstance(e, str)}
    return set()


class NftTable:
    """The table as the daemon last wrote it (``dnat4``, ``notes``, ``dnat6``, ``hosts``)."""

    def __init__(self, nft: Nft) -> None:
        self.nft = nft
        self.dnat4: dict[IPv4Network, IPv4Network] = {}
        self.notes: dict[IPv4Network, Note] = {}
        self.dnat6: dict[IPv6Network, IPv6Network] = {}
        self.hosts: dict[str, set[IPv4Address]] = {DUAL_STACK: set(), IPV4_ONLY: set()}
        self.braked = False
        self.suspended: set[IPv4Network] = set()
        self.unguarded: set[IPv6Network] = set()

    async def ensure(self, steering: Steering) -> None:
        """Create or adopt the table, before any element is added; elements are kept (a
        restart breaks no flow) and read back with their notes."""
        await self.nft.run(table_batch(steering))
        self.braked = False  # the batch emptied the brake, suspended and unguarded sets
        self.suspended, self.unguarded = set(), set()
        await self.read()

    async def read(self) -> None:
        self.dnat4, self.notes, self.dnat6 = {}, {}, {}
        for key, value, comment in parse_elements(await self._list("map", DNAT4)):
            d = IPv4Network(key)
            self.dnat4[d] = IPv4Network(value)
            note = Note.parse(comment) if comment else None
            if note is not None:
                self.notes[d] = note
        for key, value, _ in parse_elements(await self._list("map", DNAT6)):
            self.dnat6[IPv6Network(key)] = IPv6Network(value)
        for name in self.hosts:
            self.hosts[name] = parse_set(await self._list("set", name))

    async def _list(self, kind: str, name: str) -> str:
        return await self.nft.run(f"list {kind} {_T} {name}\n", json=True)

    async def apply(
        self,
        add4: Mapping[IPv4Network, tuple[IPv4Network, Note | None]],
        del4: Iterable[IPv4Network],
        add6: Mapping[IPv6Network, IPv6Network],
        del6: Iterable[IPv6Network],
        *,
        unguard: Iterable[IPv6Network] = (),
        guard: Iterable[IPv6Network] = (),
    ) -> None:
        """Change elements as one transaction; unchanged ones are left alone.  ``unguard``
        and ``guard``: T(P) entering and leaving the ``unguarded`` set, in the same
        transaction as the legs, so no flow of a new IPv6-only leg is ever marked."""
        add4 = {d: pn for d, pn in add4.items() if self.dnat4.get(d) != pn[0]}
        add6 = {t: x for t, x in add6.items() if self.dnat6.get(t) != x}
        gone4 = [d for d in dict.fromkeys([*del4, *add4]) if d in self.dnat4]
        gone6 = [t for t in dict.fromkeys([*del6, *add6]) if t in self.dnat6]
        freed = [t for t in dict.fromkeys(guard) if t in self.unguarded]
        held = [t for t in dict.fromkeys(unguard) if t not in self.unguarded]
        batch = elements_batch(add4, gone4, add6, gone6)
        batch += "".join(f"{line}\n" for line in unguarded_lines(_T, held, freed))
        await self.nft.run(batch)
        self.unguarded.difference_update(freed)
        self.unguarded.update(held)
        for d in gone4:
            self.dnat4.pop(d, None)
            self.notes.pop(d, None)
        for t in gone6:
            self.dnat6.pop(t, None)
        for d, (p, note) in add4.items():
            self.dnat4[d] = p
            if note is not None:
                self.notes[d] = note
        self.dnat6.update(add6)

    async def set_hosts(self, dual_stack: set[IPv4Address], ipv4_only: set[IPv4Address]) -> None:
        wanted = {DUAL_STACK: dual_stack, IPV4_ONLY: ipv4_only}
        await self.nft.run("".join(set_batch(n, wanted[n], self.hosts[n]) for n in self.hosts))
        self.hosts = {name: set(value) for name, value in wanted.items()}

    async def set_brake(self, engaged: bool) -> None:
        """The safety net's brake (``dataplane.guard``): no new flow steered while engaged."""
        if engaged != self.braked:
            await self.nft.run(brake_batch(_T, engaged))
            self.braked = engaged

    async def set_suspended(
        self, add: Iterable[IPv4Network], remove: Iterable[IPv4Network]
    ) -> None:
        """Destinations not steered, their target broken (``core.suspend``): as a diff."""
        gone = [d for d in remove if d in self.suspended]
        new = [d for d in add if d not in self.suspended]
        if gone or new:
            await self.nft.run(suspended_batch(_T, new, gone))
            self.suspended.difference_update(gone)
            self.suspended.update(new)

    async def remove(self) -> None:
        """Delete the whole table (stop with clean-up); absent is fine."""
        try:
            await self.nft.run(f"delete table {_T}\n")
        except NftError as error:
            if "No such file" not in str(error):
                raise
        self.dnat4, self.notes, self.dnat6 = {}, {}, {}
