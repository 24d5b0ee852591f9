"""`clat-eamt run`: the daemon, wiring the DNS proxy, the engine and the dataplane together.

One asyncio loop does everything: the proxy's sockets, the engine (pure and fast, so it runs
inline), the dataplane batches (through ``Applier``, with a deadline), a one-second clock tick
that ages entries, and Pref64 discovery when no Pref64 is configured.  Status is a plain dict
served by the control socket (``control``); SIGUSR1 writes it to the log.  The operator's
actions (add, del, flush) go through the same engine and applier as DNS answers.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import signal
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from ipaddress import IPv6Network, ip_network
from typing import Any

from clat_eamt import __version__
from clat_eamt.apply import Applier, Dataplane
from clat_eamt.assemble import (
    engine_from_config,
    limiter_from_config,
    policy_from_config,
    static_specs,
)
from clat_eamt.config import ConfigError, EffectiveConfig, schema
from clat_eamt.config.nettypes import ServerAddress
from clat_eamt.config.reload import plan_reload
from clat_eamt.control.server import ControlServer
from clat_eamt.control.target import DaemonTarget
from clat_eamt.control.ubus_object import EVENT_KINDS, UbusObject
from clat_eamt.core.dataplane import desired_state, diff, left_behind, note_of
from clat_eamt.core.engine import Outcome
from clat_eamt.core.model import Host, IPNetwork, Observation
from clat_eamt.core.pool import pool_problems
from clat_eamt.core.pref64 import CONFIG, DNS, Pref64Set, choose
from clat_eamt.core.refresh import decided_ends, valid_life
from clat_eamt.dataplane.build import build_dataplane
from clat_eamt.dataplane.interfaces import local_networks
from clat_eamt.dataplane.neighbours import NeighbourWatcher
from clat_eamt.dataplane.routeradv import RaListener
from clat_eamt.dns.discovery import Pref64Discovery
from clat_eamt.dns.identity import ClientIdentity
from clat_eamt.dns.proxy import Proxy, ProxySettings, unknown_class
from clat_eamt.dns.ratelog import RateLimitedLog
from clat_eamt.dns.refresher import Refresher
from clat_eamt.dns.resolvconf import ResolvConf
from clat_eamt.dns.server import DnsServer
from clat_eamt.dns.upstream import Upstreams
from clat_eamt.history import FlowHistory
from clat_eamt.present import (
    entries_text,
    entry_json,
    observation_json,
    observation_text,
    outcome_json,
    outcome_text,
)

log = logging.getLogger(__name__)
decisions = logging.getLogger("clat_eamt.decision")
TICK = 1.0
REPAIR_FIRST, REPAIR_MAX = 5.0, 300.0  # back-off of dataplane repairs


STARTING = "starting"  # dataplane.error until the first start finished (status, tests)


def proxy_settings(cfg: EffectiveConfig) -> ProxySettings:
    return ProxySettings(
        enabled=cfg[schema.ENABLED],
        hold=cfg[schema.HOLD_MS] / 1000,
        require_dnssec=cfg[schema.REQUIRE_DNSSEC],
    )


def upstream_source(
    cfg: EffectiveConfig, clock: Callable[[], float]
) -> tuple[ResolvConf | None, Callable[[], Sequence[ServerAddress]]]:
    """The configured resolvers, or else the WAN's from resolv_file (followed as it changes)."""
    configured = cfg[schema.UPSTREAM]
    if configured:
        return None, lambda: configured
    resolv = ResolvConf(cfg[schema.RESOLV_FILE], clock)
    return resolv, resolv.servers


class StartError(Exception):
    """The daemon cannot start (its DNS port or control socket is taken): the message says why."""


