"""UDP sockets read until empty at each wake-up of the event loop: the proxy's listener and the
upstream pool (``server``, ``transport``).

asyncio's datagram transport reads one datagram per readiness event and polls again before the
next, so under load every query pays a poll and the loop's bookkeeping several times.  Measured
here with the bench's query mix (dnsmasq, cache off, in front of each forwarder): a bare Python
forwarder on asyncio's transports answered 0.40 of the queries per second dnsmasq answers
straight from unbound; the same forwarder, a task per query still, on non-blocking sockets
read until empty by a reader callback, 0.74 (README, Benchmarks).  So the DNS sockets are
plain sockets watched by ``loop.add_reader``; TCP keeps asyncio's streams.

Reading stops after ``READ_BUDGET`` datagrams, so a flood on one socket still lets the others,
the timers and the control socket have their turn.  Sending never waits: a datagram the kernel
cannot take at once (its send buffer is full) is dropped and the caller told, as a loss on the
way would drop it; DNS clients and this proxy retry or time out as they do for any loss.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

READ_BUDGET = 64  # datagrams read per wake-up before the loop runs everything else once
MAX_DATAGRAM = 65535  # a UDP payload's ceiling: nothing is cut short

Received = Callable[[bytes, Any], None]
Failed = Callable[[OSError], None]


def bound(address: str, port: int) -> socket.socket:
    """A non-blocking UDP socket bound to ``address`` (an IP literal, IPv6 with a scope too)
    and ``port`` (0: the kernel picks one).  OSError as ``bind`` raises it."""
    # As bytes: for a str, the socket module encodes the host with the idna codec, whose import
    # (stringprep, unicodedata) cost the idle daemon 0.5 MB.  An IP literal is ASCII.
    host = address.encode("ascii", "replace")
    flags = socket.AI_PASSIVE | socket.AI_NUMERICHOST
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM, flags=flags)
    family, kind, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setblocking(False)
        sock.bind(sockaddr)
    except OSError:
        sock.close()
        raise
    return sock


def connected(family: int, sockaddr: tuple[Any, ...]) -> socket.socket:
    """A non-blocking UDP socket connected to ``sockaddr`` from a port the kernel picks at
    random (RFC 5452 section 9.2); the kernel then drops datagrams from anywhere else."""
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.connect(sockaddr)  # UDP: no packet sent, nothing to wait for
    except OSError:
        sock.close()
        raise
    return sock


class DatagramSocket:
    """``sock`` watched by the running loop: each datagram goes to ``received(data, addr)``, an
    error the kernel reports on it (an ICMP port unreachable on a connected socket) to
    ``failed``.  ``close`` stops watching and closes the socket; both callbacks then stop."""

    __slots__ = ("closed", "failed", "fd", "loop", "received", "sock")

    def __init__(self, sock: socket.socket, received: Received, failed: Failed) -> None:
        self.sock, self.received, self.failed = sock, received, failed
        self.loop = asyncio.get_running_loop()
        self.fd = sock.fileno()
        self.closed = False
        self.loop.add_reader(self.fd, self._readable)

    @property
    def sockname(self) -> Any:
        return self.sock.getsockname()

    def _readable(self) -> None:
        recvfrom = self.sock.recvfrom
        for _ in range(READ_BUDGET):
            try:
                data, addr = recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                self.failed(error)
                return
            self.received(data, addr)
            if self.closed:  # a callback closed it
                return

    def send(self, data: bytes, addr: Any = None) -> OSError | None:
        """Hand ``data`` to the kernel (to ``addr``, or to the connected peer); the error if it
        could not take it (BlockingIOError: the send buffer is full, the datagram is lost)."""
        try:
            if addr is None:
                self.sock.send(data)
            else:
                self.sock.sendto(data, addr)
        except OSError as error:
            return error
        return None

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if not self.loop.is_closed():
                self.loop.remove_reader(self.fd)
            self.sock.close()
