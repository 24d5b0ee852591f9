"""Host classification from a real router's neighbour tables (SPEC section 3), lab.

router --veth-- client A: 192.0.2.10 and 2001:db8:1::10, talks to the router over both;
router --veth-- client B: 198.51.100.10 and its automatic link-local IPv6 only, talks to the
router over IPv4 and from its link-local address.  The router learns the neighbour entries from
the clients' own traffic (UDP datagrams to a closed port: ARP/NS, then an ICMP error back).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Any

import pytest

from clat_eamt.core.hosts import HostMemory
from clat_eamt.core.model import Host, HostClass
from clat_eamt.dataplane.neighbours import dump_neighbours
from tests.labkit import Netns, socket_in, veth
from tests.labkit.netns import ip
from tests.labkit.procs import wait_ready
from tests.labkit.require import LAB_TOOLS, require_root, require_tools

pytestmark = pytest.mark.lab

MAC_A, MAC_B = "00:00:5e:00:53:0a", "00:00:5e:00:53:0b"  # RFC 7042 documentation MACs
A4, A6, B4 = IPv4Address("192.0.2.10"), IPv6Address("2001:db8:1::10"), IPv4Address("198.51.100.10")
R_A4, R_A6, R_B4 = "192.0.2.1", "2001:db8:1::1", "198.51.100.1"


@dataclass
class Lab:
    router: Netns
    router_ifs: tuple[str, str]  # towards A, towards B
    sends: list[tuple[socket.socket, tuple[object, ...]]]

    def talk(self) -> None:
        """Each client sends one datagram per address family it has to the router."""
        for sock, address in self.sends:
            with contextlib.suppress(OSError):  # link-local may still be tentative (DAD)
                sock.sendto(b"x", address)


def link_local(ns: Netns, ifname: str) -> str:
    out = ip("-n", ns.name, "-j", "-6", "addr", "show", "dev", ifname, "scope", "link").stdout
    return str(json.loads(out)[0]["addr_info"][0]["local"])


@pytest.fixture
def lab() -> Iterator[Lab]:
    require_root()
    require_tools(*LAB_TOOLS)
    with (
        Netns("nbrouter") as router,
        Netns("nbclienta") as a,
        Netns("nbclientb") as b,
        contextlib.ExitStack() as stack,
    ):
        ra, ca = veth(router, a, [f"{R_A4}/24", f"{R_A6}/64"], [f"{A4}/24", f"{A6}/64"])
        rb, cb = veth(router, b, f"{R_B4}/24", f"{B4}/24")
        ip("-n", a.name, "link", "set", "dev", ca, "address", MAC_A)
        ip("-n", b.name, "link", "set", "dev", cb, "address", MAC_B)
        wait_ready(lambda: bool(link_local(router, rb)), 10, what="router link-local address")
        router_ll = link_local(router, rb)
        # The scope must be B's interface index inside B (a name would be looked up here).
        b_index = json.loads(ip("-n", b.name, "-j", "link", "show", "dev", cb).stdout)[0]["ifindex"]
        sockets = [
            (a, socket.AF_INET, (R_A4, 9)),
            (a, socket.AF_INET6, (R_A6, 9, 0, 0)),
            (b, socket.AF_INET, (R_B4, 9)),
            (b, socket.AF_INET6, (router_ll, 9, 0, b_index)),
        ]
        sends = [
            (stack.enter_context(socket_in(ns, family, socket.SOCK_DGRAM)), address)
            for ns, family, address in sockets
        ]
        yield Lab(router, (ra, rb), sends)


class NeighbourWatcher(HostMemory):
    """The daemon's look at the tables each tick (``daemon.Daemon.tick``): a dump, and the
    memory told of it or of its failure."""

    def __init__(self, interfaces: list[str], netns: str, observe: float) -> None:
        super().__init__(observe=observe)
        self.interfaces, self.netns = interfaces, netns

    def refresh(self) -> None:
        try:
            self.seen(dump_neighbours(self.interfaces, self.netns), time.monotonic())
        except Exception as error:
            self.unreadable(f"{type(error).__name__}: {error}")

    def table(self) -> list[dict[str, Any]]:
        return self.rows(time.monotonic())


def refreshed(watcher: NeighbourWatcher) -> NeighbourWatcher:
    watcher.refresh()
    return watcher


def test_dual_stack_and_ipv4_only_hosts_by_mac_and_by_ipv4(lab: Lab) -> None:
    watcher = NeighbourWatcher(list(lab.router_ifs), netns=lab.router.name, observe=0)

    def classified() -> bool:
        lab.talk()
        refreshed(watcher)
        b = watcher.records.get(MAC_B)
        return watcher.host(MAC_A) == Host(MAC_A, HostClass.DUAL_STACK) and bool(
            b and b.link_local and b.klass is HostClass.IPV4_ONLY
        )

    wait_ready(classified, 15, what="both clients in the router's neighbour tables")
    assert watcher.last_error is None
    assert watcher.host(str(A4)) == Host(str(A4), HostClass.DUAL_STACK)
    assert watcher.host(MAC_B.upper()) == Host(MAC_B, HostClass.IPV4_ONLY)
    assert watcher.host(str(B4)) == Host(str(B4), HostClass.IPV4_ONLY)
    assert watcher.dual_stack_ipv4s() == {A4}
    assert watcher.ipv4_only_ipv4s() == {B4}
    rows = {row["mac"]: row for row in watcher.table()}
    assert rows[MAC_A]["why"] == f"MAC also has global IPv6 {A6}"
    assert re.fullmatch(
        r"only IPv4 seen for \d+ s \(link-local fe80::\S+ does not count\)", rows[MAC_B]["why"]
    )


def test_only_the_listed_interfaces_count_and_a_missing_one_means_unsure(lab: Lab) -> None:
    toward_a = NeighbourWatcher([lab.router_ifs[0]], netns=lab.router.name, observe=0)

    def a_seen() -> bool:
        lab.talk()
        return refreshed(toward_a).host(MAC_A) is not None

    wait_ready(a_seen, 15, what="client A in the router's neighbour tables")
    assert toward_a.host(MAC_B) is None and toward_a.host(str(B4)) is None
    missing = refreshed(NeighbourWatcher(["nosuch0"], netns=lab.router.name, observe=0))
    assert missing.unsure and missing.last_error == "LookupError: no interface nosuch0"
    assert missing.host(MAC_A) is None and missing.ipv4_only_ipv4s() == set()
