"""The runtime: everything the daemon decides, as one object fed events with the time.

It owns the engine (table, pool, limiter), the host memory, the Pref64 sources, the running
configuration, the refresh-ahead memory, the flow history and the counters.  ``handle`` takes
one event and returns the commands it asks for, in order; ``snapshot`` is the frozen view the
control API reads.  The timing rules live here, not in asyncio code: the repair back-off of a
broken dataplane, adoption after a crash, reload, refresh ahead.  The driver (``daemon``)
decides only when the clock ticks and how long an answer may wait (the apply deadline).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from ipaddress import IPv6Network
from typing import Any

from clat_eamt.assemble import (
    engine_from_config,
    ipv6_only_from_config,
    limiter_from_config,
    policy_from_config,
    resolver_prefixes,
    static_specs,
)
from clat_eamt.config import ConfigError, EffectiveConfig, StaticEntry, schema, with_static
from clat_eamt.config.reload import plan_reload
from clat_eamt.core.counters import ApplyResult, Count, applied
from clat_eamt.core.dataplane import desired_state, diff, left_behind
from clat_eamt.core.engine import Outcome
from clat_eamt.core.hosts import HostMemory
from clat_eamt.core.ipv6only import SyntheticA
from clat_eamt.core.ipv6only import status as ipv6_only_status
from clat_eamt.core.model import Host, IPNetwork, Observation, Origin
from clat_eamt.core.pool import pool_problems
from clat_eamt.core.pref64 import CONFIG, DNS, Pref64Set, choose
from clat_eamt.core.refresh import RefreshAhead, decided_ends, valid_life
from clat_eamt.history import FlowHistory
from clat_eamt.present import entry_json
from clat_eamt.runtime import commands as c
from clat_eamt.runtime import events as e
from clat_eamt.runtime.provider import ProviderSource
from clat_eamt.runtime.settings import fixed_options, shell_settings
from clat_eamt.runtime.snapshot import Snapshot

REPAIR_FIRST, REPAIR_MAX = 5.0, 300.0  # back-off of dataplane repairs, seconds
_WAIT_ONLY = c.ApplyOps(())  # nothing to install: wait for what is queued (one, immutable)
FLOWS_AHEAD = 2.0  # seconds before refresh ahead looks at a mapping: its flows are read by then
STARTING = "starting"  # the dataplane error until the first start finished (status, tests)
INFO, WARNING, ERROR = logging.INFO, logging.WARNING, logging.ERROR


class Runtime:
    def __init__(self, cfg: EffectiveConfig, now: float, dataplane: str = "disabled") -> None:
        """``dataplane``: the backend's name, for the log lines about it."""
        self.cfg, self.started, self.dataplane = cfg, now, dataplane
        self.local_prefixes = resolver_prefixes(cfg)
        self.engine, installed = engine_from_config(cfg, now, self.local_prefixes)
        self._refusals = installed.refusals  # said by ``start``
        self.hosts = HostMemory(observe=cfg[schema.HOST_OBSERVE])
        self.pref64_found: dict[str, tuple[IPv6Network, ...]] = {}  # by source, besides config
        self.ipv4_only_hosts = False  # the neighbour tables know IPv4-only hosts now
        self.counters: Counter[str] = Counter()
        self.dataplane_error: str | None = STARTING
        self.last_error: str | None = None  # of the last batch
        # A batch failed since the last start: the kernel may miss what it held, even after
        # later batches landed (they are diffs), until a start reconciles it with the table.
        self.unreconciled = False
        self.repair_at, self.repair_delay = now, REPAIR_FIRST
        self.restart_needed: tuple[str, ...] = ()
        self.added: tuple[StaticEntry, ...] = ()  # the operator's run-time adds (``_operator``)
        self.refresh = RefreshAhead()
        self.asking: set[str] = set()  # names being asked again now
        self.history = FlowHistory()
        self.provider = ProviderSource.from_config(cfg, now)  # the operator's table
        self._reconciled: tuple[int, int] = (0, 0)  # adopted, operations: for the ready line
        self._repaired: float | None = None  # the tick that last restarted the dataplane

    # --- the two entry points ------------------------------------------------------------------

    def start(self, now: float) -> list[c.Command]:
        """What the driver does first: the shells' settings, the static entries it could not
        install, Pref64 discovery, the dataplane's start."""
        said = [c.Say(WARNING, f"static entry not installed: {r.detail}") for r in self._refusals]
        return [
            c.Configure(shell_settings(self.cfg)),
            *said,
            c.FollowPref64(self._discovering()),
            c.RestartDataplane(),
        ]

    def handle(self, event: e.Event, now: float) -> list[c.Command]:
        match event:
            case e.AnswerObserved(obs):
                return self._answer(obs, now)
            case e.AnswerReleased(name, result):
                self.counters[applied(result)] += 1  # per A answer; batches count apart
                if result in (ApplyResult.LATE, ApplyResult.FAILED):
                    return [c.Say(INFO, f"{name} released unmapped: dataplane {result}", result)]
                return []
            case e.Tick():
                return self._tick(event, now)
            case e.BatchDone():
                self.last_error = None
                return []
            case e.BatchFailed(error):
                self.last_error, self.unreconciled = error, True
                return []
            case e.Reconfigured(config):
                return self._reconfigure(config, now)
            case e.ReloadRefused(error):
                self.counters[Count.RELOAD_REFUSED] += 1
                text = f"reload refused, the running configuration stays:\n{error}"
                return [c.Say(ERROR, text)]
            case e.ProviderOffered() | e.ProviderContinue():
                return self._provider(event, now)
            case e.ProviderRemembered(serial):
                self.provider.floor = max(self.provider.floor or 0, serial)
                return []
            case e.OperatorAdd() | e.OperatorDelete() | e.OperatorFlush():
                return self._operator(event, now)
            case e.DataplaneDied(problem):
                return self._died(problem, now)
            case e.ProbeResult(never_mapped, in_use):
                return self._probed(never_mapped, in_use, now)
            case e.DataplaneStarted(actual, live):
                found = left_behind(actual, live)
                adopted = self.engine.adopt(found, now, actual.notes)
                if self.engine.ipv6_only.enabled:  # P a device may hold (``core.ipv6only``)
                    engine = self.engine
                    quarantine = engine.ipv6_only.quarantine
                    engine.held.after_restart(actual.translator, engine.table.pool, now, quarantine)
                ops = diff(actual, desired_state(self.engine.table))
                self._reconciled = (len(adopted), len(ops))
                return [c.Reconcile(ops)]
            case e.DataplaneReady():
                return self._ready()
            case e.DataplaneStartFailed(kind, message):
                return self._start_failed(kind, message, now)
            case e.Pref64Found(source, prefixes):
                self.pref64_found[source] = prefixes
                self._set_policy()
                if self.dataplane_error:  # a CLAT may have waited for it: repair at the tick
                    self.repair_at = now
                return []
            case e.FlowsCounted(native, nat64, wall):
                if native is None or nat64 is None:
                    self.history.skip(now)
                else:
                    self.history.add(now, native, nat64, wall)
                return []
            case e.RefreshDone(name, ok):
                self.asking.discard(name)
                if not ok:
                    self.counters[Count.REFRESH_FAILED] += 1
                return []
            case e.Listening(port):
                identity = self.cfg[schema.CLIENT_IDENTITY]
                return [c.RehookDns(str(self.cfg[schema.LISTEN]), port, identity)]
        raise TypeError(f"not an event: {event!r}")  # pragma: no cover - the match is exhaustive

    def snapshot(
        self, now: float, *, entries: bool = False, shells: Mapping[str, Any] | None = None,
        counters: Mapping[str, int] | None = None,
    ) -> Snapshot:  # fmt: skip
        """The frozen view of now; ``entries``: with the whole table (a copy of every entry
        reference: only the mappings call needs it).  ``shells`` and ``counters``: what the
        driver's sockets and applier add (their state is not the runtime's)."""
        merged = Counter(counters or {}) + self.engine.counters + self.counters
        engine = self.engine
        return Snapshot(
            taken=now,
            started=self.started,
            config=self.cfg,
            pref64=self.engine.policy.pref64,
            table_size=len(self.engine.table),
            entries=tuple(self.engine.table.sorted()) if entries else None,
            counters=dict(sorted(merged.items())),
            dataplane=self.dataplane,
            dataplane_error=self.dataplane_error,
            last_error=self.last_error,
            restart_needed=self.restart_needed,
            hosts=tuple(self.hosts.rows(now)),
            ipv4_only_hosts=len(self.hosts.ipv4_only_ipv4s()),
            dual_stack_hosts=len(self.hosts.dual_stack_ipv4s()),
            hosts_unsure=self.hosts.unsure,
            hosts_error=self.hosts.last_error,
            history=self.history.json(),
            local_prefixes=self.local_prefixes,
            shells=dict(shells or {}),
            ipv6_only=ipv6_only_status(engine.ipv6_only, engine.table, engine.held),
        )

    # --- reads for the shells (no state changes) ------------------------------------------------

    def classify(self, mac: str | None, address: str | None) -> Host | None:
        """The client as the neighbour tables know it (SPEC 3); None when they do not."""
        for key in (mac, address):
            host = self.hosts.host(key) if key else None
            if host is not None:
                return host
        return None

    def wants_flows(self, now: float) -> bool:
        """Whether the tick at ``now`` needs the live flows, which cost a dump of the kernel's
        whole conntrack table (12 ms of CPU here even when it is empty: every bucket is walked):
        only to delete the Stale entries whose flows are gone (``Engine.tick``) and to tell
        whether mappings near their end are in use (refresh ahead).  A tick without them is
        given none (unknown), which deletes nothing, as when conntrack cannot be read."""
        table = self.engine.table
        ahead = now + self.refresh.settings.lead + FLOWS_AHEAD
        return table.has_stale or bool(table.expiring(ahead))

    def known_pref64(self) -> IPv6Network | None:
        """The Pref64 for a CLAT whose own cannot be read: configured, else discovered."""
        extra = self.engine.policy.pref64.extra
        return extra[0] if extra else None

    def pref64(self) -> Pref64Set:
        """The configured Pref64, else the best one found (core.pref64.choose)."""
        return choose({CONFIG: tuple(self.cfg[schema.PREF64]), **self.pref64_found})

    # --- DNS -----------------------------------------------------------------------------------

    def _answer(self, obs: Observation, now: float) -> list[c.Command]:
        life: float | SyntheticA | None
        if self.engine.ipv6_only.applies(obs.a):  # no A, or placeholders only (issue 27)
            outcome, address, ttl = self.engine.synthesize(obs, now)
            life = None if address is None else SyntheticA(address, ttl)
        else:
            outcome = self.engine.observe(obs, now)
            life = valid_life(self.engine.table, obs.a, now, decided_ends(outcome.events))
        if obs.name not in self.asking:  # our own asking is not a client's use
            self.refresh.client_answer(obs.name, now)
        published = c.Publish(outcome, "answer", obs)
        if not outcome.ops and not (outcome.decision and outcome.decision.changes):
            return [published, c.Release(obs.name, life, waited=False)]  # nothing to wait for
        # A refresh has no ops but may concern a mapping still being installed: wait for it too.
        ops = c.ApplyOps(outcome.ops) if outcome.ops else _WAIT_ONLY
        return [published, ops, c.Release(obs.name, life, waited=True)]

    # --- the clock -----------------------------------------------------------------------------

    def _tick(self, tick: e.Tick, now: float) -> list[c.Command]:
        broken = self.dataplane_error or self.unreconciled
        if broken and now >= self.repair_at and self._repaired != now:
            self._repaired = now  # once per tick, whatever the start does
            return [c.RestartDataplane(), c.Redo(tick)]
        commands: list[c.Command] = []
        if tick.neighbours is None:
            error = tick.neighbour_error or "unreadable"
            self.hosts.unreadable(error)
            commands.append(c.Say(WARNING, f"neighbour tables unreadable: {error}", "neighbours"))
        else:
            self.hosts.seen(tick.neighbours, now)
        ipv4_only = frozenset(self.hosts.ipv4_only_ipv4s())
        commands.append(c.SetHosts(frozenset(self.hosts.dual_stack_ipv4s()), ipv4_only))
        if bool(ipv4_only) != self.ipv4_only_hosts:  # who may create (decide)
            self.ipv4_only_hosts = bool(ipv4_only)
            self._set_policy()
        if self.cfg[schema.ENABLED]:  # first: an entry being asked again stays Valid
            for name in self.refresh.due(self.engine.table, tick.flows, now):
                if name not in self.asking:
                    self.asking.add(name)
                    self.counters[Count.REFRESH_AHEAD] += 1
                    commands.append(c.AskAgain(name))
        if self.cfg[schema.ENABLED] and self.provider.due(now):
            source = self.provider
            commands.append(c.FetchProvider(source.url, source.key, source.ca, source.max_entries))
        held = self.asking | self.refresh.holding(now)
        commands += self._enact(self.engine.tick(now, tick.flows, held), "tick")
        if self.history.due(now):
            commands.append(c.CountFlows())
        return commands

    def _enact(self, outcome: Outcome, action: str) -> list[c.Command]:
        published: list[c.Command] = [c.Publish(outcome, action)] if outcome.events else []
        return published + ([c.ApplyOps(outcome.ops)] if outcome.ops else [])

    # --- the dataplane -------------------------------------------------------------------------

    def _died(self, problem: str, now: float) -> list[c.Command]:
        """A translator that died (tayga crashed or was killed) is restarted at this tick."""
        if self.dataplane_error:
            return []
        self.dataplane_error, self.repair_at = problem, now
        return [c.Say(ERROR, f"dataplane {self.dataplane}: {problem}; restarting it")]

    def _probed(
        self, never_mapped: tuple[IPNetwork, ...], in_use: tuple[IPNetwork, ...], now: float
    ) -> list[c.Command]:
        """SPEC 4: the router's own prefixes are never mapped, and the pool must avoid them."""
        excluded = self.engine.policy.addresses.excluded
        self.local_prefixes += tuple(p for p in never_mapped if p not in excluded)  # retries
        self._set_policy()
        problems = pool_problems(
            self.cfg[schema.POOL],
            allow_documentation=self.cfg[schema.ALLOW_DOCUMENTATION],
            in_use=in_use,
        )
        if problems:
            return self._start_failed("ValueError", "pool: " + "; ".join(problems), now)
        return [c.StartDataplane()]

    def _ready(self) -> list[c.Command]:
        adopted, ops = self._reconciled
        said: list[c.Command] = []
        if self.dataplane_error or adopted or ops:
            said.append(c.Say(INFO, f"dataplane {self.dataplane}: ready; adopted {adopted}, "
                                    f"reconciled with {ops} operations"))  # fmt: skip
        self.dataplane_error, self.repair_delay, self.unreconciled = None, REPAIR_FIRST, False
        return said

    def _start_failed(self, kind: str, message: str, now: float) -> list[c.Command]:
        """Any failure: DNS goes on, flows take the NAT64 path; try again, backing off."""
        self.dataplane_error = f"{kind}: {message}"
        self.counters[Count.DATAPLANE_START_FAILED] += 1
        text = f"dataplane {self.dataplane}: {message} (retry in {self.repair_delay:.0f} s)"
        self.repair_at = now + self.repair_delay
        self.repair_delay = min(self.repair_delay * 2, REPAIR_MAX)
        return [c.Say(ERROR, text)]

    # --- the operator --------------------------------------------------------------------------

    def _operator(self, event: e.OperatorEvent, now: float) -> list[c.Command]:
        """Validated like a static section (pool, Pref64, overlaps); a refusal changes nothing.
        An add lasts until its ``del`` or a restart (the UCI file is not written); a reload
        keeps it: procd reloads on every event of a WAN interface."""
        cfg = self.cfg
        match event:
            case e.OperatorAdd(entry):
                try:
                    cfg = with_static(cfg, (*cfg.static, entry), "add")
                except ConfigError as error:
                    return [c.Reply(error=error.brief())]
                outcome = self.engine.add_static(entry.ipv4, entry.ipv6, now, entry.comment)
                if outcome.refusals:
                    return [c.Reply(error="; ".join(r.detail for r in outcome.refusals))]
                action, key = "add", "added"
                self.added = (*self.added, entry)
            case e.OperatorDelete(ipv4):
                kept = tuple(s for s in cfg.static if s.ipv4 != ipv4)
                if len(kept) == len(cfg.static):
                    listed = ", ".join(str(s.ipv4) for s in cfg.static) or "none"
                    return [c.Reply(error=f"no static entry for {ipv4} (static entries: {listed})")]
                cfg = with_static(cfg, kept, "del")
                outcome = self.engine.delete(ipv4, now, Origin.STATIC)
                action, key = "del", "deleted"
                self.added = tuple(s for s in self.added if s.ipv4 != ipv4)
            case _:
                outcome = self.engine.flush(now)
                flushed = c.Reply({"flushed": len(outcome.events)})
                return [*self._enact(outcome, "flush"), flushed]
        self.cfg = cfg
        rows = [entry_json(ev.entry, now) for ev in outcome.events]
        return [*self._enact(outcome, action), c.Reply({key: rows})]

    def _provider(
        self, event: e.ProviderOffered | e.ProviderContinue, now: float
    ) -> list[c.Command]:
        """The operator's table, fetched or pushed: checked whole, then taken (the entries it
        no longer lists retired, its own installed) or refused whole (nothing changes); a slice
        of that work per call, ``c.ProviderMore`` between slices (DNS goes on meanwhile)."""
        source = self.provider
        error = None
        if isinstance(event, e.ProviderOffered):
            if not self.cfg[schema.ENABLED]:  # the master switch: nothing is steered
                event = replace(event, problem="the optimization is off (enabled 0)")
            error = source.offer(event, now)
        elif not source.busy:  # another offer's slices finished the work
            return [c.Reply({"provider": source.status(self.engine, now)})]
        outcome = Outcome()
        if error is None and source.busy:
            outcome, error = source.step(self.engine, now, self.cfg[schema.POOL])
        if error is not None:
            self.counters[Count.PROVIDER_REFUSED] += 1
            return [c.Say(WARNING, f"provider: {error}", "provider"), c.Reply(error=error)]
        # An install slice's entries are not logged one by one (10,000 decision lines; the
        # ubus events are rate-limited anyway): one line says the table is in.
        if source.installed_last:
            commands: list[c.Command] = [c.ApplyOps(outcome.ops)] if outcome.ops else []
        else:
            commands = self._enact(outcome, "provider")
        if source.busy:
            return [*commands, c.ProviderMore()]
        self.counters[Count.PROVIDER_TAKEN] += 1
        status = source.status(self.engine, now)
        said = f"provider: serial {status['serial']} taken, {status['installed']} entries in"
        remember = c.RememberProvider(status["serial"])
        return [*commands, c.Say(INFO, said), remember, c.Reply({"provider": status})]

    # --- reload --------------------------------------------------------------------------------

    def _reconfigure(self, new: EffectiveConfig, now: float) -> list[c.Command]:
        """Apply what can change in place, without dropping a mapping (``settings``).  The
        static entries become those of the file plus the operator's run-time adds."""
        new, dropped = self._keep_added(new)
        plan = plan_reload(self.cfg, new, fixed_options(self.cfg))
        was_enabled, self.cfg = self.cfg[schema.ENABLED], plan.config
        cfg = self.cfg
        self.restart_needed = plan.restart_needed
        if not self._discovering():
            self.pref64_found.pop(DNS, None)
        self._set_policy()
        self.engine.limiter = limiter_from_config(cfg)
        self.hosts.observe = cfg[schema.HOST_OBSERVE]
        if self.dataplane_error:  # a WAN event (procd reloads on them) may have brought the CLAT
            self.repair_at = now
        outcome = self.engine.sync_static(static_specs(cfg), now)
        self.provider.reconfigure(cfg, now)
        commands: list[c.Command] = [
            *dropped,
            c.Configure(shell_settings(cfg), plan.changed),
            c.FollowPref64(self._discovering()),
            *(c.Say(WARNING, f"static entry not installed: {r.detail}") for r in outcome.refusals),
        ]
        if was_enabled and not cfg[schema.ENABLED]:  # switched off: learned entries retire
            flushed = self.engine.flush(now)
            retired = self.engine.retire_provider((), now)  # and the operator's
            self.provider.forget()
            flushed = replace(flushed, events=flushed.events + retired.events,
                              ops=flushed.ops + retired.ops)  # fmt: skip
            outcome = replace(outcome, events=outcome.events + flushed.events,
                              ops=outcome.ops + flushed.ops)  # fmt: skip
        self.counters[Count.RELOAD_DONE] += 1
        restart = ", ".join(plan.restart_needed)
        said = f"reloaded {new.source}: changed {', '.join(plan.changed) or 'nothing'}"
        said += f"; takes a restart: {restart}" if restart else ""
        return [*commands, *self._enact(outcome, "reload"), c.Say(INFO, said)]

    def _keep_added(self, new: EffectiveConfig) -> tuple[EffectiveConfig, list[c.Command]]:
        """``new`` with the run-time adds it does not list, each checked as ``add`` checks it;
        one the new file contradicts (an overlap, a pool or Pref64 it no longer fits) goes."""
        dropped: list[c.Command] = []
        for entry in self.added:
            if any(listed.ipv4 == entry.ipv4 for listed in new.static):
                continue  # the file has its own entry for that prefix now
            try:
                new = with_static(new, (*new.static, entry), "add")
            except ConfigError as error:
                text = f"reload: the run-time static entry {entry.ipv4} goes: {error.brief()}"
                dropped.append(c.Say(WARNING, text))
        self.added = tuple(entry for entry in self.added if entry in new.static)
        return new, dropped

    def _set_policy(self) -> None:
        """The engine's policy, built in this one place from all it depends on: the running
        configuration, the router's own prefixes (SPEC 4), the Pref64 sources and whether the
        neighbour tables know IPv4-only hosts (decide: who may create)."""
        policy = policy_from_config(self.cfg, self.local_prefixes)
        self.engine.ipv6_only = ipv6_only_from_config(self.cfg)
        self.engine.policy = replace(
            policy, pref64=self.pref64(), ipv4_only_hosts=self.ipv4_only_hosts
        )

    def _discovering(self) -> bool:
        """RFC 7050 discovery runs while the optimization is on and no Pref64 is configured."""
        return bool(self.cfg[schema.ENABLED] and not self.cfg[schema.PREF64])

    # --- for tests and the driver's own checks ---------------------------------------------------

    def component_view(self) -> dict[str, object]:
        """What every component holds of the configuration now, by component (the reload test
        checks that each live option reaches one of them)."""
        return {
            "policy": replace(self.engine.policy, ipv4_only_hosts=False),
            "ipv6_only": self.engine.ipv6_only,
            "limiter": self.engine.limiter.parameters,
            "hosts": (self.hosts.observe, self.hosts.hold),
            "shells": shell_settings(self.cfg),
            "discovery": self._discovering(),
            "static": tuple(static_specs(self.cfg)),
            "provider": self.provider.settings(),
        }
