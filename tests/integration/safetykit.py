"""The ISP's failures of issue 25 in the 464XLAT lab (labkit.xlat), and clients that count.

The failures are nft rules (and routes) in the `isp` namespace, on native IPv6 only: the NAT64
path (the CLAT's IPv6 to the Pref64, then IPv4 to the server) keeps working, as in the
issue's cases.  The clients use the kernel's own TCP (its initial RTO of 1 s, RFC 6298) and a
UDP exchange that retries after 1 s, as a game or NTP client does.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dnslib import DNSRecord

from tests.integration.routerkit import Router, home_router
from tests.labkit.netns import run, socket_in
from tests.labkit.xlatnet import INET_ISP_ADDR6, PREF64

BACKOFF = 3  # broken_backoff of the safety net's lab routers (seconds; the default is 60)


def safety_router(workdir: Path, **options: str) -> contextlib.AbstractContextManager[Router]:
    """The home router of the safety net's labs: short TTLs, Stale entries gone after 1 s, a
    back-off of BACKOFF seconds so that a test sees a target tried again."""
    return home_router(
        workdir, ttl_min="0", stale_linger="1", broken_backoff=str(BACKOFF), **options
    )


TABLE = "inet isp_failure"


@contextlib.contextmanager
def isp_failure(router: Router, rules: list[str]) -> Iterator[None]:
    """`rules` in a forward chain of the ISP's router while the block runs."""
    lines = [f"add table {TABLE}", f"add chain {TABLE} cut {{ type filter hook forward "
             "priority 0; policy accept; }"]  # fmt: skip
    lines += [f"add rule {TABLE} cut {r}" for r in rules]
    router.lab.isp.nft("\n".join(lines) + "\n")
    try:
        yield
    finally:
        run(router.lab.isp, ["nft", "delete", "table", *TABLE.split()], check=False)


def black_hole(target: str) -> list[str]:
    """Native IPv6 to and from one server dropped, both directions."""
    return [f"ip6 daddr {target} drop", f"ip6 saddr {target} drop"]


def internet_broken() -> list[str]:
    """Every forwarded IPv6 packet dropped but the NAT64's (to and from the Pref64)."""
    return [f"meta nfproto ipv6 ip6 daddr != {PREF64} ip6 saddr != {PREF64} drop"]


@dataclass
class Attempt:
    ok: bool
    seconds: float
    peer: str | None = None
    error: str | None = None


def connect(router: Router, address: str, timeout: float = 8.0) -> Attempt:
    """One TCP connection from the IPv4-only client, its echo and who the server saw."""
    lab = router.lab
    begin = time.monotonic()
    try:
        with lab.flow(lab.lan, address, timeout=timeout) as flow:
            seconds = time.monotonic() - begin
            return Attempt(True, seconds, str(lab.accepted(flow.tag)["peer"]))
    except OSError as error:
        return Attempt(False, time.monotonic() - begin, error=f"{type(error).__name__}: {error}")


def in_parallel(router: Router, address: str, count: int) -> list[Attempt]:
    found: list[Attempt] = []
    lock = threading.Lock()

    def one() -> None:
        attempt = connect(router, address)
        with lock:
            found.append(attempt)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return found


def udp_exchange(router: Router, address: str, tries: int = 3) -> tuple[bool, int]:
    """A DNS query over UDP to the lab's authoritative server at ``address`` (its IPv4; its
    name is dual-stack), retried every 1 s (at most ``tries``): answered, and on which try."""
    query = DNSRecord.question("lab.example", "SOA").pack()
    sock = socket_in(router.lab.lan, socket.AF_INET, socket.SOCK_DGRAM)
    with contextlib.closing(sock):
        sock.settimeout(1.0)
        for n in range(1, tries + 1):
            sock.sendto(query, (address, 53))
            try:
                data, _ = sock.recvfrom(2048)
            except TimeoutError:
                continue
            if data:
                return True, n
    return False, tries


