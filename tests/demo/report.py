"""The demo's verdict: which path each flow took, by what the echo server logged, and the report.

Pure: no lab, no daemon.  The echo server in `inet` logs every accepted connection's peer
(`tests/labkit/_tcpserver.py`): the NAT64's public IPv4 means the flow went through the NAT64
(for an IPv4-only client: LAN -> CLAT -> NAT64, translated twice); an IPv6 peer means it
arrived natively over IPv6 (the CLAT's own IPv6 for a steered IPv4-only client, or the
dual-stack client's address).  The workload tags each flow (its first line) so every server
event belongs to one `FlowRecord`.

Which flows count where:
- eligible: an IPv4-only client, IPv4, a name with a real (non-synthesized) AAAA.  They should
  go native, except where a documented rule says otherwise; the workload states that rule on
  the flow (`allowance`) when it sets up such a case, and the report lists each one with it.
- IPv4-only destinations (no real AAAA): always NAT64, and they must work.
- the dual-stack client: IPv6 natively; its IPv4 flows are never steered (SPEC 3).
- failed: an error on the client side (DNS, connect, reset, a long flow that stalled) or a flow
  the server never saw.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

NATIVE, NAT64, UNSEEN, OTHER = "native", "nat64", "unseen", "other"
IPV4_ONLY, DUAL_STACK = "ipv4-only", "dual-stack"

# The documented rules under which an eligible flow rightly takes the NAT64 (SPEC section 3).
RULE_CONFLICT = (
    "conflict: another name maps this IPv4 to another IPv6 (a reverse proxy); the entry went "
    "Stale and no new entry is made (SPEC 3, Conflict)"
)
RULE_EXPIRED = (
    "expired: the device reused the address after the TTL without asking DNS again; Stale "
    "entries are not used for new connections (SPEC 3, Lifecycle)"
)
RULE_PINNED = (
    "started before its name was mapped: a connection keeps the path it started on for its "
    "whole life (SPEC 3, Per-flow state)"
)
RULE_DUAL_STACK = "dual-stack host: its flows are never steered (SPEC 3, IPv4-only host detection)"

LAST_LINE = re.compile(
    r"^demo: eligible flows native (\d+)/(\d+), ipv4-only flows ok (\d+)/(\d+), "
    r"failed flows (\d+)$"
)


@dataclass
class FlowRecord:
    """One TCP flow of the workload, and (after `classify`) what the server saw of it."""

    tag: str
    client: str  # namespace tag: lan, lan2, ..., lan6
    host_class: str  # IPV4_ONLY or DUAL_STACK: what the client is
    name: str  # the name the client resolved ("" when it used an address it had)
    dest_kind: str  # DUAL_STACK (a real AAAA exists) or IPV4_ONLY
    addr: str  # the address the client connected to
    group: str = ""  # the name's family in the zone: plain, cname, multi, short, conflict
    note: str = ""  # what the workload did, for the listing
    allowance: str | None = None  # the rule under which NAT64 is right for this flow
    targets: tuple[str, ...] = ()  # IPv6-only names: the AAAA the flow must reach
    error: str | None = None
    max_stall: float | None = None  # long flows: the longest round trip of their ticker
    path: str = UNSEEN
    peer: str | None = None
    local: str | None = None  # the server's address the flow reached

    @property
    def ipv6(self) -> bool:
        return ":" in self.addr

    @property
    def eligible(self) -> bool:
        return self.host_class == IPV4_ONLY and not self.ipv6 and self.dest_kind == DUAL_STACK

    @property
    def failed(self) -> bool:
        return self.error is not None or self.path == UNSEEN


def path_of(peer: str | None, nat64_public4: str) -> str:
    """NAT64 when the server saw the NAT64's public IPv4, NATIVE for any IPv6 peer (the lab's
    inet reaches nothing else over IPv6 than the CLAT and the LAN's own addresses)."""
    if peer is None:
        return UNSEEN
    if peer == nat64_public4:
        return NAT64
    return NATIVE if ":" in peer else OTHER


