"""Issue 26: every memory of the daemon is bounded in bytes as well as in entries.  The real
daemon on loopback (translator none) is flooded with thousands of new names whose answers are
the largest it still reads (``records.MAX_RECORDS`` records: a chain of 15 CNAMEs of long
names, then 16 or 49 A records, and as many AAAA), far more names than any of its memories
keeps; its resident memory must stay within what the README's Security section promises
(``FLOOD_BOUND_MB`` over the idle daemon) and stop growing once they are full.

The A records are 198.18.0.0/15 (benchmarking, RFC 2544: refused as special-purpose, so the
table stays empty and only the memories of answers are measured), the AAAA 2001:db8::/32: data
in answers on loopback only."""

from __future__ import annotations

import asyncio
import socket
import struct
from ipaddress import IPv4Address, IPv6Address

from clat_eamt.dns.records import MAX_RECORDS
from tests.bench.hostile_bench import query
from tests.bench.loopback import loopback_daemon, start_resolver

FLOOD_BOUND_MB = 25  # README, Security: the bounded memories full of the largest answers
LINKS = 15
_RR = struct.Struct("!HHIH")  # type, class, TTL, rdlength


def _name(labels: list[bytes]) -> bytes:
    return b"".join(bytes([len(x)]) + x for x in labels) + b"\x00"


def flood_answer(data: bytes) -> bytes | None:
    """The largest answer read for ``f<N>.flood.example`` (module doc); N even: 16 A records
    and no AAAA (an IPv4-only name: its decision is remembered), odd: 49 of each."""
    end = 12
    while end < len(data) and data[end]:
        end += data[end] + 1
    end += 5
    if end > len(data):
        return None
    first = data[13 : 13 + data[12]]
    n = int(first[1:]) if first[1:].isdigit() else 0
    qtype = int.from_bytes(data[end - 4 : end - 2])
    records, count, owner = [], 0, b"\xc0\x0c"
    for link in range(LINKS):  # long names: about 240 bytes each
        target = [b"%d-%d" % (n, link) + b"x" * 56, b"y" * 60, b"z" * 60, b"w" * 50, b"example"]
        wire = _name(target)
        records.append(owner + _RR.pack(5, 1, 86400, len(wire)) + wire)
        owner = _name(target)
        count += 1
    size = 16 if n % 2 == 0 else MAX_RECORDS - LINKS
    if qtype == 1:
        for i in range(size):
            address = IPv4Address(int(IPv4Address("198.18.0.0")) + (n * 64 + i) % (1 << 17))
            records.append(owner + _RR.pack(1, 1, 86400, 4) + address.packed)
            count += 1
    elif qtype == 28 and n % 2:
        for i in range(size):
            address = IPv6Address(int(IPv6Address("2001:db8:f100::")) + (n << 16) + i)
            records.append(owner + _RR.pack(28, 1, 86400, 16) + address.packed)
            count += 1
    header = data[:2] + b"\x81\x80" + struct.pack("!HHHH", 1, count, 0, 0)
    return header + data[12:end] + b"".join(records)


async def _ask_all(port: int, first: int, count: int, parallel: int = 16) -> int:
    """Ask A for ``count`` new names, ``parallel`` at a time; how many were answered."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)  # 16 answers of 20 KB
    sock.setblocking(False)
    sock.connect(("127.0.0.1", port))
    answered = 0
    try:
        for start in range(first, first + count, parallel):
            batch = range(start, min(start + parallel, first + count))
            for n in batch:
                await loop.sock_sendall(sock, query(n & 0xFFFF, f"f{n}.flood.example"))
            for _ in batch:
                try:
                    await asyncio.wait_for(loop.sock_recv(sock, 65535), 5)
                    answered += 1
                except TimeoutError:
                    return answered  # the daemon stopped answering: no point going on
    finally:
        sock.close()
    return answered


def test_a_flood_of_the_largest_answers_read_stays_within_the_memory_bound():
    async def scenario() -> tuple[float, float, float, int, dict]:
        transport, upstream = await start_resolver(flood_answer)
        try:
            with loopback_daemon(upstream) as daemon:
                await _ask_all(daemon.port, 10**6, 200)  # warm up: imports, first allocations
                await asyncio.sleep(1.2)
                rss0 = daemon.rss_mb()
                answered = await _ask_all(daemon.port, 0, 4000)
                rss1 = daemon.rss_mb()
                answered += await _ask_all(daemon.port, 4000, 1500)
                rss2 = daemon.rss_mb()
                return rss0, rss1, rss2, answered, daemon.call("status")
        finally:
            transport.close()

    rss0, rss1, rss2, answered, status = asyncio.run(scenario())
    assert answered == 5500
    print(f"flood: rss {rss0:.1f} MB idle, {rss1:.1f} after 4000 names, {rss2:.1f} after 5500")
    memory = status["memory"]
    assert memory["answers_seen"]["pairs"] <= memory["answers_seen"]["capacity"]
    for name in ("aaaa_kept", "answers_read", "decisions"):
        assert memory[name][0] <= memory[name][1]
    assert memory["answers_seen"]["refused"] > 0  # the flood did fill it
    assert rss2 - rss0 <= FLOOD_BOUND_MB, (rss0, rss1, rss2)
    assert rss2 - rss1 <= 2.0, (rss0, rss1, rss2)  # full: no growth with more names
