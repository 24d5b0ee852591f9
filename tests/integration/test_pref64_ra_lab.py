"""Pref64 from router advertisements in the lab: the daemon in a router namespace next to a
real DNS64 (unbound, 2001:db8:64::/96, found by RFC 7050 discovery), and RAs with the PREF64
option (RFC 8781) sent by this test itself from an "ISP" namespace on the WAN link (Debian
12's radvd 2.19 cannot send the option) and from a "LAN" namespace.  Raw ICMPv6 sockets in
the namespaces; documentation addresses only.

Shown: the RA's prefix wins over DNS64's (RFC 9872) and status names the source; an RA on the
LAN (no default route there) is never used; lifetime 0 withdraws it at once; a lifetime that
runs out gives DNS64's prefix back.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from ipaddress import IPv6Network
from pathlib import Path
from typing import Any

import pytest

from clat_eamt.core.ra import encode_pref64, encode_ra
from clat_eamt.dataplane.netns import socket_in
from tests.integration.proxykit import Daemon, start_daemon
from tests.labkit import DnsChain, Netns
from tests.labkit.netns import ip, veth
from tests.labkit.require import LAB_TOOLS, SERVER_TOOLS, require_root, require_tools
from tests.labkit.zone import DNS64_PREFIX

RA_PREFIX = IPv6Network("2001:db8:65::/96")
ROGUE_PREFIX = IPv6Network("2001:db8:66::/96")
NETNS_DIR = "/var/run/netns"


def ifindex(ns: Netns, ifname: str) -> int:
    out = ip("-n", ns.name, "-j", "link", "show", "dev", ifname).stdout
    return int(json.loads(out)[0]["ifindex"])


def link_local_ready(ns: Netns, ifname: str) -> bool:
    out = ip("-n", ns.name, "-j", "-6", "addr", "show", "dev", ifname, "scope", "link").stdout
    found = [a for dev in json.loads(out) for a in dev.get("addr_info", [])]
    return bool(found) and not any(a.get("tentative") for a in found)


def send_ra(ns: Netns, ifname: str, prefix: IPv6Network, lifetime: int) -> None:
    """One RA to all nodes (ff02::1) from the link-local address, hop limit 255 (RFC 4861),
    router lifetime 0 (no default route from it; RFC 8781: the option does not depend on it)."""
    packet = encode_ra([encode_pref64(prefix, lifetime)], router_lifetime=0)
    sock = socket_in(
        f"{NETNS_DIR}/{ns.name}", socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6
    )
    with sock:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        sock.sendto(packet, ("ff02::1", 0, 0, ifindex(ns, ifname)))


def wait_pref64(
    daemon: Daemon, check: Callable[[dict[str, Any]], bool], timeout: float = 20
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        pref64 = dict(daemon.status()["pref64"])
        if check(pref64):
            return pref64
        if time.monotonic() > deadline:
            raise AssertionError(f"pref64 status never matched: {pref64}")
        time.sleep(0.2)


@pytest.mark.lab
def test_pref64_from_the_wan_ra_wins_over_dns64_and_follows_its_lifetime(tmp_path: Path) -> None:
    require_root()
    require_tools(*SERVER_TOOLS, *LAB_TOOLS)
    with Netns("ce") as ce, Netns("isp") as isp, Netns("lan") as lan:
        for ns in (ce, isp, lan):  # usable link-local sources at once
            ip("netns", "exec", ns.name, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0",
               "net.ipv6.conf.default.accept_dad=0")  # fmt: skip
        wan_ce, wan_isp = veth(ce, isp, "2001:db8:ffff::2/64", "2001:db8:ffff::1/64")
        _lan_ce, lan_host = veth(ce, lan, "2001:db8:1::1/64", "2001:db8:1::2/64")
        ip("-n", ce.name, "-6", "route", "add", "default", "via", "2001:db8:ffff::1", "dev", wan_ce)
        deadline = time.monotonic() + 10
        while not (link_local_ready(isp, wan_isp) and link_local_ready(lan, lan_host)):
            assert time.monotonic() < deadline, "no link-local address"
            time.sleep(0.05)
        with DnsChain(tmp_path, netns=ce) as chain:
            daemon = start_daemon(chain)  # no pref64 configured: discovery and RAs
            dns = wait_pref64(daemon, lambda p: p["source"] == "dns (RFC 7050)")
            assert dns["prefixes"] == [DNS64_PREFIX]

            send_ra(lan, lan_host, ROGUE_PREFIX, 600)  # a LAN host's RA: never used
            wait_pref64(daemon, lambda p: p["router_adverts"]["counters"]["not_wan"] >= 1)

            send_ra(isp, wan_isp, RA_PREFIX, 600)
            ra = wait_pref64(daemon, lambda p: p["source"] == "ra (RFC 8781)")
            assert ra["prefixes"] == [str(RA_PREFIX)]
            (heard,) = ra["router_adverts"]["heard"]
            assert heard["interface"] == wan_ce and heard["prefix"] == str(RA_PREFIX)
            assert heard["router"].startswith("fe80::") and 590 < heard["expires_in"] <= 600
            assert ra["router_adverts"]["wan_interfaces"] == [wan_ce]
            assert ra["discovery"]["prefixes"] == [DNS64_PREFIX]  # still known, ranked lower

            send_ra(isp, wan_isp, RA_PREFIX, 0)  # withdrawn
            back = wait_pref64(daemon, lambda p: p["source"] == "dns (RFC 7050)")
            assert back["prefixes"] == [DNS64_PREFIX]

            send_ra(isp, wan_isp, RA_PREFIX, 8)  # one unit of Scaled Lifetime
            wait_pref64(daemon, lambda p: p["source"] == "ra (RFC 8781)")
            began = time.monotonic()
            wait_pref64(daemon, lambda p: p["source"] == "dns (RFC 7050)", timeout=30)
            assert time.monotonic() - began < 12
