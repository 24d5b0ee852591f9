"""`make bench` (hostile part): does one large answer cost the daemon more than a small one?

Issue 26, as an attacker would try it: the real daemon on loopback (translator none, every host
counted IPv4-only: ``host_mode all``) behind a resolver stand-in in this process that answers
``n<N>.a1.hostile.example`` with one A record and ``n<N>.a4000.hostile.example`` with 4,000
(a 64 KB UDP answer), each name with an AAAA of its own, TTL one day.  The one A record is a
documentation address (each name a new mapping), the 4,000 are 198.18.0.0/15 (benchmarking,
RFC 2544), the AAAA 2001:db8::/32: data in answers on loopback only.

- stall: a client sends one query a millisecond (names of one A record) and notes each answer's
  delay; in a window of 300 ms the longest delay.  The baseline B is the median of that over
  ten windows of the stream alone, S the median over ten windows into whose middle one query
  for a 4,000-A name is sent.
- cpu per answer: the daemon's CPU time (``/proc/PID/schedstat``: nanoseconds) over 300 new
  names of one A record asked one after the other, and over 300 of 4,000, per answer.
- rss: the daemon's resident memory after the 300 answers of 4,000 records (and the ten of the
  stall windows).

Last line: `hostile: stall from one 4000-A answer S ms (baseline B ms), cpu per answer 1 A X us
/ 4000 A Y us, rss after 300 such answers R MB`; the targets (issue 26): S - B < 5 ms, Y <= 2 X,
R <= 30 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import struct
import time
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from tests.bench.loopback import LoopbackDaemon, loopback_daemon, start_resolver

FIRST_A = int(IPv4Address("198.18.0.0"))
DOCUMENTATION = [  # the one-A names' destinations: mappable with allow_documentation
    IPv4Address(f"{net}.{i}") for net in ("192.0.2", "198.51.100", "203.0.113") for i in range(256)
]
TARGETS = int(IPv6Address("2001:db8:bad::"))
TTL = 86400
_RR = struct.Struct("!HHHIH")  # pointer to the question's name, type, class, TTL, rdlength
_FLOOD = b"".join(  # the answer section of a 4000-A name, built once
    _RR.pack(0xC00C, 1, 1, TTL, 4) + IPv4Address(FIRST_A + i).packed for i in range(4000)
)
_FIRST = {"s": 0, "n": 100, "w": 600}  # stream, new names, the stall windows' 4000-A names


def _number(name: bytes) -> int:
    """A distinct small number per name of the bench (``s7``, ``n123``, ``w3``; 0 else)."""
    label = name[1 : 1 + name[0]].decode("ascii", "replace")
    digits = label[1:]
    return _FIRST.get(label[:1], 0) + int(digits) if digits.isdigit() else 0


def answer(query: bytes) -> bytes | None:
    """The stand-in's answer: the query's header and question, then the records (module doc)."""
    if len(query) < 17:
        return None
    end = query.find(b"\x00", 12) + 5  # the question's name ends with the root label
    if end < 17 or end > len(query):
        return None
    name = query[12 : end - 4]
    qtype = int.from_bytes(query[end - 4 : end - 2])
    if b"\x05a4000" not in name and b"\x02a1" not in name:
        return query[:2] + b"\x81\x83" + b"\x00\x01\x00\x00\x00\x00\x00\x00" + query[12:end]
    n = _number(name)
    if qtype == 28:
        target = IPv6Address(TARGETS + n).packed
        body, count = _RR.pack(0xC00C, 28, 1, TTL, 16) + target, 1
    elif qtype != 1:
        body, count = b"", 0
    elif b"\x05a4000" in name:
        body, count = _FLOOD, 4000
    else:
        body, count = _RR.pack(0xC00C, 1, 1, TTL, 4) + DOCUMENTATION[n % 768].packed, 1
    header = query[:2] + b"\x81\x80" + struct.pack("!HHHH", 1, count, 0, 0)
    return header + query[12:end] + body


def query(qid: int, name: str) -> bytes:
    labels = b"".join(bytes([len(x)]) + x.encode() for x in name.split("."))
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + b"\x00\x00\x01\x00\x01"


def cpu_ns(daemon: LoopbackDaemon) -> int:
    return int(Path(f"/proc/{daemon.proc.pid}/schedstat").read_text().split()[0])


class Client:
    """One UDP socket to the daemon; answers are matched to queries by ID alone."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.sock.setblocking(False)
        self.sock.connect(("127.0.0.1", port))
        self.sent: dict[int, float] = {}
        self.delays: list[float] = []
        self.waiting: dict[int, asyncio.Future[None]] = {}
        self._next = 0
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self._read)

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()

    def _read(self) -> None:
        now = time.perf_counter()
        while True:
            try:
                data = self.sock.recv(65535)
            except BlockingIOError:
                return
            qid = int.from_bytes(data[:2])
            sent = self.sent.pop(qid, None)
            if sent is not None:
                self.delays.append(now - sent)
            waiter = self.waiting.pop(qid, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def send(self, name: str) -> int:
        self._next = (self._next + 1) & 0xFFFF
        self.sent[self._next] = time.perf_counter()
        self.sock.send(query(self._next, name))
        return self._next

    async def ask(self, name: str) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self.waiting[self.send(name)] = waiter
        await asyncio.wait_for(waiter, 10)


async def window(client: Client, inject: str | None, length: float = 0.3) -> float:
    """The longest delay of the one-a-millisecond stream's answers over ``length`` seconds."""
    client.delays.clear()
    start = time.perf_counter()
    n = 0
    injected = inject is None
    while (now := time.perf_counter()) - start < length:
        if not injected and now - start >= length / 3:
            client.send(inject)  # type: ignore[arg-type]
            injected = True
        client.send(f"s{n % 50}.a1.hostile.example")
        n += 1
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.2)  # the last answers
    return max(client.delays) * 1000


