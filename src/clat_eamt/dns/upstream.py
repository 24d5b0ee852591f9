"""Talking to the upstream resolvers: failover between them, and one upstream exchange for
identical questions in flight.

The exchanges themselves (RFC 5452 over a pool of UDP sockets, RFC 7766 over reused TCP
connections) are ``transport``.  Identical queries in flight are coalesced: a query whose bytes
after the ID (flags that matter, question, EDNS record) equal those of one already sent, over
the same transport, waits for that exchange's answer instead of asking again (the AAAA the proxy
asks beside a client's A and the client's own AAAA for the same name, or several clients asking
one name at once).  Each asker gets the answer with its own ID (the proxy puts it back).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from clat_eamt.config.nettypes import ServerAddress
from clat_eamt.core.counters import Count
from clat_eamt.dns.transport import Transport, UpstreamError
from clat_eamt.dns.wire import FLAG_AD, FLAG_CD, FLAG_RD, RCODE_SERVFAIL, Question, rcode

__all__ = ["Health", "UpstreamError", "Upstreams"]

RCODE_REFUSED = 5
_BACKOFF_FIRST, _BACKOFF_MAX = 1.0, 60.0
_ASKING = FLAG_RD | FLAG_CD | FLAG_AD  # the header flags of a query that shape its answer
CoalesceKey = tuple[bool, int, bytes]


def _retrieved(task: asyncio.Task[bytes]) -> None:
    """Mark a detached exchange's failure as seen: nobody may be waiting for it any more."""
    if not task.cancelled():
        task.exception()


def _settle(
    inflight: dict[CoalesceKey, asyncio.Future[bytes]],
    key: CoalesceKey,
    future: asyncio.Future[bytes],
    outcome: bytes | Exception,
) -> None:
    """Hand ``start``'s exchange its answer or failure, after taking it out of the in-flight
    table (a later identical query asks anew)."""
    if inflight.get(key) is future:
        del inflight[key]
    if future.done():
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
        future.exception()  # retrieved: nobody may be waiting any more
    else:
        future.set_result(outcome)


def _handed_on(
    inflight: dict[CoalesceKey, asyncio.Future[bytes]],
    key: CoalesceKey,
    future: asyncio.Future[bytes],
    task: asyncio.Task[bytes],
) -> None:
    if task.cancelled():
        _settle(inflight, key, future, UpstreamError("abandoned"))
    elif (error := task.exception()) is not None:
        _settle(
            inflight,
            key,
            future,
            error if isinstance(error, Exception) else UpstreamError(str(error)),
        )
    else:
        _settle(inflight, key, future, task.result())


def coalesce_key(query: bytes, tcp: bool) -> CoalesceKey:
    """Queries with equal keys get the same answer: same transport, same RD/CD/AD, same
    question and EDNS bytes (counts included).  The ID and the other flag bits do not count."""
    flags = (query[2] << 8) | query[3]
    return (tcp, flags & _ASKING, bytes(query[4:]))


@dataclass
class Health:
    """What the proxy knows about one upstream (shown in status)."""

    answered: int = 0
    failures: int = 0  # consecutive
    down_until: float = 0.0
    last_error: str | None = None


