"""`make bench` (dataplane part): what installing a mapping costs, and what it does to running
flows (SPEC 5, dataplane v2: every mapping is one nftables transaction, the CLAT never changes).

1. Install time: the same batches (one new mapping each: an IPv4 and an IPv6 element, with the
   note) through libnftables in process and through the `nft` binary, in a namespace of their
   own, one after the other in this run; p50 and p99 per batch.
2. Answers: the daemon on the lab's home router (external CLAT, as OpenWrt's 464xlat) answers
   bursts of A queries for fresh dual-stack names; each answer waits for its mapping.  The
   baseline is an answer for a name already mapped.
3. Stall: a native flow through the CLAT echoes back to back while 100 new mappings are
   installed one by one (operator `add`s from another process: each one nft transaction, with
   no DNS work competing for the CPU); the longest round trip minus the median before them.
   The flow's own processes (the ticking thread, the lab's CLAT tayga, the echo server) run at
   real-time priority (SCHED_FIFO): a flow's round trip on a 2-vCPU machine shared with the
   daemon, the process making mappings and whatever else runs here otherwise waits for a CPU
   for 10-15 ms now and then, which says nothing about the dataplane.  A stall the dataplane
   causes (a lock a packet waits for, a translator that is not there) shows at any priority.
   The ticking thread is this process's, so its garbage collector is off while the flow
   ticks (a full collection walks every tick kept).  Two baselines in the same run: the same
   flow as long again with nothing installed, and the longest a SCHED_FIFO loop alone on one
   CPU waits between two reads of the clock (on a virtual machine the host takes the CPU away
   now and then: nothing inside the machine can get below that).

Lines: `dataplane: map install p50 X ms, p99 Y ms (nft in-process) ...` and
`dataplane: longest stall S ms ...`.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Network, IPv6Network
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path

from clat_eamt.control.client import call
from clat_eamt.core.dataplane import Note
from clat_eamt.core.translation import PoolTranslation
from clat_eamt.dataplane.nft import NftTable, Steering
from clat_eamt.dataplane.nftlib import Nft
from tests.integration.routerkit import home_router
from tests.labkit import Netns
from tests.labkit.zone import BENCH_NAMES

BATCHES = 300
STALL_ADDS = 100
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


def realtime(pids: list[int]) -> None:
    """Every thread of these processes (0: this one) at SCHED_FIFO priority 10 (sched(7));
    threads started later inherit it."""
    param = os.sched_param(10)
    for pid in pids:
        for task in Path(f"/proc/{pid or os.getpid()}/task").iterdir():
            os.sched_setscheduler(int(task.name), os.SCHED_FIFO, param)


def host_pause(seconds: float, out: Connection) -> None:
    """In a process of its own: the longest gap between two clock reads of a SCHED_FIFO loop
    pinned to one CPU, in bursts of 0.2 s with 50 ms breaks (under the kernel's real-time
    throttle, sched(7): 0.95 s of every second)."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    longest, end = 0.0, time.monotonic() + seconds
    while time.monotonic() < end:
        last = burst_end = time.perf_counter()
        burst_end += 0.2
        while last < burst_end:
            now = time.perf_counter()
            longest, last = max(longest, now - last), now
        time.sleep(0.05)
    out.send(longest)


def add_mappings(socket: str, go: Event) -> None:
    """In a process of its own (so the ticking flow never waits for this one's GIL): the
    operator's adds, one after the other, each one mapping installed (one nft transaction)."""
    go.wait()
    for i in range(STALL_ADDS):
        call(socket, "add", {"ipv4": f"192.0.2.{140 + i}", "ipv6": f"2001:db8:3::{i + 1:x}"})


def main() -> int:
    print(install_lines(), flush=True)
    # Nothing throttled here; flushed entries go at once (the pool is the lab's /25).
    lifted = {"create_burst": "1000", "host_create_burst": "1000", "stale_linger": "0"}
    context = multiprocessing.get_context("fork")
    with (
        tempfile.TemporaryDirectory(prefix="clat-eamt-bench-") as tmp,
        home_router(Path(tmp), **lifted) as router,
    ):
        lab = router.lab
        fresh_ms: list[float] = []
        again_ms: list[float] = []

        def timed(name: str) -> float:
            start = time.perf_counter()
            router.resolve(lab.lan, name)
            return (time.perf_counter() - start) * 1000

        names = [f"b{i}.lab.example" for i in range(BENCH_NAMES)]
        with ThreadPoolExecutor(6) as pool:  # bursts of six, as a TV starting an app
            for first in range(0, len(names), 6):
                fresh_ms += pool.map(timed, names[first : first + 6])
                again_ms += pool.map(timed, names[first : first + 6])  # already mapped
        install = router.status()["dataplane"]["install"]
        call(router.options["control_socket"], "flush")  # the pool free for the next part
        router.wait(lambda: not router.mappings(), "the flushed entries to go", 15)
        go = context.Event()
        worker = context.Process(target=add_mappings, args=(router.options["control_socket"], go))
        worker.start()
        [address] = router.resolve(lab.lan, "ds1.lab.example")
        realtime([0, lab.procs["clat"].popen.pid, lab.procs["tcpserver"].popen.pid])
        gc.disable()
        with lab.flow(lab.lan, address) as flow:  # native, through the CLAT and the table
            before = [flow.roundtrip("before") for _ in range(200)]
            start = time.monotonic()
            flow.start_ticker(0.0)  # back to back
            go.set()
            worker.join(300)
            ticks = flow.stop_ticker()
            took = time.monotonic() - start
            flow.ticks.clear()  # the baseline: as long again with nothing installed
            flow.start_ticker(0.0)
            time.sleep(took)
            quiet = [t.rtt for t in flow.stop_ticker() if t.rtt is not None]
        gc.enable()
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        if worker.exitcode != 0:
            print(f"dataplane: the process making mappings failed ({worker.exitcode})")
            return 1
        mappings = router.mappings()
        added = sum(1 for m in mappings if m["origin"] == "static")
        if added != STALL_ADDS:
            states = sorted({(m["origin"], m["state"]) for m in mappings})
            print(f"dataplane: {added} of the {STALL_ADDS} static mappings are there ({states})")
            return 1
        ours, theirs = context.Pipe()
        prober = context.Process(target=host_pause, args=(took, theirs))
        prober.start()
        host_ms = ours.recv() * 1000
        prober.join()
    rtts = [t.rtt for t in ticks if t.rtt is not None]
    if len(rtts) != len(ticks):
        print("dataplane: the ticking flow BROKE while mappings were installed")
        return 1
    median = statistics.median(before) * 1000
    longest = max(rtts) * 1000
    print(
        f"dataplane: DNS answer needing a new mapping: median {statistics.median(fresh_ms):.1f} "
        f"ms; already mapped (baseline): median {statistics.median(again_ms):.1f} ms; daemon "
        f"install p50 {install['p50_ms']:.2f} ms, p99 {install['p99_ms']:.2f} ms"
    )
    print(
        f"dataplane: longest stall {longest - median:.1f} ms (a native flow echoing back to "
        f"back, {len(rtts)} round trips, while {added} new mappings were installed one by one; "
        f"median round trip before them {median:.2f} ms, longest during {longest:.2f} ms); "
        f"baselines in this run: the same flow as long with nothing installed, longest stall "
        f"{max(quiet) * 1000 - median:.1f} ms; a SCHED_FIFO loop alone on one CPU, longest "
        f"pause {host_ms:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
