"""`make bench` (safety part): issue 25's cases on the lab, and what the safety net costs.

The daemon on the lab's home router (translator external: the lab's CLAT as OpenWrt's
464xlat), with the defaults but ``broken_backoff`` 3 s (so the repairs are seen within the
run) and short TTLs; the ISP breaks native IPv6 in its own ways (tests/integration/safetykit)
while its NAT64 keeps reaching the servers' IPv4.  The client is the kernel's TCP.

- black hole: 20 connections to one name (10 one after the other, the first 5 by curl with its
  defaults, then 10 in parallel) while the ISP drops native IPv6 to the server; B of them
  failed; D is the first curl's time minus the median time of curl through the NAT64 measured
  in the same run.
- refused: 10 connections each while the native path answers with ICMPv6 administratively
  prohibited, then with a TCP RST; R of the 20 failed.
- brake: native IPv6 dropped towards the whole internet; connections to names in three /64s
  one after the other; S seconds from the first connection's start to the brake's engagement
  (read from status), then F of 10 more connections failed.
- pmtu: 2 MB each way over a native path of MTU 1280, with Packet Too Big delivered and
  dropped; `pmtu ok` if both completed.
- cost: the daemon's CPU time (/proc/PID/schedstat) over 50 steered connections that work,
  minus that over 50 through the NAT64 (not steered: their conntrack events never reach the
  daemon), per connection.
- idle: the daemon's CPU per second over 5 s idle, then over 5 s during which 30,000
  unrelated conntrack entries are made (UDP from the LAN through the NAT64) and held.
- the baseline of both: the same with ``safety 0`` (no listener, no guard rules), in this run.

Lines: `safety: lost in black hole B, lost when refused R, first connection delay D s, brake
engaged after S s, failed after brake F, pmtu ok` and `safety: cost per steered connection
C us (daemon CPU; C0 with the safety net off), idle CPU I ms/s (I0 off), beside 30000
unrelated conntrack entries J ms/s (J0 off; N and N0 tracked)`.
"""

from __future__ import annotations

import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from clat_eamt.control.client import call
from tests.integration.routerkit import NAT64_PEER, Router
from tests.integration.safetykit import (
    Attempt,
    black_hole,
    connect,
    curl,
    echo_bulk,
    in_parallel,
    internet_broken,
    isp_failure,
    narrow_native_path,
    safety_router,
)
from tests.labkit.netns import run, socket_in


def cpu_ns(router: Router) -> int:
    return int(Path(f"/proc/{router.proc.pid}/schedstat").read_text().split()[0])


def mapped(router: Router, name: str) -> str:
    [address] = router.resolve(router.lab.lan, name)
    if address not in router.dnat_elements():
        raise SystemExit(f"safety bench: {name} was not mapped")
    return address


def brake_state(router: Router) -> str:
    return str(call(router.options["control_socket"], "status")["safety"]["brake"]["state"])


def failed(attempts: list[Attempt]) -> int:
    return sum(not a.ok for a in attempts)


def black_hole_case(work: Path) -> tuple[int, float]:
    with safety_router(work / "hole") as router:
        v4only = router.resolve(router.lab.lan, "v4only.lab.example")[0]
        base = statistics.median(curl(router, v4only).seconds for _ in range(5))
        address = mapped(router, "ds5.lab.example")
        with isp_failure(router, black_hole("2001:db8:1::105")):
            first = curl(router, address)
            attempts = [first] + [curl(router, address) for _ in range(4)]
            attempts += [connect(router, address) for _ in range(5)]
            attempts += in_parallel(router, address, 10)
        if not first.ok or first.peer != NAT64_PEER:
            print(f"safety: the first connection: {first}", file=sys.stderr)
        return failed(attempts), first.seconds - base


def refused_case(work: Path) -> int:
    lost = 0
    for i, refusal in enumerate(("reject with icmpv6 type admin-prohibited",
                                 "meta l4proto tcp reject with tcp reset")):  # fmt: skip
        with safety_router(work / f"refused{i}") as router:
            address = mapped(router, "ds6.lab.example")
            with isp_failure(router, [f"ip6 daddr 2001:db8:1::106 {refusal}"]):
                lost += failed([connect(router, address) for _ in range(10)])
    return lost