class Upstreams:
    """The upstream resolvers, tried in order: the last one that answered first, ones that
    recently failed last (with exponential back-off), so one dead resolver costs a query at
    most one timeout and later queries go straight to a live one.  ``servers`` is called for
    every query (a resolv.conf source re-reads its file when it changed)."""

    def __init__(
        self,
        servers: Callable[[], Sequence[ServerAddress]],
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.servers, self.timeout, self.clock = servers, timeout, clock
        self.health: dict[ServerAddress, Health] = {}
        self.preferred: ServerAddress | None = None
        self.transport = Transport()
        self.inflight: dict[CoalesceKey, asyncio.Future[bytes]] = {}
        self.counters: Counter[str] = Counter()

    def close(self) -> None:
        """Close every socket and connection (the daemon's stop)."""
        self.transport.close()

    def order(self) -> list[ServerAddress]:
        servers = self.servers()
        if len(servers) == 1:  # the usual router: one resolver, first whatever its health
            return [servers[0]]
        now = self.clock()
        servers = list(dict.fromkeys(servers))
        if self.preferred in servers:
            servers.remove(self.preferred)
            servers.insert(0, self.preferred)
        up = [s for s in servers if self._health(s).down_until <= now]
        down = sorted((s for s in servers if s not in up), key=lambda s: self._health(s).down_until)
        return up + down

    async def exchange(
        self, query: bytes, question: Question, tcp: bool = False, *, detach: bool = False
    ) -> bytes:
        """The first usable answer (its ID is not the caller's: put the own one back), shared
        with every identical query in flight.  UpstreamError if no resolver gave one.
        ``detach``: the caller may give up waiting (the proxy drops its AAAA side query once
        the A answer is released); the exchange then runs on its own, for those who joined."""
        key = coalesce_key(query, tcp)
        shared = self.inflight.get(key)
        if shared is not None:
            self.counters[Count.UPSTREAM_COALESCED] += 1
            # Shielded: one asker giving up must not cancel what the others wait for.
            return await asyncio.shield(shared)
        if detach:
            task = asyncio.create_task(self._detached(key, query, question, tcp))
            self.inflight[key] = task
            task.add_done_callback(_retrieved)
            return await asyncio.shield(task)
        # The common case runs in the caller's own task: no task and no shield per query.  The
        # entry goes before the answer is handed on, so a later identical query asks anew.
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.inflight[key] = future
        try:
            data = await self._exchange(query, question, tcp)
        except BaseException as error:  # cancelled too (the daemon stops): joiners are told
            del self.inflight[key]
            failure = error if isinstance(error, Exception) else UpstreamError("abandoned")
            future.set_exception(failure)
            future.exception()  # retrieved: nobody may have joined
            raise
        del self.inflight[key]
        future.set_result(data)
        return data

    def start(self, query: bytes, question: Question, tcp: bool = False) -> asyncio.Future[bytes]:
        """The exchange for ``query`` running on its own (or the identical one in flight), as a
        future to wait for or drop: the caller must not cancel it, others may share it.  Sent
        at once on a ready socket to the first resolver, with its answer handled by a callback
        (no task); when it fails or answers SERVFAIL/REFUSED, a task asks the others.  Without
        a ready socket, the whole exchange runs in a task."""
        key = coalesce_key(query, tcp)
        shared = self.inflight.get(key)
        if shared is not None:
            self.counters[Count.UPSTREAM_COALESCED] += 1
            return shared
        servers = self.order() if not tcp else []
        sent = (
            self.transport.udp_start(servers[0], query, question, self.timeout) if servers else None
        )
        if sent is None:
            task = asyncio.create_task(self._detached(key, query, question, tcp))
            self.inflight[key] = task
            task.add_done_callback(_retrieved)
            return task
        self.counters[Count.UPSTREAM_EXCHANGES] += 1
        if len(servers) == 1:
            # Nobody to fail over to: the socket's own future is the answer (done as soon as
            # the datagram is read, so an A answer read just after it finds it there); what is
            # left to do follows in a callback.  With one resolver, a SERVFAIL or REFUSED it
            # gives is the answer, as _try would return it.
            self.inflight[key] = sent
            sent.add_done_callback(functools.partial(self._only_answer, key, servers[0]))
            return sent
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.inflight[key] = future
        then = functools.partial(self._first_answer, key, future, servers, query, question)
        sent.add_done_callback(then)
        return future

    def _only_answer(
        self, key: CoalesceKey, server: ServerAddress, sent: asyncio.Future[bytes]
    ) -> None:
        if self.inflight.get(key) is sent:
            del self.inflight[key]
        failure = UpstreamError("abandoned") if sent.cancelled() else sent.exception()
        if failure is None:
            self._answered(server)
        else:
            self._failed(server, str(failure))

    def _first_answer(  # noqa: PLR0917 - the state of one exchange, for a callback
        self,
        key: CoalesceKey,
        future: asyncio.Future[bytes],
        servers: list[ServerAddress],
        query: bytes,
        question: Question,
        sent: asyncio.Future[bytes],
    ) -> None:
        """The first resolver's answer to ``start``'s query; the others are tried as in
        ``_exchange`` (in a task) when it failed or said SERVFAIL/REFUSED."""
        errors: list[str] = []
        fallback: bytes | None = None
        failure = UpstreamError("abandoned") if sent.cancelled() else sent.exception()
        if failure is None:
            data = sent.result()
            self._answered(servers[0])
            if rcode(data) not in (RCODE_SERVFAIL, RCODE_REFUSED):
                _settle(self.inflight, key, future, data)
                return
            fallback = data
        else:
            self._failed(servers[0], str(failure))
            errors.append(str(failure))
        rest = self._try(servers[1:], query, question, False, errors, fallback)  # at least one
        task = asyncio.create_task(rest)
        task.add_done_callback(functools.partial(_handed_on, self.inflight, key, future))

    async def _detached(
        self, key: CoalesceKey, query: bytes, question: Question, tcp: bool
    ) -> bytes:
        try:
            return await self._exchange(query, question, tcp)
        finally:  # before the answer is visible: a later identical query asks anew
            if self.inflight.get(key) is asyncio.current_task():
                del self.inflight[key]

    async def _exchange(self, query: bytes, question: Question, tcp: bool) -> bytes:
        """SERVFAIL or REFUSED from one resolver makes the next one try; if all say so, the
        last such answer is returned (it is a real answer)."""
        servers = self.order()
        if not servers:
            raise UpstreamError("no upstream resolver configured or found in resolv_file")
        self.counters[Count.UPSTREAM_EXCHANGES] += 1
        sent = None if tcp else self.transport.udp_start(servers[0], query, question, self.timeout)
        if sent is None:
            return await self._try(servers, query, question, tcp, [], None)
        # The usual exchange, sent at once on a ready socket: no coroutine per layer.
        errors: list[str] = []
        fallback: bytes | None = None
        try:
            data = await sent
        except UpstreamError as failure:
            self._failed(servers[0], str(failure))
            errors.append(str(failure))
        else:
            self._answered(servers[0])
            if rcode(data) not in (RCODE_SERVFAIL, RCODE_REFUSED):
                return data
            fallback = data
        return await self._try(servers[1:], query, question, tcp, errors, fallback)

    async def _try(  # noqa: PLR0917
        self,
        servers: list[ServerAddress],
        query: bytes,
        question: Question,
        tcp: bool,
        errors: list[str],
        fallback: bytes | None,
    ) -> bytes:
        """``_exchange`` from ``servers`` on, with what earlier resolvers said."""
        exchange = self.transport.tcp_exchange if tcp else self.transport.udp_exchange
        for server in servers:
            try:
                data = await exchange(server, query, question, self.timeout)
            except UpstreamError as failure:
                self._failed(server, str(failure))
                errors.append(str(failure))
                continue
            self._answered(server)
            if rcode(data) in (RCODE_SERVFAIL, RCODE_REFUSED):
                fallback = data
                continue
            return data
        if fallback is not None:
            return fallback
        raise UpstreamError("; ".join(errors))

    def status(self) -> list[dict[str, object]]:
        now = self.clock()
        rows: list[dict[str, object]] = []
        for server in dict.fromkeys(self.servers()):
            health = self._health(server)
            rows.append(
                {
                    "server": str(server),
                    "state": "down" if health.down_until > now else "up",
                    "preferred": server == self.preferred,
                    "answered": health.answered,
                    "failures": health.failures,
                    "last_error": health.last_error,
                }
            )
        return rows

    def _health(self, server: ServerAddress) -> Health:
        health = self.health.get(server)  # not setdefault: no Health made per answer
        if health is None:
            health = self.health[server] = Health()
        return health

    def _answered(self, server: ServerAddress) -> None:
        health = self._health(server)
        health.answered += 1
        health.failures, health.down_until = 0, 0.0
        self.preferred = server

    def _failed(self, server: ServerAddress, error: str) -> None:
        health = self._health(server)
        health.failures += 1
        health.last_error = error
        # The exponent is capped: a resolver down for a while fails thousands of times, and a
        # float power overflows past 2**1023 (the back-off is at _BACKOFF_MAX long before).
        backoff = min(_BACKOFF_MAX, _BACKOFF_FIRST * 2 ** min(health.failures - 1, 32))
        health.down_until = self.clock() + backoff
        if self.preferred == server:
            self.preferred = None
