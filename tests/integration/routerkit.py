"""The product on the lab's home router: clat-eamt (`python -m clat_eamt run`) and dnsmasq
forwarding to it, in the `ce` namespace of the 464XLAT lab (labkit.xlat), configured from the
lab's own constants, as a user would on OpenWrt.

Two ways the router gets its CLAT (the daemon's `translator`):
- "external" (the default here): the lab runs its CLAT as OpenWrt's 464xlat runs nat46: tayga
  in plain RFC 6052 mode with no map lines, the LAN SNATed to one IPv4 before it, the IPv4
  default route into its device; the daemon finds it by that route and never touches it.
- "tayga": the daemon runs tayga itself (the lab builds everything but the CLAT)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterable, Iterator
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest

from clat_eamt.control.client import DaemonNotRunningError, call
from clat_eamt.core.model import show
from clat_eamt.dataplane.nft import parse_elements
from clat_eamt.runtime.runtime import STARTING
from tests.integration.proxykit import DaemonLog, uci
from tests.labkit import Xlat
from tests.labkit.client import answers, query
from tests.labkit.dnsmasq import Dnsmasq
from tests.labkit.netns import run
from tests.labkit.procs import Proc
from tests.labkit.require import LAB_TOOLS, SERVER_TOOLS, require_root, require_tools

PROXY_PORT = 5353
NAT64_PEER = Xlat.NAT64_PUBLIC4  # who a server sees for a flow through the CLAT and NAT64
CLAT_IPV6 = Xlat.CLAT_ADDR6  # ... and for a native flow (the CLAT's IPv6 source)


def router_options(lab: Xlat, state_dir: Path, **extra: str | Iterable[str]) -> dict[str, Any]:
    s = lab.settings()
    options: dict[str, Any] = {
        "translator": "external",
        "tun": s["tun"],
        "tayga_ipv4": s["tayga_ipv4"],
        "tayga_ipv6": s["tayga_ipv6"],
        "clat_ipv4": s["clat_ipv4"],
        "clat_ipv6": s["clat_ipv6"],
        "pref64": [s["pref64"]],
        "pool": s["pool"],
        "upstream": [s["upstream"].replace("#53", "")],
        "allow_documentation": "1",
        "host_mode": "all",
        "state_dir": str(state_dir),
        "control_socket": str(state_dir / "control.sock"),
        "provider_serial_file": str(state_dir / "provider.serial"),
        "port": str(PROXY_PORT),
    }
    options.update(extra)
    return options


class Router(DaemonLog):
    def __init__(self, lab: Xlat, options: dict[str, Any]) -> None:
        self.lab, self.options = lab, options
        self.config = lab.workdir / "clat-eamt.uci"
        self.config.write_text(uci(options))
        self.proc: Proc  # set by start()
        self.starts = 0

    def start(self) -> Proc:
        self.starts += 1
        argv = [sys.executable, "-m", "clat_eamt", "run", "--config", str(self.config)]
        argv += ["--log-format", "json", "--log-level", "debug"]

        def ready() -> bool:
            """DNS answers and the dataplane's first start is over (done or failed): from
            then on an answer's mapping is installed before the answer is released."""
            reply = query(
                "127.0.0.1", PROXY_PORT, "lab.example", "SOA", netns=self.lab.ce, timeout=0.5
            )
            if reply is None:
                return False
            try:
                status = call(self.options["control_socket"], "status")
            except (DaemonNotRunningError, OSError):
                return False
            return bool(status["dataplane"]["error"] != STARTING)

        self.proc = self.lab.procs.start(
            f"clat-eamt-{self.starts}", argv, ready=ready, netns=self.lab.ce.name
        )
        return self.proc

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.popen.wait(5)

    def resolve(self, client: Any, name: str) -> list[str]:
        reply = query(self.lab.CE_LAN_ADDR4, 53, name, "A", netns=client, timeout=5)
        return answers(reply, "A")

    def _elements(self, name: str) -> list[tuple[str, str, str | None]]:
        out = run(self.lab.ce, ["nft", "-j", "list", "map", "inet", "clat_eamt", name]).stdout
        return parse_elements(out)

    def dnat_elements(self) -> dict[str, str]:
        """The IPv4 legs D -> P of the daemon's nft table in ce."""
        return {show(ip_network(d)): show(ip_network(p)) for d, p, _ in self._elements("dnat4")}

    def ipv6_legs(self) -> dict[str, str]:
        """The IPv6 legs T(P) -> X of the daemon's nft table in ce."""
        return {show(ip_network(t)): show(ip_network(x)) for t, x, _ in self._elements("dnat6")}

    def translated(self, ipv6: str) -> bool:
        """Whether some pool address still leads to ``ipv6`` (its IPv6 leg is there)."""
        return ipv6 in self.ipv6_legs().values()

    def wait(self, predicate: Any, what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")


def lab_router(
    factory: pytest.TempPathFactory,
    name: str,
    *,
    dnsmasq: dict[str, Any] | None = None,
    **options: str | Iterable[str],
) -> Iterator[Router]:
    """A module-scoped fixture's body: the home router for every test of a module."""
    require_root()
    require_tools(*SERVER_TOOLS, *LAB_TOOLS)
    with home_router(factory.mktemp(name), dnsmasq=dnsmasq, **options) as router:
        yield router


@contextlib.contextmanager
def home_router(
    workdir: Path,
    clat: str | None = None,
    *,
    ipv4_clients: int = 1,
    dnsmasq: dict[str, Any] | None = None,
    **extra: str | Iterable[str],
) -> Iterator[Router]:
    """The lab (with `ipv4_clients` IPv4-only clients: Xlat) with clat-eamt and dnsmasq running
    on its router; `extra` are UCI options; `dnsmasq` overrides labkit Dnsmasq's arguments
    (by default its cache is off and it adds the client's MAC and address); all gone on exit.
    `clat`: whether the lab runs its own CLAT ("lab") or not ("none"); by default it does
    unless the daemon runs tayga."""
    if clat is None:
        clat = "none" if extra.get("translator") == "tayga" else "lab"
    with Xlat(workdir, clat=clat, ipv4_clients=ipv4_clients) as lab:  # type: ignore[arg-type]
        if extra.get("translator") == "tayga":  # the daemon's own NAT44 must do the work
            run(lab.ce, ["nft", "delete", "table", "ip", lab.NAT44_TABLE])
        router = Router(lab, router_options(lab, workdir / "state", **extra))
        router.start()
        dm = Dnsmasq(
            lab.workdir,
            servers=f"127.0.0.1#{PROXY_PORT}",
            addr=lab.CE_LAN_ADDR4,
            port=53,
            netns=lab.ce,
            **({"cache_size": 0} | (dnsmasq or {})),
        )
        dm.start(lab.procs, 30)
        try:
            yield router
        finally:
            if router.proc.alive():
                os.kill(router.proc.pid, signal.SIGTERM)
            subprocess_cleanup(lab, Path(router.options["state_dir"]))


def subprocess_cleanup(lab: Xlat, state_dir: Path) -> None:
    """tayga runs in its own session (it must outlive a crashed daemon): stop it explicitly."""
    pidfile = state_dir / "tayga.pid"
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(pidfile.read_text()), signal.SIGTERM)
