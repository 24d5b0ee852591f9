"""`make bench` (dataplane part): how long a burst of new mappings takes to install.

The daemon runs on the lab's home router with tayga as its CLAT; bursts of A queries for fresh
dual-stack names arrive together (a TV starting an app), each answer waiting for its mapping.
The daemon measures, per answer, the time from its batch being queued to the DNAT element and
the tayga map being in place; the burst folds into as few batches (tayga restarts) as the
queue allows.  The baseline measured in the same run is the time of a DNS answer that needs no
new mapping (a name already mapped), so the cost of installing is visible against it.

Last line: `dataplane: map install p50 X ms, p99 Y ms (tayga restart|reload)`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.integration.routerkit import home_router
from tests.labkit.zone import BENCH_NAMES


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--burst", type=int, default=6, help="names per burst")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="clat-eamt-bench-") as tmp,
        home_router(Path(tmp), apply_timeout_ms="1000") as router,
    ):
        lab = router.lab
        names = [f"b{i}.lab.example" for i in range(BENCH_NAMES)]
        fresh_ms: list[float] = []
        again_ms: list[float] = []

        def timed(name: str) -> float:
            start = time.perf_counter()
            router.resolve(lab.lan, name)
            return (time.perf_counter() - start) * 1000

        with ThreadPoolExecutor(args.burst) as pool:
            for first in range(0, len(names), args.burst):
                burst = names[first : first + args.burst]
                fresh_ms += pool.map(timed, burst)
                time.sleep(0.2)
                again_ms += pool.map(timed, burst)  # the baseline: already mapped
        status = router.status()
    install = status["dataplane"]["install"]
    mode = "reload" if "live-update" in status["dataplane"]["mode"] else "restart"
    print(
        f"DNS answer needing a new mapping: median {statistics.median(fresh_ms):.1f} ms; "
        f"already mapped (baseline): median {statistics.median(again_ms):.1f} ms; "
        f"{status['counters'].get('dataplane.batches_done', 0)} batches for "
        f"{install['count']} answers"
    )
    print(
        f"dataplane: map install p50 {install['p50_ms']:.1f} ms, "
        f"p99 {install['p99_ms']:.1f} ms (tayga {mode})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
