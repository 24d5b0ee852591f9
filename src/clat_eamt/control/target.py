"""The running daemon as the control API sees it (``methods.ControlTarget``): everything it
shows comes from the runtime's frozen snapshot (``runtime.snapshot``); the live flows come from
the flow oracle; the operator's actions go to the runtime as events, through the same engine
and applier as DNS answers.  It knows nothing of the daemon: the driver hands it three callables.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from clat_eamt import __version__
from clat_eamt.config import StaticEntry, schema
from clat_eamt.control.methods import JSON, MethodError
from clat_eamt.core.counters import Count
from clat_eamt.core.model import FlowCensus
from clat_eamt.present import entry_json, suspended_in
from clat_eamt.runtime.events import (
    OperatorAdd,
    OperatorDelete,
    OperatorEvent,
    OperatorFlush,
    ProviderOffered,
)
from clat_eamt.runtime.snapshot import Snapshot

ROWS_PER_TURN = 256
# The snapshot, with the whole table when asked (the mappings call).
Snapshotter = Callable[[bool], Snapshot]
# The operator's action: its result, or the refusal's words (nothing changed then).
Actor = Callable[[OperatorEvent], Awaitable[tuple[JSON, str | None]]]
Census = Callable[[], Awaitable[FlowCensus | None]]


def status_json(s: Snapshot) -> JSON:
    """Health, configuration facts and raw counters (no I/O: SIGUSR1 logs it too)."""
    shells: dict[str, Any] = dict(s.shells)
    pref64 = s.pref64
    return {
        "version": __version__,
        "uptime": round(s.uptime, 1),
        "enabled": s.config[schema.ENABLED],
        "listen": shells.get("listen"),
        "upstreams": shells.get("upstreams"),
        "pref64": {
            "prefixes": [str(p) for p in pref64.extra],
            "source": pref64.source,
            "discovery": shells.get("discovery"),
            "router_adverts": shells.get("router_adverts"),
        },
        "dataplane": {
            "name": s.dataplane,
            "error": s.dataplane_error,
            "last_error": s.last_error,
            **shells.get("dataplane", {}),
        },
        "mappings": s.table_size,
        "hosts": {
            "ipv4_only": s.ipv4_only_hosts,
            "dual_stack": s.dual_stack_hosts,
            "unsure": s.hosts_unsure,
            "error": s.hosts_error,
        },
        "control": shells.get("control"),
        "ubus": shells.get("ubus", {"state": "not started"}),
        "memory": shells.get("memory"),
        "provider": shells.get("provider"),
        "safety": shells.get("safety"),
        "restart_needed": list(s.restart_needed),
        "ipv6_only": {**s.ipv6_only, "answers": s.counters.get(Count.IPV6_ONLY_ANSWERS, 0)},
        "counters": dict(s.counters),
    }


def _report(snap: Snapshot, census: FlowCensus | None) -> JSON:
    report = status_json(snap)
    report["summary"] = snap.summary
    report["flows"] = None if census is None else census.totals(snap.local_prefixes)
    return report


class SnapshotTarget:
    def __init__(self, snapshot: Snapshotter, census: Census, act: Actor) -> None:
        self.snapshot, self.census, self.act = snapshot, census, act

    def status(self) -> JSON:
        return status_json(self.snapshot(False))

    async def status_report(self) -> JSON:
        """``status`` plus the summary counters and the live flows, native vs NAT64."""
        return _report(self.snapshot(False), await self.census())

    async def overview_report(self, offset: int, limit: int) -> JSON:
        """What the LuCI status page shows, from one snapshot and one flow census: the status
        report, ``limit`` mapping rows from ``offset`` (in the table's order) and how many
        there are, at most ``limit`` hosts, the flow history."""
        census = await self.census()
        snap = self.snapshot(True)
        entries = snap.entries or ()
        flows = census or FlowCensus()
        held = suspended_in(dict(snap.shells))
        rows = [
            entry_json(e, snap.taken, held) | {"flows": flows.flows_of(e)}
            for e in entries[offset : offset + limit]
        ]
        return {
            "status": _report(snap, census),
            "mappings": {"total": len(entries), "offset": offset, "rows": rows},
            "hosts": {"total": len(snap.hosts), "rows": list(snap.hosts[:limit])},
            "history": dict(snap.history),
        }

    async def mapping_rows(self) -> list[JSON]:
        """Every entry (the CLI and LuCI show the whole table), from one snapshot of the table,
        built ``ROWS_PER_TURN`` rows at a time with a turn of the event loop between them: 10,000
        entries take a good fraction of a second on a router, DNS must not wait for that."""
        census = await self.census() or FlowCensus()
        snap = self.snapshot(True)
        entries, now = snap.entries or (), snap.taken
        held = suspended_in(dict(snap.shells))
        rows: list[JSON] = []
        for first in range(0, len(entries), ROWS_PER_TURN):
            rows += [
                entry_json(e, now, held) | {"flows": census.flows_of(e)}
                for e in entries[first : first + ROWS_PER_TURN]
            ]
            await asyncio.sleep(0)
        return rows

    def host_rows(self) -> list[JSON]:
        return list(self.snapshot(False).hosts)

    def effective_config(self) -> JSON:
        return self.snapshot(False).config.to_json()

    def flow_history(self) -> JSON:
        return dict(self.snapshot(False).history)

    async def _do(self, event: OperatorEvent) -> JSON:
        result, error = await self.act(event)
        if error is not None:
            raise MethodError(error)
        return result

    async def add_static(self, entry: StaticEntry) -> JSON:
        """Validated like a static section (pool, Pref64, overlaps); MethodError otherwise, and
        then nothing changed.  Lasts until a restart or reload (the UCI file is not written)."""
        return await self._do(OperatorAdd(entry))

    async def delete_static(self, ipv4: Any) -> JSON:
        return await self._do(OperatorDelete(ipv4))

    async def flush_dns(self) -> JSON:
        return await self._do(OperatorFlush())

    async def push_provider(self, table: str, signature: str | None) -> JSON:
        """The operator's table pushed by its agent: the same checks as a fetched one (the
        signature when provider_key is set, the format, the serial); MethodError naming why it
        was refused, and then nothing changed."""
        from clat_eamt.provider import ProviderError, read_table  # noqa: PLC0415 - first push

        cfg = self.snapshot(False).config
        key, most = str(cfg[schema.PROVIDER_KEY]), cfg[schema.PROVIDER_MAX_ENTRIES]
        read, problem = None, None
        try:
            read = await read_table(table.encode(), signature, key, most)
        except ProviderError as error:
            problem = str(error)
        return await self._do(ProviderOffered(read, "push", problem, time.time()))
