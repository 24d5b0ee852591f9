"""A home LAN in two namespaces: the router (DNS chain, dnsmasq, later the proxy) and a client
behind a veth, so dnsmasq sees the client's MAC in its neighbour table (--add-mac)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .chain import DnsChain
from .netns import Netns, run, veth
from .procs import tool

ROUTER_ADDRS = ("192.0.2.1/24", "2001:db8:1::1/64")
CLIENT_ADDRS = ("192.0.2.2/24", "2001:db8:1::2/64")


@dataclass
class Lan:
    """router <-veth-> client; the chain runs in the router namespace."""

    router: Netns
    client: Netns
    chain: DnsChain
    router_if: str
    client_if: str
    router_addr: str = ROUTER_ADDRS[0].split("/")[0]
    router_addr6: str = ROUTER_ADDRS[1].split("/")[0]
    client_addr: str = CLIENT_ADDRS[0].split("/")[0]
    client_addr6: str = CLIENT_ADDRS[1].split("/")[0]

    @property
    def client_mac(self) -> str:
        """The client interface's MAC, lowercase "aa:bb:cc:dd:ee:ff"."""
        out = run(self.client, [tool("ip"), "-j", "link", "show", "dev", self.client_if]).stdout
        return str(json.loads(out)[0]["address"]).lower()


@contextlib.contextmanager
def lan(workdir: Path | None = None, **chain_kwargs: object) -> Iterator[Lan]:
    """Router and client namespaces, the veth between them, a DnsChain in the router."""
    with Netns("router") as router, Netns("client") as client:
        router_if, client_if = veth(router, client, ROUTER_ADDRS, CLIENT_ADDRS)
        with DnsChain(workdir, netns=router, **chain_kwargs) as chain:  # type: ignore[arg-type]
            yield Lan(router, client, chain, router_if, client_if)
