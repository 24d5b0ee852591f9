"""The proxy's sockets: UDP and TCP listeners that hand each message to the resolver seam.

Each UDP datagram becomes a task, so one slow upstream does not hold up other clients; the
number in flight is capped (dnsmasq caps its own forwards at 150 by default, so the cap is only
reached by something that is not dnsmasq) and datagrams beyond it are dropped: the sender
retries, as it would after a loss.  TCP connections (RFC 7766) are read one message at a time
and closed after an idle period.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Awaitable, Callable
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

log = logging.getLogger(__name__)
Handler = Callable[[bytes, IPv4Address | IPv6Address | None, bool], Awaitable[bytes | None]]
MAX_UDP_IN_FLIGHT = 300  # each A query holds two sockets: stay clear of 1024 fds
MAX_TCP_CONNECTIONS = 64
TCP_IDLE = 10.0


def _peer(addr: tuple[Any, ...] | None) -> IPv4Address | IPv6Address | None:
    try:
        return ip_address(addr[0].split("%", 1)[0]) if addr else None
    except ValueError:
        return None


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, handler: Handler, dropped: Callable[[], None]) -> None:
        self.handler, self.dropped = handler, dropped
        self.transport: asyncio.DatagramTransport | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(self.tasks) >= MAX_UDP_IN_FLIGHT:
            self.dropped()
            return
        task = asyncio.create_task(self._serve(data, addr))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _serve(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = await self.handler(data, _peer(addr), False)
        if reply is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors for replies to clients that went away; nothing to do.
        log.debug("UDP error: %s", exc)


class DnsServer:
    """Listens on ``address``:``port`` over UDP and TCP until ``close``."""

    def __init__(self, handler: Handler, address: str, port: int) -> None:
        self.handler, self.address, self.port = handler, address, port
        self.udp: asyncio.DatagramTransport | None = None
        self.tcp: asyncio.Server | None = None
        self.dropped = 0
        self.connections = 0

    async def start(self) -> None:
        """Bind both sockets; OSError (address in use, not on this host) goes to the caller."""
        loop = asyncio.get_running_loop()
        self.udp, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(self.handler, self._drop), local_addr=(self.address, self.port)
        )
        self.port = self.udp.get_extra_info("sockname")[1]  # the one bound, when asked for 0
        try:
            self.tcp = await asyncio.start_server(
                self._connection, self.address, self.port, reuse_address=True
            )
        except OSError:
            self.udp.close()
            raise

    async def close(self) -> None:
        if self.udp is not None:
            self.udp.close()
        if self.tcp is not None:
            self.tcp.close()
            await self.tcp.wait_closed()

    def _drop(self) -> None:
        self.dropped += 1

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.connections >= MAX_TCP_CONNECTIONS:
            writer.close()
            return
        self.connections += 1
        peer = _peer(writer.get_extra_info("peername"))
        try:
            while True:
                async with asyncio.timeout(TCP_IDLE):
                    (size,) = struct.unpack("!H", await reader.readexactly(2))
                    data = await reader.readexactly(size)
                reply = await self.handler(data, peer, True)
                if reply is None:
                    break
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.connections -= 1
            writer.close()
