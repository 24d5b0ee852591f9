"""`make bench` (scale part): does an answer cost the same with 10,000 entries as with none?

The real daemon runs on loopback with translator none (so the figures are the core's and the
proxy's alone) behind a resolver stand-in that answers every name with a distinct A and AAAA
(tests/bench/loopback.py).  One client sends A queries for new dual-stack names one after the
other, each answer making a new mapping.  The baseline is a second daemon in the same run
that starts empty: one daemon is first filled to 9,000 entries, then both get 1,000 new names
in alternating batches (so a busy moment of the machine hits both alike): answers/s of the
empty one (0-1k entries) against the full one (9-10k), and the full one's resident memory
per 1k entries (its RSS at 10k minus its RSS at the start, over 10).

Last line: `scale: answers/s at 0-1k entries A, at 9-10k entries B, ratio B/A R, rss per 1k
entries M MB`.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import time

from dnslib import DNSRecord

from tests.bench.loopback import LoopbackDaemon, loopback_daemon, name_of, start_resolver


async def ask(loop: asyncio.AbstractEventLoop, sock: socket.socket, name: str) -> DNSRecord:
    query = DNSRecord.question(name, "A")
    await loop.sock_sendall(sock, query.pack())
    while True:
        reply = DNSRecord.parse(await asyncio.wait_for(loop.sock_recv(sock, 65535), 5))
        if reply.header.id == query.header.id:
            return reply


class Client:
    """One UDP socket to a daemon, asking new names one after the other."""

    def __init__(self, daemon: LoopbackDaemon) -> None:
        self.daemon = daemon
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sock.connect(("127.0.0.1", daemon.port))
        self.seconds = 0.0

    async def ask(self, first: int, count: int) -> None:
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        for n in range(first, first + count):
            reply = await ask(loop, self.sock, name_of(n))
            if len(reply.rr) != 1:
                raise RuntimeError(f"{name_of(n)}: unexpected answer {reply}")
        self.seconds += time.perf_counter() - start


async def run(entries: int, window: int, profile: str | None) -> tuple[float, float, float]:
    """Two daemons in one run: ``low`` starts empty, ``high`` is filled to ``entries - window``
    first; then both get ``window`` new names in alternating batches of 100, so a busy moment
    of the machine hits both alike.  Memory is ``high``'s, from its start to the end."""
    transport, upstream = await start_resolver()
    try:
        with (
            loopback_daemon(upstream) as low_daemon,
            loopback_daemon(upstream, profile=profile) as high_daemon,
        ):
            low, high = Client(low_daemon), Client(high_daemon)
            for client in (low, high):
                await client.ask(10**6, 50)  # warm up: imports, first allocations
            await asyncio.sleep(1.5)  # a tick or two, so the baseline RSS includes them
            rss0 = high_daemon.rss_mb()
            before = high_daemon.call("status")["mappings"]
            await high.ask(0, entries - window)
            fill, high.seconds = high.seconds, 0.0
            low.seconds = 0.0
            for first in range(0, window, 100):
                await low.ask(2 * 10**6 + first, min(100, window - first))
                await high.ask(entries - window + first, min(100, window - first))
            mappings = high_daemon.call("status")["mappings"] - before
            rss = high_daemon.rss_mb()
            if mappings != entries:
                raise RuntimeError(f"{mappings} new entries, expected {entries}")
            print(
                f"scale: filled {entries - window} entries at {(entries - window) / fill:.0f}/s; "
                f"rss {rss0:.1f} MB at start, {rss:.1f} MB with {mappings} entries"
            )
            return window / low.seconds, window / high.seconds, (rss - rss0) / (entries / 1000)
    finally:
        transport.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=1000, help="names per measured window")
    parser.add_argument("--profile", help="run the daemon under cProfile, write the profile here")
    args = parser.parse_args()
    low, high, per_k = asyncio.run(run(args.entries, args.window, args.profile))
    k_low, k_high = args.window // 1000, args.entries // 1000
    print(
        f"scale: answers/s at 0-{k_low}k entries {low:.0f}, "
        f"at {k_high - k_low}-{k_high}k entries {high:.0f}, ratio B/A {high / low:.2f}, "
        f"rss per 1k entries {per_k:.2f} MB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
