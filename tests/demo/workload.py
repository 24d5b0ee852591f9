"""The demo's traffic: LAN clients resolve names through the router's dnsmasq and fetch from the
lab's echo server, the way a TV or a laptop would, while the daemon decides.

Every flow is recorded (`report.FlowRecord`) with what the workload knows about it; which path
it took is left to the echo server's log (report.classify).  Phases:

1. warm-up: every client talks to the router, so its neighbour entries exist, and the daemon
   classifies it (IPv4-only after `host_observe` seconds; lan6 dual-stack: it also uses IPv6);
2. long flows: each IPv4-only client resolves a short-TTL name and keeps a flow to it ticking
   across the TTL's expiry; one flow starts to a dual-stack address before any DNS answer for it
   (it must stay on the NAT64 through the mapping); one starts on the conflict pair's first name;
3. the sweep: every name of the plan, visited concurrently by IPv4-only clients and some by the
   dual-stack client; meanwhile the conflict pair's second name answers;
4. after expiry: the short-TTL entries are Stale; a client reusing the address without DNS goes
   through the NAT64, one asking DNS again goes native; the long flows must still answer;
5. with ipv6_only on (issue 27): every client fetches each IPv6-only name by name, the
   IPv4-only ones through the pool address the router answers their A with (own list).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from functools import partial
from ipaddress import IPv4Address, ip_address, ip_network

from clat_eamt.dataplane import nft
from tests.integration.routerkit import Router
from tests.labkit.client import answers, query, rcode
from tests.labkit.netns import Netns, run
from tests.labkit.tcpflow import Flow
from tests.labkit.zone import DEMO

from .plan import Plan, Roles, Target, ipv6_only_targets
from .report import (
    DUAL_STACK,
    IPV4_ONLY,
    RULE_CONFLICT,
    RULE_DUAL_STACK,
    RULE_EXPIRED,
    RULE_PINNED,
    FlowRecord,
)
from .state import DaemonState

DNS_TIMEOUT = 5.0
FLOW_TIMEOUT = 8.0  # a lost SYN is sent again after 1 s, then 3 s
TICK_INTERVAL = 0.1
STALL_LIMIT = 5.0  # a long flow whose round trip took longer is counted as failed
PAYLOAD = "clat-eamt demo " * 8


class DnsError(Exception):
    pass


@dataclass
class Workload:
    router: Router
    state: DaemonState
    plan: Plan
    roles: Roles
    flows: list[FlowRecord] = field(default_factory=list)
    dns_times: list[float] = field(default_factory=list)
    dns_failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the daemon said at key moments
    timings: dict[str, float] = field(default_factory=dict)
    ipv6_only: list[FlowRecord] = field(default_factory=list)  # phase 5, reported apart
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.lab = self.router.lab
        self.clients = self.lab.clients[: self.plan.clients]
        self._numbers = itertools.count(1)
        self._long: list[tuple[FlowRecord, Flow]] = []

    # -- one query, one flow -----------------------------------------------------------------
    def resolve(self, client: Netns, name: str, qtype: str = "A") -> list[str]:
        """Ask the router's dnsmasq (198.51.100.1:53) as a LAN device does; timed."""
        start = time.monotonic()
        try:
            reply = query(self.lab.CE_LAN_ADDR4, 53, name, qtype, netns=client, timeout=DNS_TIMEOUT)
        except (OSError, ConnectionError) as error:
            self.dns_failures.append(f"{client.tag} {qtype} {name}: {error!r}")
            raise DnsError(f"DNS {qtype} {name}: {error!r}") from None
        self.dns_times.append(time.monotonic() - start)
        if rcode(reply) != "NOERROR":
            self.dns_failures.append(f"{client.tag} {qtype} {name}: {rcode(reply)}")
            raise DnsError(f"DNS {qtype} {name}: {rcode(reply)}")
        return answers(reply, qtype)

    def record(
        self, client: Netns, target: Target, addr: str, note: str, allowance: str | None
    ) -> FlowRecord:
        host = DUAL_STACK if client is self.lab.lan6 else IPV4_ONLY
        tag = f"demo-{next(self._numbers)} {client.tag} {target.name} {addr}"
        flow = FlowRecord(
            tag, client.tag, host, target.name, target.kind, addr, target.group, note, allowance
        )
        self.flows.append(flow)  # list.append is atomic: the sweep's threads share the list
        return flow

    def fetch(
        self,
        client: Netns,
        target: Target,
        addr: str,
        note: str = "",
        allowance: str | None = None,
        keep: bool = False,
    ) -> FlowRecord:
        """One echo flow (tagged, one round trip); `keep`: left open, ticking, until `finish`."""
        rec = self.record(client, target, addr, note, allowance)
        try:
            flow = Flow.open(client, addr, self.lab.SERVER_PORT, tag=rec.tag, timeout=FLOW_TIMEOUT)
        except (OSError, ConnectionError) as error:
            rec.error = f"connect: {error!r}"
            return rec
        try:
            flow.roundtrip(PAYLOAD, FLOW_TIMEOUT)
            if keep:
                flow.start_ticker(TICK_INTERVAL, FLOW_TIMEOUT)
                self._long.append((rec, flow))
                return rec
        except (OSError, ConnectionError) as error:
            rec.error = f"data: {error!r}"
        flow.close()
        return rec

    def failed(self, client: Netns, target: Target, error: str) -> None:
        """A visit that could not even start a flow (DNS failed or said nothing)."""
        self.record(client, target, "", "no address", None).error = error

    def resolve_and_fetch(
        self, client: Netns, target: Target, note: str = "", allowance: str | None = None
    ) -> None:
        try:
            addresses = self.resolve(client, target.name)
        except DnsError as error:
            return self.failed(client, target, str(error))
        if sorted(addresses) != sorted(target.a):
            return self.failed(client, target, f"DNS answered {addresses}, zone has {target.a}")
        for addr in addresses:
            self.fetch(client, target, addr, note, allowance)

    def visit_dual_stack(self, target: Target) -> None:
        """lan6 as a dual-stack device: IPv6 to the AAAA (real or DNS64), and IPv4 as well."""
        lan6 = self.lab.lan6
        try:
            aaaa, a = self.resolve(lan6, target.name, "AAAA"), self.resolve(lan6, target.name)
        except DnsError as error:
            return self.failed(lan6, target, str(error))
        if aaaa:
            synthesized = "" if target.aaaa else "to the DNS64-synthesized AAAA"
            self.fetch(lan6, target, aaaa[0], note=synthesized)
        if a:
            rule = RULE_DUAL_STACK if target.aaaa else None
            self.fetch(lan6, target, a[0], note="IPv4 from a dual-stack host", allowance=rule)

    # -- the phases --------------------------------------------------------------------------
    def run(self) -> None:
        for name, phase in (
            ("warm-up", self.warm_up),
            ("long flows", self.start_long),
            ("sweep", self.sweep),
            ("after expiry", self.after_expiry),
            ("ipv6-only names", self.ipv6_only_names),
        ):
            if name == "ipv6-only names" and self.router.options.get("ipv6_only") != "1":
                continue
            start = time.monotonic()
            phase()
            self.timings[name] = time.monotonic() - start

    def warm_up(self) -> None:
        """Every client asks the router something; lan6 also uses IPv6 (the router learns its
        global address).  Then wait until the daemon has classified every one of them."""
        soa = DEMO.origin
        for client in (*self.clients, self.lab.lan6):
            query(self.lab.CE_LAN_ADDR4, 53, soa, "SOA", netns=client, timeout=DNS_TIMEOUT)
        plain = self.roles.pinned
        self.fetch(self.lab.lan6, plain, plain.aaaa[0], note="warm-up: IPv6 from lan6")
        ipv4_only = {self.lab.client_identity(c)[1] for c in self.clients}
        dual = {self.lab.LAN6_MAC}
        took = self.state.wait(
            lambda: self.state.classified(ipv4_only, dual), "the daemon to classify the clients"
        )
        # The daemon tells its host table first and then fills the nft set that lets a client's
        # flows be DNATed: a flow in between would take the NAT64 although the host is known.
        addresses = {IPv4Address(self.lab.client_identity(c)[0]) for c in self.clients}
        took += self.state.wait(lambda: self.steered() >= addresses, "the nft host set")
        self.notes.append(f"clients classified {took:.1f} s after they first talked")

    def steered(self) -> set[IPv4Address]:
        """The hosts whose flows the router's nft table may DNAT (host_mode ipv4-only)."""
        argv = ["nft", "-j", "list", "set", "inet", nft.TABLE, nft.IPV4_ONLY]
        return nft.parse_set(run(self.lab.ce, argv).stdout)

    def start_long(self) -> None:
        for client, target in zip(self.clients, self.roles.long, strict=False):
            self.resolve_and_fetch_long(client, target, "long flow across the TTL expiry")
        pinned = self.roles.pinned
        note = "long flow, started before any DNS answer for its name"
        self.fetch(self.clients[-1], pinned, pinned.a[0], note, RULE_PINNED, keep=True)
        first = self.roles.conflict[0]
        self.resolve_and_fetch_long(self.clients[0], first, "long flow across the conflict")

    def resolve_and_fetch_long(self, client: Netns, target: Target, note: str) -> None:
        try:
            [addr] = self.resolve(client, target.name)
        except (DnsError, ValueError) as error:
            return self.failed(client, target, str(error))
        self.fetch(client, target, addr, note, keep=True)

    def conflict(self) -> None:
        """The pair's second name answers with another IPv6 for the same IPv4: Stale, and
        flows after it (from either name) take the NAT64."""
        first, second = self.roles.conflict
        ipv4 = second.a[0]
        clients = self.clients
        self.resolve_and_fetch(
            clients[1 % len(clients)], second, "after the conflict", RULE_CONFLICT
        )
        entry = self.state.entry(ipv4) or {}
        self.notes.append(
            f"after {second.name.rstrip('.')} answered, the daemon has {ipv4} -> "
            f"{entry.get('ipv6')} {entry.get('state')} ({entry.get('stale_reason')})"
        )
        note = f"{first.name.rstrip('.')} again, after the conflict"
        self.resolve_and_fetch(clients[2 % len(clients)], first, note, RULE_CONFLICT)

    def sweep(self) -> None:
        jobs: list[Callable[[], None]] = []
        for index, target in self.roles.sweep:
            if index < 0:
                jobs.append(partial(self.visit_dual_stack, target))
            else:
                jobs.append(partial(self.resolve_and_fetch, self.clients[index], target))
        jobs.insert(len(jobs) // 3, self.conflict)

        def guarded(job: Callable[[], None]) -> None:
            if not self.stop.is_set():
                job()

        pool = ThreadPoolExecutor(self.plan.threads, thread_name_prefix="demo")
        try:
            wait([pool.submit(guarded, job) for job in jobs])
        finally:
            self.stop.set()  # after Ctrl-C: the queued jobs do nothing
            pool.shutdown(wait=True, cancel_futures=True)
            self.stop.clear()

    def after_expiry(self) -> None:
        """Wait until the daemon has the long flows' short-TTL entries Stale (expired), then:
        the address again without DNS (NAT64), the long flows (still alive, same path), and
        the name again (native again)."""
        ipv4s = {t.a[0] for t in self.roles.long}

        def expired() -> bool:
            states = {m.get("ipv4"): m for m in self.state.mappings()}
            return all(states.get(ip, {}).get("stale_reason") == "expired" for ip in ipv4s)

        took = self.state.wait(expired, "the short-TTL mappings to expire")
        self.notes.append(
            f"short-TTL mappings of the long flows Stale (expired), waited {took:.1f} s"
        )
        for client, target in zip(self.clients, self.roles.long, strict=False):
            note = "address reused after the TTL, without DNS"
            self.fetch(client, target, target.a[0], note, RULE_EXPIRED)
        flows = self.state.status().get("flows")
        if flows is not None:  # the daemon's conntrack census, the long flows still running
            self.notes.append(f"with the long flows running, its flow census says {flows}")
        self.finish_long()
        for client, target in zip(self.clients, self.roles.long, strict=False):
            self.resolve_and_fetch(client, target, "asked DNS again after the TTL")

    def ipv6_only_names(self) -> None:
        """Issue 27: each IPv4-only client asks A for every IPv6-only name and fetches from the
        pool address it gets; lan6 fetches over IPv6 as a dual-stack device, and over IPv4 from
        the P dnsmasq's shared cache gives it too."""
        for target in ipv6_only_targets(DEMO):
            for client in self.clients:
                self.visit_ipv6_only(client, target, "A")
            self.visit_ipv6_only(self.lab.lan6, target, "AAAA")
            self.visit_ipv6_only(self.lab.lan6, target, "A")

    def visit_ipv6_only(self, client: Netns, target: Target, qtype: str) -> None:
        host = DUAL_STACK if client is self.lab.lan6 else IPV4_ONLY
        tag = f"demo-{next(self._numbers)} {client.tag} {target.name} {qtype}"
        rec = FlowRecord(
            tag, client.tag, host, target.name, DUAL_STACK, "", target.group, f"{qtype} answer",
            targets=target.aaaa,
        )  # fmt: skip
        self.ipv6_only.append(rec)
        try:
            [rec.addr] = self.resolve(client, target.name, qtype)
        except (DnsError, ValueError) as error:
            rec.error = f"DNS {qtype}: {error}"
            return
        if qtype == "A" and ip_address(rec.addr) not in ip_network(self.lab.EAM_POOL):
            rec.error = f"A {rec.addr} is not a pool address"
            return
        try:
            with Flow.open(
                client, rec.addr, self.lab.SERVER_PORT, tag=tag, timeout=FLOW_TIMEOUT
            ) as f:
                f.roundtrip(PAYLOAD, FLOW_TIMEOUT)
        except (OSError, ConnectionError) as error:
            rec.error = f"flow: {error!r}"

    def finish_long(self) -> None:
        """Stop each long flow's ticker, one more round trip, close: broken or stalled is failed."""
        for rec, flow in self._long:
            flow.stop_ticker()
            try:
                flow.roundtrip("still there?", FLOW_TIMEOUT)
            except (OSError, ConnectionError) as error:
                rec.error = f"long flow broke: {error!r}"
            rec.max_stall = flow.max_stall()
            ticks = [t for t in flow.ticks if t.error]
            if ticks and rec.error is None:
                rec.error = f"long flow broke: {ticks[0].error}"
            elif rec.max_stall > STALL_LIMIT and rec.error is None:
                rec.error = f"long flow stalled {rec.max_stall:.1f} s"
            rec.note += f"; {len(flow.ticks)} round trips, longest {rec.max_stall:.2f} s"
            flow.close()
        self._long.clear()

    def close(self) -> None:
        """Close whatever is still open (after Ctrl-C or a failure)."""
        for _, flow in self._long:
            flow.close()
        self._long.clear()