def brake_case(work: Path) -> tuple[float | None, int, int]:
    names = ["ds7.lab.example", "b7.lab.example", "ds7.demo.example"]
    with safety_router(work / "brake") as router:
        addresses = [mapped(router, n) for n in names]
        later = [router.resolve(router.lab.lan, f"ds{i}.lab.example")[0] for i in range(10, 20)]
        engaged: float | None = None
        with isp_failure(router, internet_broken()):
            began = time.monotonic()
            attempts = []
            for address in addresses:
                attempts.append(connect(router, address))
                if engaged is None and brake_state(router) == "engaged":
                    engaged = time.monotonic() - began
            after = [connect(router, a) for a in later]
        return engaged, failed(attempts), failed(after)


def pmtu_case(work: Path) -> bool:
    ok = True
    with safety_router(work / "pmtu") as router:
        for ptb in (True, False):
            address = mapped(router, "ds8.lab.example")
            with narrow_native_path(router, "2001:db8:1::108", ptb=ptb):
                got, peer = echo_bulk(router, address)
            ok = ok and got >= 1_999_000 and peer != NAT64_PEER
    return ok


def flood(router: Router, count: int) -> None:
    """``count`` UDP datagrams from the LAN to an IPv4-only server, each from its own port
    pair: as many conntrack entries on the router (IPv4 and IPv6 legs through the NAT64)."""
    sock = socket_in(router.lab.lan, socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        for i in range(count):
            sock.sendto(b"x", ("192.0.2.20", 1024 + i % 60000))
            if i % 500 == 499:
                time.sleep(0.01)  # the tun and tayga keep up


def tracked(router: Router) -> int:
    """conntrack's entry count on the router (``conntrack -C``)."""
    return int(run(router.lab.ce, ["conntrack", "-C"]).stdout.strip() or 0)


def cost_case(work: Path, safety: str) -> tuple[float, float, float, int]:
    with safety_router(work / f"cost-{safety}", safety=safety) as router:
        steered = mapped(router, "ds9.lab.example")
        plain = router.resolve(router.lab.lan, "v4only.lab.example")[0]
        results = []
        for address in (steered, plain):
            connect(router, address)
            time.sleep(0.5)
            before = cpu_ns(router)
            for _ in range(50):
                connect(router, address)
            time.sleep(1.5)  # the last connections' events (their end included)
            results.append(cpu_ns(router) - before)
        per = (results[0] - results[1]) / 50 / 1000
        time.sleep(2)
        before = cpu_ns(router)
        time.sleep(5)
        idle = (cpu_ns(router) - before) / 5 / 1e6
        before = cpu_ns(router)
        began = time.monotonic()
        flood(router, 30_000)
        entries = tracked(router)
        time.sleep(max(0.0, 5 - (time.monotonic() - began)))
        busy = (cpu_ns(router) - before) / (time.monotonic() - began) / 1e6
        return per, idle, busy, entries


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="safety-bench-") as tmp:
        work = Path(tmp)
        lost_hole, delay = black_hole_case(work)
        lost_refused = refused_case(work)
        engaged, failed_before, failed_after = brake_case(work)
        pmtu = pmtu_case(work)
        per, idle, busy, entries = cost_case(work, "1")
        per0, idle0, busy0, entries0 = cost_case(work, "0")  # the baseline: no safety net
    engaged_text = f"{engaged:.1f} s" if engaged is not None else "never"
    print(
        f"safety: lost in black hole {lost_hole}, lost when refused {lost_refused}, first "
        f"connection delay {delay:.2f} s, brake engaged after {engaged_text}, failed after "
        f"brake {failed_after}, pmtu {'ok' if pmtu else 'FAILED'}",
        file=sys.stderr,
    )
    print(
        f"safety: cost per steered connection {per:.0f} us (daemon CPU; {per0:.0f} us with the "
        f"safety net off), idle CPU {idle:.1f} ms/s ({idle0:.1f} off), beside 30000 unrelated "
        f"conntrack entries {busy:.1f} ms/s ({busy0:.1f} off; {entries} and {entries0} tracked)"
        f"; failed before the brake {failed_before}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
