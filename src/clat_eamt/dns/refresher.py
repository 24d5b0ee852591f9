"""The shell of refresh ahead (``core.refresh`` decides which names): each due name is asked
again through the proxy's whole path, A and its AAAA, as a client's query would be, so its
answer gets the same decision; a name already being asked is not asked twice."""

from __future__ import annotations

import asyncio
import functools
from collections import Counter

from clat_eamt.core.model import LiveFlows
from clat_eamt.core.refresh import RefreshAhead
from clat_eamt.core.table import MappingTable
from clat_eamt.dns.proxy import Proxy


class Refresher:
    def __init__(self, proxy: Proxy, counters: Counter[str]) -> None:
        self.proxy, self.counters = proxy, counters
        self.core = RefreshAhead()
        self.asking: set[str] = set()
        self.tasks: set[asyncio.Task[bool]] = set()

    def client_answer(self, name: str, now: float) -> None:
        """An A answer for ``name`` passed the proxy; ours do not count as a client's."""
        if name not in self.asking:
            self.core.client_answer(name, now)

    def run(self, table: MappingTable, live: LiveFlows | None, now: float) -> None:
        for name in self.core.due(table, live, now):
            if name in self.asking:
                continue
            self.asking.add(name)
            self.counters[Count.REFRESH_AHEAD] += 1
            task = asyncio.create_task(self.proxy.refresh(name), name=f"refresh {name}")
            self.tasks.add(task)
            task.add_done_callback(functools.partial(self._done, name=name))

    def _done(self, task: asyncio.Task[bool], name: str) -> None:
        self.asking.discard(name)
        self.tasks.discard(task)
        if task.cancelled() or task.exception() is not None or not task.result():
            self.counters[Count.REFRESH_FAILED] += 1

    def holding(self, now: float) -> set[str]:
        """Names whose entries the clock keeps Valid past their end: being asked, or to be
        asked again at the end."""
        return self.asking | self.core.holding(now)

    def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
