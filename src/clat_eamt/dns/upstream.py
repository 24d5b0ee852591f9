"""Talking to the upstream resolvers: one exchange over UDP or TCP, and failover between them.

Spoofing defences of RFC 5452: every exchange uses a new socket, so the kernel picks a random
source port (section 9.2), and a random ID (section 4.2); a UDP socket is connected to the
upstream, so the kernel drops datagrams from any other address or port, and a datagram is taken
only if its ID and question match what was asked (section 9.1).  Anything else is ignored and
the exchange keeps waiting until its timeout.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from clat_eamt.config.nettypes import ServerAddress
from clat_eamt.dns.wire import RCODE_SERVFAIL, Question, answers_question, read_header, with_id

RCODE_REFUSED = 5
_BACKOFF_FIRST, _BACKOFF_MAX = 1.0, 60.0


def _query_id() -> int:
    """An unpredictable 16-bit ID (RFC 5452 section 9.2), from the kernel's random source:
    ``secrets`` would load hmac and hashlib (OpenSSL) for the same two bytes."""
    return int.from_bytes(os.urandom(2), "big")


class UpstreamError(Exception):
    """No usable answer from an upstream (or from any of them)."""


async def exchange_udp(
    server: ServerAddress, query: bytes, question: Question, timeout: float
) -> bytes:
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if server.address.version == 6 else socket.AF_INET
    qid = _query_id()
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        try:
            sock.connect(server.sockaddr)
            await loop.sock_sendall(sock, with_id(query, qid))
            async with asyncio.timeout(timeout):
                while True:
                    data = await loop.sock_recv(sock, 65535)
                    if answers_question(data, qid, question) is not None:
                        return data
        except TimeoutError:
            raise UpstreamError(f"{server}: no answer in {timeout * 1000:.0f} ms") from None
        except ConnectionRefusedError:
            raise UpstreamError(f"{server}: port unreachable (nothing listens)") from None
        except OSError as error:
            raise UpstreamError(f"{server}: {error.strerror or error}") from None


async def exchange_tcp(
    server: ServerAddress, query: bytes, question: Question, timeout: float
) -> bytes:
    """RFC 7766: two-byte length prefix; one connection per exchange keeps this simple, and
    dnsmasq only comes here after a truncated UDP answer."""
    qid = _query_id()
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(*server.sockaddr)
            message = with_id(query, qid)
            writer.write(struct.pack("!H", len(message)) + message)
            await writer.drain()
            while True:
                (size,) = struct.unpack("!H", await reader.readexactly(2))
                data = await reader.readexactly(size)
                if answers_question(data, qid, question) is not None:
                    return data
    except TimeoutError:
        raise UpstreamError(f"{server} (TCP): no answer in {timeout * 1000:.0f} ms") from None
    except asyncio.IncompleteReadError:
        raise UpstreamError(f"{server} (TCP): connection closed before the answer") from None
    except OSError as error:
        raise UpstreamError(f"{server} (TCP): {error.strerror or error}") from None
    finally:
        if writer is not None:
            writer.close()


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

    def order(self) -> list[ServerAddress]:
        now = self.clock()
        servers = list(dict.fromkeys(self.servers()))
        if self.preferred in servers:
            servers.remove(self.preferred)
            servers.insert(0, self.preferred)
        up = [s for s in servers if self._health(s).down_until <= now]
        down = sorted((s for s in servers if s not in up), key=lambda s: self._health(s).down_until)
        return up + down

    async def exchange(self, query: bytes, question: Question, tcp: bool = False) -> bytes:
        """The first usable answer.  SERVFAIL or REFUSED from one resolver makes the next one
        try; if all say so, the last such answer is returned (it is a real answer)."""
        servers = self.order()
        if not servers:
            raise UpstreamError("no upstream resolver configured or found in resolv_file")
        exchange = exchange_tcp if tcp else exchange_udp
        errors: list[str] = []
        fallback: bytes | None = None
        for server in servers:
            try:
                data = await exchange(server, query, question, self.timeout)
            except UpstreamError as failure:
                self._failed(server, str(failure))
                errors.append(str(failure))
                continue
            self._answered(server)
            if read_header(data).rcode in (RCODE_SERVFAIL, RCODE_REFUSED):
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
        return self.health.setdefault(server, Health())

    def _answered(self, server: ServerAddress) -> None:
        health = self._health(server)
        health.answered += 1
        health.failures, health.down_until = 0, 0.0
        self.preferred = server

    def _failed(self, server: ServerAddress, error: str) -> None:
        health = self._health(server)
        health.failures += 1
        health.last_error = error
        backoff = min(_BACKOFF_MAX, _BACKOFF_FIRST * 2 ** (health.failures - 1))
        health.down_until = self.clock() + backoff
        if self.preferred == server:
            self.preferred = None
