"""`make demo`: the lab, the daemon on its router as a user runs it, a workload, a report.

The lab is tests/labkit's 464XLAT lab (namespaces inet, isp with NAT64 and DNS64, ce the home
router, IPv4-only clients lan, lan2, ... and the dual-stack lan6).  On ce runs what an OpenWrt
router runs: a CLAT the way OpenWrt's 464xlat runs nat46 (plain RFC 6052 translation with no
per-address rules, the LAN SNATed to one IPv4 before it, the IPv4 default route into it; here
tayga plays nat46, since the nat46 module cannot load on these machines), `python -m clat_eamt
run --config FILE.uci` with `translator external` (it finds that CLAT and never changes it) and
dnsmasq forwarding to it (tests/integration/routerkit.py `home_router`).  Everything is torn down
at the end, also on Ctrl-C or a failure; the last line says whether the optimization worked.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.integration.routerkit import Router, home_router
from tests.labkit.netns import list_lab_namespaces
from tests.labkit.procs import find_tool, process_gone
from tests.labkit.require import LAB_TOOLS, SERVER_TOOLS
from tests.labkit.xlat import XLAT_TOOLS
from tests.labkit.zone import DEMO

from .plan import Plan, catalogue, roles
from .report import Facts, classify, ipv6_only_ok, render
from .state import DaemonState
from .workload import Workload

# dnsmasq as clat-eamt's hook leaves it by default: its cache on (150 names, its default) and no
# per-client options (client_identity off).
PRODUCT_DNSMASQ = {"cache_size": None, "add_mac": None, "add_subnet": None}
HOST_OBSERVE = 3  # seconds a client must be seen with IPv4 only before it counts as IPv4-only
TTL_MIN = 2  # the zone's short TTLs (2 s) are kept as they are, so they expire during the run
STALE_LINGER = 2
RATE = "10000"  # creation limits far above what the workload needs: nothing is throttled


def demo_options(socket: Path) -> dict[str, str | list[str]]:
    """The UCI options the demo sets on top of what the lab's router needs (routerkit)."""
    options: dict[str, str | list[str]] = {
        "host_mode": "ipv4-only",  # the product default: the daemon classifies the LAN hosts
        "host_observe": str(HOST_OBSERVE),
        "lan_interface": ["br-lan"],  # the lab's LAN bridge (Xlat.settings()["lan_bridge"])
        "translator": "external",  # the lab's CLAT, found by its IPv4 default route
        "ttl_min": str(TTL_MIN),
        "stale_linger": str(STALE_LINGER),
        "create_rate": RATE,
        "create_burst": RATE,
        "host_create_rate": RATE,
        "host_create_burst": RATE,
        "control_socket": str(socket),  # where `clat-eamt status` and friends find the daemon
        "ipv6_only": "1",  # IPv6-only names get a pool address as their A (the report's part 6)
    }
    return options


