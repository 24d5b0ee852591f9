"""A scripted DNS peer on loopback, for behaviour that no real resolver can be made to show:
answers with the wrong ID or question, garbage, silence.  Real resolvers (unbound, knot,
dnsmasq) are used for everything else, in tests/integration."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from dnslib import QTYPE, RR, DNSRecord

Respond = Callable[[bytes], list[bytes]]


class _Peer(asyncio.DatagramProtocol):
    def __init__(self, respond: Respond, received: list[bytes], ports: list[int]) -> None:
        self.respond, self.received, self.ports = respond, received, ports
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport):  # type: ignore[no-untyped-def]
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:  # type: ignore[no-untyped-def]
        self.received.append(data)
        self.ports.append(addr[1])
        for reply in self.respond(data):
            assert self.transport is not None
            self.transport.sendto(reply, addr)


class ScriptedPeer:
    """``async with ScriptedPeer(respond) as peer``: listens on 127.0.0.1:``peer.port``."""

    def __init__(self, respond: Respond, host: str = "127.0.0.1", port: int = 0) -> None:
        """``port`` 0: any free one (a TCP peer's, to serve both transports on one port)."""
        self.respond, self.host = respond, host
        self.received: list[bytes] = []
        self.ports: list[int] = []  # source port of each received datagram
        self.port = port
        self._transport: asyncio.DatagramTransport | None = None

    async def __aenter__(self) -> ScriptedPeer:
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: _Peer(self.respond, self.received, self.ports),
            local_addr=(self.host, self.port),
        )
        self.port = self._transport.get_extra_info("sockname")[1]
        return self

    def send(self, data: bytes, port: int) -> None:
        """Send ``data`` to ``port`` on the peer's host (an answer given by hand)."""
        assert self._transport is not None
        self._transport.sendto(data, (self.host, port))

    async def __aexit__(self, *exc: object) -> None:
        assert self._transport is not None
        self._transport.close()


def zone_answer(records: dict[tuple[str, str], list[str]], ttl: int = 60) -> Respond:
    """Well-behaved answers from {(name, type): [rdata, ...]} (NODATA for anything else)."""

    def respond(data: bytes) -> list[bytes]:
        query = DNSRecord.parse(data)
        name = str(query.q.qname).rstrip(".").lower()
        qtype = QTYPE.get(query.q.qtype)
        reply = query.reply()
        for rdata in records.get((name, qtype), []):
            reply.add_answer(*RR.fromZone(f"{name}. {ttl} IN {qtype} {rdata}"))
        return [reply.pack()]

    return respond
