"""Wiring of the 464XLAT lab: links, addresses, sysctls and routes (values from `xlatnet`)."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable

from .netns import Netns, run
from .procs import tool
from .xlatnet import (
    BRIDGE,
    CE_LAN_ADDR4,
    CE_LAN_ADDR6,
    CE_WAN_ADDR6,
    CE_WAN_IF,
    CLIENT_IF,
    DELEGATED_PREFIX,
    INET_ISP_ADDR4,
    INET_ISP_ADDR6,
    INET_ISP_IF,
    ISP_CE_ADDR6,
    ISP_CE_IF,
    ISP_INET_ADDR4,
    ISP_INET_ADDR6,
    ISP_INET_IF,
    KNOT_ADDR,
    LAN6_ADDR4,
    LAN6_ADDR6,
    LAN6_MAC,
    LAN6_NET,
    LAN6_PORT,
    LAN_ADDR4,
    LAN_MAC,
    LAN_NET,
    LAN_PORT,
    WAN_PLEN,
)
from .zone import DOCUMENTATION_NETS, all_zones

_NOT_IN_INET = {ISP_INET_ADDR4, INET_ISP_ADDR4}  # isp's; inet's own veth address


def _prefixlen(cidr: str) -> int:
    return ipaddress.ip_network(cidr).prefixlen


def server_addresses() -> list[str]:
    """Every documentation A/AAAA address of the lab zones that inet holds (on `lo`)."""
    found: set[str] = set()
    for zone in all_zones():
        for rec in zone.records:
            if rec.rtype not in ("A", "AAAA"):
                continue
            addr = ipaddress.ip_address(rec.rdata)
            if any(addr in net for net in DOCUMENTATION_NETS) and str(addr) not in _NOT_IN_INET:
                found.add(str(addr))
    found.add(KNOT_ADDR)
    return sorted(found, key=lambda a: (":" in a, ipaddress.ip_address(a).packed))


def ip_in(ns: Netns, *args: str) -> None:
    run(None, [tool("ip"), "-n", ns.name, *args])


def sysctl(ns: Netns, *settings: str) -> None:
    run(ns, [tool("sysctl"), "-qw", *settings])


def router_sysctls(ns: Netns) -> None:
    sysctl(
        ns,
        "net.ipv4.ip_forward=1",
        "net.ipv6.conf.all.forwarding=1",
        "net.ipv4.conf.all.rp_filter=0",
        "net.ipv4.conf.default.rp_filter=0",
    )


def no_dad(ns: Netns) -> None:
    """No duplicate address detection, so link-local addresses are usable at once (a tentative
    one held up the first IPv6 flow from a LAN client by 2-3 s).  Before the links exist."""
    sysctl(ns, "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")


def ipv4_only(ns: Netns) -> None:
    """No IPv6 at all (not even link-local): a host the daemon must see as IPv4-only. Set
    before its interfaces exist, so `default` covers them."""
    sysctl(ns, "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")


def link(
    ns_a: Netns,
    if_a: str,
    ns_b: Netns,
    if_b: str,
    addrs_a: Iterable[str] = (),
    addrs_b: Iterable[str] = (),
    *,
    mac_b: str | None = None,
) -> None:
    """A veth pair if_a (in ns_a) <-> if_b (in ns_b), addresses (CIDR) added, both up."""
    peer = ["peer", "name", if_b, *(["address", mac_b] if mac_b else []), "netns", ns_b.name]
    ip_in(ns_a, "link", "add", if_a, "type", "veth", *peer)
    for ns, ifname, addrs in ((ns_a, if_a, addrs_a), (ns_b, if_b, addrs_b)):
        for addr in addrs:
            ip_in(ns, "addr", "add", addr, "dev", ifname, *(["nodad"] if ":" in addr else []))
        ip_in(ns, "link", "set", ifname, "up")


def links_ready(ns: Netns, *, ipv6: bool = True) -> bool:
    """Every link of `ns` (but lo and tuns) is operationally up and, with `ipv6`, has its
    link-local address: only then does the kernel answer neighbour solicitations for the
    link's other addresses too.  The carrier of a fresh veth reaches IPv6 through the kernel's
    linkwatch, up to a second later; an early flow lost its first SYN to that (1 s stall)."""
    out = run(ns, [tool("ip"), "-j", "addr", "show"]).stdout
    for dev in json.loads(out):
        if dev["ifname"] == "lo" or "POINTOPOINT" in dev.get("flags", []):
            continue
        if dev.get("operstate") != "UP":
            return False
        local6 = [
            a
            for a in dev.get("addr_info", [])
            if a.get("family") == "inet6" and a.get("scope") == "link"
        ]
        if ipv6 and not any(not a.get("tentative") for a in local6):
            return False
    return True


def add_lo_addresses(ns: Netns, addrs: Iterable[str]) -> None:
    """Many host addresses on `lo` in one `ip -batch` (a listener on 0.0.0.0/:: accepts them)."""
    lines = [
        f"addr add {a}/{128 if ':' in a else 32} dev lo{' nodad' if ':' in a else ''}"
        for a in addrs
    ]
    run(None, [tool("ip"), "-n", ns.name, "-batch", "-"], input="\n".join(lines) + "\n")


def wire(inet: Netns, isp: Netns, ce: Netns, lan: Netns, lan6: Netns) -> None:
    """Links, addresses, forwarding and the routes that need no tun, in every namespace."""
    for router in (isp, ce):
        router_sysctls(router)
    for ns in (inet, isp, ce, lan6):
        no_dad(ns)
    link(isp, ISP_INET_IF, inet, INET_ISP_IF,
         [f"{ISP_INET_ADDR4}/24", f"{ISP_INET_ADDR6}/64"],
         [f"{INET_ISP_ADDR4}/24", f"{INET_ISP_ADDR6}/64"])  # fmt: skip
    link(isp, ISP_CE_IF, ce, CE_WAN_IF,
         [f"{ISP_CE_ADDR6}/{WAN_PLEN}"], [f"{CE_WAN_ADDR6}/{WAN_PLEN}"])  # fmt: skip
    add_lo_addresses(inet, server_addresses())
    # inet answers everything it knows; it reaches the ISP's networks through the ISP.
    ip_in(inet, "-6", "route", "add", "default", "via", ISP_INET_ADDR6)
    # isp: the internet is its default; the CE's delegated prefix goes to the CE.
    ip_in(isp, "route", "add", "default", "via", INET_ISP_ADDR4)
    ip_in(isp, "-6", "route", "add", "default", "via", INET_ISP_ADDR6)
    ip_in(isp, "-6", "route", "add", DELEGATED_PREFIX, "via", CE_WAN_ADDR6)
    # ce: IPv6 default to the ISP; the LAN bridge with its two client ports.
    ip_in(ce, "-6", "route", "add", "default", "via", ISP_CE_ADDR6)
    ip_in(ce, "link", "add", BRIDGE, "type", "bridge", "stp_state", "0", "forward_delay", "0")
    ip_in(ce, "addr", "add", f"{CE_LAN_ADDR4}/{_prefixlen(LAN_NET)}", "dev", BRIDGE)
    ip_in(ce, "addr", "add", f"{CE_LAN_ADDR6}/{_prefixlen(LAN6_NET)}", "dev", BRIDGE, "nodad")
    ip_in(ce, "link", "set", BRIDGE, "up")
    plen4 = _prefixlen(LAN_NET)
    ipv4_client(ce, lan, LAN_ADDR4, LAN_MAC, LAN_PORT)
    link(ce, LAN6_PORT, lan6, CLIENT_IF, [],
         [f"{LAN6_ADDR4}/{plen4}", f"{LAN6_ADDR6}/{_prefixlen(LAN6_NET)}"],
         mac_b=LAN6_MAC)  # fmt: skip
    ip_in(ce, "link", "set", LAN6_PORT, "master", BRIDGE)
    ip_in(lan6, "route", "add", "default", "via", CE_LAN_ADDR4)
    ip_in(lan6, "-6", "route", "add", "default", "via", CE_LAN_ADDR6)


def ipv4_client(ce: Netns, client: Netns, addr4: str, mac: str, port: str) -> None:
    """An IPv4-only client on ce's LAN bridge: no IPv6 at all, `addr4` in the LAN /26 behind a
    veth whose bridge end in ce is `port`, its own fixed `mac`, default route via the router."""
    ipv4_only(client)
    link(ce, port, client, CLIENT_IF, [], [f"{addr4}/{_prefixlen(LAN_NET)}"], mac_b=mac)
    ip_in(ce, "link", "set", port, "master", BRIDGE)
    ip_in(client, "route", "add", "default", "via", CE_LAN_ADDR4)
