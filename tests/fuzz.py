"""`make fuzz`: a million random and mutated DNS messages through the proxy's request and answer
paths, on loopback only, bounded in time; `make test` runs a short version (test_fuzz_run).

The proxy (``Proxy.handle``, the resolver seam every UDP and TCP message goes through) forwards
to a scripted resolver on 127.0.0.1 that answers each query well, or broken in one of the ways
a resolver or an attacker can break an answer (cut, flipped bytes, counts that lie, wrong
rdlength, class CH, thousands of records, compression loops, garbage after the question).  The
A answers go through the real decision core (an ``Engine``), so the table sees them too.  Every
exception that leaves ``handle`` or that the proxy had to catch as an internal error counts as
escaped.  Afterwards a good query, sent over a real UDP socket to the proxy's listener, must be
answered with its records.

Last line: `fuzz: N messages, E escaped exceptions, proxy answered afterwards` (or `... proxy
did NOT answer afterwards`); exit status 0 only for 0 escaped and an answer.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import struct
import time
from ipaddress import IPv4Address, ip_address

from dnslib import EDNS0, QTYPE, RR, A, DNSRecord, EDNSOption

from clat_eamt.config.nettypes import ServerAddress
from clat_eamt.core.decide import HostMode
from clat_eamt.core.model import Observation
from clat_eamt.dns.proxy import Proxy, ProxySettings
from clat_eamt.dns.server import DnsServer
from clat_eamt.dns.upstream import Upstreams
from clat_eamt.dns.wire import read_question
from tests.unit.corekit import engine
from tests.unit.dnspeer import ScriptedPeer, zone_answer

ZONE = {
    ("ds.lab.example", "A"): ["192.0.2.10", "192.0.2.11"],
    ("ds.lab.example", "AAAA"): ["2001:db8:1::10"],
    ("v4.lab.example", "A"): ["192.0.2.20"],
    # the answer path: the resolver breaks every answer for names under fz.lab.example
    ("ds.fz.lab.example", "A"): ["192.0.2.40", "192.0.2.41"],
    ("ds.fz.lab.example", "AAAA"): ["2001:db8:1::40"],
    ("v4.fz.lab.example", "A"): ["192.0.2.50"],
}
BROKEN = ["ds.fz.lab.example", "v4.fz.lab.example"]
PEER = IPv4Address("127.0.0.1")
WORKERS = 32
SHOWN = ("malformed.queries", "malformed.answers", "queries.a", "created", "addresses.skipped")
NAMES = ["ds.lab.example", "v4.lab.example", "nx.lab.example", "a.b.c.lab.example"]


def _query(name: str, qtype: str, options: bool) -> bytes:
    record = DNSRecord.question(name, qtype)
    if options:  # dnsmasq's options: MAC (65001) and client subnet (8)
        mac = EDNSOption(65001, b"\x02\0\0\0\0\x01")
        record.add_ar(EDNS0(udp_len=1232, opts=[mac, EDNSOption(8, b"\0\1\x20\0\xc0\0\2\x0a")]))
    return bytes(record.pack())


# Made once: building messages with dnslib would cost more than the proxy reading them.
QUERIES = {
    (name, qtype, options): _query(name, qtype, options)
    for name in NAMES + BROKEN
    for qtype in ("A", "AAAA", "TXT", "MX")
    for options in (False, True)
}


def good_query(rng: random.Random, name: str | None = None, qtype: str = "A") -> bytes:
    data = QUERIES[(name or rng.choice(NAMES), qtype, rng.random() < 0.5)]
    return rng.randbytes(2) + data[2:]  # a fresh ID


def many_records(query: bytes, end: int, count: int) -> bytes:
    """An answer of ``count`` A records (each owner a pointer to the question's name)."""
    header = query[:2] + b"\x81\x80" + struct.pack("!HHHH", 1, count, 0, 0)
    record = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4)
    body = b"".join(record + bytes((192, 0, 2, i % 256)) for i in range(count))
    return header + query[12:end] + body


def mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        kind = rng.randrange(5)
        if kind == 0 and out:
            out[rng.randrange(len(out))] ^= rng.randint(1, 255)
        elif kind == 1:
            del out[rng.randint(0, len(out)) :]
        elif kind == 2:
            at = rng.randint(0, len(out))
            out[at:at] = rng.randbytes(rng.randint(1, 8))
        elif kind == 3 and len(out) >= 12:
            at = rng.choice([4, 6, 8, 10])
            out[at : at + 2] = struct.pack("!H", rng.randrange(0x10000))
        elif kind == 4 and len(out) > 14:  # a compression pointer somewhere
            at = rng.randrange(12, len(out) - 1)
            out[at : at + 2] = struct.pack("!H", 0xC000 | rng.randrange(len(out)))
    return bytes(out)


def request(rng: random.Random) -> bytes:
    """A message for the request path: random bytes, a mutated query, or a good one."""
    roll = rng.random()
    if roll < 0.3:
        return rng.randbytes(rng.randint(0, 600))
    if roll < 0.9:
        return mutate(rng, good_query(rng))
    return good_query(rng, qtype=rng.choice(["A", "AAAA", "TXT", "MX"]))


