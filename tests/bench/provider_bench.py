"""`make bench` (provider part): what an operator's table of 10,000 entries costs the daemon.

The real daemon runs on loopback with translator none (tests/bench/loopback.py).  A table of
10,000 /32 -> /128 entries is pushed through the control socket (the method ``provider``:
read in a thread, checked, installed), timed from the call to its answer, and the daemon's
resident memory compared before and after.  Then it and a second daemon started in the same
run without a table (the baseline) answer new dual-stack names in alternating batches, so a
busy moment of the machine hits both alike.  The table's entries are data only (nothing is
sent to them; translator none).

Last line: `provider: 10000 entries loaded in T s, rss +M MB, answers/s with them A (baseline
without them B)`.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from ipaddress import IPv4Address, IPv6Address

from tests.bench.loopback import loopback_daemon, start_resolver
from tests.bench.scale_bench import Client

FIRST = int(IPv4Address("45.0.0.1"))  # the table's IPv4s: apart from the names' (44.0.0.1 ...)
TARGET = int(IPv6Address("2001:db8:7::"))
WINDOW = 1000  # new names each daemon answers after the load, for answers/s


def table_text(entries: int) -> str:
    lines = ["# make bench: the operator's table", "serial 1", "refresh 3600"]
    lines += [
        f"{IPv4Address(FIRST + n)} {IPv6Address(TARGET + n)} ttl=86400 # entry {n}"
        for n in range(entries)
    ]
    return "\n".join(lines) + "\n"


async def run(entries: int, window: int) -> tuple[float, float, float, float]:
    transport, upstream = await start_resolver()
    try:
        with loopback_daemon(upstream) as plain_daemon, loopback_daemon(upstream) as daemon:
            plain, loaded = Client(plain_daemon), Client(daemon)
            for client in (plain, loaded):
                await client.ask(10**6, 50)  # warm up: imports, first allocations
            await asyncio.sleep(1.5)  # a tick or two, so the baseline RSS includes them
            rss0 = daemon.rss_mb()
            text = table_text(entries)
            start = time.perf_counter()
            load = asyncio.create_task(asyncio.to_thread(daemon.call, "provider", table=text))
            # Meanwhile both daemons answer new names, one at a time each: the longest wait
            # for an answer while the table goes in, against the baseline's at the same time.
            waits: dict[Client, float] = {plain: 0.0, loaded: 0.0}
            n = 4 * 10**6
            while not load.done():
                for client in (plain, loaded):
                    began = time.perf_counter()
                    await client.ask(n, 1)
                    waits[client] = max(waits[client], time.perf_counter() - began)
                    n += 1
            result = await load
            seconds = time.perf_counter() - start
            print(
                f"provider: longest answer while loading {1000 * waits[loaded]:.0f} ms "
                f"(baseline {1000 * waits[plain]:.0f} ms), {n - 4 * 10**6} answers"
            )
            installed = result["provider"]["installed"]
            if installed != entries:
                raise RuntimeError(f"{installed} entries installed, expected {entries}: {result}")
            await asyncio.sleep(1.5)
            rss = daemon.rss_mb()
            plain.seconds = loaded.seconds = 0.0
            for first in range(0, window, 100):
                await plain.ask(2 * 10**6 + first, min(100, window - first))
                await loaded.ask(3 * 10**6 + first, min(100, window - first))
            return seconds, rss - rss0, window / loaded.seconds, window / plain.seconds
    finally:
        transport.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=10_000, help="entries in the table")
    args = parser.parse_args()
    seconds, rss, with_them, baseline = asyncio.run(run(args.entries, WINDOW))
    print(
        f"provider: {args.entries} entries loaded in {seconds:.2f} s, rss +{rss:.1f} MB, "
        f"answers/s with them {with_them:.0f} (baseline without them {baseline:.0f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
