"""Exchanges with one upstream resolver over UDP and TCP, without a new socket per exchange.

UDP (RFC 5452): each server has a small pool of connected UDP sockets, each bound by the kernel
to a random source port; an exchange takes a socket of the pool at random, a random ID that no
other exchange on that socket uses, and sends.  A socket is retired after ``UDP_USES`` queries
or ``UDP_AGE`` seconds (it closes once its last answer is in), so the ports in use keep changing
as with dnsmasq's and unbound's random ports, at the cost of one socket per ``UDP_USES``
queries instead of one per query.  The kernel drops datagrams from any other address or port
(the socket is connected); an answer is taken only if its ID and question match what was asked
(section 9.1); anything else is ignored and the exchange keeps waiting until its timeout.
The sockets are read until empty at each wake-up (``datagram``) and answers handed to the
waiting futures by ID: no coroutine waits on a socket.

TCP (RFC 7766): one connection per server, kept open while it is used and closed after
``TCP_IDLE`` seconds without queries; queries are pipelined on it and answers matched by ID and
question (section 6.2.1.1: they may come in any order).  A connection the server closed under
a query is retried once on a new one (section 6.2.4).
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from typing import Any

from clat_eamt.config.nettypes import ServerAddress
from clat_eamt.dns.datagram import DatagramSocket, connected
from clat_eamt.dns.wire import Question, answers_question, with_id

UDP_POOL = 8  # sockets per server taking queries at once
UDP_USES = 64  # queries per socket before it is retired
UDP_AGE = 30.0  # seconds a socket takes queries before it is retired
SWEEP = 0.01  # seconds between looks for timed out UDP exchanges: a timeout is at most that late
TCP_IDLE = 10.0  # seconds an unused upstream TCP connection stays open
_RANDOM_BUFFER = 512  # bytes of os.urandom read at once: 128 exchanges' ID and socket


class _Random:
    """Unpredictable numbers (RFC 5452 sections 4.2, 9.2) from the kernel's CSPRNG, read a few
    hundred bytes at a time: one getrandom call per 128 exchanges instead of two per exchange.
    The bytes are as unpredictable as one call per number would give; each is used once."""

    def __init__(self) -> None:
        self._bytes = b""
        self._at = 0

    def u16(self) -> int:
        at = self._at
        if at + 2 > len(self._bytes):
            self._bytes, at = os.urandom(_RANDOM_BUFFER), 0
        self._at = at + 2
        return (self._bytes[at] << 8) | self._bytes[at + 1]

    def below(self, n: int) -> int:
        """Uniform in range(n), n <= 65536 (rejection sampling: no modulo bias)."""
        limit = 65536 - 65536 % n
        while True:
            value = self.u16()
            if value < limit:
                return value % n


_random = _Random()


class UpstreamError(Exception):
    """No usable answer from an upstream (or from any of them)."""


# The question asked, the future of its answer, and (UDP) when it gives up and after how long.
Waiter = tuple[Question, "asyncio.Future[bytes]", float, float]


def _settle(waiters: dict[int, Waiter], qid: int, data: bytes) -> None:
    """Hand ``data`` to the exchange waiting for ID ``qid`` if it answers its question."""
    waiter = waiters.get(qid)
    if waiter is None or answers_question(data, qid, waiter[0]) is None:
        return  # RFC 5452 section 9.1: a wrong ID or question is ignored
    del waiters[qid]
    if not waiter[1].done():
        waiter[1].set_result(data)


def _fail(waiters: dict[int, Waiter], error: Exception) -> None:
    for _, future, _, _ in waiters.values():
        if not future.done():
            future.set_exception(error)
    waiters.clear()


def _free_id(waiters: dict[int, Waiter]) -> int:
    while True:
        qid = _random.u16()  # RFC 5452 section 4.2: an unpredictable ID
        if qid not in waiters:
            return qid


class _UdpSocket:
    """One connected socket of a server's pool and the exchanges waiting on it, by ID."""

    def __init__(self, server: ServerAddress, born: float, sock: socket.socket) -> None:
        self.server, self.born = server, born
        self.waiters: dict[int, Waiter] = {}
        self.uses = 0
        self.retired = False
        self.socket = DatagramSocket(sock, self._received, self._failed)

    def _received(self, data: bytes, addr: Any) -> None:
        if len(data) >= 12:
            _settle(self.waiters, (data[0] << 8) | data[1], data)
            self.close_if_done()

    def _failed(self, error: OSError) -> None:
        # An ICMP error on the connected socket (port unreachable: nothing listens there) fails
        # every exchange on it at once instead of after the timeout.
        if isinstance(error, ConnectionRefusedError):
            why = f"{self.server}: port unreachable (nothing listens)"
        else:
            why = f"{self.server}: {error.strerror or error}"
        _fail(self.waiters, UpstreamError(why))
        self.retired = True
        self.close_if_done()

    def send(self, qid: int, query: bytes) -> None:
        """Send the exchange ``qid`` waits for; a send the kernel refuses fails it at once (a
        full send buffer) or, as an ICMP error would, every exchange on the socket."""
        error = self.socket.send(query)
        if isinstance(error, BlockingIOError | InterruptedError):
            future = self.waiters.pop(qid)[1]
            future.set_exception(UpstreamError(f"{self.server}: send buffer full"))
        elif error is not None:
            self._failed(error)

    def close_if_done(self) -> None:
        if self.retired and not self.waiters:
            self.close()

    def close(self) -> None:
        self.retired = True
        if not self.socket.closed:
            self.socket.close()
            _fail(self.waiters, UpstreamError(f"{self.server}: socket closed"))


