"""records.read_records takes two shortcuts for owner names (a pointer to the question's name,
the root of an OPT); reading every owner in full must give the same records or the same error,
on well-formed answers and on every one-byte mutation of them."""

from __future__ import annotations

import random

import pytest
from dnslib import EDNS0, RR, DNSRecord

from clat_eamt.dns.records import Unusable, read_records
from clat_eamt.dns.wire import WireError


def answer(name: str = "Ds.Lab.Example", qtype: str = "A") -> bytes:
    query = DNSRecord.question(name, qtype)
    reply = query.reply()
    reply.add_answer(*RR.fromZone(f"{name}. 60 IN CNAME edge.cdn.example."))
    reply.add_answer(*RR.fromZone("edge.cdn.example. 30 IN A 192.0.2.10"))
    reply.add_answer(*RR.fromZone(f"{name}. 60 IN A 192.0.2.11"))
    reply.add_ar(*RR.fromZone(f"{name}. 60 IN AAAA 2001:db8:1::10"))
    reply.add_ar(EDNS0(udp_len=1232))
    return bytes(reply.pack())


def both(data: bytes) -> tuple[object, object]:
    def read(shortcuts: bool) -> object:
        try:
            return read_records(data, shortcuts)
        except WireError as error:
            return ("error", str(error), error.id)
        except Unusable as error:
            return ("unusable", str(error))

    return read(True), read(False)


@pytest.mark.parametrize("name", ["ds.lab.example", "Ds.Lab.Example", "a." * 61 + "example"])
def test_owner_shortcuts_read_what_the_full_names_say(name: str) -> None:
    data = answer(name)
    fast, full = both(data)
    assert fast == full
    _, _, records = read_records(data)
    assert records[0].owner == tuple(label.lower().encode() for label in name.split("."))


def test_a_name_too_long_to_point_to_is_refused_either_way() -> None:
    """63 labels fill read_name's 64 steps in the question; through a pointer they need 65."""
    fast, full = both(answer("a." * 62 + "example"))
    assert fast == full and isinstance(fast, tuple) and fast[0] == "error"


def test_owner_shortcuts_agree_on_every_one_byte_mutation() -> None:
    rng = random.Random(13)
    for data in (answer(), answer("v4only.lab.example", "AAAA")):
        for offset in range(len(data)):
            for value in {0x00, 0x0C, 0xC0, 0x3F, rng.randrange(256)}:
                mutated = data[:offset] + bytes([value]) + data[offset + 1 :]
                fast, full = both(mutated)
                assert fast == full, (offset, value)