async def run(answers: int) -> tuple[float, float, float, float, float, float]:
    transport, upstream = await start_resolver(answer)
    try:
        with loopback_daemon(upstream) as daemon:
            client = Client(daemon.port)
            for n in range(50):
                await client.ask(f"s{n}.a1.hostile.example")  # the stream's names, known
            await client.ask("warm.a4000.hostile.example")
            await asyncio.sleep(1.5)  # a tick or two
            rss0 = daemon.rss_mb()
            baseline, stall = [], []
            for n in range(10):
                baseline.append(await window(client, None))
                stall.append(await window(client, f"w{n}.a4000.hostile.example"))
            per_answer = []
            for kind in ("a1", "a4000"):
                before = cpu_ns(daemon)
                for n in range(answers):
                    await client.ask(f"n{n}.{kind}.hostile.example")
                per_answer.append((cpu_ns(daemon) - before) / answers / 1000)
            rss = daemon.rss_mb()
            status = daemon.call("status")
            client.close()
    finally:
        transport.close()
    unusable = status["counters"].get("answers.unusable", 0)
    print(
        f"hostile: rss {rss0:.1f} MB at start; answers passed unread {unusable}; "
        f"{status['mappings']} mappings; stall windows (ms) baseline "
        f"{' '.join(f'{x:.1f}' for x in baseline)}, with a 4000-A answer "
        f"{' '.join(f'{x:.1f}' for x in stall)}"
    )
    return (
        statistics.median(stall), statistics.median(baseline), per_answer[0], per_answer[1],
        rss, rss0,
    )  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--answers", type=int, default=300, help="new names of each kind")
    args = parser.parse_args()
    stall, base, x, y, rss, _ = asyncio.run(run(args.answers))
    print(
        f"hostile: stall from one 4000-A answer {stall:.1f} ms (baseline {base:.1f} ms), "
        f"cpu per answer 1 A {x:.0f} us / 4000 A {y:.0f} us, "
        f"rss after {args.answers} such answers {rss:.1f} MB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
