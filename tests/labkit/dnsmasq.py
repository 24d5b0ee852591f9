"""dnsmasq configured the way OpenWrt uses it in front of a forwarding target (the proxy).

OpenWrt's dnsmasq forwards to `--server=ADDR#PORT` with `addmac` / `addsubnet` set; that is
what the proxy sees in production: EDNS option 65001 (binary MAC), 65073 (`--add-mac=text`) or
a base64 MAC (`--add-mac=base64`, also 65073), and ECS with the client's /32 or /128.

dnsmasq adds the MAC only when the client's MAC is in the neighbour table of dnsmasq's host,
i.e. for a client in another namespace across a veth, never for a client on loopback.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .client import query
from .netns import Netns
from .procs import tool
from .server import Server

ADD_MAC_VARIANTS = ("binary", "text", "base64")


class Dnsmasq(Server):
    """dnsmasq -k listening on addr:port, forwarding everything to `servers` ("ADDR#PORT")."""

    kind = "dnsmasq"

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        servers: str | Sequence[str],
        addr: str = "127.0.0.1",
        port: int | None = None,
        netns: Netns | str | None = None,
        name: str | None = None,
        add_mac: str | None = "binary",
        add_subnet: str | None = "32,128",
        cache_size: int | None = None,
        extra: Sequence[str] = (),
    ) -> None:
        """`add_mac`: "binary" (option 65001), "text", "base64" or None; `add_subnet`: the
        --add-subnet value or None; `cache_size`: None keeps dnsmasq's default (150), 0 turns
        the cache off; `extra`: more command-line options."""
        super().__init__(workdir, addr=addr, port=port, netns=netns, name=name)
        if add_mac is not None and add_mac not in ADD_MAC_VARIANTS:
            raise ValueError(f"add_mac must be one of {ADD_MAC_VARIANTS} or None")
        self.servers = [servers] if isinstance(servers, str) else list(servers)
        self.add_mac = add_mac
        self.add_subnet = add_subnet
        self.cache_size = cache_size
        self.extra = list(extra)

    def argv(self) -> list[str]:
        argv = [
            tool("dnsmasq"),
            "-k",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            f"--listen-address={self.addr}",
            "--bind-interfaces",
            f"--port={self.port}",
            f"--pid-file={self.dir / 'dnsmasq.pid'}",
            "--log-queries=extra",
            "--log-facility=-",
        ]
        if os.geteuid() == 0:
            # Stay root: the default user (nobody) cannot write our files and the group `dip`
            # may not exist in a minimal container.
            argv += ["--user=root", "--group=root"]
        argv += [f"--server={s}" for s in self.servers]
        if self.add_mac == "binary":
            argv.append("--add-mac")
        elif self.add_mac is not None:
            argv.append(f"--add-mac={self.add_mac}")
        if self.add_subnet is not None:
            argv.append(f"--add-subnet={self.add_subnet}")
        if self.cache_size is not None:
            argv.append(f"--cache-size={self.cache_size}")
        return argv + self.extra

    def probe(self) -> bool:
        """dnsmasq answers `version.bind CH TXT` itself: ready without its upstream."""
        r = query(
            self.addr,
            self.port,
            "version.bind",
            "TXT",
            qclass="CH",
            timeout=0.5,
            netns=self.netns,
        )
        return r.header.rcode == 0 and bool(r.rr)
