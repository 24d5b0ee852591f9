"""Installing what the engine decided, with a deadline, behind one small dataplane interface.

``Dataplane`` is what the nftables + translator backends implement (``dataplane.kernel``);
``DisabledDataplane`` stands in while there is none: it installs nothing, so it holds nothing
(an empty state at every start: reconciliation then lists what would be installed) and it
reports no live flows (nothing can flow through a dataplane that is not there).  It keeps no
record of the operations: that was a second copy of the table, about 160 bytes per mapping
(issue 15); the table itself is what status shows.

``Applier`` serialises the batches (the engine's diff is ordered, so batches must land in the
order they were made) and gives every A answer a deadline: an answer waits for its own batch
and for those queued before it (so a second answer for a name whose mapping is still being
installed waits too), but never longer than ``deadline``; a late or failed batch means the
answer goes out unmapped and the connection uses the NAT64 path, which always works.
``Applier.restart`` runs the dataplane's start (or adoption after a crash) and its
reconciliation step by step with the runtime, under the same lock as the batches.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Callable, Sequence
from ipaddress import IPv4Address, IPv4Network
from typing import Any, Protocol

from clat_eamt.core.counters import ApplyResult, Count
from clat_eamt.core.dataplane import DataplaneState, Note
from clat_eamt.core.model import DataplaneOp, FlowCensus, LiveFlows
from clat_eamt.dataplane.interfaces import local_networks
from clat_eamt.logs import RateLimitedLog
from clat_eamt.present import op_text
from clat_eamt.runtime import commands as c
from clat_eamt.runtime import events as e

log = logging.getLogger(__name__)


class DataplaneError(Exception):
    """A batch could not be installed (the backend says why)."""


class Dataplane(Protocol):
    name: str
    # What an IPv4 leg's element records for adoption after a crash (the daemon sets it to read
    # the table; ``core.dataplane.Note``); a backend that records nothing never calls it.
    describe: Callable[[IPv4Network], Note | None]

    async def start(self) -> DataplaneState:
        """Start or adopt what it drives; the state it holds now (for reconciliation)."""

    async def apply(self, ops: Sequence[DataplaneOp]) -> None:
        """Install ``ops`` in order; DataplaneError if that failed."""

    async def live_flows(self) -> LiveFlows | None:
        """Which (destination, pool) pairs have connections now; None if unknown."""

    async def flow_census(self) -> FlowCensus | None:
        """Every live IPv4 flow counted, native or not (status; costlier, on demand only)."""

    def problem(self) -> str | None:
        """Why it stopped working since it started (a translator process died); None if fine."""

    def facts(self) -> dict[str, Any]:
        """What status shows of it beside the install times (how nft is driven, the CLAT)."""

    async def stop(self, clean: bool) -> None:
        """Stop steering new flows; with ``clean`` also remove what running flows still use."""

    async def set_hosts(self, dual_stack: set[IPv4Address], ipv4_only: set[IPv4Address]) -> None:
        """Which LAN hosts are never steered, and which may be (host_mode ipv4-only)."""


class DisabledDataplane:
    name = "disabled"

    def __init__(self) -> None:
        self.describe: Callable[[IPv4Network], Note | None] = lambda ipv4: None  # records none

    async def start(self) -> DataplaneState:
        return DataplaneState()  # nothing installed, nothing left behind by an earlier run

    async def stop(self, clean: bool) -> None:
        return None

    async def set_hosts(self, dual_stack: set[IPv4Address], ipv4_only: set[IPv4Address]) -> None:
        return None

    async def apply(self, ops: Sequence[DataplaneOp]) -> None:
        if log.isEnabledFor(logging.DEBUG):
            for op in ops:
                log.debug("dataplane disabled, not installed: %s", op_text(op))

    async def live_flows(self) -> LiveFlows | None:
        return LiveFlows()

    async def flow_census(self) -> FlowCensus | None:
        return None  # nothing steered, nothing to count

    def problem(self) -> str | None:
        return None

    def facts(self) -> dict[str, Any]:
        return {}


class Applier:
    def __init__(
        self,
        dataplane: Dataplane,
        deadline: float,
        report: Callable[[str | None], None] | None = None,
    ) -> None:
        """``report``: told of every batch, None when it landed, else its error."""
        self.dataplane, self.deadline, self.report = dataplane, deadline, report
        self.counters: Counter[str] = Counter()
        self.last_error: str | None = None
        self._queue: list[tuple[tuple[DataplaneOp, ...], asyncio.Future[bool], float]] = []
        # seconds from an answer's batch being queued to it being installed (for status, bench)
        self.install_times: deque[float] = deque(maxlen=1000)
        self._last: asyncio.Future[bool] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._errors = RateLimitedLog(log, logging.ERROR)
        # Held by every batch and by the daemon's (re)start of the dataplane: a batch decided
        # while the dataplane starts waits for it instead of failing as "not running".
        self.lock = asyncio.Lock()
        # Told of every batch that landed (the safety net suspends a new leg to a broken target)
        self.landed: Callable[[tuple[DataplaneOp, ...]], None] | None = None

    async def apply(self, ops: Sequence[DataplaneOp]) -> ApplyResult:
        """Queue ``ops`` and wait at most the deadline: DONE, LATE, FAILED or NONE (nothing to
        install and nothing pending)."""
        if ops:
            loop = asyncio.get_running_loop()
            self._last = loop.create_future()
            self._queue.append((tuple(ops), self._last, loop.time()))
            if self._worker is None or self._worker.done():
                self._worker = asyncio.create_task(self._work())
        elif self._last is None or self._last.done():
            return ApplyResult.NONE
        try:
            ok = await asyncio.wait_for(asyncio.shield(self._last), self.deadline)
        except TimeoutError:
            return ApplyResult.LATE
        return ApplyResult.DONE if ok else ApplyResult.FAILED

    async def drain(self) -> None:
        if self._worker is not None:
            await asyncio.shield(self._worker)

    async def _work(self) -> None:
        """Everything queued while a batch was being applied goes as the next single batch:
        a burst of answers costs one translator change (one tayga restart)."""
        loop = asyncio.get_running_loop()
        while self._queue:
            batch, self._queue = self._queue, []
            ok = await self._run(tuple(op for ops, _, _ in batch for op in ops))
            done = loop.time()
            for _, future, queued in batch:
                future.set_result(ok)
                if ok:
                    self.install_times.append(done - queued)

    async def _run(self, ops: tuple[DataplaneOp, ...]) -> bool:
        try:
            async with self.lock:
                await self.dataplane.apply(ops)
        except Exception as error:  # any backend failure: count, say, keep serving DNS
            self.counters[Count.BATCHES_FAILED] += 1
            self.last_error = f"{type(error).__name__}: {error}"
            self._errors.note("apply", "dataplane %s failed: %s", self.dataplane.name, error)
            if self.report is not None:
                self.report(self.last_error)
            return False
        self.counters[Count.BATCHES_DONE] += 1
        self.last_error = None
        if self.landed is not None:
            self.landed(ops)
        if self.report is not None:
            self.report(None)
        return True

    async def restart(
        self,
        lan: Sequence[str] | None,
        handle: Callable[[e.Event], list[c.Command]],
        other: Callable[[c.Command], None],
    ) -> None:
        """Start or adopt the dataplane and make it hold exactly what the table wants: each step
        is an event for the runtime (``handle``), which adopts what a crashed run left and says
        what to reconcile; ``other`` carries out its other commands.  Answers decided meanwhile
        wait for it: their batches take the lock after it."""

        def failed(error: Exception) -> list[c.Command]:
            return handle(e.DataplaneStartFailed(type(error).__name__, str(error)))

        async with self.lock:
            try:
                local = await local_networks(lan)
            except Exception as error:  # any failure: DNS goes on, flows take the NAT64 path
                pending = failed(error)
            else:
                pending = handle(e.ProbeResult(local.never_mapped, local.prefixes))
            while pending:
                command, *pending = pending
                match command:
                    case c.StartDataplane():
                        try:
                            actual = await self.dataplane.start()
                            live = await self.dataplane.live_flows()
                        except Exception as error:
                            pending += failed(error)
                        else:
                            pending += handle(e.DataplaneStarted(actual, live))
                    case c.Reconcile(ops):
                        try:
                            if ops:
                                await self.dataplane.apply(ops)
                        except Exception as error:
                            pending += failed(error)
                        else:
                            pending += handle(e.DataplaneReady())
                    case _:
                        other(command)


def percentiles(values: Sequence[float]) -> dict[str, float] | None:
    """p50 and p99 in milliseconds (None without values)."""
    if not values:
        return None
    ordered = sorted(values)

    def at(fraction: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000, 2)

    return {"p50_ms": at(0.5), "p99_ms": at(0.99), "count": len(ordered)}
