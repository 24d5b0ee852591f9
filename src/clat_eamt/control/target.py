"""The running daemon as the control API sees it (``methods.ControlTarget``): status with the
flow census, the tables, and the operator's actions, which go through the same engine and
applier as DNS answers."""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Network
from typing import TYPE_CHECKING

from clat_eamt import __version__
from clat_eamt.apply import percentiles
from clat_eamt.config import ConfigError, StaticEntry, schema, with_static
from clat_eamt.control.methods import JSON, MethodError, problems_text
from clat_eamt.core.model import FlowCensus, Origin
from clat_eamt.present import counters_summary, entry_json

if TYPE_CHECKING:
    from clat_eamt.daemon import Daemon

ROWS_PER_TURN = 256


class DaemonTarget:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def status(self) -> JSON:
        """Health, configuration facts and raw counters (no I/O: SIGUSR1 logs it too)."""
        d = self.daemon
        now = d.clock()
        pref64 = d.engine.policy.pref64
        counters = d.proxy.counters + d.engine.counters + d.applier.counters
        return {
            "version": __version__,
            "uptime": round(now - d.started, 1),
            "enabled": d.cfg[schema.ENABLED],
            "listen": f"{d.cfg[schema.LISTEN]}#{d.server.port}",
            "upstreams": {
                "source": "config" if d.resolv is None else d.resolv.path,
                "problem": None if d.resolv is None else d.resolv.problem,
                "servers": d.upstreams.status(),
            },
            "pref64": {
                "prefixes": [str(p) for p in pref64.extra],
                "source": pref64.source,
                "discovery": d.discovery.status() if d.discovery else None,
                "router_adverts": d.router_adverts.status(),
            },
            "dataplane": {
                "name": d.dataplane.name,
                "error": d.dataplane_error,
                "last_error": d.applier.last_error,
                "install": percentiles(d.applier.install_times),
                **(d.dataplane.facts() if hasattr(d.dataplane, "facts") else {}),
            },
            "mappings": len(d.engine.table),
            "hosts": {
                "ipv4_only": len(d.hosts.ipv4_only_ipv4s()),
                "dual_stack": len(d.hosts.dual_stack_ipv4s()),
                "unsure": d.hosts.unsure,
                "error": d.hosts.last_error,
            },
            "control": {"socket": str(d.control.path), "error": d.control_error},
            "ubus": d.ubus.status() if d.ubus else {"state": "not started"},
            "restart_needed": list(d.restart_needed),
            "counters": dict(sorted((counters + d.counters).items())),
        }

    async def status_report(self) -> JSON:
        """``status`` plus the summary counters and the live flows, native vs NAT64."""
        d = self.daemon
        census = await d.dataplane.flow_census()
        report = self.status()
        report["summary"] = counters_summary(report["counters"])
        report["flows"] = None if census is None else census.totals(d.local_prefixes)
        return report

    async def mapping_rows(self) -> list[JSON]:
        """Every entry (the CLI and LuCI show the whole table), from one snapshot of the table,
        built ``ROWS_PER_TURN`` rows at a time with a turn of the event loop between them: 10,000
        entries take a good fraction of a second on a router, DNS must not wait for that."""
        d = self.daemon
        census = await d.dataplane.flow_census() or FlowCensus()
        now = d.clock()
        entries = d.engine.table.sorted()  # entries are immutable: a consistent snapshot
        rows: list[JSON] = []
        for first in range(0, len(entries), ROWS_PER_TURN):
            rows += [
                entry_json(e, now) | {"flows": census.flows_of(e)}
                for e in entries[first : first + ROWS_PER_TURN]
            ]
            await asyncio.sleep(0)
        return rows

    def host_rows(self) -> list[JSON]:
        return self.daemon.hosts.table()

    def effective_config(self) -> JSON:
        return self.daemon.cfg.to_json()

    def flow_history(self) -> JSON:
        return self.daemon.history.json()

    async def add_static(self, entry: StaticEntry) -> JSON:
        """Validated like a static section (pool, Pref64, overlaps); MethodError otherwise, and
        then nothing changed.  Lasts until a restart or reload (the UCI file is not written)."""
        d = self.daemon
        try:
            cfg = with_static(d.cfg, (*d.cfg.static, entry), "add")
        except ConfigError as error:
            raise MethodError(problems_text(error)) from None
        now = d.clock()
        outcome = d.engine.add_static(entry.ipv4, entry.ipv6, now, entry.comment)
        if outcome.refusals:
            raise MethodError("; ".join(r.detail for r in outcome.refusals))
        d.cfg = cfg
        added = [entry_json(e.entry, now) for e in outcome.events]
        return {"added": added, "dataplane": await d.enact(outcome, "add")}

    async def delete_static(self, ipv4: IPv4Network) -> JSON:
        d = self.daemon
        kept = tuple(s for s in d.cfg.static if s.ipv4 != ipv4)
        if len(kept) == len(d.cfg.static):
            listed = ", ".join(str(s.ipv4) for s in d.cfg.static) or "none"
            raise MethodError(f"no static entry for {ipv4} (static entries: {listed})")
        d.cfg = with_static(d.cfg, kept, "del")
        now = d.clock()
        outcome = d.engine.delete(ipv4, now, Origin.STATIC)
        deleted = [entry_json(e.entry, now) for e in outcome.events]
        return {"deleted": deleted, "dataplane": await d.enact(outcome, "del")}

    async def flush_dns(self) -> JSON:
        d = self.daemon
        outcome = d.engine.flush(d.clock())
        return {"flushed": len(outcome.events), "dataplane": await d.enact(outcome, "flush")}