@contextlib.contextmanager
def teardown_guard() -> Iterator[None]:
    """SIGTERM ends the demo as Ctrl-C does (the lab's context managers tear down); the signal
    handlers are restored on exit (the lab test runs the demo inside pytest)."""

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def no_interrupts() -> None:
    """From here on the teardown must finish: a second Ctrl-C would leave the lab behind
    (`teardown_guard` restores the handlers once it is done)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def leftovers(pids: list[int]) -> list[str]:
    """What of this run still exists after the teardown (namespaces, processes)."""
    mine = f"clatlab-{os.getpid()}-"
    found = [f"namespace {n}" for n in list_lab_namespaces() if n.startswith(mine)]
    return found + [f"process {pid}" for pid in pids if not process_gone(pid)]


def our_pids(router: Router) -> list[int]:
    pids = [p.pid for p in router.lab.procs]
    with contextlib.suppress(OSError, ValueError):
        pids.append(int((Path(router.options["state_dir"]) / "tayga.pid").read_text()))
    return pids


def host_lines(router: Router, state: DaemonState) -> list[str]:
    lab = router.lab
    known = {str(h.get("mac", "")).lower(): h for h in state.hosts()}
    clients = [(c.tag, *lab.client_identity(c)) for c in lab.clients]
    clients.append(("lan6", f"{lab.LAN6_ADDR4} {lab.LAN6_ADDR6}", lab.LAN6_MAC))
    lines = []
    for tag, addr, mac in clients:
        host = known.get(mac)
        verdict = f"{host.get('class')}: {host.get('why')}" if host else "not in its host table"
        lines.append(f"{tag:<5} {addr:<32} {mac}  {verdict}")
    return lines


def demo(workdir: Path, plan: Plan, *, keep: bool = False) -> tuple[list[str], bool]:
    """Build the lab, run the workload, tear down; the report's lines (last: the verdict) and
    whether everything held."""
    socket = workdir / "state" / "control.sock"
    options = demo_options(socket)
    the_roles = roles(catalogue(DEMO), plan)
    start = time.monotonic()
    with (
        teardown_guard(),
        home_router(
            workdir, ipv4_clients=plan.clients, dnsmasq=PRODUCT_DNSMASQ, **options
        ) as router,
    ):
        try:
            built = time.monotonic() - start
            print(f"demo: lab and router up in {built:.1f} s (workdir {workdir})", flush=True)
            state = DaemonState(socket)
            workload = Workload(router, state, plan, the_roles)
            try:
                workload.run()
            finally:
                workload.close()
            events = router.lab.server_events()
            classify(workload.flows, events, router.lab.NAT64_PUBLIC4)
            classify(workload.ipv6_only, events, router.lab.NAT64_PUBLIC4)
            facts = Facts(
                config_path=str(router.config),
                config_text=router.config.read_text(),
                commands={k: state.command(k) for k in ("status", "mappings", "hosts")},
                hosts=host_lines(router, state),
                dns_times=workload.dns_times,
                dns_failures=workload.dns_failures,
                mappings=state.mappings(),
                status_text=state.text("status"),
                notes=workload.notes,
                timings=workload.timings,
                ipv6_only=workload.ipv6_only,
            )
            lines, summary = render(workload.flows, facts)
            print("\n".join(lines), flush=True)
            if keep:
                explore(router, state, workdir)
        finally:
            no_interrupts()
            pids = our_pids(router)
            torn = time.monotonic()
    left = leftovers(pids)
    took = time.monotonic() - start
    if left:
        print(f"demo: LEFT BEHIND after the teardown: {', '.join(left)}")
    else:
        down = time.monotonic() - torn
        print(f"demo: lab torn down in {down:.1f} s, nothing left; {took:.0f} s in all")
    ok = summary.ok and ipv6_only_ok(workload.ipv6_only)
    return [*lines, summary.last_line()], ok and not left


def explore(router: Router, state: DaemonState, workdir: Path) -> None:
    """--keep: how to look around the running lab; waits for Enter or Ctrl-C."""
    spaces = router.lab.namespaces()
    ce, lan = spaces["ce"], spaces["lan"]
    cli = shutil.which("clat-eamt", path=os.path.dirname(sys.executable)) or "clat-eamt"
    cli = os.path.relpath(cli) if cli.startswith(os.getcwd() + os.sep) else cli
    print("\n== the lab stays up: enter a namespace with `ip netns exec NAME COMMAND` ==")
    for role, name in spaces.items():
        print(f"   {role:<5} {name}")
    print("   try:")
    for what in ("status", "mappings", "hosts"):
        print(f"   {cli} {what} --socket {state.socket}")
    print(f"   ip netns exec {lan} dig @198.51.100.1 ds1.demo.example")
    if not shutil.which("dig"):
        print("      (dig is in Debian's bind9-dnsutils: apt-get install bind9-dnsutils)")
    tcp = "exec 3<>/dev/tcp/192.0.2.128/8080; echo hello >&3; head -1 <&3"
    print(f"   ip netns exec {lan} bash -c '{tcp}'; tail -3 {router.lab.events_path}")
    lab = router.lab
    print(f"      (the echo server's log names the peer: {lab.CLAT_ADDR6} is native through the")
    print(f"      CLAT, {lab.NAT64_PUBLIC4} is through the NAT64; 203.0.113.124 is IPv4-only)")
    print(f"   ip netns exec {ce} nft list table inet clat_eamt")
    print(f"   ip netns exec {ce} conntrack -L")
    print(f"   clat-eamt status --socket {router.options['control_socket']}")
    print(f"   logs: {workdir / 'logs'} (clat-eamt-1.log is the daemon's)")
    print("Press Enter (or Ctrl-C) to tear the lab down.", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        try:
            input()
        except EOFError:  # no terminal: wait for Ctrl-C / SIGTERM
            signal.pause()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.demo", description=__doc__)
    parser.add_argument("--keep", action="store_true", help="keep the lab up for exploring")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("demo: needs root (network namespaces, nftables, tun)", file=sys.stderr)
        return 2
    missing = [t for t in (*SERVER_TOOLS, *LAB_TOOLS, *XLAT_TOOLS) if find_tool(t) is None]
    if missing:
        print(f"demo: missing {', '.join(missing)} (`make demo` installs them)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="clat-eamt-demo-"))
    ok = False
    try:
        lines, ok = demo(workdir, Plan(), keep=args.keep)
        if args.keep:
            print(f"demo: the logs stay in {workdir}")
        print(lines[-1], flush=True)
    except KeyboardInterrupt:
        print("\ndemo: interrupted; the lab is torn down", file=sys.stderr)
        return 130
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1
