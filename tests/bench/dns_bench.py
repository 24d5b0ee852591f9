"""`make bench` (DNS part): what the proxy costs, measured against a baseline in the same run.

1. The miss path.  dnsmasq instances with per-client options (add-mac, add-subnet=32,128)
   and the cache off, so every query is forwarded (what dnsmasq does with per-client options,
   SPEC 7): one forwards straight to unbound (the baseline), one through clat-eamt, one
   through the floor below.  dnsperf sends the same query mix to each: A queries for
   dual-stack names (each one also asks AAAA and runs a decision) and for IPv4-only names (AAAA
   answered by DNS64).  Rounds of one run per path, back to back, each round in the other
   order; the ratio is the median of the rounds' own ratios, as on the LAN path.
   - throughput: dnsperf with 20 queries outstanding for a few seconds; queries per second.
   - latency: dnsperf paced at a light load (no queueing) with per-query latencies (-v); the
     added latency is the proxy path's percentile minus the direct path's.
   - CPU: the daemon's process CPU time (utime + stime) over the throughput runs, divided by
     the A queries it answered: the figure a router's slower CPU scales.
   - The floor: a second daemon with ``enabled 0`` (a plain forwarder: the same sockets and
     upstream exchanges, no AAAA, no decision) in the same rounds, throughput only; what the
     proxy's own path costs beyond forwarding is the gap between the two ratios.
2. The LAN path, as a home has it with clat-eamt's default: dnsmasq with its cache on, of the
   size OpenWrt configures (``option cachesize 1000`` in the dnsmasq package's default
   /etc/config/dhcp; dnsmasq's own default of 150 entries is smaller than this mix's 105 names
   with their A and AAAA records, so it evicted unexpired entries on almost every insertion,
   measured with its SIGUSR1 statistics) and no per-client options, in front of unbound
   directly or of clat-eamt.  The query mix repeats names as a home does: names drawn from a
   Zipf distribution (s = 1) over the lab zone (real TTLs: 300 s, and 2 s for
   short.lab.example), 70 % A and 30 % AAAA.  The cache hit share is the share of dnsperf's
   queries that never reached clat-eamt.  Rounds of one run per path, back to back, each round
   in the other order; the ratio is the median of the rounds' own ratios.

Last lines:
`dns: proxy/direct qps ratio R, added p50 X ms, added p99 Y ms`,
`dns: proxy cpu per A miss U us`,
`dns: plain forwarding/direct qps ratio F (the daemon with enabled 0)`,
`dns: lan qps ratio R (dnsmasq cache on, H% cache hits)`.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import tempfile
from pathlib import Path

from tests.integration.proxykit import Daemon, start_daemon
from tests.labkit import DnsChain
from tests.labkit.procs import tool
from tests.labkit.zone import BENCH_NAMES, FRESH_NAMES

_QPS = re.compile(r"Queries per second:\s+([0-9.]+)")
_SENT = re.compile(r"Queries sent:\s+([0-9]+)")
_LATENCY = re.compile(r"^> (\S+) \S+ \S+ ([0-9.]+)$")
_TICK = os.sysconf("SC_CLK_TCK")
OPENWRT_CACHE_SIZE = 1000  # package/network/services/dnsmasq/files/dhcp.conf: cachesize


def query_file(path: Path) -> Path:
    lines = []
    for i in range(1, FRESH_NAMES + 1):
        lines.append(f"ds{i}.lab.example A")
        lines.append(f"v4only{i}.lab.example A")
    lines += ["cname.lab.example A", "multi.lab.example A"]
    path.write_text("\n".join(lines) + "\n")
    return path


def zipf_file(path: Path, count: int = 20000, seed: int = 13) -> tuple[Path, int]:
    """Queries a home makes: names by popularity rank r with weight 1/r (Zipf, s = 1), shuffled
    once with a fixed seed so every run asks the same mix; 70 % A, 30 % AAAA."""
    names = [f"ds{i}" for i in range(1, FRESH_NAMES + 1)]
    names += [f"v4only{i}" for i in range(1, FRESH_NAMES + 1)]
    names += [f"b{i}" for i in range(BENCH_NAMES)] + ["cname", "multi", "short", "ds", "v4only"]
    rng = random.Random(seed)
    rng.shuffle(names)
    weights = [1 / rank for rank in range(1, len(names) + 1)]
    drawn = rng.choices(names, weights, k=count)
    lines = [f"{n}.lab.example {'A' if rng.random() < 0.7 else 'AAAA'}" for n in drawn]
    path.write_text("\n".join(lines) + "\n")
    return path, len(set(drawn))


def dnsperf(port: int, data: Path, *args: str) -> str:
    argv = [tool("dnsperf"), "-s", "127.0.0.1", "-p", str(port), "-d", str(data), *args]
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=120).stdout


def throughput(port: int, data: Path, seconds: float) -> tuple[float, int]:
    """Queries per second and queries sent."""
    out = dnsperf(port, data, "-l", str(seconds), "-q", "20", "-c", "4")
    rate, sent = _QPS.search(out), _SENT.search(out)
    if rate is None or sent is None:
        raise RuntimeError(f"dnsperf printed no rate:\n{out}")
    return float(rate.group(1)), int(sent.group(1))


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


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (proc(5): fields 14 and 15 of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def counter(daemon: Daemon, name: str) -> int:
    return int(daemon.status()["counters"].get(name, 0))


def miss_path(
    chain: DnsChain, daemon: Daemon, plain: Daemon, tmp: Path, args: argparse.Namespace
) -> None:
    direct = chain.dnsmasq(chain.unbound_target, name="dnsmasq-direct", cache_size=0)
    proxied = chain.dnsmasq(daemon.target, name="dnsmasq-proxy", cache_size=0)
    forwarded = chain.dnsmasq(plain.target, name="dnsmasq-plain", cache_size=0)
    data = query_file(tmp / "queries.txt")
    paths = {"direct": direct.port, "proxy": proxied.port, "plain": forwarded.port}
    for port in paths.values():  # warm unbound's cache and the mapping table
        latencies(port, data, 1.0, 100)
    qps: dict[str, list[float]] = {name: [] for name in paths}
    lat: dict[str, list[float]] = {name: [] for name in paths if name != "plain"}
    cpu, a_queries = 0.0, 0
    for index in range(args.rounds):
        # Each round in the other order, so a load that drifts hits the paths alike.
        for name, port in sorted(paths.items(), reverse=bool(index % 2)):
            if name == "proxy":
                a_before, cpu_before = counter(daemon, "queries.a"), cpu_seconds(daemon.proc.pid)
            qps[name].append(throughput(port, data, args.seconds)[0])
            if name == "proxy":
                cpu += cpu_seconds(daemon.proc.pid) - cpu_before
                a_queries += counter(daemon, "queries.a") - a_before
            if name in lat:
                lat[name] += latencies(port, data, args.seconds, args.rate)
    for name in paths:
        runs = ", ".join(f"{q:.0f}" for q in qps[name])
        line = f"{name:6}  qps {statistics.median(qps[name]):8.0f}  (runs {runs})"
        if name in lat:
            p50, p99 = percentile(lat[name], 0.5) * 1000, percentile(lat[name], 0.99) * 1000
            line += f"  p50 {p50:.2f} ms  p99 {p99:.2f} ms  ({len(lat[name])} queries)"
        print(line)
    # As on the LAN path: the median of each round's own ratio (the direct path alone moved
    # between 10,400 and 17,000 queries/s from run to run, so a ratio of the paths' medians
    # moved with it).
    pairs = [p / d for p, d in zip(qps["proxy"], qps["direct"], strict=True)]
    floors = [p / d for p, d in zip(qps["plain"], qps["direct"], strict=True)]
    print(f"miss rounds: proxy/direct {', '.join(f'{r:.2f}' for r in pairs)}")
    ratio, floor = statistics.median(pairs), statistics.median(floors)
    added50 = (percentile(lat["proxy"], 0.5) - percentile(lat["direct"], 0.5)) * 1000
    added99 = (percentile(lat["proxy"], 0.99) - percentile(lat["direct"], 0.99)) * 1000
    status = daemon.status()
    counters = status["counters"]
    print(
        f"proxy counters: {counters.get('queries.a', 0)} A queries, "
        f"{counters.get('aaaa.timeout', 0)} AAAA past the hold, "
        f"{counters.get('created', 0)} mappings created, {status['mappings']} in the table, "
        f"{counters.get('upstream.coalesced', 0)} upstream queries coalesced"
    )
    print(
        f"dns: proxy/direct qps ratio {ratio:.2f}, added p50 {added50:.2f} ms, "
        f"added p99 {added99:.2f} ms"
    )
    print(f"dns: proxy cpu per A miss {cpu / max(1, a_queries) * 1e6:.0f} us")
    print(f"dns: plain forwarding/direct qps ratio {floor:.2f} (the daemon with enabled 0)")


def lan_path(chain: DnsChain, daemon: Daemon, tmp: Path, args: argparse.Namespace) -> None:
    # clat-eamt's default: dnsmasq caches, with OpenWrt's cache size (module doc)
    plain = {"add_mac": None, "add_subnet": None, "cache_size": args.lan_cache_size}
    direct = chain.dnsmasq(chain.unbound_target, name="dnsmasq-lan-direct", **plain)
    proxied = chain.dnsmasq(daemon.target, name="dnsmasq-lan-proxy", **plain)
    data, names = zipf_file(tmp / "zipf.txt")
    paths = {"direct": direct.port, "proxy": proxied.port}
    qps: dict[str, list[float]] = {name: [] for name in paths}
    sent = reached = 0
    for index in range(args.lan_rounds):
        # Both paths answer almost everything from dnsmasq's cache, so what differs between
        # rounds is the machine's other load: more rounds, and each round in the other order.
        for name, port in sorted(paths.items(), reverse=bool(index % 2)):
            before = counter(daemon, "queries.udp") + counter(daemon, "queries.tcp")
            rate, count = throughput(port, data, args.seconds)
            qps[name].append(rate)
            if name == "proxy":
                sent += count
                after = counter(daemon, "queries.udp") + counter(daemon, "queries.tcp")
                reached += after - before
    for name in paths:
        runs = ", ".join(f"{q:.0f}" for q in qps[name])
        print(f"lan {name:6}  qps {statistics.median(qps[name]):8.0f}  (runs {runs})")
    # Each round's two runs are back to back, so their ratio sees one moment's load; the
    # median over rounds (a load that drifts between rounds moved the medians of the two
    # paths' own runs by 10 % and more).
    pairs = [p / d for p, d in zip(qps["proxy"], qps["direct"], strict=True)]
    print(f"lan rounds: proxy/direct {', '.join(f'{r:.2f}' for r in pairs)}")
    ratio = statistics.median(pairs)
    hits = 100 * (1 - reached / max(1, sent))
    print(f"lan mix: {names} names (Zipf), {sent} queries through clat-eamt, {reached} reached it")
    print(f"dns: lan qps ratio {ratio:.2f} (dnsmasq cache on, {hits:.0f}% cache hits)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds of one run per path")
    parser.add_argument("--lan-rounds", type=int, default=9, help="the same for the LAN path")
    parser.add_argument(
        "--lan-cache-size", type=int, default=OPENWRT_CACHE_SIZE,
        help="dnsmasq's cache on the LAN path (150: dnsmasq's own default)",
    )  # fmt: skip
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each dnsperf run")
    parser.add_argument("--rate", type=int, default=200, help="queries/s of the latency runs")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="clat-eamt-bench-") as tmp,
        DnsChain(Path(tmp)) as chain,
    ):
        daemon = start_daemon(chain, "clat-eamt-bench", log_level="info")
        plain = start_daemon(chain, "clat-eamt-plain", log_level="info", enabled="0")
        miss_path(chain, daemon, plain, Path(tmp), args)
        lan_path(chain, daemon, Path(tmp), args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
