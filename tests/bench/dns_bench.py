"""`make bench` (DNS part): what the proxy costs, measured against a baseline in the same run.

Two dnsmasq instances configured the way OpenWrt does (add-mac, add-subnet=32,128; cache off,
so every query is forwarded, which is also what dnsmasq does with per-client options, SPEC 7):
one forwards straight to unbound (the baseline), one through clat-eamt.  dnsperf sends the same
query mix to both: A queries for dual-stack names (each one also asks AAAA and runs a
decision) and for IPv4-only names (AAAA answered by DNS64).  Runs alternate between the two
paths and the medians are compared, so a noisy moment hits both.

- throughput: dnsperf with 20 queries outstanding for a few seconds; queries per second.
- latency: dnsperf paced at a light load (no queueing) with per-query latencies (-v); the
  added latency is the proxy path's percentile minus the direct path's.

Last line: `dns: proxy/direct qps ratio R, added p50 X ms, added p99 Y ms`.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import tempfile
from pathlib import Path

from tests.integration.proxykit import start_daemon
from tests.labkit import DnsChain
from tests.labkit.procs import tool
from tests.labkit.zone import FRESH_NAMES

_QPS = re.compile(r"Queries per second:\s+([0-9.]+)")
_LATENCY = re.compile(r"^> (\S+) \S+ \S+ ([0-9.]+)$")


def query_file(path: Path) -> Path:
    lines = []
    for i in range(1, FRESH_NAMES + 1):
        lines.append(f"ds{i}.lab.example A")
        lines.append(f"v4only{i}.lab.example A")
    lines += ["cname.lab.example A", "multi.lab.example A"]
    path.write_text("\n".join(lines) + "\n")
    return path


def dnsperf(port: int, data: Path, *args: str) -> str:
    argv = [tool("dnsperf"), "-s", "127.0.0.1", "-p", str(port), "-d", str(data), *args]
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=120).stdout


def throughput(port: int, data: Path, seconds: float) -> float:
    out = dnsperf(port, data, "-l", str(seconds), "-q", "20", "-c", "4")
    match = _QPS.search(out)
    if match is None:
        raise RuntimeError(f"dnsperf printed no rate:\n{out}")
    return float(match.group(1))


def latencies(port: int, data: Path, seconds: float, rate: int) -> list[float]:
    out = dnsperf(port, data, "-l", str(seconds), "-Q", str(rate), "-v")
    found = [float(m.group(2)) for m in map(_LATENCY.match, out.splitlines()) if m]
    failed = sum(1 for m in map(_LATENCY.match, out.splitlines()) if m and m.group(1) != "NOERROR")
    if not found or failed:
        raise RuntimeError(f"dnsperf: {len(found)} answers, {failed} not NOERROR:\n{out[-2000:]}")
    return found


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per path")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each dnsperf run")
    parser.add_argument("--rate", type=int, default=200, help="queries/s of the latency runs")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="clat-eamt-bench-") as tmp,
        DnsChain(Path(tmp)) as chain,
    ):
        daemon = start_daemon(chain, "clat-eamt-bench", log_level="info")
        direct = chain.dnsmasq(chain.unbound_target, name="dnsmasq-direct", cache_size=0)
        proxied = chain.dnsmasq(daemon.target, name="dnsmasq-proxy", cache_size=0)
        data = query_file(Path(tmp) / "queries.txt")
        paths = {"direct": direct.port, "proxy": proxied.port}
        for port in paths.values():  # warm unbound's cache and the mapping table
            latencies(port, data, 1.0, 100)
        qps: dict[str, list[float]] = {name: [] for name in paths}
        lat: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(args.rounds):
            for name, port in paths.items():
                qps[name].append(throughput(port, data, args.seconds))
                lat[name] += latencies(port, data, args.seconds, args.rate)
        for name in paths:
            p50, p99 = percentile(lat[name], 0.5) * 1000, percentile(lat[name], 0.99) * 1000
            print(
                f"{name:6}  qps {statistics.median(qps[name]):8.0f}  (runs "
                + ", ".join(f"{q:.0f}" for q in qps[name])
                + f")  p50 {p50:.2f} ms  p99 {p99:.2f} ms  ({len(lat[name])} queries)"
            )
        ratio = statistics.median(qps["proxy"]) / statistics.median(qps["direct"])
        added50 = (percentile(lat["proxy"], 0.5) - percentile(lat["direct"], 0.5)) * 1000
        added99 = (percentile(lat["proxy"], 0.99) - percentile(lat["direct"], 0.99)) * 1000
        status = daemon.status()
        counters = status["counters"]
        print(
            f"proxy counters: {counters.get('queries.a', 0)} A queries, "
            f"{counters.get('aaaa.timeout', 0)} AAAA past the hold, "
            f"{counters.get('created', 0)} mappings created, {status['mappings']} in the table"
        )
    print(
        f"dns: proxy/direct qps ratio {ratio:.2f}, added p50 {added50:.2f} ms, "
        f"added p99 {added99:.2f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
