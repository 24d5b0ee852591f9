"""The conntrack event filter and codec of the safety net (``dataplane.ctevents``), without a
kernel: the BPF program is run by a small interpreter of the classic BPF instructions it uses
(semantics of the kernel's ``bpf_convert_filter``/``sk_run_filter``: big-endian loads, an
out-of-bounds load returns 0), on messages laid out as ctnetlink lays out its events."""

from __future__ import annotations

import socket
import struct
from ipaddress import IPv4Address, IPv6Address

import pytest

from clat_eamt.dataplane.ctevents import (
    CT_DELETE,
    CTA_ID,
    CTA_MARK,
    CTA_STATUS,
    MAX_ATTRS,
    delete_request,
    mark_filter,
    parse_events,
)
from clat_eamt.dataplane.guard import CONFIRMED, REPORTED, STEERED


def run_bpf(program: bytes, packet: bytes) -> int:
    ins = [struct.unpack_from("=HBBI", program, i) for i in range(0, len(program), 8)]
    a = x = pc = 0
    mem = [0] * 16

    def load(off: int, size: int) -> int | None:
        if off < 0 or off + size > len(packet):
            return None
        return int.from_bytes(packet[off : off + size], "big")

    while True:
        code, jt, jf, k = ins[pc]
        pc += 1
        if code in (0x48, 0x50, 0x40):  # ldh/ldb/ld [x + k]
            value = load(x + k, {0x48: 2, 0x50: 1, 0x40: 4}[code])
            if value is None:
                return 0
            a = value
        elif code == 0x01:
            x = k
        elif code == 0x61:
            x = mem[k]
        elif code == 0x02:
            mem[k] = a
        elif code == 0x64:
            a = (a << k) & 0xFFFFFFFF
        elif code == 0x0C:
            a = (a + x) & 0xFFFFFFFF
        elif code == 0x04:
            a = (a + k) & 0xFFFFFFFF
        elif code == 0x54:
            a &= k
        elif code == 0x07:
            x = a
        elif code == 0x87:
            a = x
        elif code == 0x15:
            pc += jt if a == k else jf
        elif code == 0x45:
            pc += jt if a & k else jf
        elif code == 0x05:
            pc += k
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"opcode {code:#x} not interpreted")


def nla(kind: int, payload: bytes, nested: bool = False) -> bytes:
    head = struct.pack("=HH", 4 + len(payload), kind | (0x8000 if nested else 0))
    return head + payload + b"\0" * (-len(payload) % 4)


def tuple_attr(kind: int, src: str, dst: str) -> bytes:
    v6 = ":" in src
    ips = nla(3 if v6 else 1, socket.inet_pton(socket.AF_INET6 if v6 else socket.AF_INET, src))
    ips += nla(4 if v6 else 2, socket.inet_pton(socket.AF_INET6 if v6 else socket.AF_INET, dst))
    proto = nla(1, b"\x06") + nla(2, struct.pack("!H", 40000)) + nla(3, struct.pack("!H", 8080))
    return nla(kind, nla(1, ips, True) + nla(2, proto, True), True)


def event(mark: int | None, *, family: int = socket.AF_INET, ident: int = 7, new: bool = True,
          padding: int = 0) -> bytes:  # fmt: skip
    v6 = family == socket.AF_INET6
    orig = tuple_attr(1, "2001:db8:ce::1" if v6 else "198.51.100.10",
                      "2001:db8:64::6440:1" if v6 else "192.0.2.1")  # fmt: skip
    reply = tuple_attr(2, "2001:db8:1::10" if v6 else "100.64.0.1",
                       "2001:db8:ce::1" if v6 else "198.51.100.10")  # fmt: skip
    attrs = orig + reply + nla(CTA_STATUS, struct.pack("!I", 0x188))
    attrs += b"".join(nla(20 + i, b"\0" * 12) for i in range(padding))  # other attributes
    if mark is not None:
        attrs += nla(CTA_MARK, struct.pack("!I", mark))
    attrs += nla(CTA_ID, struct.pack("!I", ident))
    body = struct.pack("=BBH", family, 0, 0) + attrs
    flags = 0x600 if new else 0
    return struct.pack("=IHHII", 16 + len(body), (1 << 8) | 0, flags, 0, 0) + body


@pytest.mark.parametrize(
    ("mark", "kept"),
    [
        (STEERED, True),
        (STEERED | CONFIRMED, True),
        (STEERED | CONFIRMED | REPORTED, False),
        (0x3F00, False),
        (None, False),
        (0, False),
        (CONFIRMED, False),
    ],
)
def test_the_kernel_filter_keeps_only_steered_events(mark: int | None, kept: bool):
    assert bool(run_bpf(mark_filter(), event(mark))) == kept


def test_the_filter_finds_the_mark_behind_other_attributes_up_to_its_limit():
    assert run_bpf(mark_filter(), event(STEERED, padding=MAX_ATTRS - 6))
    assert not run_bpf(mark_filter(), event(STEERED, padding=MAX_ATTRS))  # beyond: dropped


def test_events_parse_into_legs_with_their_targets():
    (v4,) = parse_events(event(STEERED))
    assert (v4.kind, v4.family, v4.ident, v4.confirmed) == ("new", socket.AF_INET, 7, False)
    assert v4.reply_src == IPv4Address("100.64.0.1")
    (v6,) = parse_events(event(STEERED | CONFIRMED, family=socket.AF_INET6, new=False))
    assert (v6.kind, v6.confirmed) == ("update", True)
    assert v6.reply_src == IPv6Address("2001:db8:1::10")
    assert parse_events(event(None)) == []


def test_a_deletion_carries_the_original_tuple_as_received():
    (leg,) = parse_events(event(STEERED, family=socket.AF_INET6))
    request = delete_request(leg, 5)
    length, kind, flags, seq, _ = struct.unpack_from("=IHHII", request)
    assert (length, kind, seq, flags & 0x5) == (len(request), CT_DELETE, 5, 0x5)
    assert request[16] == socket.AF_INET6
    assert request[20:] == leg.orig
