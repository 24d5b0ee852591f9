"""A answers read once per name while they repeat (dns.repeated): the memory gives exactly what
a full reading gives, for random answers and every kind of change to them (TTLs, ID, any other
byte, a cut), takes the repeats a resolver makes, and stays within its bounds."""

from __future__ import annotations

import random
import struct
import tracemalloc
from collections.abc import Callable

import pytest
from dnslib import AAAA, CNAME, EDNS0, QTYPE, RR, SOA, A, DNSRecord

from clat_eamt.dns.records import Unusable, read_records
from clat_eamt.dns.remembered import name_key
from clat_eamt.dns.repeated import Reading, RepeatedAnswers, read_a
from clat_eamt.dns.wire import QTYPE_OPT, WireError

NAMES = ["www.lab.example", "ds.lab.example", "Mixed.Lab.Example"]


def labels(name: str) -> tuple[bytes, ...]:
    return tuple(label.encode() for label in name.split("."))


def an_answer(rng: random.Random, name: str) -> bytes:
    """A resolver's A answer: maybe a CNAME chain, one to three A records (maybe not for the
    name), maybe AAAA in the Additional section, an SOA, an OPT with or without DO."""
    reply = DNSRecord.question(name, "A").reply()
    reply.header.ad = rng.random() < 0.3
    owner = name
    for i in range(rng.choice([0, 0, 1, 2])):
        target = f"edge{i}.cdn.lab.example"
        reply.add_answer(RR(owner, QTYPE.CNAME, rdata=CNAME(target), ttl=rng.randrange(1, 900)))
        owner = target
    if rng.random() < 0.1:
        owner = "elsewhere.lab.example"  # no address for the name: NODATA
    for i in range(rng.choice([1, 1, 2, 3])):
        reply.add_answer(RR(owner, rdata=A(f"192.0.2.{i + 1}"), ttl=rng.randrange(0, 900)))
    if rng.random() < 0.3:
        reply.add_ar(RR(owner, QTYPE.AAAA, rdata=AAAA("2001:db8:1::1"), ttl=rng.randrange(900)))
    if rng.random() < 0.2:
        soa = SOA("ns.lab.example", "admin.lab.example", (1, 7200, 3600, 1209600, 60))
        reply.add_auth(RR("lab.example", QTYPE.SOA, rdata=soa, ttl=rng.randrange(900)))
    if rng.random() < 0.7:
        reply.add_ar(EDNS0(udp_len=1232, flags="do" if rng.random() < 0.5 else ""))
    reply.header.id = rng.randrange(1 << 16)
    return reply.pack()


def ttl_fields(data: bytes) -> list[int]:
    return [r.ttl_at for r in read_records(data)[2] if r.rtype != QTYPE_OPT]


def changed(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    """The same answer as a resolver gives it again (new ID, TTLs counted down or up), or with
    any other byte changed, or cut short."""
    out = bytearray(data)
    kind = rng.choice(["ttls", "ttls", "ttls", "id", "byte", "cut", "top bit"])
    if kind in ("ttls", "top bit"):
        for at in ttl_fields(data):
            if rng.random() < 0.7:
                value = rng.randrange(0, 1000) if kind == "ttls" else 0x80000000 + rng.randrange(9)
                out[at : at + 4] = struct.pack("!I", value)
    elif kind == "id":
        out[:2] = struct.pack("!H", rng.randrange(1 << 16))
    elif kind == "byte":
        at = rng.randrange(len(out))
        out[at] ^= 1 << rng.randrange(8)
    else:
        del out[rng.randrange(12, len(out)) :]
    return kind, bytes(out)


def outcome(read: Callable[..., Reading], *args: object) -> object:
    """A reading, or the error it raised (its message: the same error either way)."""
    try:
        return read(*args)
    except (WireError, Unusable) as error:
        return (type(error).__name__, str(error))


@pytest.mark.parametrize("seed", range(6))
def test_the_memory_reads_what_a_full_reading_reads(seed):
    rng = random.Random(seed)
    memory = RepeatedAnswers(capacity=2)  # three names: forgetting happens too
    last = {name: an_answer(rng, name) for name in NAMES}
    kinds: dict[str, int] = {}
    for _ in range(600):
        name = rng.choice(NAMES)
        if rng.random() < 0.1:
            last[name] = an_answer(rng, name)  # the name's answer changed
        kind, data = changed(rng, last[name])
        hits = memory.hits
        got = outcome(memory.read, name_key(labels(name)), data, labels(name))
        assert got == outcome(read_a, data, labels(name)), (kind, data.hex())
        kinds[kind] = kinds.get(kind, 0) + (memory.hits - hits)
    # the resolver's repeats were taken from memory; a change to any other byte never was
    assert kinds["ttls"] > 50 and kinds["id"] > 10 and kinds["top bit"] > 5
    assert kinds["byte"] < 25  # only flips that land in a TTL field (a TTL change) hit


def test_a_repeat_reads_the_ttls_it_carries():
    memory = RepeatedAnswers()
    name = "www.lab.example"
    reply = DNSRecord.question(name, "A").reply()
    reply.add_answer(RR(name, QTYPE.CNAME, rdata=CNAME("edge.lab.example"), ttl=300))
    reply.add_answer(RR("edge.lab.example", rdata=A("192.0.2.10"), ttl=60))
    reply.add_ar(RR("edge.lab.example", QTYPE.AAAA, rdata=AAAA("2001:db8:1::10"), ttl=90))
    first = memory.read(name_key(labels(name)), reply.pack(), labels(name))
    reply.header.id += 1
    reply.rr[0].ttl, reply.rr[1].ttl, reply.ar[0].ttl = 250, 10, 40  # counted down
    again = memory.read(name_key(labels(name)), reply.pack(), labels(name))
    assert memory.hits == 1
    assert (first.a.ttl, first.additional.ttl) == (60, 60)  # the Additional's: with the A's
    assert (again.a.ttl, again.additional.ttl) == (10, 10)
    assert again.a.addresses is first.a.addresses  # the same objects: the engine compares them


def test_the_memory_is_bounded_and_small():
    memory = RepeatedAnswers(capacity=300)
    answers = []
    for i in range(600):
        name = f"name{i}.cdn.lab.example"
        reply = DNSRecord.question(name, "A").reply()
        reply.add_answer(RR(name, rdata=A("192.0.2.10"), ttl=60))
        reply.add_ar(EDNS0(udp_len=1232))
        answers.append((name_key(labels(name)), reply.pack(), labels(name)))
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for key, data, name in answers[:300]:
        memory.read(key, data, name)
    per_name = (tracemalloc.get_traced_memory()[0] - before) / 300
    tracemalloc.stop()
    size = len(answers[0][1])
    assert per_name < size + 1000, (per_name, size)  # the module's figure
    for key, data, name in answers[300:]:
        memory.read(key, data, name)
    assert len(memory) == 300 and memory.hits == 0
    memory.read(*answers[0])  # forgotten, the oldest first
    assert memory.hits == 0
    memory.read(*answers[-1])
    assert memory.hits == 1