class Daemon:
    def __init__(
        self,
        cfg: EffectiveConfig,
        dataplane: Dataplane | None = None,
        clock: Callable[[], float] = time.monotonic,
        load: Callable[[], EffectiveConfig] | None = None,
        bus: Any = None,
    ) -> None:
        """``load`` reads the configuration again (SIGHUP); without it a reload keeps it.
        ``bus``: the python-ubus module (imported at start when None)."""
        self.bus = bus
        self.cfg, self.clock, self.started, self.load = cfg, clock, clock(), load
        self.restart_needed: tuple[str, ...] = ()
        # SPEC section 4: never map the router's own resolver addresses.
        local = tuple(
            ip_network(a) for a in (cfg[schema.LISTEN], *(s.address for s in cfg[schema.UPSTREAM]))
        )
        self.engine, installed = engine_from_config(cfg, self.started, local)
        for refusal in installed.refusals:
            log.warning("static entry not installed: %s", refusal.detail)
        self.dataplane = dataplane or build_dataplane(cfg, self._known_pref64)
        if hasattr(self.dataplane, "describe"):  # what its elements record for adoption
            self.dataplane.describe = lambda ipv4: note_of(self.engine.table, ipv4)
        self.dataplane_error: str | None = STARTING
        self.clean_on_stop = False
        self._repair_at, self._repair_delay = 0.0, REPAIR_FIRST
        self.applier = Applier(self.dataplane, cfg[schema.APPLY_TIMEOUT_MS] / 1000)
        self.resolv, servers = upstream_source(cfg, clock)
        self.upstreams = Upstreams(servers, cfg[schema.UPSTREAM_TIMEOUT_MS] / 1000, clock)
        settings = proxy_settings(cfg)
        self.hosts = NeighbourWatcher(
            cfg[schema.LAN_INTERFACES] or None, clock=clock, observe=cfg[schema.HOST_OBSERVE]
        )
        self.proxy = Proxy(self.upstreams, self.map, settings, self._classify)
        self.server = DnsServer(self.proxy.handle, str(cfg[schema.LISTEN]), cfg[schema.PORT])
        self.discovery: Pref64Discovery | None = None
        self._discovery_task: asyncio.Task[None] | None = None
        # Pref64s found at run time, by source (core.pref64.PRECEDENCE ranks them after config).
        self.pref64_found: dict[str, tuple[IPv6Network, ...]] = {}
        self.router_adverts = RaListener(self._pref64_found, clock)
        self.target = DaemonTarget(self)  # what the control socket and ubus serve
        self.control = ControlServer(cfg[schema.CONTROL_SOCKET], self.target)
        self.ubus: UbusObject | None = None
        self.control_error: str | None = None
        self.local_prefixes: tuple[IPNetwork, ...] = local
        self.counters: Counter[str] = Counter()
        self.history = FlowHistory()
        self.unmapped_log = RateLimitedLog(log, logging.INFO)  # a broken dataplane: every answer
        self.tick_log = RateLimitedLog(log, logging.WARNING)  # a failure repeats every second
        self._tasks: list[asyncio.Task[None]] = []
        self._reloads: set[asyncio.Task[bool]] = set()
        self.refresher = Refresher(self.proxy, self.counters)  # used mappings, before their end
        # Told where DNS is served once the sockets listen (cli: the dnsmasq hook's guard).
        self.on_listening: Callable[[str, int, bool], None] | None = None

    # --- life ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen, install the static entries, start the clock and the discovery.  StartError
        when the DNS address cannot be bound or another daemon holds the control socket."""
        where = f"{self.cfg[schema.LISTEN]}#{self.cfg[schema.PORT]}"
        try:
            await self.server.start()
        except OSError as error:
            raise StartError(f"cannot listen on {where}: {error.strerror or error}") from None
        await self._start_control()
        await self._reconcile()  # never raises: DNS must run even when the dataplane cannot
        self._tasks.append(asyncio.create_task(self._ticker(), name="tick"))
        self._follow_pref64_config()
        self.router_adverts.start()
        self.ubus = UbusObject(self.target, asyncio.get_running_loop(), self.bus)
        if not self.ubus.start():
            log.info("ubus: %s; `clat-eamt status` works without it", self.ubus.state)
        log.info(
            "clat-eamt %s listening on %s#%d (dataplane %s)",
            __version__,
            self.cfg[schema.LISTEN],
            self.server.port,
            self.dataplane.name,
        )
        if self.on_listening is not None:
            listen, identity = str(self.cfg[schema.LISTEN]), self.cfg[schema.CLIENT_IDENTITY]
            self.on_listening(listen, self.server.port, identity)

    async def stop(self) -> None:
        if self.ubus is not None:
            await asyncio.to_thread(self.ubus.stop)
        self.router_adverts.close()
        tasks = [*self._tasks, *([self._discovery_task] if self._discovery_task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.refresher.stop()
        await self.control.close()
        await self.server.close()
        self.upstreams.close()
        try:
            await asyncio.wait_for(self.applier.drain(), 5.0)
            await self.dataplane.stop(self.clean_on_stop)
        except TimeoutError:
            log.warning("dataplane still busy at stop")
        except Exception as error:  # stopping must finish whatever the dataplane says
            log.error("dataplane %s at stop: %s", self.dataplane.name, error)

    async def run_until_signalled(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        loop.add_signal_handler(signal.SIGUSR1, self.dump)
        loop.add_signal_handler(signal.SIGHUP, self._reload_soon)
        await self.start()
        try:
            await stopping.wait()
        finally:
            log.info("stopping")
            await self.stop()

    # --- the proxy's mapper --------------------------------------------------------------------

    async def map(self, obs: Observation) -> float | None:
        """Decide on one A answer and install what it needs, within the apply deadline.
        Returns the seconds the answer's addresses stay mapped (the proxy lowers the A TTLs
        to it), None when they map to nothing."""
        now = self.clock()
        outcome = self.engine.observe(obs, now)
        self.refresher.client_answer(obs.name, now)
        ends = decided_ends(self.engine.table, outcome.decision)
        life = valid_life(self.engine.table, obs.a, now, ends)
        # Changes at info, the many no-change decisions (refresh, refusal) at debug: a router's
        # log must not fill with one line per DNS answer.
        changed = any(event.kind != "refreshed" for event in outcome.events)
        level = logging.INFO if changed else logging.DEBUG
        if decisions.isEnabledFor(level):
            data = {"observation": observation_json(obs), "outcome": outcome_json(outcome, now)}
            text = outcome_text(outcome)
            decisions.log(level, "%s: %s", observation_text(obs), text, extra={"data": data})
        self.publish(outcome)
        if not outcome.ops and not (outcome.decision and outcome.decision.changes):
            return life  # touched no entry: nothing of ours to wait for
        # A refresh has no ops but may concern a mapping still being installed: wait for it too.
        result = await self.applier.apply(outcome.ops)
        self.counters[f"answers.apply_{result}"] += 1  # per A answer; batches count apart
        if result in ("late", "failed"):
            self.unmapped_log.note(result, "%s released unmapped: dataplane %s", obs.name, result)
        return life

    async def _start_control(self) -> None:
        """The control socket.  Taken by a running daemon: refuse to start (two daemons would
        fight over one nft table).  Any other failure: DNS and mapping go on without it."""
        try:
            await self.control.start()
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                await self.server.close()
                raise StartError(str(error.strerror or error)) from None
            self.control_error = f"{self.control.path}: {error.strerror or error}"
            log.error("control socket %s (clat-eamt status will not work)", self.control_error)

    async def _reconcile(self) -> bool:
        """Start or adopt the dataplane and make it hold exactly what the table wants: what a
        crashed run left is adopted (Valid until the expiry its elements recorded, else Stale
        with its flows going on), orphans are removed, and
        what was decided while the dataplane was down is installed."""
        try:
            async with self.applier.lock:  # answers decided meanwhile are applied after it
                await self._check_local_prefixes()
                actual = await self.dataplane.start()
                live = await self.dataplane.live_flows()
                found = left_behind(actual, live)
                adopted = self.engine.adopt(found, self.clock(), actual.notes)
                ops = diff(actual, desired_state(self.engine.table))
                if ops:
                    await self.dataplane.apply(ops)
        except Exception as error:  # any failure: DNS goes on, flows take the NAT64 path
            self.dataplane_error = f"{type(error).__name__}: {error}"
            self.counters["dataplane.start_failed"] += 1
            log.error(
                "dataplane %s: %s (retry in %.0f s)", self.dataplane.name, error, self._repair_delay
            )
            self._repair_at = self.clock() + self._repair_delay
            self._repair_delay = min(self._repair_delay * 2, REPAIR_MAX)
            return False
        if self.dataplane_error or adopted or ops:
            log.info(
                "dataplane %s: ready; adopted %d, reconciled with %d operations",
                self.dataplane.name, len(adopted), len(ops),
            )  # fmt: skip
        self.dataplane_error = None
        self._repair_delay = REPAIR_FIRST
        return True

    async def _check_local_prefixes(self) -> None:
        """SPEC 4: the router's own prefixes are never mapped, and the pool must avoid them."""
        local = await local_networks(self.cfg[schema.LAN_INTERFACES] or None)
        policy = self.engine.policy
        new = [p for p in local.never_mapped if p not in policy.addresses.excluded]  # retries
        self.local_prefixes += tuple(new)
        self.engine.policy = replace(policy, addresses=policy.addresses.with_excluded(new))
        problems = pool_problems(
            self.cfg[schema.POOL],
            allow_documentation=self.cfg[schema.ALLOW_DOCUMENTATION],
            in_use=local.prefixes,
        )
        if problems:
            raise ValueError("pool: " + "; ".join(problems))

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            self._check_health()
            broken = self.dataplane_error or self.applier.last_error
            if broken and self.clock() >= self._repair_at:
                await self._reconcile()
            try:
                await self._refresh_hosts()
            except Exception as error:  # stale host sets are safe; the clock goes on
                self.tick_log.note("hosts", "host classification: %s", error)
            try:
                live = await self.dataplane.live_flows()
                now = self.clock()
                if self.cfg[schema.ENABLED]:  # first: an entry being asked again stays Valid
                    self.refresher.run(self.engine.table, live, now)
                held = self.refresher.holding(now)
                await self.enact(self.engine.tick(now, live, held), "tick")
                if self.history.due(now):
                    await self._sample_flows(now)
            except Exception:  # the clock must keep running whatever one tick hit
                self.tick_log.note("tick", "tick failed", exc_info=True)

    async def _sample_flows(self, now: float) -> None:
        census = await self.dataplane.flow_census()
        if census is None:
            self.history.skip(now)
            return
        totals = census.totals(self.local_prefixes)
        self.history.add(now, totals["native"], totals["nat64"])

    def _check_health(self) -> None:
        """A translator that died (tayga crashed or was killed) is restarted by the repair at
        once; not while a batch runs, since restarting tayga to change its maps looks the same."""
        if self.dataplane_error or self.applier.lock.locked():
            return
        problem = self.dataplane.problem()
        if problem:
            log.error("dataplane %s: %s; restarting it", self.dataplane.name, problem)
            self.dataplane_error = problem
            self._repair_at = self.clock()

    def _classify(self, identity: ClientIdentity) -> Host | None:
        """The client as the neighbour tables know it (SPEC 3); unknown when they do not."""
        for key in (identity.mac, str(identity.address) if identity.address else None):
            host = self.hosts.host(key) if key else None
            if host is not None:
                return host
        return unknown_class(identity)

    async def _refresh_hosts(self) -> None:
        await self.hosts.refresh()
        ipv4_only = self.hosts.ipv4_only_ipv4s()
        await self.dataplane.set_hosts(self.hosts.dual_stack_ipv4s(), ipv4_only)
        if bool(ipv4_only) != self.engine.policy.ipv4_only_hosts:  # who may create (decide)
            self.engine.policy = replace(self.engine.policy, ipv4_only_hosts=bool(ipv4_only))

    def _follow_pref64_config(self) -> None:
        """RFC 7050 discovery runs while the optimization is on and no Pref64 is configured."""
        wanted = self.cfg[schema.ENABLED] and not self.cfg[schema.PREF64]
        if wanted and self._discovery_task is None:
            self.discovery = Pref64Discovery(self.upstreams, self._pref64_found, self.clock)
            self._discovery_task = asyncio.create_task(self.discovery.run(), name="pref64")
        elif not wanted and self._discovery_task is not None:
            self._discovery_task.cancel()
            self.discovery = self._discovery_task = None
            self.pref64_found.pop(DNS, None)

    def _known_pref64(self) -> IPv6Network | None:
        """The Pref64 for a CLAT whose own cannot be read: configured, else discovered."""
        extra = self.engine.policy.pref64.extra
        return extra[0] if extra else None

    def _pref64_found(self, prefixes: tuple[IPv6Network, ...], source: str) -> None:
        self.pref64_found[source] = prefixes
        self.engine.policy = replace(self.engine.policy, pref64=self._pref64())
        if self.dataplane_error:  # a CLAT may have waited for it: try again at the next tick
            self._repair_at = self.clock()

    def _pref64(self) -> Pref64Set:
        """The configured Pref64, else the best one found (core.pref64.choose)."""
        return choose({CONFIG: tuple(self.cfg[schema.PREF64]), **self.pref64_found})

    # --- status --------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return self.target.status()

    def mappings(self) -> list[dict[str, Any]]:
        now = self.clock()
        return [entry_json(e, now) for e in self.engine.table.sorted()]

    def dump(self) -> None:
        log.info("status %s", json.dumps(self.status(), sort_keys=True))
        log.info("mappings:\n%s", entries_text(self.engine.table, self.clock()))
        log.debug("mappings-json %s", json.dumps(self.mappings()))

    # --- changes not from DNS: the clock, the operator, a reload ---------------------------------

    async def enact(self, outcome: Outcome, action: str) -> str:
        """Log an outcome's entry events, publish them (ubus) and install its operations."""
        if outcome.events:
            decisions.info("%s: %s", action, outcome_text(outcome))
            self.publish(outcome)
        return await self.applier.apply(outcome.ops) if outcome.ops else "none"

    def publish(self, outcome: Outcome) -> None:
        """Entry events to the ubus object (clat-eamt.mapping events), if there is one."""
        if self.ubus is not None and outcome.events:
            now = self.clock()
            for event in outcome.events:
                if event.kind in EVENT_KINDS:  # not refreshes: entry_json per answer was costly
                    self.ubus.publish(event.kind, entry_json(event.entry, now))

    # --- reload (SIGHUP: procd's reload on a config commit or a WAN event) ----------------------

    def _reload_soon(self) -> None:
        task = asyncio.create_task(self.reload(), name="reload")
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def reload(self) -> bool:
        """Read the configuration again and apply what can change in place, without dropping a
        mapping (config.reload); a configuration with problems is refused and the running one
        kept.  The static entries become those of the file (run-time `add`s go)."""
        if self.load is None:
            log.warning("reload: no configuration file to read again")
            return False
        try:
            new = self.load()
        except ConfigError as error:
            self.counters["reload.refused"] += 1
            log.error("reload refused, the running configuration stays:\n%s", error)
            return False
        plan = plan_reload(self.cfg, new)
        was_enabled, self.cfg, cfg = self.cfg[schema.ENABLED], plan.config, plan.config
        self.restart_needed = plan.restart_needed
        policy = replace(policy_from_config(cfg, self.local_prefixes), pref64=self._pref64())
        policy = replace(policy, ipv4_only_hosts=self.engine.policy.ipv4_only_hosts)
        self.engine.policy, self.engine.limiter = policy, limiter_from_config(cfg)
        self.proxy.settings = proxy_settings(cfg)
        self.hosts.observe = cfg[schema.HOST_OBSERVE]
        self.applier.deadline = cfg[schema.APPLY_TIMEOUT_MS] / 1000
        self.upstreams.timeout = cfg[schema.UPSTREAM_TIMEOUT_MS] / 1000
        if "upstream" in plan.changed or "resolv_file" in plan.changed:
            self.resolv, self.upstreams.servers = upstream_source(cfg, self.clock)
        self._follow_pref64_config()
        if self.dataplane_error:  # a WAN event (procd reloads on them) may have brought the CLAT
            self._repair_at = self.clock()
        now = self.clock()
        outcome = self.engine.sync_static(static_specs(cfg), now)
        for refusal in outcome.refusals:
            log.warning("static entry not installed: %s", refusal.detail)
        if was_enabled and not cfg[schema.ENABLED]:  # switched off: learned entries retire
            flushed = self.engine.flush(now)
            outcome = replace(outcome, events=outcome.events + flushed.events,
                              ops=outcome.ops + flushed.ops)  # fmt: skip
        await self.enact(outcome, "reload")
        self.counters["reload.done"] += 1
        log.info(
            "reloaded %s: changed %s%s", new.source, ", ".join(plan.changed) or "nothing",
            f"; takes a restart: {', '.join(plan.restart_needed)}" if plan.restart_needed else "",
        )  # fmt: skip
        return True
