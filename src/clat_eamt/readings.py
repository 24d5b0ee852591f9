"""What the daemon reads of the world on its own or when the runtime asks, each reading told to
the runtime as one event (``daemon`` carries out what it answers):

- the clock: one tick a second reads the neighbour tables and the live flows and notices a dead
  translator (``Tick``, ``DataplaneDied``); the flows counted for the history (``CountFlows``);
- names asked again through the proxy ahead of their end (``AskAgain`` -> ``RefreshDone``);
- the operator's table fetched (``FetchProvider`` -> ``ProviderOffered``), its serial remembered
  on flash across restarts (``RememberProvider``, ``ProviderRemembered``);
- the configuration read again on SIGHUP (``Reconfigured`` or ``ReloadRefused``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from clat_eamt.config import ConfigError, EffectiveConfig, schema
from clat_eamt.core.hosts import Neighbour
from clat_eamt.core.model import LiveFlows
from clat_eamt.dataplane.neighbours import dump_neighbours
from clat_eamt.logs import RateLimitedLog
from clat_eamt.runtime import commands as c
from clat_eamt.runtime import events as e

if TYPE_CHECKING:
    from clat_eamt.announce import Announcer
    from clat_eamt.apply import Applier, Dataplane
    from clat_eamt.dns.proxy import Proxy
    from clat_eamt.runtime.runtime import Runtime

log = logging.getLogger("clat_eamt.daemon")  # the daemon's lines, as before the split
TICK = 1.0


class DaemonParts(Protocol):
    """What the readings use of ``daemon.Daemon`` (a protocol: this module does not import it,
    the daemon imports this one)."""

    @property
    def runtime(self) -> Runtime: ...
    @property
    def applier(self) -> Applier: ...
    @property
    def dataplane(self) -> Dataplane: ...
    @property
    def lan(self) -> Sequence[str] | None: ...
    @property
    def announce(self) -> Announcer: ...
    @property
    def proxy(self) -> Proxy: ...
    @property
    def clock(self) -> Callable[[], float]: ...
    @property
    def wall(self) -> Callable[[], float]: ...
    @property
    def load(self) -> Callable[[], EffectiveConfig] | None: ...
    @property
    def cfg(self) -> EffectiveConfig: ...

    async def execute(self, commands: Sequence[c.Command]) -> object: ...


class Readings:
    """The daemon's readings and the tasks they run in (cancelled when it stops)."""

    def __init__(self, daemon: DaemonParts, sync: Callable[[c.Command], None]) -> None:
        """``daemon``: what is read, and who carries out the runtime's commands; ``sync``: the
        daemon's way with the commands that need no waiting."""
        self.daemon, self._sync = daemon, sync
        self._tick_log = RateLimitedLog(log, logging.WARNING)  # a failure repeats every second
        self._reloads: set[asyncio.Task[bool]] = set()
        self._asking: set[asyncio.Task[bool]] = set()  # names asked again ahead of their end
        self._fetching: set[asyncio.Task[None]] = set()  # the operator's table being fetched

    def _handle(self, event: e.Event) -> list[c.Command]:
        return self.daemon.runtime.handle(event, self.daemon.clock())

    async def _report(self, event: e.Event) -> None:
        """Tell the runtime what was read and carry out what it answers."""
        await self.daemon.execute(self._handle(event))

    def cancel(self) -> None:
        """At stop: the names asked again and the fetches are not waited for."""
        for asking in (*self._asking, *self._fetching):
            asking.cancel()

    # --- the clock -----------------------------------------------------------------------------

    async def ticker(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            try:
                await self.tick()
            except Exception:  # the clock must keep running whatever one tick hit
                self._tick_log.note("tick", "tick failed", exc_info=True)

    async def tick(self) -> None:
        """One tick: a dead translator noticed (not while a batch runs, since restarting tayga
        to change its maps looks the same), the neighbour tables and the live flows read, and
        what the runtime makes of them carried out."""
        d = self.daemon
        if not d.runtime.dataplane_error and not d.applier.lock.locked():
            problem = d.dataplane.problem()
            if problem:
                await self._report(e.DataplaneDied(problem))
        neighbours: tuple[Neighbour, ...] | None = None
        error: str | None = None
        try:
            neighbours = tuple(await asyncio.to_thread(dump_neighbours, d.lan, None))
        except Exception as failure:  # any failure: unsure, never raise into the tick
            error = f"{type(failure).__name__}: {failure}"
        flows: LiveFlows | None = None
        try:
            if d.runtime.wants_flows(d.clock()):  # else unread: a dump walks all conntrack
                flows = await d.dataplane.live_flows()
        except Exception as failure:  # unknown flows: nothing is deleted this tick
            d.announce.say(c.Say(logging.WARNING, f"live flows: {failure}", "flows"))
        await self._report(e.Tick(flows, neighbours, error))

    async def count_flows(self) -> None:
        d = self.daemon
        census = await d.dataplane.flow_census()
        totals = None if census is None else census.totals(d.runtime.local_prefixes)
        native, nat64 = (totals["native"], totals["nat64"]) if totals else (None, None)
        await self._report(e.FlowsCounted(native, nat64, int(d.wall())))

    def ask(self, name: str) -> None:
        """Ask a name again through the proxy's whole path, as a client's query would be."""
        task = asyncio.create_task(self.daemon.proxy.refresh(name), name=f"refresh {name}")
        self._asking.add(task)
        task.add_done_callback(functools.partial(self._asked, name=name))

    def _asked(self, task: asyncio.Task[bool], name: str) -> None:
        self._asking.discard(task)
        ok = not task.cancelled() and task.exception() is None and task.result()
        for command in self._handle(e.RefreshDone(name, bool(ok))):
            self._sync(command)

    # --- the operator's table ------------------------------------------------------------------

    def fetch_provider(self, command: c.FetchProvider) -> None:
        task = asyncio.create_task(self._fetch_provider(command), name="provider")
        self._fetching.add(task)
        task.add_done_callback(self._fetching.discard)

    async def _fetch_provider(self, command: c.FetchProvider) -> None:
        """Fetch and read the operator's table (``clat_eamt.provider``: uclient-fetch, usign,
        child processes); the runtime takes it or refuses it."""
        # Loaded by the first fetch: a router without an operator's table never pays for it.
        from clat_eamt.provider import ProviderError, fetch_table  # noqa: PLC0415

        table, problem = None, None
        try:
            table = await fetch_table(command.url, command.key, command.ca, command.max_entries)
        except ProviderError as error:
            problem = str(error)
        except Exception as error:  # the next fetch is due all the same (back-off)
            problem = f"{type(error).__name__}: {error}"
        offered = e.ProviderOffered(table, "fetch", problem, self.daemon.wall())
        await self._report(offered)

    def _serial_file(self) -> str:
        return str(self.daemon.cfg[schema.PROVIDER_SERIAL_FILE])

    def remembered_serial(self) -> int | None:
        """The serial written by ``remember_serial`` before a restart or a reboot
        (provider_serial_file, on flash), or None."""
        try:
            with open(self._serial_file(), encoding="ascii") as file:
                return int(file.read().strip())
        except (OSError, ValueError):
            return None

    def remember_serial(self, serial: int) -> None:
        """On flash: written only when the serial changes (a table's refresh takes the same
        serial again every few hours)."""
        path = self._serial_file()
        if self.remembered_serial() == serial:
            return
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            with open(path + ".new", "w", encoding="ascii") as file:
                file.write(f"{serial}\n")
            os.replace(path + ".new", path)  # whole or not at all
        except OSError as error:  # the next restart takes any serial: said, not fatal
            log.warning("provider: cannot remember serial %d in %s: %s", serial, path, error)

    # --- reload (SIGHUP: procd's reload on a config commit or a WAN event) ----------------------

    def reload_soon(self) -> None:
        task = asyncio.create_task(self.reload(), name="reload")
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def reload(self) -> bool:
        """Read the configuration again and apply what can change in place, without dropping a
        mapping (``runtime.settings``); a configuration with problems is refused and the
        running one kept."""
        d = self.daemon
        if d.load is None:
            log.warning("reload: no configuration file to read again")
            return False
        try:
            new = d.load()
        except ConfigError as error:
            await self._report(e.ReloadRefused(str(error)))
            return False
        await self._report(e.Reconfigured(new))
        return True