def broken_answer(rng: random.Random, query: bytes, good: bytes) -> bytes:
    """What the scripted resolver sends back: the good answer or a broken one that keeps the
    query's ID and question (so it passes RFC 5452 matching and reaches the reader)."""
    try:
        parsed = DNSRecord.parse(query)
        _, _, end = read_question(query)
    except Exception:
        return good
    roll = rng.randrange(8)
    if roll == 0:
        return good
    if roll == 1:
        return good[:end] + rng.randbytes(rng.randint(0, 300))
    if roll == 2:
        return good[:end] + mutate(rng, good[end:] or b"\0")
    reply = parsed.reply()
    name = str(parsed.q.qname)
    if roll == 3:  # many records (issue 15: 3,000 A records in one answer)
        count = 3000 if rng.random() < 0.02 else rng.choice([20, 100])  # 3,000: ~0.1 s to read
        return many_records(query, end, count)
    reply.add_answer(RR(name, QTYPE.A, ttl=60, rdata=A("192.0.2.30")))
    data = bytearray(reply.pack())
    # the answer's fixed fields sit after the owner name (a 2-byte pointer to the question)
    fixed = end + 2
    if roll == 4 and len(data) >= fixed + 10:  # class CH instead of IN
        data[fixed + 2 : fixed + 4] = struct.pack("!H", 3)
    elif roll == 5 and len(data) >= fixed + 10:  # rdlength that lies
        data[fixed + 8 : fixed + 10] = struct.pack("!H", rng.choice([0, 3, 5, 16, 0xFFFF]))
    elif roll == 6:  # the answer count lies
        data[6:8] = struct.pack("!H", rng.randrange(0x10000))
    else:  # anything after the question
        data = bytearray(data[:end] + mutate(rng, bytes(data[end:])))
    return bytes(data)


async def fuzz(messages: int, seconds: float, seed: int) -> tuple[int, int, bool, dict[str, int]]:
    """(messages sent, escaped exceptions, answered afterwards, the proxy's counters)."""
    rng = random.Random(seed)
    good = zone_answer(ZONE)

    counts = {"sent": 0, "escaped": 0, "generator_errors": 0}
    made: dict[bytes, bytes] = {}  # good answers by query without its ID (dnslib is slow)

    def respond(query: bytes) -> list[bytes]:
        known = made.get(query[2:])
        try:
            replies = [query[:2] + known] if known else good(query)
        except Exception:
            return []
        if known is None and len(made) < 4096:
            made[query[2:]] = replies[0][2:]
        if b"\x02fz\x03lab" not in query[12:].lower():
            return replies
        try:
            return [broken_answer(rng, query, replies[0])]
        except Exception:  # a bug of this generator, not of the proxy: fail the run
            counts["generator_errors"] += 1
            raise

    core = engine(host_mode=HostMode.ALL)  # no neighbour tables here
    now = [0.0]

    async def mapper(obs: Observation) -> None:
        now[0] += 0.01
        core.observe(obs, now[0])
        if now[0] >= 30:  # entries come and go: the tick path gets fuzzed answers' entries too
            core.tick(now[0], None)

    async with ScriptedPeer(respond) as peer:
        servers = [ServerAddress(ip_address("127.0.0.1"), peer.port)]
        proxy = Proxy(Upstreams(lambda: servers, 0.05), mapper, ProxySettings(hold=0.01))
        listener = DnsServer(proxy.handle, "127.0.0.1", 0)
        await listener.start()
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            """Messages one after the other; many workers keep the proxy busy while some of
            them wait for the resolver."""
            while counts["sent"] < messages and time.monotonic() < deadline:
                counts["sent"] += 1
                answer_path = rng.random() < 0.15
                data = good_query(rng, rng.choice(BROKEN)) if answer_path else request(rng)
                try:
                    await proxy.handle(data, PEER, rng.random() < 0.1)
                except Exception:
                    counts["escaped"] += 1

        try:
            await asyncio.gather(*(worker() for _ in range(WORKERS)))
            escaped = counts["escaped"] + proxy.counters["errors.internal"]
            escaped += proxy.counters["errors.mapper"]
            if counts["generator_errors"]:
                failed = counts["generator_errors"]
                raise RuntimeError(f"the fuzzer's resolver failed {failed} times")
            core.table.check_invariants()
            # The fuzz's 50 ms upstream timeout keeps it fast; a loaded machine may miss it for
            # the one query that matters now: give it the daemon's default and a retry.
            proxy.upstreams.timeout = 1.5
            answered = await ask_over_udp(listener.port) or await ask_over_udp(listener.port)
        finally:
            await listener.close()
    return counts["sent"], escaped, answered, dict(proxy.counters + core.counters)


async def ask_over_udp(port: int) -> bool:
    loop = asyncio.get_running_loop()
    query = DNSRecord.question("ds.lab.example", "A")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.connect(("127.0.0.1", port))
        await loop.sock_sendall(sock, query.pack())
        try:
            reply = DNSRecord.parse(await asyncio.wait_for(loop.sock_recv(sock, 4096), 5))
        except TimeoutError:
            return False
    return reply.header.id == query.header.id and len(reply.rr) == 2


def line(sent: int, escaped: int, answered: bool) -> str:
    after = "proxy answered afterwards" if answered else "proxy did NOT answer afterwards"
    return f"fuzz: {sent} messages, {escaped} escaped exceptions, {after}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=1800, help="stop early after this")
    parser.add_argument("--seed", type=int, default=None, help="default: a random one")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    print(f"fuzz: seed {seed} (--seed {seed} repeats this run)", flush=True)
    start = time.monotonic()
    sent, escaped, answered, counters = asyncio.run(fuzz(args.messages, args.seconds, seed))
    took = time.monotonic() - start
    seen = ", ".join(f"{k} {counters.get(k, 0)}" for k in SHOWN)
    print(f"fuzz: {took:.0f} s, {sent / took:.0f} messages/s; {seen}")
    print(line(sent, escaped, answered))
    return 0 if escaped == 0 and answered and sent >= args.messages else 1


if __name__ == "__main__":
    raise SystemExit(main())
