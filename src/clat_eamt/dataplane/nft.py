"""The daemon's own nftables table: DNAT map D -> P and the host sets (SPEC section 5).

    table ip clat_eamt
      map mapped       D -> P (prefix to prefix: static entries may be /24 -> /24)
      set dual_stack   LAN hosts never DNATed (they reach X over IPv6 themselves)
      set ipv4_only    in host_mode ipv4-only, the only hosts that are DNATed
      chain prerouting nat, dstnat priority: the LAN's flows
      chain output     nat, dstnat priority: the router's own flows

conntrack fixes a connection's DNAT target when its first packet passes, so changing or deleting
an element never touches a running flow (SPEC 5, measured in SPEC 7).  Everything here is sent
to ``nft -f -`` as one batch, which the kernel applies atomically; nothing outside this table is
ever touched, and elements are changed as diffs, never by flushing the map.  The chains' rules
are configuration, not state: ``ensure`` replaces them in the same batch that creates the table.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from clat_eamt.dataplane.translator import Runner, run_command

TABLE = "clat_eamt"
MAP = "mapped"
DUAL_STACK, IPV4_ONLY = "dual_stack", "ipv4_only"


class NftError(Exception):
    """nft refused a batch; the message carries nft's own words."""


def _prefix(net: IPv4Network) -> str:
    return str(net.network_address) if net.prefixlen == 32 else str(net)


def table_batch(only_ipv4_only_hosts: bool) -> str:
    """Create the table if absent and (re)write its rules; elements stay as they are."""
    dnat = f"dnat ip prefix to ip daddr map @{MAP}"
    lines = [
        f"add table ip {TABLE}",
        f"add map ip {TABLE} {MAP} {{ type ipv4_addr : interval ipv4_addr; flags interval; }}",
        f"add set ip {TABLE} {DUAL_STACK} {{ type ipv4_addr; }}",
        f"add set ip {TABLE} {IPV4_ONLY} {{ type ipv4_addr; }}",
    ]
    for chain in ("prerouting", "output"):
        lines += [  # -100 is "dstnat"; nft 1.0.6 accepts the name for prerouting only
            f"add chain ip {TABLE} {chain} "
            f"{{ type nat hook {chain} priority -100; policy accept; }}",
            f"flush chain ip {TABLE} {chain}",
        ]
    lines.append(f"add rule ip {TABLE} prerouting ip saddr @{DUAL_STACK} return")
    if only_ipv4_only_hosts:  # SPEC 3: when unsure, do not optimize
        lines.append(f"add rule ip {TABLE} prerouting ip saddr != @{IPV4_ONLY} return")
    lines.append(f"add rule ip {TABLE} prerouting {dnat}")
    lines.append(f"add rule ip {TABLE} output {dnat}")
    return "\n".join(lines) + "\n"


def elements_batch(
    add: Mapping[IPv4Network, IPv4Network],
    delete: Iterable[IPv4Network],
    current: Iterable[IPv4Network],
) -> str:
    """Delete ``delete`` (those present) and add ``add``; an element whose target changes is
    deleted and added in the same atomic batch."""
    present = set(current)
    gone = [d for d in dict.fromkeys([*delete, *(d for d in add if d in present)]) if d in present]
    lines = [f"delete element ip {TABLE} {MAP} {{ {_prefix(d)} }}" for d in gone]
    lines += [f"add element ip {TABLE} {MAP} {{ {_prefix(d)} : {p} }}" for d, p in add.items()]
    return "\n".join(lines) + "\n" if lines else ""


def set_batch(name: str, wanted: set[IPv4Address], current: set[IPv4Address]) -> str:
    lines = [f"delete element ip {TABLE} {name} {{ {a} }}" for a in sorted(current - wanted)]
    lines += [f"add element ip {TABLE} {name} {{ {a} }}" for a in sorted(wanted - current)]
    return "\n".join(lines) + "\n" if lines else ""


def _network(value: Any) -> IPv4Network:
    if isinstance(value, dict) and "prefix" in value:
        return IPv4Network(f"{value['prefix']['addr']}/{value['prefix']['len']}")
    return IPv4Network(str(value))


def parse_map(text: str) -> dict[IPv4Network, IPv4Network]:
    """The elements of ``nft -j list map`` output."""
    for item in json.loads(text).get("nftables", []):
        if "map" in item:
            return {_network(k): _network(v) for k, v in item["map"].get("elem", [])}
    return {}


def parse_set(text: str) -> set[IPv4Address]:
    for item in json.loads(text).get("nftables", []):
        if "set" in item:
            return {IPv4Address(str(e)) for e in item["set"].get("elem", []) if isinstance(e, str)}
    return set()


class NftTable:
    def __init__(
        self, runner: Runner = run_command, binary: str = "nft", netns: str | None = None
    ) -> None:
        self.runner = runner
        self.argv = ["ip", "netns", "exec", netns, binary] if netns else [binary]
        self.current: dict[IPv4Network, IPv4Network] = {}
        self.hosts: dict[str, set[IPv4Address]] = {DUAL_STACK: set(), IPV4_ONLY: set()}

    async def _run(self, *args: str, input: str | None = None) -> str:
        result = await self.runner([*self.argv, *args], input)
        if result.returncode != 0:
            raise NftError(f"nft: {(result.stderr or result.stdout).strip()}")
        return result.stdout

    async def _batch(self, text: str) -> None:
        if text:
            await self._run("-f", "-", input=text)

    async def ensure(self, only_ipv4_only_hosts: bool) -> None:
        """Create or adopt the table; its elements are kept (a restart breaks no flow)."""
        await self._batch(table_batch(only_ipv4_only_hosts))
        self.current = await self.mapped()
        for name in self.hosts:
            self.hosts[name] = parse_set(await self._run("-j", "list", "set", "ip", TABLE, name))

    async def mapped(self) -> dict[IPv4Network, IPv4Network]:
        return parse_map(await self._run("-j", "list", "map", "ip", TABLE, MAP))

    async def apply(
        self, add: Mapping[IPv4Network, IPv4Network], delete: Iterable[IPv4Network]
    ) -> None:
        delete = list(delete)
        add = {d: p for d, p in add.items() if self.current.get(d) != p}
        await self._batch(elements_batch(add, delete, self.current))
        for d in delete:
            self.current.pop(d, None)
        self.current.update(add)

    async def set_hosts(self, dual_stack: set[IPv4Address], ipv4_only: set[IPv4Address]) -> None:
        wanted = {DUAL_STACK: dual_stack, IPV4_ONLY: ipv4_only}
        text = "".join(set_batch(n, wanted[n], self.hosts[n]) for n in self.hosts)
        await self._batch(text)
        self.hosts = {name: set(value) for name, value in wanted.items()}

    async def remove(self) -> None:
        """Delete the whole table (stop with clean-up); absent is fine."""
        try:
            await self._batch(f"delete table ip {TABLE}\n")
        except NftError as error:
            if "No such file" not in str(error):
                raise
        self.current = {}
