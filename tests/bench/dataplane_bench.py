"""`make bench` (dataplane part): what installing a mapping costs, and what it does to running
flows (SPEC 5, dataplane v2: every mapping is one nftables transaction, the CLAT never changes).

1. Install time: the same batches (one new mapping each: an IPv4 and an IPv6 element, with the
   note) through libnftables in process and through the `nft` binary, in a namespace of their
   own, one after the other in this run; p50 and p99 per batch.
2. Answers: the daemon on the lab's home router (external CLAT, as OpenWrt's 464xlat) answers
   bursts of A queries for fresh dual-stack names; each answer waits for its mapping.  The
   baseline is an answer for a name already mapped.
3. Stall: a flow through the CLAT echoes back to back while 100 new mappings are installed (60
   from DNS answers, 40 operator `add`s); the longest round trip minus the median before them.

Lines: `dataplane: map install p50 X ms, p99 Y ms (nft in-process) ...` and
`dataplane: longest stall S ms ...`.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Network, IPv6Network
from multiprocessing.synchronize import Event
from pathlib import Path

from clat_eamt.control.client import call
from clat_eamt.core.dataplane import Note
from clat_eamt.core.translation import PoolTranslation
from clat_eamt.dataplane.nft import NftTable, Steering
from clat_eamt.dataplane.nftlib import Nft
from tests.integration.routerkit import Router, home_router
from tests.labkit import Netns
from tests.labkit.zone import BENCH_NAMES

BATCHES = 300
STALL_ADDS = 40
T = PoolTranslation(IPv6Network("2001:db8:64::/96"))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def install_times(nft: Nft) -> list[float]:
    """Milliseconds per batch: add one mapping (both legs), then remove it again later."""
    table = NftTable(nft)
    await table.ensure(Steering(True, "clat", None, (T.covering(IPv4Network("10.64.0.0/16")),)))
    times: list[float] = []
    for i in range(BATCHES):
        d = IPv4Network((0xC6336400 + (i % 200), 32))  # 198.51.100.0-199: documentation
        p = IPv4Network((0x0A400000 + i, 32))  # the pool 10.64.0.0/16 here
        [t] = T.of(p)
        x = IPv6Network((0x20010DB8_0003 << 80 | i, 128))
        note = Note("dns", 1e6 + i, (f"b{i}.bench.example",))
        start = time.perf_counter()
        await table.apply({d: (p, note)}, [], {t: x}, [])
        times.append((time.perf_counter() - start) * 1000)
        await table.apply({}, [d], {}, [t])
    await table.remove()
    return times


def install_lines() -> str:
    with Netns("bench") as ns:
        library = asyncio.run(install_times(Nft(netns=ns.name)))
        binary = asyncio.run(install_times(Nft(netns=ns.name, use_library=False)))
    return (
        f"dataplane: map install p50 {percentile(library, 0.5):.2f} ms, "
        f"p99 {percentile(library, 0.99):.2f} ms (nft in-process); the same {BATCHES} batches "
        f"through the nft binary: p50 {percentile(binary, 0.5):.2f} ms, "
        f"p99 {percentile(binary, 0.99):.2f} ms"
    )


def make_mappings(router: Router, go: Event, fresh_ms: list[float], again_ms: list[float]) -> None:
    """In a process of its own (so the ticking flow never waits for this one's GIL): DNS answers
    for every bench name in bursts of six, then the operator's adds."""
    lab, socket = router.lab, router.options["control_socket"]
    go.wait()

    def timed(name: str) -> float:
        start = time.perf_counter()
        router.resolve(lab.lan, name)
        return (time.perf_counter() - start) * 1000

    names = [f"b{i}.lab.example" for i in range(BENCH_NAMES)]
    with ThreadPoolExecutor(6) as pool:
        for first in range(0, len(names), 6):
            fresh_ms.extend(list(pool.map(timed, names[first : first + 6])))
            again_ms.extend(list(pool.map(timed, names[first : first + 6])))  # already mapped
    for i in range(STALL_ADDS):
        call(socket, "add", {"ipv4": f"192.0.2.{200 + i}", "ipv6": f"2001:db8:3::{i + 1:x}"})


def main() -> int:
    print(install_lines(), flush=True)
    lifted = {"create_burst": "1000", "host_create_burst": "1000"}  # nothing throttled here
    context = multiprocessing.get_context("fork")
    with (
        tempfile.TemporaryDirectory(prefix="clat-eamt-bench-") as tmp,
        home_router(Path(tmp), **lifted) as router,
        context.Manager() as manager,
    ):
        lab = router.lab
        fresh_ms, again_ms, go = manager.list(), manager.list(), context.Event()
        worker = context.Process(target=make_mappings, args=(router, go, fresh_ms, again_ms))
        worker.start()
        with lab.flow(lab.lan, "192.0.2.20") as flow:  # IPv4-only server: through the CLAT
            before = [flow.roundtrip("before") for _ in range(200)]
            flow.start_ticker(0.0)  # back to back
            go.set()
            worker.join(300)
            if worker.exitcode != 0:
                print(f"dataplane: the process making mappings failed ({worker.exitcode})")
                return 1
            ticks = flow.stop_ticker()
        fresh_ms, again_ms = list(fresh_ms), list(again_ms)
        status = router.status()
    rtts = [t.rtt for t in ticks if t.rtt is not None]
    if len(rtts) != len(ticks):
        print("dataplane: the ticking flow BROKE while mappings were installed")
        return 1
    median = statistics.median(before) * 1000
    longest = max(rtts) * 1000
    mapped = status["counters"].get("created", 0)  # DNS and operator alike
    install = status["dataplane"]["install"]
    print(
        f"dataplane: DNS answer needing a new mapping: median {statistics.median(fresh_ms):.1f} "
        f"ms; already mapped (baseline): median {statistics.median(again_ms):.1f} ms; daemon "
        f"install p50 {install['p50_ms']:.2f} ms, p99 {install['p99_ms']:.2f} ms"
    )
    print(
        f"dataplane: longest stall {longest - median:.1f} ms (a flow echoing back to back, "
        f"{len(rtts)} round trips, while {mapped} new mappings were installed; median round "
        f"trip before them {median:.2f} ms, longest during {longest:.2f} ms)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