def accepted_by_tag(events: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The server's "accepted" event of each tagged connection (the tag is its first line)."""
    accepted: dict[int, dict[str, Any]] = {}
    found: dict[str, dict[str, Any]] = {}
    for event in events:
        kind = event.get("event")
        if kind == "accepted":
            accepted[event["id"]] = event
        elif kind == "first" and event["id"] in accepted:
            found[event["line"]] = accepted[event["id"]]
    return found


def classify(flows: Iterable[FlowRecord], events: Iterable[dict[str, Any]], nat64: str) -> None:
    """Fill in each flow's `peer` and `path` from the server's events."""
    seen = accepted_by_tag(events)
    for flow in flows:
        event = seen.get(flow.tag)
        flow.peer = None if event is None else str(event["peer"])
        flow.local = None if event is None else event.get("local")
        flow.path = path_of(flow.peer, nat64)


@dataclass
class Summary:
    """The counts of the report and the flows behind them."""

    eligible: list[FlowRecord] = field(default_factory=list)
    native: list[FlowRecord] = field(default_factory=list)
    excluded: list[FlowRecord] = field(default_factory=list)  # NAT64 by a documented rule
    unexpected: list[FlowRecord] = field(default_factory=list)  # NAT64 without a rule
    v4only: list[FlowRecord] = field(default_factory=list)
    v4only_ok: list[FlowRecord] = field(default_factory=list)
    ds_client: list[FlowRecord] = field(default_factory=list)
    ds_steered: list[FlowRecord] = field(default_factory=list)  # a dual-stack host's IPv4, native
    failed: list[FlowRecord] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """The demo's pass condition: no unexplained NAT64, every IPv4-only destination worked,
        no dual-stack host steered, no failed flow."""
        return (
            not self.unexpected
            and len(self.v4only_ok) == len(self.v4only)
            and not self.ds_steered
            and not self.failed
        )

    def last_line(self) -> str:
        return (
            f"demo: eligible flows native {len(self.native)}/{len(self.eligible)}, "
            f"ipv4-only flows ok {len(self.v4only_ok)}/{len(self.v4only)}, "
            f"failed flows {len(self.failed)}"
        )


def summarize(flows: Sequence[FlowRecord]) -> Summary:
    s = Summary()
    for flow in flows:
        if flow.failed:
            s.failed.append(flow)
        if flow.eligible:
            s.eligible.append(flow)
            if flow.path == NATIVE and not flow.failed:
                s.native.append(flow)
            elif flow.path == NAT64 and flow.allowance:
                s.excluded.append(flow)
            elif flow.path == NAT64:
                s.unexpected.append(flow)
        elif flow.dest_kind == IPV4_ONLY:
            s.v4only.append(flow)
            if flow.path == NAT64 and not flow.failed:
                s.v4only_ok.append(flow)
        if flow.host_class == DUAL_STACK:
            s.ds_client.append(flow)
            if not flow.ipv6 and flow.path == NATIVE:
                s.ds_steered.append(flow)
    return s


def parse_last_line(line: str) -> dict[str, int]:
    """The numbers of the report's last line (ValueError when it is not one)."""
    match = LAST_LINE.match(line)
    if not match:
        raise ValueError(f"not the demo's last line: {line!r}")
    keys = ("native", "eligible", "v4only_ok", "v4only", "failed")
    return dict(zip(keys, map(int, match.groups()), strict=True))


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def mapping_table(mappings: Sequence[dict[str, Any]]) -> list[str]:
    """The daemon's mappings (as `clat-eamt mappings --json` lists them) as text rows."""
    head = ("IPV4", "IPV6", "POOL", "STATE", "EXPIRES", "FLOWS", "FQDN")
    rows = [head]
    for m in mappings:
        state = m.get("state", "?")
        if m.get("stale_reason"):
            state = f"{state}({m['stale_reason']})"
        expires = m.get("expires_in")
        names = m.get("fqdns") or [m.get("fqdn") or ""]
        more = f" +{len(names) - 1}" if len(names) > 1 else ""
        rows.append(
            (
                str(m.get("ipv4", "")),
                str(m.get("ipv6", "")),
                str(m.get("pool") or "-"),
                str(state),
                "-" if expires is None else f"{max(round(float(expires)), 0)}s",
                _count(m.get("flows")),
                f"{str(names[0]).rstrip('.')}{more}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def flow_line(flow: FlowRecord) -> str:
    what = f"{flow.client} -> {flow.addr}"
    if flow.name:
        what += f" ({flow.name.rstrip('.')})"
    extra = f" [{flow.note}]" if flow.note else ""
    return f"{what}: {flow.path}{extra}"


def _count(value: Any) -> str:
    if value is None:
        return "-"
    return str(len(value)) if isinstance(value, list | tuple | dict) else str(value)


@dataclass
class Facts:
    """What the run gathered besides the flows, as plain data (rendered by `render`)."""

    config_path: str
    config_text: str
    commands: dict[str, str]  # status / mappings / hosts -> the command line that reads it
    hosts: list[str]  # one line per client
    dns_times: list[float]
    dns_failures: list[str]
    mappings: list[dict[str, Any]]
    status_text: str  # what `clat-eamt status` prints
    notes: list[str]
    timings: dict[str, float]
    ipv6_only: list[FlowRecord] = field(default_factory=list)  # the last phase's flows


def _share(part: int, whole: int) -> str:
    return f"{part}/{whole}" + (f" ({100 * part / whole:.1f}%)" if whole else "")


def render(flows: Sequence[FlowRecord], facts: Facts) -> tuple[list[str], Summary]:
    """The report's lines (without its last line: `Summary.last_line`) and the summary."""
    s = summarize(flows)
    out = [
        f"== clat-eamt demo: `python -m clat_eamt run --config {facts.config_path}` in the "
        "router's namespace, with dnsmasq forwarding to it; the UCI file: =="
    ]
    out += [f"   {line}" for line in facts.config_text.rstrip().splitlines()]
    out.append(f"-- LAN clients, as the daemon classified them ({facts.commands['hosts']}):")
    out += [f"   {line}" for line in facts.hosts]
    phases = ", ".join(f"{k} {v:.1f} s" for k, v in facts.timings.items())
    clients = sorted({f.client for f in flows})
    names = {f.name for f in flows if f.name}
    out.append(
        f"-- workload: {len(flows)} TCP flows from {len(clients)} clients to {len(names)} names "
        f"({phases})"
    )
    out += [f"   daemon: {note}" for note in facts.notes]

    out.append(f"-- the daemon at the end ({facts.commands['status']}):")
    out += [f"   {line}" for line in facts.status_text.rstrip().splitlines()]
    out.append(f"   mapping table ({facts.commands['mappings']}):")
    out += [f"   {row}" for row in mapping_table(facts.mappings)]

    out.append(
        f"-- 1. IPv4-only clients to dual-stack names (eligible): native "
        f"{_share(len(s.native), len(s.eligible))}, NAT64 by rule {len(s.excluded)}, "
        f"NAT64 unexplained {len(s.unexpected)}"
    )
    groups: dict[str, list[FlowRecord]] = {}
    for flow in s.eligible:
        groups.setdefault(flow.group or "?", []).append(flow)
    out.append(
        "   by kind of name: "
        + ", ".join(
            f"{g} {sum(f.path == NATIVE for f in fs)}/{len(fs)}" for g, fs in groups.items()
        )
    )
    if s.excluded:
        out.append("   eligible flows that took the NAT64, each with the rule that excludes it:")
        rules: dict[str, list[FlowRecord]] = {}
        for flow in s.excluded:
            rules.setdefault(flow.allowance or "", []).append(flow)
        for rule, members in rules.items():
            out.append(f"   * {rule}:")
            out += [f"       {flow_line(f)}" for f in members]
    for flow in s.unexpected:
        out.append(f"   UNEXPECTED (no rule excludes it): {flow_line(flow)}")
    long = [f for f in flows if f.max_stall is not None]
    if long:
        worst = max(f.max_stall or 0.0 for f in long)
        alive = sum(not f.failed for f in long)
        out.append(f"   long flows: {alive}/{len(long)} alive to the end, longest round trip "
                   f"{worst:.2f} s; each stayed on the path it started on:")  # fmt: skip
        out += [f"       {flow_line(f)}" for f in long]

    v4 = [f for f in s.v4only if f.host_class == IPV4_ONLY]
    mapped = {str(m.get("ipv4")) for m in facts.mappings} & {f.addr for f in s.v4only}
    out.append(
        f"-- 2. IPv4-only names (their AAAA is DNS64's, the daemon refuses them): "
        f"NAT64 and working {len(s.v4only_ok)}/{len(s.v4only)} "
        f"({len(v4)} from IPv4-only clients); mapped by the daemon: {len(mapped)}"
    )
    for flow in s.v4only:
        if flow not in s.v4only_ok:
            out.append(f"   NOT OK: {flow_line(flow)} {flow.error or ''}")

    ds = s.ds_client
    v6_native = [f for f in ds if f.ipv6 and f.dest_kind == DUAL_STACK]
    v6_dns64 = [f for f in ds if f.ipv6 and f.dest_kind == IPV4_ONLY]
    ds4 = [f for f in ds if not f.ipv6 and f.dest_kind == DUAL_STACK]
    out.append(
        f"-- 3. the dual-stack client: IPv6 to real AAAA native "
        f"{sum(f.path == NATIVE for f in v6_native)}/{len(v6_native)}; IPv6 to DNS64 AAAA via "
        f"NAT64 {sum(f.path == NAT64 for f in v6_dns64)}/{len(v6_dns64)}; IPv4 to dual-stack "
        f"names via NAT64 {sum(f.path == NAT64 for f in ds4)}/{len(ds4)} "
        f"(not optimized by rule: {RULE_DUAL_STACK})"
    )
    for flow in s.ds_steered:
        out.append(f"   STEERED (must not be): {flow_line(flow)}")

    out.append(f"-- 4. failed or reset flows: {len(s.failed)}")
    for flow in s.failed:
        out.append(f"   {flow_line(flow)}: {flow.error or 'the server never saw it'}")

    times = facts.dns_times
    if times:
        p50, p99 = percentile(times, 50) * 1000, percentile(times, 99) * 1000
        dns = f"p50 {p50:.1f} ms, p99 {p99:.1f} ms"
    else:
        dns = "no answers"
    out.append(
        f"-- 5. DNS through dnsmasq and clat-eamt, measured by the clients: {len(times)} "
        f"answers, {dns}, failures {len(facts.dns_failures)}"
    )
    out += [f"   {failure}" for failure in facts.dns_failures[:20]]
    if facts.ipv6_only:
        out += ipv6_only_lines(facts.ipv6_only)
    return out, s


def ipv6_only_ok(flows: Sequence[FlowRecord]) -> bool:
    """Every flow to an IPv6-only name arrived natively at one of the name's AAAA."""
    return all(_reached_own(flow) for flow in flows)


def _reached_own(flow: FlowRecord) -> bool:
    return not flow.failed and flow.path == NATIVE and flow.local in flow.targets


def ipv6_only_lines(flows: Sequence[FlowRecord]) -> list[str]:
    """Section 6: IPv6-only names with ipv6_only on (issue 27)."""
    by_a = [f for f in flows if not f.ipv6 and f.addr]
    ipv4_only = [f for f in flows if f.host_class == IPV4_ONLY]
    ds6 = [f for f in flows if f.host_class == DUAL_STACK and f.note.startswith("AAAA")]
    ds4 = [f for f in flows if f.host_class == DUAL_STACK and f not in ds6]
    names = len({f.name for f in flows})
    out = [
        f"-- 6. IPv6-only names (ipv6_only on: their A is a pool address): {names} names; "
        f"IPv4-only clients native to the name's own server "
        f"{sum(map(_reached_own, ipv4_only))}/{len(ipv4_only)}; the dual-stack client over "
        f"IPv6 {sum(map(_reached_own, ds6))}/{len(ds6)}, to the pool address (native too) "
        f"{sum(map(_reached_own, ds4))}/{len(ds4)}; A answers from the pool {len(by_a)}"
    ]
    for flow in flows:
        if not _reached_own(flow):
            where = f", reached {flow.local}" if flow.local else ""
            out.append(f"   NOT OK: {flow_line(flow)}{where} {flow.error or ''}".rstrip())
    return out
