"""A synchronous driver for the runtime and a model of the kernel it drives, for tests that
need no sockets and no clock: the time is whatever the test says.

``ModelKernel`` holds what the nftables table and the translator would hold: the IPv4 legs
D -> P and the IPv6 legs P -> X, and the live flows (D, P).  Operations are replayed one by one
with the ordering rules the engine promises (SPEC 5, ``core.dataplane.diff``): an IPv4 leg only
toward a pool address whose IPv6 leg is there, an IPv6 leg removed only once no IPv4 leg uses
it.  It can refuse batches and starts, and die, as tayga does.

``ModelDriver`` does what ``daemon.Daemon`` does with each command, without waiting: a batch
lands (or fails) at once, so an answer's wait ends "done" or "failed", never "late".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Network
from typing import Any

from clat_eamt.core.counters import ApplyResult
from clat_eamt.core.dataplane import DataplaneState
from clat_eamt.core.model import (
    DataplaneOp,
    EnsureDnat,
    EnsureTranslator,
    EntryEvent,
    LiveFlows,
    RemoveDnat,
    RemoveTranslator,
)
from clat_eamt.runtime import commands as c
from clat_eamt.runtime import events as e
from clat_eamt.runtime.runtime import Runtime


class KernelRefusedError(Exception):
    pass


@dataclass
class ModelKernel:
    dnat: dict[IPv4Network, IPv4Network] = field(default_factory=dict)  # D -> P
    translator: dict[IPv4Network, IPv6Network] = field(default_factory=dict)  # P -> X
    flows: set[tuple[IPv4Address, IPv4Address]] = field(default_factory=set)
    refuse_batches: int = 0  # the next n batches fail
    refuse_starts: int = 0  # the next n starts fail
    dead: str | None = None  # what problem() says
    batches: int = 0
    dumps: int = 0  # live flows read

    def state(self) -> DataplaneState:
        return DataplaneState(dict(self.dnat), dict(self.translator))

    def apply(self, ops: tuple[DataplaneOp, ...], strict: bool = True) -> None:
        """One atomic batch (an nft transaction): all of it or, refused, nothing.  ``strict``:
        the kernel holds what the runtime believes, so the engine's ordering must hold; else
        (a batch failed since the last start) an operation that does not fit what the kernel
        holds refuses the batch, as nft refuses a transaction that deletes a missing element."""
        if self.refuse_batches or self.dead:
            self.refuse_batches = max(0, self.refuse_batches - 1)
            raise KernelRefusedError(self.dead or "model: batch refused")
        dnat, translator = dict(self.dnat), dict(self.translator)
        for op in ops:
            match op:
                case EnsureTranslator(pool, ipv6):
                    translator[pool] = ipv6
                case EnsureDnat(ipv4, pool):
                    fits = pool in translator
                    self._check(fits, strict, f"IPv4 leg {ipv4} -> {pool} before its IPv6 leg")
                    dnat[ipv4] = pool
                case RemoveDnat(ipv4):
                    dnat.pop(ipv4, None)
                case RemoveTranslator(pool, _):
                    fits = pool not in dnat.values()
                    self._check(fits, strict, f"IPv6 leg of {pool} removed while used")
                    translator.pop(pool, None)
        self.dnat, self.translator = dnat, translator
        self.batches += 1

    @staticmethod
    def _check(fits: bool, strict: bool, what: str) -> None:
        assert fits or not strict, what
        if not fits:
            raise KernelRefusedError(what)

    def start(self) -> DataplaneState:
        if self.refuse_starts:
            self.refuse_starts -= 1
            raise KernelRefusedError("model: cannot start")
        self.dead = None
        return self.state()

    def live(self) -> LiveFlows:
        self.dumps += 1
        return LiveFlows(frozenset(self.flows))


@dataclass
class ModelDriver:
    runtime: Runtime
    kernel: ModelKernel
    now: float = 0.0
    published: list[EntryEvent] = field(default_factory=list)
    asks: set[str] = field(default_factory=set)
    said: list[c.Say] = field(default_factory=list)
    hosts: c.SetHosts | None = None
    settings: list[c.Configure] = field(default_factory=list)
    discovering: bool | None = None
    restarts: int = 0
    hooked: list[c.RehookDns] = field(default_factory=list)
    fetches: list[c.FetchProvider] = field(default_factory=list)  # the operator's table
    remembered: list[int] = field(default_factory=list)  # its serials kept for a restart

    def handle(self, event: e.Event) -> tuple[float | None, tuple[dict[str, Any], str | None]]:
        return self.run(self.runtime.handle(event, self.now))

    def start(self) -> None:
        self.run(self.runtime.start(self.now))

    def tick(self, flows: LiveFlows | None = None, neighbours: tuple = ()) -> None:
        """What ``Daemon.tick`` does: a dead translator first, then the tick itself."""
        if not self.runtime.dataplane_error and self.kernel.dead:
            self.handle(e.DataplaneDied(self.kernel.dead))
        if flows is None and self.runtime.wants_flows(self.now):
            flows = self.kernel.live()
        self.handle(e.Tick(flows, neighbours))

    def run(
        self, commands: list[c.Command]
    ) -> tuple[float | None, tuple[dict[str, Any], str | None]]:
        result, life = ApplyResult.NONE, None
        reply: tuple[dict[str, Any], str | None] = ({}, None)
        for command in commands:
            match command:
                case c.ApplyOps(ops):
                    result = self._batch(ops)
                case c.Release(name, released, waited):
                    life = released
                    if waited:
                        self.handle(e.AnswerReleased(name, result))
                case c.Reply(answer, error):
                    reply = ({**answer, "dataplane": str(result)} if error is None else {}, error)
                case c.Publish(outcome):
                    self.published += outcome.events
                case c.RestartDataplane():
                    self.restarts += 1
                    self.handle(e.ProbeResult((), ()))
                case c.Redo(event):
                    self.handle(event)
                case c.StartDataplane():
                    try:
                        actual = self.kernel.start()
                    except KernelRefusedError as error:
                        self.handle(e.DataplaneStartFailed("KernelRefusedError", str(error)))
                    else:
                        self.handle(e.DataplaneStarted(actual, self.kernel.live()))
                case c.Reconcile(ops):
                    try:
                        if ops:
                            self.kernel.apply(ops)
                    except KernelRefusedError as error:
                        self.handle(e.DataplaneStartFailed("KernelRefusedError", str(error)))
                    else:
                        self.handle(e.DataplaneReady())
                case c.SetHosts():
                    self.hosts = command
                case c.AskAgain(name):
                    self.asks.add(name)
                case c.CountFlows():
                    self.handle(e.FlowsCounted(len(self.kernel.flows), 0, int(self.now)))
                case c.FollowPref64(discover):
                    self.discovering = discover
                case c.Configure():
                    self.settings.append(command)
                case c.RehookDns():
                    self.hooked.append(command)
                case c.FetchProvider():
                    self.fetches.append(command)
                case c.RememberProvider(serial):
                    self.remembered.append(serial)
                case c.ProviderMore():
                    _, more = self.handle(e.ProviderContinue())
                    reply = more if more != ({}, None) else reply
                case c.Say():
                    self.said.append(command)
        return life, reply

    def _batch(self, ops: tuple[DataplaneOp, ...]) -> ApplyResult:
        if not ops:
            return ApplyResult.NONE  # nothing is ever pending: batches land at once here
        healthy = not (self.runtime.dataplane_error or self.runtime.unreconciled)
        try:
            self.kernel.apply(ops, strict=healthy)
        except KernelRefusedError as error:
            self.run(self.runtime.handle(e.BatchFailed(f"KernelRefusedError: {error}"), self.now))
            return ApplyResult.FAILED
        self.run(self.runtime.handle(e.BatchDone(), self.now))
        return ApplyResult.DONE

    def text(self) -> str:
        return "\n".join(say.text for say in self.said)