class _TcpConnection(asyncio.Protocol):
    def __init__(self, server: ServerAddress) -> None:
        self.server = server
        self.waiters: dict[int, Waiter] = {}
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.used = 0  # exchanges sent on it
        self.idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= 2:
            size = (self.buffer[0] << 8) | self.buffer[1]
            if len(self.buffer) < 2 + size:
                return
            message = bytes(self.buffer[2 : 2 + size])
            del self.buffer[: 2 + size]
            if size >= 12:
                _settle(self.waiters, (message[0] << 8) | message[1], message)
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        _fail(self.waiters, UpstreamError(f"{self.server} (TCP): connection closed"))

    def send(self, message: bytes) -> None:
        assert self.transport is not None
        self.used += 1
        self.transport.write(struct.pack("!H", len(message)) + message)
        self._arm_idle()

    def _arm_idle(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
        loop = asyncio.get_running_loop()
        self.idle = loop.call_later(TCP_IDLE, self._close_if_idle)

    def _close_if_idle(self) -> None:
        if self.waiters:
            self._arm_idle()
        else:
            self.close()

    def close(self) -> None:
        self.closed = True
        if self.idle is not None:
            self.idle.cancel()
        if self.transport is not None:
            self.transport.close()


async def _wait(
    future: asyncio.Future[bytes], left: float, server: ServerAddress, timeout: float, how: str = ""
) -> bytes:
    loop = asyncio.get_running_loop()
    timer = loop.call_later(left, _expire, future, server, how, timeout)
    try:
        return await future
    finally:
        timer.cancel()


def _expire(future: asyncio.Future[bytes], server: ServerAddress, how: str, timeout: float) -> None:
    if not future.done():
        future.set_exception(UpstreamError(f"{server}{how}: no answer in {timeout * 1000:.0f} ms"))


class Transport:
    """The sockets and connections to every upstream; ``close`` ends them all."""

    def __init__(self) -> None:
        self.udp: dict[ServerAddress, list[_UdpSocket]] = {}
        self.tcp: dict[ServerAddress, _TcpConnection] = {}
        self.retiring: set[_UdpSocket] = set()
        self.sweeping: asyncio.TimerHandle | None = None  # while UDP exchanges are in flight
        self.sockets_opened = 0  # for status and the tests

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        """Time out the UDP exchanges whose deadline passed, every ``SWEEP`` seconds while any
        is in flight: one timer for all of them instead of a timer armed and cancelled and a
        callback per exchange (the loop's work per answer, a share of the proxy's cost per query
        worth saving), and nothing kept of an exchange once it is answered.  An exchange given
        up by its waiter (cancelled) frees its ID at the next look."""
        self.sweeping = None
        now, pending = loop.time(), False
        for sock in [*(s for pool in self.udp.values() for s in pool), *self.retiring]:
            waiters = sock.waiters
            for qid, (_, future, deadline, timeout) in list(waiters.items()):
                if deadline > now and not future.done():
                    pending = True
                    continue
                del waiters[qid]  # the ID is free again
                if not future.done():
                    # The text is made here, for a timeout only: formatting it for every
                    # exchange cost more than the rest of the wait.
                    why = f"{sock.server}: no answer in {timeout * 1000:.0f} ms"
                    future.set_exception(UpstreamError(why))
            sock.close_if_done()  # a retired socket closes after its last exchange
        if pending:
            self.sweeping = loop.call_later(SWEEP, self._sweep, loop)

    async def udp_exchange(
        self, server: ServerAddress, query: bytes, question: Question, timeout: float
    ) -> bytes:
        future = self.udp_start(server, query, question, timeout)
        if future is None:  # no socket ready: open one first
            sock = self._udp_socket(server, asyncio.get_running_loop().time())
            future = self._udp_send(sock, query, question, timeout)
        return await future

    def udp_start(
        self, server: ServerAddress, query: bytes, question: Question, timeout: float
    ) -> asyncio.Future[bytes] | None:
        """Send ``query`` on a socket of the pool at random, if the one drawn can take it, and
        return the future of its answer (UpstreamError on timeout); None when a socket must
        be opened or retired first (``udp_exchange`` does that)."""
        pool = self.udp.get(server)
        if not pool or len(pool) < UDP_POOL:
            return None
        loop = asyncio.get_running_loop()
        sock = pool[_random.below(len(pool))]
        if sock.retired or loop.time() - sock.born >= UDP_AGE:
            return None
        return self._udp_send(sock, query, question, timeout)

    def _udp_send(
        self, sock: _UdpSocket, query: bytes, question: Question, timeout: float
    ) -> asyncio.Future[bytes]:
        loop = asyncio.get_running_loop()
        qid = _free_id(sock.waiters)
        future: asyncio.Future[bytes] = loop.create_future()
        sock.waiters[qid] = (question, future, loop.time() + timeout, timeout)
        sock.uses += 1
        if sock.uses >= UDP_USES:
            self._retire(sock)
        if self.sweeping is None:
            self.sweeping = loop.call_later(SWEEP, self._sweep, loop)
        sock.send(qid, with_id(query, qid))
        return future

    def _udp_socket(self, server: ServerAddress, now: float) -> _UdpSocket:
        pool = self.udp.get(server)
        if pool is None:
            pool = self.udp[server] = []
        if len(pool) >= UDP_POOL:
            sock = pool[_random.below(len(pool))]
            if not sock.retired and now - sock.born < UDP_AGE:
                return sock
        for sock in [s for s in pool if s.retired or now - s.born >= UDP_AGE]:
            self._retire(sock)
        if len(pool) >= UDP_POOL:
            return pool[_random.below(len(pool))]
        family = socket.AF_INET6 if server.address.version == 6 else socket.AF_INET
        try:
            sock = _UdpSocket(server, now, connected(family, server.sockaddr))
        except OSError as error:
            raise UpstreamError(f"{server}: {error.strerror or error}") from None
        self.sockets_opened += 1
        pool.append(sock)
        return sock

    def _retire(self, sock: _UdpSocket) -> None:
        pool = self.udp.get(sock.server, [])
        if sock in pool:
            pool.remove(sock)
        sock.retired = True
        sock.close_if_done()
        # Kept until closed, so ``close`` reaches a retired socket still waiting for answers.
        self.retiring = {s for s in self.retiring if not s.socket.closed}
        if not sock.socket.closed:
            self.retiring.add(sock)

    async def tcp_exchange(
        self, server: ServerAddress, query: bytes, question: Question, timeout: float
    ) -> bytes:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for attempt in range(2):
            conn = self.tcp.get(server)
            reused = conn is not None and not conn.closed
            if conn is None or conn.closed:
                conn = await self._tcp_connect(server, timeout)
            qid = _free_id(conn.waiters)
            future: asyncio.Future[bytes] = loop.create_future()
            conn.waiters[qid] = (question, future, deadline, timeout)  # _wait times it out
            conn.send(with_id(query, qid))
            left = max(0.0, deadline - loop.time())
            try:
                return await _wait(future, left, server, timeout, " (TCP)")
            except UpstreamError:
                # RFC 7766 section 6.2.4: a server may close an idle connection at any time;
                # a query lost that way is sent once more, on a new connection.
                if not (reused and conn.closed and attempt == 0 and loop.time() < deadline):
                    raise
            finally:
                conn.waiters.pop(qid, None)
        raise AssertionError("unreachable")

    async def _tcp_connect(self, server: ServerAddress, timeout: float) -> _TcpConnection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    lambda: _TcpConnection(server), *server.sockaddr[:2]
                )
        except TimeoutError:
            what = f"{server} (TCP): no connection in {timeout * 1000:.0f} ms"
            raise UpstreamError(what) from None
        except OSError as error:
            raise UpstreamError(f"{server} (TCP): {error.strerror or error}") from None
        old = self.tcp.get(server)
        if old is not None and not old.closed and not old.waiters:
            old.close()
        self.tcp[server] = conn
        return conn

    def close(self) -> None:
        for pool in self.udp.values():
            for sock in pool:
                sock.close()
        for sock in self.retiring:
            sock.close()
        for conn in self.tcp.values():
            conn.close()
        if self.sweeping is not None:
            self.sweeping.cancel()
            self.sweeping = None
        self.udp.clear()
        self.tcp.clear()
