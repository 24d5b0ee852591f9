"""The 464XLAT lab: an IPv6-only ISP with NAT64 and DNS64, a home router (CE) with a CLAT, LAN
clients (IPv4-only `lan`, dual-stack `lan6`, and with `ipv4_clients=N` more IPv4-only ones:
lan2 .. lan5), and an internet with the lab zones and a TCP echo server on every zone address.

    with Xlat(tmp_path, clat="lab") as lab:
        flow = lab.flow(lab.lan, "192.0.2.20")         # IPv4-only client, through CLAT + NAT64
        assert lab.accepted(flow.tag)["peer"] == lab.NAT64_PUBLIC4
        lab.ce_nft("table ip t { ... dnat ... }")
        lab.tayga_map("198.51.100.129", "2001:db8:1::10")  # restarts the CLAT's tayga

Addresses, configs and why they are what they are: `xlatnet` (its names are attributes here
too, `lab.CLAT_ADDR6`, so a test or `make demo` can build the daemon's config from them).

`clat="lab"`: the lab runs the CLAT (tayga on a persistent tun, SPEC 7) itself.  `clat="none"`:
everything but the CLAT's tayga, its tun and the routes into it; the daemon under test runs
tayga (`clat_tayga_conf()` and `add_clat_routes()` give what the lab would have used).

On exit every process stops and every namespace (with its links, tuns and nft tables) goes,
also when the body or the build failed.  The build waits until the paths work: a NAT64 flow
from ce, a native IPv6 flow from lan6, and with clat="lab" a CLAT flow from lan.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any, Literal, Self

from dnslib import DNSRecord

from . import xlatnet as net
from . import xlatwire as wire
from .client import query
from .knot import Knot
from .netns import Netns, nft, ns_name, run, socket_in
from .procs import Proc, ProcessGroup, tool, wait_ready
from .server import READY_TIMEOUT
from .tcpflow import Flow, family_of, find_accepted, read_events
from .unbound import Stub, Unbound
from .zone import LAB, all_zones, dns64

_TCPSERVER = Path(__file__).with_name("_tcpserver.py")
XLAT_TOOLS = ("tayga", "conntrack", "stdbuf", "sysctl")  # beyond the chain's (require.py)
_TAYGA_READY = "NAT64 prefix:"  # tayga -d prints it after opening its tun, before its loop
# The build's path checks: an IPv4-only server (192.0.2.20) and a dual-stack one's IPv6.
CHECK_V4, CHECK_V6 = LAB.rdata("v4only", "A")[0], LAB.rdata("ds", "AAAA")[0]

ClatMode = Literal["lab", "none"]


class Xlat(net.Addresses, contextlib.AbstractContextManager["Xlat"]):
    """The lab as a context manager (see the module doc)."""

    def __init__(
        self,
        workdir: Path,
        clat: ClatMode = "lab",
        *,
        timeout: float = READY_TIMEOUT,
        ipv4_clients: int = 1,
    ) -> None:
        """`ipv4_clients`: how many IPv4-only LAN clients (`lan` and then lan2 .. lan5;
        addresses and MACs from `xlatnet.ipv4_client`, namespaces in `clients`)."""
        if clat not in ("lab", "none"):
            raise ValueError(f"clat must be 'lab' or 'none', not {clat!r}")
        if not 1 <= ipv4_clients <= net.MAX_CLIENTS:
            raise ValueError(f"ipv4_clients must be 1..{net.MAX_CLIENTS}, not {ipv4_clients}")
        self.ipv4_clients = ipv4_clients
        self.clients: list[Netns] = []  # the IPv4-only clients, `lan` first
        self.workdir = Path(workdir)
        self.clat = clat
        self.timeout = timeout
        self.clat_maps: dict[str, str] = {}  # the lab CLAT's EAM entries P -> X
        self.timings: dict[str, float] = {}
        self.events_path = self.workdir / "tcpserver.jsonl"
        self._events_offset = 0
        self._stack = contextlib.ExitStack()

    # -- build and teardown ----------------------------------------------------------------------
    def __enter__(self) -> Self:
        start = time.monotonic()
        try:
            self._build(start)
        except BaseException:
            self._stack.__exit__(*sys.exc_info())
            raise
        self.timings["total"] = time.monotonic() - start
        return self

    def _lap(self, what: str, since: float) -> float:
        now = time.monotonic()
        self.timings[what] = now - since
        return now

    def _build(self, t: float) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        enter = self._stack.enter_context
        self.inet, self.isp, self.ce = Netns("inet"), Netns("isp"), Netns("ce")
        self.lan, self.lan6 = Netns("lan"), Netns("lan6")
        for ns in (self.inet, self.isp, self.ce, self.lan, self.lan6):
            enter(ns)
        # Entered after the namespaces, so it stops the processes before they go.
        self.procs = enter(ProcessGroup(self.workdir / "logs"))
        wire.wire(self.inet, self.isp, self.ce, self.lan, self.lan6)
        self.clients.append(self.lan)
        for _ in range(self.ipv4_clients - 1):
            self._wire_client()
        nft(self.isp, net.nat64_ruleset())
        nft(self.ce, net.nat44_ruleset())
        t = self._lap("wire", t)
        self._start_nat64()
        t = self._lap("nat64", t)
        self.knot = Knot(self.workdir, addr=net.KNOT_ADDR, port=net.DNS_PORT, netns=self.inet)
        self.knot.start(self.procs, self.timeout)
        stubs = [Stub(z.origin, (self.knot.at,)) for z in all_zones()]
        self.unbound = Unbound(
            self.workdir,
            stubs=[*stubs, Stub(".", (self.knot.at,))],  # nothing leaves the lab
            addr=net.ISP_CE_ADDR6,
            port=net.DNS_PORT,
            netns=self.isp,
            dns64_prefix=net.PREF64,
        )
        self.unbound.start(self.procs, self.timeout)
        t = self._lap("dns", t)
        self.procs.start(
            "tcpserver",
            [
                sys.executable,
                str(_TCPSERVER),
                "--port",
                str(net.SERVER_PORT),
                "--log",
                str(self.events_path),
            ],
            netns=self.inet.name,
            ready=lambda: any(e["event"] == "listening" for e in read_events(self.events_path)),
            timeout=self.timeout,
        )
        t = self._lap("tcpserver", t)
        if self.clat == "lab":
            self._make_clat_tun()
            self._start_clat()
            t = self._lap("clat", t)
        for ns in (self.inet, self.isp, self.ce, self.lan6, *self.clients):
            ipv6 = ns not in self.clients
            wait_ready(
                partial(wire.links_ready, ns, ipv6=ipv6), self.timeout, what=f"{ns.tag} links up"
            )
        t = self._lap("links", t)
        self._wait_working()
        self._lap("paths", t)
        self._events_offset = self.events_path.stat().st_size

    def __exit__(self, *exc: Any) -> None:
        self._stack.__exit__(*exc)

    # -- more IPv4-only clients ------------------------------------------------------------------
    def _wire_client(self) -> Netns:
        """The next IPv4-only client on the LAN bridge (before the build waits for links)."""
        number = len(self.clients) + 1
        addr4, mac, port = net.ipv4_client(number)
        # Its namespace goes with the lab (the stack deletes it, with anything inside).
        ns = self._stack.enter_context(Netns(f"lan{number}"))
        wire.ipv4_client(self.ce, ns, addr4, mac, port)
        self.clients.append(ns)
        return ns

    def client_identity(self, client: Netns) -> tuple[str, str]:
        """The IPv4 address and MAC of an IPv4-only client of this lab (`xlatnet.ipv4_client`)."""
        addr4, mac, _ = net.ipv4_client(self.clients.index(client) + 1)
        return addr4, mac

    # -- translators -----------------------------------------------------------------------------
    def run_tayga(self, name: str, ns: Netns, conf: str) -> Proc:
        """Write `conf` and run tayga -d in `ns`, line-buffered (SPEC 7), owned by the lab;
        returns once it has opened its tun (which `mktun` made)."""
        path = self.workdir / f"{name}.conf"
        path.write_text(conf)
        proc_log = self.workdir / "logs" / f"{name}.log"
        before = _count(proc_log, _TAYGA_READY)
        argv = [tool("stdbuf"), "-oL", tool("tayga"), "-d", "-c", str(path)]
        proc = self.procs.start(name, argv, netns=ns.name)
        # Polled finely: a restart's gap is what the caller measures.
        wait_ready(
            lambda: _count(proc_log, _TAYGA_READY) > before,
            self.timeout,
            interval=0.002,
            what=f"{name} ready",
            proc=proc,
        )
        return proc

    def mktun(self, ns: Netns, name: str, conf: str) -> None:
        """`tayga --mktun`: the persistent tun of `conf` (it outlives tayga restarts), up."""
        path = self.workdir / f"{name}.conf"
        path.write_text(conf)
        run(ns, [tool("tayga"), "--mktun", "-c", str(path)])
        tun = next(line.split()[1] for line in conf.splitlines() if line.startswith("tun-device"))
        wire.ip_in(ns, "link", "set", tun, "up")

    def _start_nat64(self) -> None:
        data = self.workdir / "nat64-data"
        data.mkdir(exist_ok=True)
        conf = net.nat64_tayga_conf(str(data))
        self.mktun(self.isp, "nat64", conf)
        for args in net.nat64_routes():
            wire.ip_in(self.isp, *args)
        self.run_tayga("nat64", self.isp, conf)

    def _make_clat_tun(self) -> None:
        self.mktun(self.ce, "clat", net.clat_tayga_conf(self.clat_maps))
        self.add_clat_routes()

    def _start_clat(self) -> None:
        self.run_tayga("clat", self.ce, net.clat_tayga_conf(self.clat_maps))

    def add_clat_routes(self) -> None:
        """ce: all IPv4 and the CLAT /64 into the CLAT tun (which must exist)."""
        for args in net.clat_routes():
            wire.ip_in(self.ce, *args)

    @staticmethod
    def clat_tayga_conf(maps: dict[str, str] | None = None) -> str:
        return net.clat_tayga_conf(maps)

    def restart_clat(self) -> float:
        """Restart the lab CLAT's tayga with `clat_maps` (0.9.2 exits on SIGHUP: maps change
        only by restart); the seconds from stopping the old one to the new one's readiness."""
        if self.clat != "lab":
            raise RuntimeError('the lab runs no CLAT (clat="none")')
        start = time.monotonic()
        self.procs.stop("clat")
        self._start_clat()
        return time.monotonic() - start

    def tayga_map(self, pool_ip: str, ipv6: str) -> float:
        """Add (or change) the CLAT EAM entry pool_ip <-> ipv6 and restart; restart seconds."""
        self.clat_maps[pool_ip] = ipv6
        return self.restart_clat()

    def tayga_unmap(self, pool_ip: str) -> float:
        self.clat_maps.pop(pool_ip, None)
        return self.restart_clat()

    # -- checks and helpers ----------------------------------------------------------------------
    def _wait_working(self) -> None:
        checks: list[tuple[Netns, str]] = [
            (self.ce, dns64(CHECK_V4)),  # NAT64 (and its masquerade)
            (self.lan6, CHECK_V6),  # native IPv6 through the CE
        ]
        if self.clat == "lab":
            checks.append((self.lan, CHECK_V4))  # CLAT + NAT64
        for ns, addr in checks:

            def probe(ns: Netns = ns, addr: str = addr) -> bool:
                self.flow(ns, addr, tag=f"lab-check {ns.tag}", timeout=2.0).close()
                return True

            begin = time.monotonic()
            wait_ready(probe, self.timeout, what=f"TCP from {ns.tag} to {addr}")
            self.timings[f"path {ns.tag}"] = time.monotonic() - begin

    def connect(
        self, client: Netns | str, addr: str, port: int = net.SERVER_PORT, timeout: float = 5.0
    ) -> socket.socket:
        """A plain TCP socket connected from namespace `client` (the caller closes it)."""
        sock = socket_in(client, family_of(addr), socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect((addr, port))
        except BaseException:
            sock.close()
            raise
        return sock

    def flow(
        self,
        client: Netns | str,
        addr: str,
        port: int = net.SERVER_PORT,
        *,
        tag: str | None = None,
        timeout: float = 5.0,
    ) -> Flow:
        """A tagged echo flow from `client` (see tcpflow.Flow); close it (or use `with`)."""
        return Flow.open(client, addr, port, tag=tag, timeout=timeout)

    def server_events(self, *, since_ready: bool = True) -> list[dict[str, Any]]:
        """The echo server's events (by default only those after the lab's own checks)."""
        return read_events(self.events_path, self._events_offset if since_ready else 0)

    def accepted(self, tag: str) -> dict[str, Any]:
        """The server's "accepted" event of the flow tagged `tag` (KeyError if none)."""
        found = find_accepted(self.server_events(since_ready=False), tag)
        if found is None:
            raise KeyError(f"the server logged no flow tagged {tag!r}")
        return found

    def closed(self, tag: str, timeout: float = 5.0) -> dict[str, Any]:
        """The server's "closed" event (bytes, duration) of the flow tagged `tag`, waiting for
        it (the server logs it a moment after the client closed)."""
        found: list[dict[str, Any]] = []

        def probe() -> bool:
            found[:] = [self.accepted(tag)["closed"] or {}]
            return bool(found[0])

        wait_ready(probe, timeout, what=f"the server closing {tag!r}")
        return found[0]

    def resolve(
        self,
        client: Netns | str | None,
        name: str,
        qtype: str = "A",
        server: str | None = None,
        **kwargs: Any,
    ) -> DNSRecord:
        """Ask `server` ("ADDR#PORT", default the ISP resolver) from namespace `client` (None:
        ce); kwargs go to labkit's `query` (tcp, timeout, do, ...)."""
        addr, port = (server or self.unbound_target).rsplit("#", 1)
        return query(addr, int(port), name, qtype, netns=client or self.ce, **kwargs)

    @property
    def unbound_target(self) -> str:
        """The ISP resolver as ADDR#PORT, reachable from ce (dnsmasq --server, the daemon)."""
        return f"{net.ISP_CE_ADDR6}#{net.DNS_PORT}"

    def conntrack(self, ns: Netns | str | None = None) -> str:
        """`conntrack -L` in `ns` (default ce), for failure messages."""
        result = run(ns or self.ce, [tool("conntrack"), "-L"], check=False)
        return result.stdout + result.stderr

    def ce_nft(self, ruleset: str) -> None:
        """Load an nft ruleset (text for `nft -f -`) in ce."""
        nft(self.ce, ruleset)

    def dnat(self, elements: dict[str, str]) -> None:
        """Load the hand-made DNAT map D -> P in ce (`xlatnet.dnat_ruleset`)."""
        self.ce_nft(net.dnat_ruleset(elements))

    def undnat(self, *destinations: str) -> None:
        """Delete DNAT elements (running flows keep their target: conntrack)."""
        listed = ", ".join(destinations)
        self.ce_nft(f"delete element ip {net.EAMT_TABLE} dnat4 {{ {listed} }}\n")

    def namespaces(self) -> dict[str, str]:
        """Role -> namespace name (for `ip netns exec`, demo scripts, debugging); the extra
        IPv4-only clients by their tags (lan2 .. lan5)."""
        roles = ("inet", "isp", "ce", "lan", "lan6")
        found = {role: str(ns_name(getattr(self, role))) for role in roles}
        return found | {ns.tag: ns.name for ns in self.clients}

    def settings(self) -> dict[str, str]:
        """What a daemon's config needs from the lab, by neutral names."""
        return {
            "tun": net.CLAT_TUN,
            "tayga_ipv4": net.TAYGA_ADDR4,
            "tayga_ipv6": net.TAYGA_ADDR6,
            "clat_ipv4": net.CLAT_ADDR4,
            "clat_ipv6": net.CLAT_ADDR6,
            "pref64": net.PREF64,
            "pool": net.EAM_POOL,
            "upstream": self.unbound_target,
            "lan_bridge": net.BRIDGE,
        }

    def logs(self) -> str:
        return self.procs.logs()


def _count(path: Path, needle: str) -> int:
    try:
        return path.read_text(errors="replace").count(needle)
    except FileNotFoundError:
        return 0
