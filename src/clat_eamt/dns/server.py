"""The proxy's sockets: UDP and TCP listeners that hand each message to the resolver seam.

The UDP socket is read until empty at each wake-up (``datagram``).  Each query becomes a task,
so one slow upstream does not hold up other clients; the number in flight is capped (dnsmasq
caps its own forwards at 150 by default, so the cap is only reached by something that is not
dnsmasq) and datagrams beyond it are dropped: the sender retries, as it would after a loss.
TCP connections (RFC 7766) are read one message at a time and closed after an idle period.

TCP is where dnsmasq retries a truncated answer, so no client may keep it out (issue 15: one
client holding all 64 slots with a query every 8 s did).  A connection that has sent no query
yet is closed after ``TCP_SILENT`` seconds, one that has after ``TCP_IDLE``.  When every slot is
taken, a new connection is still served: the idle connection (not waiting for an answer) of the
client holding the most slots, idle longest, is closed for it (RFC 7766 section 6.2.3 lets a
server close idle connections under pressure; clients reconnect).  Only when every connection
is waiting for an answer is the new one closed.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import struct
from collections import Counter
from collections.abc import Awaitable, Callable
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

from clat_eamt.dns.datagram import DatagramSocket, bound

log = logging.getLogger(__name__)
Handler = Callable[[bytes, IPv4Address | IPv6Address | None, bool], Awaitable[bytes | None]]
MAX_UDP_IN_FLIGHT = 300  # each A query holds two sockets: stay clear of 1024 fds
MAX_TCP_CONNECTIONS = 64
TCP_IDLE = 10.0  # after a query (RFC 7766 section 6.2.3: a few seconds)
TCP_SILENT = 2.0  # before the first query: a client that connects sends at once
ANY_PORT_TRIES = 8  # port 0: picks tried for a port free for UDP and TCP alike


_PEERS = 256  # source addresses remembered (dnsmasq is one); starts over when full
_peers: dict[str, IPv4Address | IPv6Address | None] = {}


def _peer(addr: tuple[Any, ...] | None) -> IPv4Address | IPv6Address | None:
    if not addr:
        return None
    text = addr[0]
    if text in _peers:  # the text form parsed once, not for every datagram
        return _peers[text]
    try:
        peer: IPv4Address | IPv6Address | None = ip_address(text.split("%", 1)[0])
    except ValueError:
        peer = None
    if len(_peers) >= _PEERS:
        _peers.clear()
    _peers[text] = peer
    return peer


class _UdpListener:
    """The listening UDP socket: a task per query (one slow upstream holds up no other client),
    at most ``MAX_UDP_IN_FLIGHT`` of them."""

    def __init__(self, handler: Handler, sock: socket.socket) -> None:
        self.handler = handler
        self.tasks: dict[int, asyncio.Task[None]] = {}  # by serial: ``_serve`` drops its own
        self.serial = 0
        self.socket = DatagramSocket(sock, self._received, self._failed)
        self.loop = self.socket.loop

    def close(self) -> None:
        self.socket.close()

    def _received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(self.tasks) >= MAX_UDP_IN_FLIGHT:
            return  # dropped: the sender retries
        self.serial += 1
        self.tasks[self.serial] = self.loop.create_task(self._serve(data, addr, self.serial))

    async def _serve(self, data: bytes, addr: tuple[str, int], serial: int) -> None:
        try:
            reply = await self.handler(data, _peer(addr), False)
            if reply is not None and not self.socket.closed:
                error = self.socket.send(reply, addr)
                if error is not None:  # lost, as a datagram may be on the way: client retries
                    log.debug("reply to %s not sent: %s", addr[0], error)
        finally:  # here, not in a done callback: one loop pass less per query
            del self.tasks[serial]

    def _failed(self, error: OSError) -> None:
        # ICMP errors for replies to clients that went away; nothing to do.
        log.debug("UDP error: %s", error)


class _TcpClient:
    """One TCP connection: who, since when idle, and whether it waits for an answer."""

    __slots__ = ("busy", "idle_since", "peer", "queries", "writer")

    def __init__(self, peer: object, writer: asyncio.StreamWriter, now: float) -> None:
        self.peer, self.writer, self.idle_since = peer, writer, now
        self.busy, self.queries = False, 0


class DnsServer:
    """Listens on ``address``:``port`` over UDP and TCP until ``close``."""

    def __init__(self, handler: Handler, address: str, port: int) -> None:
        self.handler, self.address, self.port = handler, address, port
        self.udp: _UdpListener | None = None
        self.tcp: asyncio.Server | None = None
        self.tcp_clients: set[_TcpClient] = set()
        self.tcp_evicted = 0  # idle connections closed to make room
        self.tcp_refused = 0  # new connections closed: every slot waiting for an answer

    @property
    def connections(self) -> int:
        return len(self.tcp_clients)

    async def start(self) -> None:
        """Bind both sockets; OSError (address in use, not on this host) goes to the caller.
        Asked for any port (0, the tests): the UDP one the kernel picks may be the local port
        of some TCP connection, so a few picks are tried for one free in both."""
        for attempt in range(1 if self.port else ANY_PORT_TRIES, 0, -1):
            self.udp = _UdpListener(self.handler, bound(self.address, self.port))
            port = self.udp.socket.sockname[1]  # the one bound, when asked for 0
            try:
                self.tcp = await asyncio.start_server(
                    self._connection, self.address, port, reuse_address=True
                )
            except OSError as error:
                self.udp.close()
                if attempt == 1 or error.errno != errno.EADDRINUSE:
                    raise
            else:
                self.port = port
                return

    async def close(self) -> None:
        if self.udp is not None:
            self.udp.close()
        if self.tcp is not None:
            self.tcp.close()
            await self.tcp.wait_closed()

    def _evict(self) -> bool:
        """Close the idle connection of the client holding the most slots, idle longest; False
        when every connection waits for an answer."""
        idle = [c for c in self.tcp_clients if not c.busy]
        if not idle:
            return False
        holding = Counter(c.peer for c in self.tcp_clients)
        victim = max(idle, key=lambda c: (holding[c.peer], -c.idle_since))
        self.tcp_clients.discard(victim)
        victim.writer.close()
        self.tcp_evicted += 1
        return True

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        if len(self.tcp_clients) >= MAX_TCP_CONNECTIONS and not self._evict():
            self.tcp_refused += 1
            writer.close()
            return
        peer = _peer(writer.get_extra_info("peername"))
        client = _TcpClient(peer, writer, loop.time())
        self.tcp_clients.add(client)
        try:
            while client in self.tcp_clients:
                async with asyncio.timeout(TCP_IDLE if client.queries else TCP_SILENT):
                    (size,) = struct.unpack("!H", await reader.readexactly(2))
                    data = await reader.readexactly(size)
                client.busy = True
                reply = await self.handler(data, peer, True)
                client.busy, client.queries = False, client.queries + 1
                client.idle_since = loop.time()
                if reply is None or client not in self.tcp_clients:
                    break
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.tcp_clients.discard(client)
            writer.close()