@contextlib.contextmanager
def narrow_native_path(router: Router, target: str, *, ptb: bool) -> Iterator[None]:
    """An MTU of 1280 on the ISP's native path to and from ``target`` (not on its NAT64 path);
    ``ptb`` False also drops the ISP's ICMPv6 Packet Too Big (a PMTU black hole)."""
    isp, lab = router.lab.isp, router.lab
    ip = ["ip", "-6"]
    run(isp, [*ip, "route", "add", f"{target}/128", "via", INET_ISP_ADDR6, "mtu", "1280"])
    run(isp, [*ip, "route", "add", lab.DELEGATED_PREFIX, "via", lab.CE_WAN_ADDR6, "mtu", "1280",
              "table", "125"])  # fmt: skip
    run(isp, [*ip, "rule", "add", "from", target, "table", "125"])
    if not ptb:
        isp.nft("add table inet isp_ptb\nadd chain inet isp_ptb out { type filter hook output "
                "priority 0; policy accept; }\nadd rule inet isp_ptb out icmpv6 type "
                "packet-too-big drop\n")  # fmt: skip
    try:
        yield
    finally:
        run(isp, ["nft", "delete", "table", "inet", "isp_ptb"], check=False)
        run(isp, [*ip, "rule", "del", "from", target, "table", "125"], check=False)
        run(isp, [*ip, "route", "flush", "table", "125"], check=False)
        run(isp, [*ip, "route", "del", f"{target}/128"], check=False)


def echo_bulk(
    router: Router, address: str, size: int = 2_000_000, seconds: float = 20
) -> tuple[int, str]:
    """Send ``size`` bytes to the echo server and read them back (both directions carry full
    segments); the bytes that came back within ``seconds``, and who the server saw."""
    lab = router.lab
    line = b"x" * 999 + b"\n"
    with lab.flow(lab.lan, address, timeout=seconds) as flow:
        peer = str(lab.accepted(flow.tag)["peer"])
        sock = flow.sock
        sender = threading.Thread(target=lambda: _send(sock, line * (size // len(line))))
        sender.daemon = True
        sender.start()
        got, deadline = 0, time.monotonic() + seconds
        while got < size // len(line) * len(line) and time.monotonic() < deadline:
            try:
                data = sock.recv(1 << 16)
            except TimeoutError:
                break
            if not data:
                break
            got += len(data)
    sender.join(5)
    return got, peer


def _send(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):  # closed under it when the transfer stalled
        sock.sendall(data)


HTTP_PORT = 8081  # a plain HTTP server in `inet` for curl (the echo server never closes)


def http_server(router: Router) -> Path:
    """Python's http.server in `inet` on every address (dual-stack socket on [::]), started
    once per lab; its log (one line per request, the client's address first)."""
    lab = router.lab
    log = lab.procs.logdir / "http.log"
    if not any(p.name == "http" for p in lab.procs):
        root = lab.workdir / "www"
        root.mkdir(exist_ok=True)
        (root / "index.html").write_text("safety\n")
        argv = [sys.executable, "-m", "http.server", "--bind", "::", "--directory", str(root),
                str(HTTP_PORT)]  # fmt: skip

        def ready() -> bool:
            reply = run(lab.inet, ["curl", "-sS", f"http://[::1]:{HTTP_PORT}/"], check=False)
            return reply.returncode == 0

        lab.procs.start("http", argv, netns=lab.inet.name, ready=ready)
    return log


def curl(router: Router, address: str) -> Attempt:
    """One request by curl with its defaults (the kernel's TCP), from the IPv4-only client;
    who the server saw is read from its log (the last request's client)."""
    log = http_server(router)
    begin = time.monotonic()
    got = run(router.lab.lan, ["curl", "-sS", "-o", "/dev/null", "-w", "%{time_connect}",
                               f"http://{address}:{HTTP_PORT}/"], check=False)  # fmt: skip
    seconds = time.monotonic() - begin
    if got.returncode != 0:
        return Attempt(False, seconds, error=f"curl exit {got.returncode}: {got.stderr.strip()}")
    lines = [line for line in log.read_text().splitlines() if '"GET / ' in line]
    peer = lines[-1].split()[0].removeprefix("::ffff:") if lines else None
    return Attempt(True, seconds, peer)
