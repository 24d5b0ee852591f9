"""`make footprint` (and `make bench`): what clat-eamt costs a router, measured in one run.

- ipk: the size of the clat-eamt package `make ipk` builds (openwrt/ipkg.py: bytecode, as the
  packages feed's Python packages are), and what it installs (its Installed-Size).
- the daemon runs from that package's bytecode (its data unpacked; dnslib from the test venv)
  with translator none on loopback, forwarding to a resolver stand-in in this process:
  - start: from exec to the first DNS answer (the median of three starts);
  - rss idle: VmRSS two seconds after the first answer;
  - rss at 10k mappings: VmRSS after 10,000 names were resolved through it and `status` counts
    10,000 mappings.  The stand-in answers A with addresses of 45.0.0.0/18 (the documentation
    ranges hold only 768 IPv4 addresses, and the daemon refuses special-purpose ones) and AAAA
    with 2001:db8::/32; nothing is ever sent to them: the translator is none, and every packet
    stays on loopback.

Last line: `footprint: ipk K KB, installed I KB, rss idle R MB, rss at 10k mappings M MB,
start S s`.  Targets (issue 14): ipk <= 100 KB, rss idle <= 20 MB, start <= 0.5 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import io
import os
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from dnslib import AAAA, QTYPE, RR, A, DNSRecord  # type: ignore[import-untyped]

from clat_eamt.control.client import call
from tests.integration.proxykit import uci
from tests.openwrtkit import free_port
from tests.openwrtkit.ipk import unpack as unpack_tree

REPO = Path(__file__).resolve().parents[2]
SITE = "usr/lib/python3.11/site-packages"
MAPPINGS = 10_000
V4_BASE = int(IPv4Address("45.0.0.0"))
V6_BASE = int(IPv6Address("2001:db8:45::"))


def build_ipk(out: Path) -> Path:
    """The clat-eamt package as `make ipk` builds it; ipkg's own message when it cannot."""
    argv = [sys.executable, str(REPO / "openwrt" / "ipkg.py"), "--out", str(out), "clat-eamt"]
    done = subprocess.run(argv, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        said = (done.stdout + done.stderr).strip()
        sys.exit(f"footprint: openwrt/ipkg.py failed (exit {done.returncode}):\n{said}")
    return next(out.glob("clat-eamt_*.ipk"))


def unpack(ipk: Path, dest: Path) -> int:
    """Unpack the package's data into ``dest``; its Installed-Size in bytes."""
    with tarfile.open(ipk, "r:gz") as outer:
        data = outer.extractfile("./data.tar.gz")
        control = outer.extractfile("./control.tar.gz")
        assert data is not None and control is not None
        raw_data, raw_control = data.read(), control.read()
    with tarfile.open(fileobj=io.BytesIO(raw_data), mode="r:gz") as tar:
        unpack_tree(tar, dest)
    with tarfile.open(fileobj=io.BytesIO(raw_control), mode="r:gz") as tar:
        fields = tar.extractfile("./control")
        assert fields is not None
        for line in fields.read().decode().splitlines():
            if line.startswith("Installed-Size: "):
                return int(line.split(": ", 1)[1])
    return len(gzip.decompress(raw_data))


class StandIn:
    """A resolver on loopback: every A and AAAA name n<i>.bench.example has one record."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            query = DNSRecord.parse(data)
            reply = query.reply()
            name = str(query.q.qname)
            label = name.split(".", 1)[0]
            if label.startswith("n") and label[1:].isdigit():
                i = int(label[1:])
                if query.q.qtype == QTYPE.A:
                    rdata = A(str(IPv4Address(V4_BASE + i)))
                    reply.add_answer(RR(name, QTYPE.A, rdata=rdata, ttl=3600))
                elif query.q.qtype == QTYPE.AAAA:
                    rdata = AAAA(str(IPv6Address(V6_BASE + i)))
                    reply.add_answer(RR(name, QTYPE.AAAA, rdata=rdata, ttl=3600))
            with contextlib.suppress(OSError):
                self.sock.sendto(reply.pack(), peer)

    def close(self) -> None:
        self.sock.close()


def config(work: Path, port: int, upstream: int) -> Path:
    options: dict[str, str | list[str]] = {
        "listen": "127.0.0.1",
        "port": str(port),
        "upstream": [f"127.0.0.1#{upstream}"],
        "pref64": ["2001:db8:64::/96"],
        "translator": "none",
        "allow_documentation": "1",
        "host_mode": "all",
        "lan_interface": ["lo"],
        "max_entries": str(MAPPINGS * 2),
        "hold_ms": "1000",  # a busy moment of this machine must not release an A unmapped
        "create_rate": "100000",
        "create_burst": "1000000",
        "host_create_rate": "100000",
        "host_create_burst": "1000000",
        "state_dir": str(work / "state"),
        "provider_serial_file": str(work / "state" / "provider.serial"),
        "control_socket": str(work / "control.sock"),
    }
    path = work / "clat-eamt.uci"
    path.write_text(uci(options))
    return path


def ask(port: int, name: str, qtype: str = "A", timeout: float = 0.2) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(DNSRecord.question(name, qtype).pack(), ("127.0.0.1", port))
        try:
            return sock.recv(4096)
        except OSError:
            return None


@contextlib.contextmanager
def daemon(site: Path, cfg: Path, port: int) -> Iterator[tuple[subprocess.Popen[bytes], float]]:
    """The daemon from the package's bytecode; yields it and its start time in seconds."""
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONDONTWRITEBYTECODE": "1"}
    argv = [sys.executable, "-m", "clat_eamt", "run", "--config", str(cfg)]
    argv += ["--log-level", "warning"]
    began = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while ask(port, "n0.bench.example", timeout=0.01) is None:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"the daemon exited: {err[-2000:]}")
        started = time.monotonic() - began
        yield proc, started
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def _resolve_all(port: int, count: int, window: int = 64) -> int:
    """Ask A for n0..n(count-1), ``window`` at a time; the number answered."""
    loop = asyncio.get_running_loop()
    answered = 0
    limit = asyncio.Semaphore(window)

    async def one(i: int) -> None:
        nonlocal answered
        async with limit:
            for _ in range(3):
                if await loop.run_in_executor(None, ask, port, f"n{i}.bench.example", "A", 2.0):
                    answered += 1
                    return

    await asyncio.gather(*(one(i) for i in range(count)))
    return answered


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="footprint-") as tmp:
        work = Path(tmp)
        ipk = build_ipk(work / "ipk")
        installed = unpack(ipk, work / "root")
        site = work / "root" / SITE
        stand_in = StandIn()
        try:
            port = free_port()
            cfg = config(work, port, stand_in.port)
            starts = []
            for _ in range(2):
                with daemon(site, cfg, port) as (_proc, started):
                    starts.append(started)
            with daemon(site, cfg, port) as (proc, started):
                starts.append(started)
                time.sleep(2.0)
                idle = rss_mb(proc.pid)
                answered = asyncio.run(_resolve_all(port, MAPPINGS))
                mappings = call(str(work / "control.sock"), "status")["mappings"]
                loaded = rss_mb(proc.pid)
            ipk_size = ipk.stat().st_size
        finally:
            stand_in.close()
    print(f"footprint: {answered} of {MAPPINGS} names answered, mappings in status: {mappings}")
    print(
        f"footprint: ipk {ipk_size / 1024:.0f} KB, installed {installed / 1024:.0f} KB, "
        f"rss idle {idle:.1f} MB, rss at 10k mappings {loaded:.1f} MB, "
        f"start {statistics.median(starts):.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
