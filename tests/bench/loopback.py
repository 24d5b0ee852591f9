"""The real daemon (`python -m clat_eamt run`, translator none) on loopback, with a resolver
stand-in in this process: what `make bench` (scale) and `make fuzz` drive.

The stand-in answers every name ``h<N>.scale.example`` with one A record derived from N and,
unless the name starts with ``v4``, one AAAA (2001:db8:5ca1::N), TTL one hour: each name a new
dual-stack destination, so every A query makes a new mapping.  Ten thousand distinct IPv4
destinations do not fit the documentation ranges (768 addresses), so the A records come from
44.0.0.0/8 counted up from N: they are data in answers on loopback only; with translator none
nothing is installed and no packet is ever sent to them.  Other names get NXDOMAIN.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any

from dnslib import AAAA, QTYPE, RR, A, DNSRecord

from clat_eamt.control.client import DaemonNotRunningError, call

FIRST_A = int(IPv4Address("44.0.0.1"))
AAAA_BASE = int(IPv6Address("2001:db8:5ca1::"))


def name_of(n: int, dual_stack: bool = True) -> str:
    return f"{'h' if dual_stack else 'v4'}{n}.scale.example"


def answer(query: bytes) -> bytes | None:
    """The stand-in's answer to one query (None for what is not a query it can read)."""
    try:
        record = DNSRecord.parse(query)
    except Exception:  # the fuzz run sends garbage through the daemon; drop what is unreadable
        return None
    reply = record.reply()
    name = str(record.q.qname).rstrip(".").lower()
    label = name.split(".", 1)[0]
    number = label[1:] if label.startswith("h") else label[2:] if label.startswith("v4") else ""
    if not name.endswith(".scale.example") or not number.isdigit():
        reply.header.rcode = 3  # NXDOMAIN
        return reply.pack()
    n = int(number)
    if record.q.qtype == QTYPE.A:
        reply.add_answer(RR(name, QTYPE.A, ttl=3600, rdata=A(str(IPv4Address(FIRST_A + n)))))
    elif record.q.qtype == QTYPE.AAAA and label.startswith("h"):
        target = AAAA(str(IPv6Address(AAAA_BASE + n)))
        reply.add_answer(RR(name, QTYPE.AAAA, ttl=3600, rdata=target))
    return reply.pack()


class _Resolver(asyncio.DatagramProtocol):
    def __init__(self, respond: Callable[[bytes], bytes | None]) -> None:
        self.respond = respond
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = self.respond(data)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


async def start_resolver(
    respond: Callable[[bytes], bytes | None] = answer,
) -> tuple[asyncio.DatagramTransport, int]:
    """The stand-in on 127.0.0.1 (``respond``: its answers; this module's by default)."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Resolver(respond), local_addr=("127.0.0.1", 0)
    )
    return transport, int(transport.get_extra_info("sockname")[1])


def free_port() -> int:
    """Free for UDP and TCP: the daemon listens on both."""
    from tests.labkit.ports import free_port as both  # noqa: PLC0415

    return both()


@dataclass
class LoopbackDaemon:
    proc: subprocess.Popen[bytes]
    port: int
    control: str
    log: Path

    def call(self, method: str, **args: str) -> Any:
        return call(self.control, method, args, timeout=60)

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def alive(self) -> bool:
        return self.proc.poll() is None


def config_text(port: int, upstream: int, control: str, state: str) -> str:
    options = {
        "listen": "127.0.0.1",
        "port": str(port),
        "upstream": f"127.0.0.1#{upstream}",
        "control_socket": control,
        "state_dir": state,
        "provider_serial_file": f"{state}/provider.serial",
        "translator": "none",
        "allow_documentation": "1",  # the AAAA targets are documentation addresses
        "pref64": "2001:db8:64::/96",
        "host_mode": "all",  # no neighbour tables on loopback
        "lan_interface": "lo",
        "max_entries": "100000",
        "create_rate": "100000",
        "create_burst": "1000000",
        "host_create_rate": "100000",
        "host_create_burst": "1000000",
        "hold_ms": "1000",  # a loaded machine must not turn a late AAAA into a missing entry
    }
    lines = ["config globals 'globals'"]
    lines += [
        f"\t{'list' if k in ('upstream', 'pref64', 'lan_interface') else 'option'} {k} '{v}'"
        for k, v in options.items()
    ]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def loopback_daemon(
    upstream: int, log_level: str = "warning", profile: str | None = None
) -> Iterator[LoopbackDaemon]:
    """The daemon forwarding to 127.0.0.1#``upstream``; stopped (SIGTERM, then SIGKILL) on exit.
    ``profile``: run it under cProfile and write the profile there."""
    with tempfile.TemporaryDirectory(prefix="clat-eamt-loop-") as tmp:
        port, control = free_port(), f"{tmp}/control.sock"
        config = Path(tmp) / "clat-eamt.uci"
        config.write_text(config_text(port, upstream, control, f"{tmp}/state"))
        argv = [sys.executable]
        if profile:
            argv += ["-m", "cProfile", "-o", profile]
        argv += ["-m", "clat_eamt", "run", "--config", str(config), "--log-level", log_level]
        log = Path(tmp) / "daemon.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        daemon = LoopbackDaemon(proc, port, control, log)
        try:
            wait_until(lambda: _answers(daemon), 20, f"daemon did not start: {log.read_text()}")
            yield daemon
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()


def _answers(daemon: LoopbackDaemon) -> bool:
    if not daemon.alive():
        raise RuntimeError(f"daemon exited: {daemon.log.read_text()}")
    try:
        daemon.call("status")
    except (DaemonNotRunningError, OSError):
        return False
    return True


def wait_until(check: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise TimeoutError(message)
