"""The DNS sockets outside asyncio's datagram transport (dns/datagram.py, issue 13): read until
empty but at most READ_BUDGET datagrams per wake-up, sends that never wait, errors the kernel
reports on a connected socket, and the upstream pool's one timer for every timeout."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from ipaddress import ip_address

import pytest
from dnslib import DNSRecord

from clat_eamt.config.nettypes import ServerAddress
from clat_eamt.dns.datagram import READ_BUDGET, DatagramSocket, bound
from clat_eamt.dns.server import MAX_UDP_IN_FLIGHT, DnsServer
from clat_eamt.dns.transport import Transport, UpstreamError
from clat_eamt.dns.wire import read_question
from tests.unit.dnspeer import ScriptedPeer


def query(name: str = "ds.lab.example") -> tuple[bytes, object]:
    data = DNSRecord.question(name, "A").pack()
    _, question, _ = read_question(data)
    return data, question


def test_queued_datagrams_are_all_read_at_most_a_budget_per_wake_up():
    count = READ_BUDGET * 2 + 5

    async def scenario():
        got: list[tuple[int, bytes]] = []
        wake = 0
        sock = bound("127.0.0.1", 0)

        def received(data: bytes, addr: object) -> None:
            got.append((wake, data))

        listener = DatagramSocket(sock, received, lambda error: None)
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(count):  # all queued before the loop looks at the socket
            sender.sendto(i.to_bytes(2, "big"), listener.sockname)
        while len(got) < count:
            wake += 1  # each turn of the loop is a wake-up at most
            await asyncio.sleep(0)
        sender.close()
        listener.close()
        return got

    got = asyncio.run(scenario())
    assert [int.from_bytes(data, "big") for _, data in got] == list(range(count))  # in order
    per_wake: dict[int, int] = {}
    for wake, _ in got:
        per_wake[wake] = per_wake.get(wake, 0) + 1
    assert max(per_wake.values()) == READ_BUDGET  # drained, but within the budget
    assert len(per_wake) == 3


def test_a_callback_that_closes_the_socket_stops_the_reading():
    async def scenario():
        got: list[bytes] = []
        listener: DatagramSocket

        def received(data: bytes, addr: object) -> None:
            got.append(data)
            listener.close()

        listener = DatagramSocket(bound("127.0.0.1", 0), received, lambda error: None)
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _ in range(5):
            sender.sendto(b"x", listener.sockname)
        await asyncio.sleep(0.05)
        sender.close()
        return got, listener.sock.fileno()

    got, fileno = asyncio.run(scenario())
    assert got == [b"x"] and fileno == -1  # closed: nothing read after it


def test_a_send_the_kernel_cannot_take_is_returned_not_raised():
    async def scenario():
        mine, other = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        mine.setblocking(False)
        dgram = DatagramSocket(mine, lambda data, addr: None, lambda error: None)
        errors = [dgram.send(b"x" * 1000) for _ in range(10000)]  # nobody reads `other`
        dgram.close()
        other.close()
        return errors

    errors = asyncio.run(scenario())
    assert errors[0] is None
    assert any(isinstance(error, BlockingIOError) for error in errors)


def test_an_upstream_where_nothing_listens_fails_at_once_not_at_the_timeout():
    """The ICMP port unreachable the kernel reports on the connected socket fails the exchange
    (the text proves it: a timeout would say 'no answer in 5000 ms')."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # the port is free now: nothing listens there
    server = ServerAddress(ip_address("127.0.0.1"), port)

    async def scenario():
        transport = Transport()
        data, question = query()
        try:
            await transport.udp_exchange(server, data, question, 5.0)  # type: ignore[arg-type]
        except UpstreamError as error:
            return str(error)
        finally:
            transport.close()
        return "answered"

    assert "port unreachable" in asyncio.run(scenario())


def test_every_timeout_fires_its_own_exchange_and_frees_its_id():
    """Exchanges sent to a silent peer at different times each fail with the timeout's text,
    none before its own timeout, and leave no ID taken; the timer goes with the transport."""

    async def scenario():
        async with ScriptedPeer(lambda data: []) as peer:
            server = ServerAddress(ip_address("127.0.0.1"), peer.port)
            transport = Transport()
            loop = asyncio.get_running_loop()
            waited: list[float] = []

            async def one(name: str) -> None:
                data, question = query(name)
                start = loop.time()
                try:
                    await transport.udp_exchange(server, data, question, 0.1)  # type: ignore[arg-type]
                finally:
                    waited.append(loop.time() - start)

            waits = []
            for i in range(20):
                waits.append(asyncio.ensure_future(one(f"n{i}.lab.example")))
                await asyncio.sleep(0.005)
            results = await asyncio.gather(*waits, return_exceptions=True)
            taken = sum(len(sock.waiters) for sock in transport.udp[server])
            transport.close()
            return results, waited, taken, transport.sweeping

    results, waited, taken, timer = asyncio.run(scenario())
    assert all(isinstance(r, UpstreamError) and "no answer in 100 ms" in str(r) for r in results)
    assert len(waited) == 20 and min(waited) >= 0.1  # none before its own timeout
    assert taken == 0 and timer is None


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
def test_bound_takes_either_family_and_any_port(address: str):
    sock = bound(address, 0)
    try:
        assert sock.family == (socket.AF_INET6 if ":" in address else socket.AF_INET)
        assert sock.getsockname()[1] != 0 and not sock.getblocking()
    finally:
        sock.close()


def test_binding_loads_no_idna_codec():
    """The listener is bound through getaddrinfo; given the host as a str, the socket module
    encodes it with the idna codec, whose import (stringprep, unicodedata) cost the idle
    daemon 0.5 MB (issue 14).  An IP literal goes as ASCII bytes."""
    code = (
        "import sys; from clat_eamt.dns.datagram import bound; "
        "[bound(a, 0).close() for a in ('127.0.0.1', '::1')]; "
        "print(sorted(m for m in ('encodings.idna', 'stringprep', 'unicodedata') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_listener_serves_at_most_its_cap_in_flight_and_forgets_each_when_done():
    """Queries beyond MAX_UDP_IN_FLIGHT are dropped (the sender retries, as after a loss); each
    task leaves the in-flight set when it ends, so the cap frees up again."""

    async def scenario():
        release = asyncio.Event()
        calls = 0

        async def handler(data: bytes, peer: object, tcp: bool) -> bytes:
            nonlocal calls
            calls += 1
            await release.wait()
            return data

        server = DnsServer(handler, "127.0.0.1", 0)
        await server.start()
        assert server.udp is not None
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sender.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sender.settimeout(2.0)
        for i in range(MAX_UDP_IN_FLIGHT + 50):
            sender.sendto(i.to_bytes(12, "big"), ("127.0.0.1", server.port))
            if i % 50 == 49:
                await asyncio.sleep(0.01)  # the listener reads as they come
        await asyncio.sleep(0.1)
        held, in_flight = calls, len(server.udp.tasks)
        release.set()
        await asyncio.sleep(0.1)
        replies = 0
        sender.setblocking(False)
        while True:
            try:
                sender.recv(64)
            except BlockingIOError:
                break
            replies += 1
        left = len(server.udp.tasks)
        sender.close()
        await server.close()
        return held, in_flight, replies, left

    held, in_flight, replies, left = asyncio.run(scenario())
    assert held == in_flight == replies == MAX_UDP_IN_FLIGHT
    assert left == 0
