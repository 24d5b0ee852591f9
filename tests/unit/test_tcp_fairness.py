"""Issue 15, TCP fairness of the DNS listener (loopback): one client holding every slot cannot
keep another out (dnsmasq retries truncated answers over TCP), a connection that sends nothing
is closed soon, and only when every slot waits for an answer is a newcomer turned away."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable
from ipaddress import IPv4Address, IPv6Address

import pytest

from clat_eamt.dns import server as dns_server
from clat_eamt.dns.server import MAX_TCP_CONNECTIONS, DnsServer

Peer = IPv4Address | IPv6Address | None


def frame(data: bytes) -> bytes:
    return struct.pack("!H", len(data)) + data


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    (size,) = struct.unpack("!H", await reader.readexactly(2))
    return await reader.readexactly(size)


async def echo(data: bytes, peer: Peer, tcp: bool) -> bytes:
    return data


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def with_server(
    handler: Callable[[bytes, Peer, bool], Awaitable[bytes | None]],
    scenario: Callable[[DnsServer], Awaitable[None]],
) -> None:
    async def main() -> None:
        server = DnsServer(handler, "127.0.0.1", 0)
        await server.start()
        try:
            await scenario(server)
        finally:
            await server.close()

    asyncio.run(main())


async def connect(server: DnsServer) -> Connection:
    return await asyncio.open_connection("127.0.0.1", server.port)


def test_a_client_holding_every_slot_does_not_keep_a_newcomer_out():
    async def scenario(server: DnsServer) -> None:
        hog: list[Connection] = []
        for i in range(MAX_TCP_CONNECTIONS):  # each asked once and now idles (a query every 8 s)
            reader, writer = await connect(server)
            writer.write(frame(b"hog%d" % i))
            assert await read_frame(reader) == b"hog%d" % i
            hog.append((reader, writer))
        reader, writer = await connect(server)
        writer.write(frame(b"dnsmasq"))
        assert await asyncio.wait_for(read_frame(reader), 5) == b"dnsmasq"
        assert server.tcp_evicted == 1 and server.tcp_refused == 0
        assert server.connections == MAX_TCP_CONNECTIONS
        # the one closed was the hog's longest idle connection; the others still work
        with pytest.raises(asyncio.IncompleteReadError):
            await asyncio.wait_for(hog[0][0].readexactly(2), 5)
        hog[-1][1].write(frame(b"again"))
        assert await asyncio.wait_for(read_frame(hog[-1][0]), 5) == b"again"
        for _, w in [*hog, (reader, writer)]:
            w.close()

    with_server(echo, scenario)


def test_a_connection_that_sends_nothing_is_closed_after_the_short_timeout(monkeypatch):
    monkeypatch.setattr(dns_server, "TCP_SILENT", 0.2)

    async def scenario(server: DnsServer) -> None:
        reader, writer = await connect(server)
        assert await asyncio.wait_for(reader.read(), 3) == b""  # closed by the server
        writer.close()
        assert server.connections == 0

    with_server(echo, scenario)


def test_only_when_every_slot_waits_for_an_answer_is_a_newcomer_closed():
    release = asyncio.Event()

    async def slow(data: bytes, peer: Peer, tcp: bool) -> bytes:
        await release.wait()
        return data

    async def scenario(server: DnsServer) -> None:
        busy = []
        for _ in range(MAX_TCP_CONNECTIONS):
            reader, writer = await connect(server)
            writer.write(frame(b"q"))
            busy.append((reader, writer))
        while server.connections < MAX_TCP_CONNECTIONS or not all(
            c.busy for c in server.tcp_clients
        ):
            await asyncio.sleep(0.01)
        reader, writer = await connect(server)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert server.tcp_refused == 1 and server.tcp_evicted == 0
        release.set()
        for r, _ in busy:  # every waiting query is still answered
            assert await asyncio.wait_for(read_frame(r), 5) == b"q"
        for _, w in [*busy, (reader, writer)]:
            w.close()

    with_server(slow, scenario)
