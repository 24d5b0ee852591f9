"""`clat-eamt run`: the asyncio driver around the runtime.

Everything the daemon decides is the runtime's (``runtime``: events in, commands out, no I/O,
time as an argument).  This module turns the world into events - the proxy's answers, a
one-second clock tick with the live flows and the neighbour tables, the applier's batches, the
dataplane's start and death, Pref64 discovery and router adverts, SIGHUP, the operator's calls -
and the commands into I/O: dataplane batches (through ``Applier``, with a deadline), the ubus
events, the dnsmasq hook, log lines.  Status is the runtime's frozen snapshot plus what the
sockets know of themselves, served by the control socket and ubus (``control``); SIGUSR1 writes
it to the log.  What the daemon reads of the world on its own or when the runtime asks - the
clock's tick, the flow census, names asked again, the operator's table and its remembered serial,
the configuration read again on SIGHUP - lives in ``readings``.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import json
import logging
import signal
import time
from collections.abc import Callable, Sequence
from ipaddress import IPv6Network
from typing import Any

from clat_eamt import __version__
from clat_eamt.announce import Announcer
from clat_eamt.apply import Applier, Dataplane, percentiles
from clat_eamt.config import EffectiveConfig, schema
from clat_eamt.control.methods import JSON
from clat_eamt.control.server import ControlServer
from clat_eamt.control.target import SnapshotTarget, status_json
from clat_eamt.control.ubus_object import UbusObject
from clat_eamt.core.counters import ApplyResult
from clat_eamt.core.dataplane import note_of
from clat_eamt.core.ipv6only import SyntheticA
from clat_eamt.core.model import FlowCensus, Host, Observation
from clat_eamt.dataplane.build import build_dataplane
from clat_eamt.dns.identity import ClientIdentity
from clat_eamt.dns.proxy import Proxy, ProxySettings, unknown_class
from clat_eamt.dns.resolvconf import upstream_source
from clat_eamt.dns.server import DnsServer
from clat_eamt.dns.upstream import Upstreams
from clat_eamt.pref64_watch import Pref64Watch
from clat_eamt.present import entries_text, entry_json
from clat_eamt.readings import Readings
from clat_eamt.rescue import safety_net
from clat_eamt.runtime import commands as c
from clat_eamt.runtime import events as e
from clat_eamt.runtime.runtime import Runtime
from clat_eamt.runtime.settings import ShellSettings, shell_settings
from clat_eamt.runtime.snapshot import Snapshot

log = logging.getLogger(__name__)
_NOT_INSTALLED = (ApplyResult.LATE, ApplyResult.FAILED)


def proxy_settings(settings: ShellSettings) -> ProxySettings:
    return ProxySettings(
        settings.enabled, settings.hold, settings.require_dnssec, settings.ipv6_only,
        settings.placeholders,
    )  # fmt: skip


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
        *,
        wall: Callable[[], float] = time.time,
    ) -> None:
        """``load`` reads the configuration again (SIGHUP); without it a reload keeps it.
        ``bus``: the python-ubus module (imported at start when None).  ``wall``: the time of
        day the flow history is stamped with."""
        self.bus, self.clock, self.load, self.wall = bus, clock, load, wall
        self.dataplane = dataplane or build_dataplane(cfg, self._known_pref64)
        self.runtime = Runtime(cfg, clock(), self.dataplane.name)
        # what its elements record for adoption: read from the table when they are written
        self.dataplane.describe = lambda ipv4: note_of(self.runtime.engine.table, ipv4)
        self.clean_on_stop = False
        settings = shell_settings(cfg)
        self.applier = Applier(self.dataplane, settings.apply_deadline, self._batch)
        self.rescuer = safety_net(self)  # the safety net (issue 25)
        self.resolv, servers = upstream_source(settings.upstream, settings.resolv_file, clock)
        self.upstreams = Upstreams(servers, settings.upstream_timeout, clock)
        self.proxy = Proxy(self.upstreams, self.map, proxy_settings(settings), self._classify)
        self.server = DnsServer(self.proxy.handle, str(cfg[schema.LISTEN]), cfg[schema.PORT])
        self.lan: Sequence[str] | None = cfg[schema.LAN_INTERFACES] or None
        self.pref64 = Pref64Watch(self.upstreams, self._pref64_found, clock)
        self.announce = Announcer(clock)
        self.target = SnapshotTarget(self.snapshot, self._census, self.act)
        self.control = ControlServer(cfg[schema.CONTROL_SOCKET], self.target)
        self.ubus: UbusObject | None = None
        self.control_error: str | None = None
        self.readings = Readings(self, self._sync)  # the clock, names asked again, ...
        self._tasks: list[asyncio.Task[None]] = []
        # Told where DNS is served once the sockets listen (cli: the dnsmasq hook's guard).
        self.on_listening: Callable[[str, int, bool], None] | None = None

    @property
    def cfg(self) -> EffectiveConfig:
        return self.runtime.cfg

    # --- life ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen, start the dataplane, the clock and the discovery.  StartError when the DNS
        address cannot be bound or another daemon holds the control socket."""
        where = f"{self.cfg[schema.LISTEN]}#{self.cfg[schema.PORT]}"
        try:
            await self.server.start()
        except OSError as error:
            raise StartError(f"cannot listen on {where}: {error.strerror or error}") from None
        await self._start_control()
        serial = self.readings.remembered_serial()
        if serial is not None:  # the operator's table taken before this restart
            self._handle(e.ProviderRemembered(serial))
        await self.execute(self.runtime.start(self.clock()))  # DNS runs even without dataplane
        self.rescuer.start()
        self._tasks.append(asyncio.create_task(self.readings.ticker(), name="tick"))
        self.pref64.start()
        self.ubus = self.announce.bus = UbusObject(
            self.target, asyncio.get_running_loop(), self.bus
        )
        if not self.ubus.start():
            log.info("ubus: %s; `clat-eamt status` works without it", self.ubus.state)
        log.info(
            "clat-eamt %s listening on %s#%d (dataplane %s)",
            __version__,
            self.cfg[schema.LISTEN],
            self.server.port,
            self.dataplane.name,
        )
        await self.execute(self.runtime.handle(e.Listening(self.server.port), self.clock()))

    async def stop(self) -> None:
        self.rescuer.stop()
        if self.ubus is not None:
            await asyncio.to_thread(self.ubus.stop)
        await self.pref64.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.readings.cancel()
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
        loop.add_signal_handler(signal.SIGHUP, self.readings.reload_soon)
        await self.start()
        try:
            await stopping.wait()
        finally:
            log.info("stopping")
            await self.stop()

    # --- commands -> I/O -----------------------------------------------------------------------

    async def execute(
        self, commands: Sequence[c.Command]
    ) -> tuple[float | SyntheticA | None, tuple[JSON, str | None]]:
        """Carry out the runtime's commands in order; the answer's life (``Release``) and the
        operator's reply (``Reply``, with how the dataplane took its operations)."""
        result = ApplyResult.NONE
        life: float | SyntheticA | None = None
        reply: tuple[JSON, str | None] = ({}, None)
        queue = collections.deque(commands)  # ProviderMore adds the next slice's commands
        while queue:
            command = queue.popleft()
            match command:  # an A answer's commands first: they come once per answer
                case c.Publish(outcome, action, observation):
                    self.announce.publish(outcome, action, observation)
                case c.ApplyOps(ops):
                    result = await self.applier.apply(ops)
                case c.Release(name, released, waited):
                    life = released
                    if isinstance(life, SyntheticA) and result in _NOT_INSTALLED:
                        life = None  # no leg behind P: the upstream answer, as without it
                    if waited:  # counted by how the wait ended
                        said = self._handle(e.AnswerReleased(name, result))
                        if said:
                            await self.execute(said)
                case c.Reply(answer, error):
                    reply = ({**answer, "dataplane": str(result)} if error is None else {}, error)
                case c.RestartDataplane():
                    await self._restart()
                case c.Redo(event):
                    await self.execute(self._handle(event))
                case c.SetHosts(dual_stack, ipv4_only):
                    try:
                        await self.dataplane.set_hosts(set(dual_stack), set(ipv4_only))
                    except Exception as error:  # stale host sets are safe; the clock goes on
                        self.announce.say(
                            c.Say(logging.WARNING, f"host classification: {error}", "hosts")
                        )
                case c.AskAgain(name):
                    self.readings.ask(name)
                case c.ProviderMore():
                    await asyncio.sleep(0)  # DNS answers waiting go first
                    queue.extend(self._handle(e.ProviderContinue()))
                case c.FetchProvider():
                    self.readings.fetch_provider(command)
                case c.CountFlows():
                    await self.readings.count_flows()
                case _:
                    self._sync(command)
        return life, reply

    def _sync(self, command: c.Command) -> None:
        """The commands that need no waiting."""
        match command:
            case c.Publish(outcome, action, observation):
                self.announce.publish(outcome, action, observation)
            case c.FollowPref64(discover):
                self.pref64.follow(discover)
            case c.Configure(settings, changed):
                self.proxy.settings = proxy_settings(settings)
                self.applier.deadline = settings.apply_deadline
                self.upstreams.timeout = settings.upstream_timeout
                self.rescuer.configure(settings.safety)
                if schema.UPSTREAM.name in changed or schema.RESOLV_FILE.name in changed:
                    self.resolv, self.upstreams.servers = upstream_source(
                        settings.upstream, settings.resolv_file, self.clock
                    )
            case c.RememberProvider(serial):
                self.readings.remember_serial(serial)
            case c.RehookDns(listen, port, identity):
                if self.on_listening is not None:
                    self.on_listening(listen, port, identity)
            case c.Say():
                self.announce.say(command)
            case _:  # pragma: no cover - StartDataplane, Reconcile: only inside _restart
                raise TypeError(f"{command!r} outside the dataplane's start")

    # --- events from the proxy, the applier, the operator ---------------------------------------

    async def map(self, obs: Observation) -> float | SyntheticA | None:
        """The proxy's mapper: decide on one A answer and install what it needs, within the
        apply deadline.  The seconds the answer's addresses stay mapped (the proxy lowers the A
        TTLs to it), None when they map to nothing; the A record to answer with for an
        IPv6-only name (``core.ipv6only``)."""
        life, _ = await self.execute(self.runtime.handle(e.AnswerObserved(obs), self.clock()))
        return life

    def _classify(self, identity: ClientIdentity) -> Host | None:
        """The client as the neighbour tables know it (SPEC 3); unknown when they do not."""
        if identity.mac is None and identity.address is None:
            return None  # no client identity (dnsmasq's default): nobody to look up
        address = str(identity.address) if identity.address else None
        return self.runtime.classify(identity.mac, address) or unknown_class(identity)

    def _batch(self, error: str | None) -> None:
        event = e.BatchDone() if error is None else e.BatchFailed(error)
        for command in self.runtime.handle(event, self.clock()):
            self._sync(command)

    async def act(self, event: e.OperatorEvent) -> tuple[JSON, str | None]:
        """The operator's add, del or flush: its result, or why it was refused."""
        _, reply = await self.execute(self.runtime.handle(event, self.clock()))
        return reply

    # --- the dataplane's start -----------------------------------------------------------------

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

    async def _restart(self) -> None:
        await self.applier.restart(self.lan, self._handle, self._sync)

    def _handle(self, event: e.Event) -> list[c.Command]:
        return self.runtime.handle(event, self.clock())

    # --- the clock (``readings``: the tick, names asked again, the operator's table) ------------

    async def tick(self) -> None:
        """One tick of the clock: what it reads, told to the runtime (``Readings.tick``)."""
        await self.readings.tick()

    # --- Pref64 --------------------------------------------------------------------------------

    def _known_pref64(self) -> IPv6Network | None:
        return self.runtime.known_pref64()

    def _pref64_found(self, prefixes: tuple[IPv6Network, ...], source: str) -> None:
        for command in self._handle(e.Pref64Found(source, prefixes)):
            self._sync(command)

    # --- status --------------------------------------------------------------------------------

    def snapshot(self, entries: bool = False) -> Snapshot:
        """The runtime's snapshot with what the sockets and processes know of themselves."""
        cfg = self.cfg
        shells = {
            "listen": f"{cfg[schema.LISTEN]}#{self.server.port}",
            "upstreams": {
                "source": "config" if self.resolv is None else self.resolv.path,
                "problem": None if self.resolv is None else self.resolv.problem,
                "servers": self.upstreams.status(),
            },
            **self.pref64.status(),
            "dataplane": {
                "install": percentiles(self.applier.install_times),
                **self.dataplane.facts(),
            },
            "control": {"socket": str(self.control.path), "error": self.control_error},
            "ubus": self.ubus.status() if self.ubus else {"state": "not started"},
            "memory": self._memory(),
            "provider": self.runtime.provider.status(self.runtime.engine, self.clock()),
            "safety": self.rescuer.status(),
        }
        counters = self.proxy.counters + self.applier.counters + self.rescuer.safety.counters
        return self.runtime.snapshot(self.clock(), entries=entries, shells=shells,
                                     counters=counters)  # fmt: skip

    def _memory(self) -> dict[str, Any]:
        """How full the bounded memories are (issue 26; README, Security): the memory of
        answers seen in full, the others' names against their capacity."""
        proxy, engine = self.proxy, self.runtime.engine
        return {
            "answers_seen": engine.seen.status(self.clock()),
            "aaaa_kept": [len(proxy.remembered), proxy.remembered.capacity],
            "answers_read": [len(proxy.repeated), proxy.repeated.capacity],
            "decisions": [len(engine.repeats), engine.repeats.capacity],
        }

    async def _census(self) -> FlowCensus | None:
        return await self.dataplane.flow_census()

    def status(self) -> dict[str, Any]:
        return status_json(self.snapshot())

    def dump(self) -> None:
        snap = self.snapshot(entries=True)
        entries = snap.entries or ()
        log.info("status %s", json.dumps(status_json(snap), sort_keys=True))
        log.info("mappings:\n%s", entries_text(entries, snap.taken))
        log.debug("mappings-json %s", json.dumps([entry_json(x, snap.taken) for x in entries]))

    # --- reload (SIGHUP: procd's reload on a config commit or a WAN event) ----------------------

    async def reload(self) -> bool:
        """Read the configuration again (``readings``): True when it was taken."""
        return await self.readings.reload()
