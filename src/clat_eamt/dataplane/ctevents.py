"""conntrack events of steered flows only, and the deletion of their entries (issue 25).

The safety net (``core.safety``) must hear of each steered connection's start, its first reply
and its end, without the 1 s tick and without reading a router's whole conntrack table (tens
of thousands of entries from every LAN device).  The guard's rules (``dataplane.guard``) put
the bit STEERED in the conntrack mark of both legs of every steered flow.  This socket joins
ctnetlink's event groups (NFNLGRP_CONNTRACK_NEW, _UPDATE, _DESTROY) with a classic BPF socket
filter that walks each event's top-level attributes to CTA_MARK and keeps only the events whose
mark holds STEERED and not REPORTED: the kernel drops every other event before it is queued to
the socket, so the daemon wakes per steered connection (two events per leg of a connection
that works: new, and the mark its first reply set; an unanswered one also its end), never per
entry of the table.

Netlink attributes are host byte order (little endian on every OpenWrt target we ship for, and
here); classic BPF loads are big endian: the length is assembled from its two bytes, the type is
compared as the byte pair it is in memory, CTA_MARK's value is big endian (nla_put_be32) and
read as is.  An out-of-bounds load ends a BPF program with 0 (drop), which is what an event
without CTA_MARK needs anyway.

Deleting an entry is IPCTNL_MSG_CT_DELETE with the original tuple exactly as the event carried
it (and its zone), in the family of the leg.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from clat_eamt.dataplane.conntrack import (
    CTA_TUPLE_IP,
    CTA_TUPLE_ORIG,
    CTA_TUPLE_REPLY,
    NETLINK_NETFILTER,
    NLM_F_REQUEST,
    NLMSG_ERROR,
    messages,
    open_netlink,
)
from clat_eamt.dataplane.guard import CONFIRMED, REPORTED, STEERED

log = logging.getLogger(__name__)

_NLMSG = struct.Struct("=IHHII")
_NLA = struct.Struct("=HH")
GROUPS = 0b111  # NFNLGRP_CONNTRACK_NEW (1), _UPDATE (2), _DESTROY (3) as a bind(2) bitmask
IPCTNL_MSG_CT_NEW, IPCTNL_MSG_CT_DELETE = 0, 2
CT_DELETE = (1 << 8) | IPCTNL_MSG_CT_DELETE
CT_GET = (1 << 8) | 1  # IPCTNL_MSG_CT_GET
NLM_F_ACK = 0x4
CTA_STATUS, CTA_MARK, CTA_ID, CTA_ZONE = 3, 8, 12, 18
CTA_IP_V4_SRC, CTA_IP_V6_SRC = 1, 3
NLA_TYPE_MASK = 0x3FFF
SO_ATTACH_FILTER = 26
MAX_ATTRS = 24  # top-level attributes the filter looks through (an event has 10 to 16)
_RECV = 1 << 16


@dataclass(frozen=True, slots=True)
class CtEvent:
    """One steered leg's event."""

    kind: str  # "new", "update", "destroy"
    family: int  # socket.AF_INET (the LAN's leg) or AF_INET6 (the CLAT's leg)
    ident: int  # CTA_ID: with the family, the flow's key
    mark: int
    reply_src: IPv4Address | IPv6Address | None  # P on the IPv4 leg, X on the IPv6 leg
    orig: bytes  # CTA_TUPLE_ORIG attribute as received (for the deletion)
    zone: bytes = b""  # CTA_ZONE attribute as received, if any

    @property
    def key(self) -> tuple[int, int]:
        return (self.family, self.ident)

    @property
    def confirmed(self) -> bool:
        return bool(self.mark & CONFIRMED)


# --- the kernel-side filter ---------------------------------------------------------------------


def _ins(code: int, k: int = 0, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def mark_filter(bit: int = STEERED, reported: int = REPORTED) -> bytes:
    """Classic BPF: accept an event whose CTA_MARK has ``bit`` but not ``reported``, drop all
    others (module doc)."""
    ldx_imm, ldh_ind, ldb_ind, ld_ind = 0x01, 0x48, 0x50, 0x40
    lsh, add_x, add_k, and_k, tax, txa = 0x64, 0x0C, 0x04, 0x54, 0x07, 0x87
    st, ldx_mem = 0x02, 0x61
    jeq, jset, ja, ret = 0x15, 0x45, 0x05, 0x06
    body: list[bytes] = [_ins(ldx_imm, _NLMSG.size + 4)]  # X: the first attribute
    step = [
        _ins(ldh_ind, 2),  # A = the type's two bytes as big endian: CTA_MARK is 0x0800
        _ins(jeq, 0x0800, 0, 1),
        None,  # ja found (filled below: conditional jumps reach 255 instructions, ja 2**32)
        _ins(ldb_ind, 1),
        _ins(lsh, 8),
        _ins(st, 0),  # M0 = high byte << 8
        _ins(txa),
        _ins(st, 1),  # M1 = offset
        _ins(ldb_ind, 0),  # A = low byte (X still the offset)
        _ins(ldx_mem, 0),
        _ins(add_x),  # A = length
        _ins(add_k, 3),
        _ins(and_k, 0xFFFC),  # NLA_ALIGN
        _ins(ldx_mem, 1),
        _ins(add_x),
        _ins(tax),  # X = the next attribute
    ]
    per = len(step)
    found_at = 1 + per * MAX_ATTRS + 1  # after the last step and its "drop"
    for i in range(MAX_ATTRS):
        here = 1 + i * per
        for j, ins in enumerate(step):
            if ins is None:
                body.append(_ins(ja, found_at - (here + j + 1)))
            else:
                body.append(ins)
    body.append(_ins(ret, 0))  # not found within MAX_ATTRS
    body += [
        _ins(ld_ind, 4),
        _ins(jset, bit, 0, 2),
        _ins(jset, reported, 1, 0),
        _ins(ret, 0xFFFF),
        _ins(ret, 0),
    ]
    assert len(body) < 4096  # BPF_MAXINSNS
    return b"".join(body)


def attach_filter(sock: socket.socket, program: bytes) -> None:
    buffer = ctypes.create_string_buffer(program)
    fprog = struct.pack("HL", len(program) // 8, ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)  # the kernel copies it


# --- parsing ------------------------------------------------------------------------------------


def _attrs(buf: bytes, start: int, end: int) -> dict[int, tuple[int, int]]:
    """type -> (start, end) of each attribute in buf[start:end], headers included."""
    found: dict[int, tuple[int, int]] = {}
    while start + 4 <= end:
        length, kind = _NLA.unpack_from(buf, start)
        if length < 4 or start + length > end:
            raise ValueError("malformed netlink attribute")
        found[kind & NLA_TYPE_MASK] = (start, start + length)
        start += (length + 3) & ~3
    return found


def _reply_src(buf: bytes, span: tuple[int, int]) -> IPv4Address | IPv6Address | None:
    ip = _attrs(buf, span[0] + 4, span[1]).get(CTA_TUPLE_IP)
    if ip is None:
        return None
    inner = _attrs(buf, ip[0] + 4, ip[1])
    if CTA_IP_V4_SRC in inner:
        s = inner[CTA_IP_V4_SRC][0] + 4
        return IPv4Address(buf[s : s + 4])
    if CTA_IP_V6_SRC in inner:
        s = inner[CTA_IP_V6_SRC][0] + 4
        return IPv6Address(buf[s : s + 16])
    return None


def parse_events(buf: bytes) -> list[CtEvent]:
    """The conntrack events in one datagram (events without mark or id are left out)."""
    events: list[CtEvent] = []
    for kind, flags, start, end in messages(buf):
        if kind >> 8 == 1 and (kind & 0xFF) in (IPCTNL_MSG_CT_NEW, IPCTNL_MSG_CT_DELETE):
            family = buf[start]
            attrs = _attrs(buf, start + 4, end)  # after the nfgenmsg
            if CTA_MARK in attrs and CTA_ID in attrs and CTA_TUPLE_ORIG in attrs:
                if kind & 0xFF == IPCTNL_MSG_CT_DELETE:
                    what = "destroy"
                else:
                    what = "new" if flags & 0x600 == 0x600 else "update"  # NLM_F_CREATE|EXCL
                (mark,) = struct.unpack_from("!I", buf, attrs[CTA_MARK][0] + 4)
                (ident,) = struct.unpack_from("!I", buf, attrs[CTA_ID][0] + 4)
                orig = attrs[CTA_TUPLE_ORIG]
                reply = attrs.get(CTA_TUPLE_REPLY)
                zone = attrs.get(CTA_ZONE)
                events.append(CtEvent(
                    what, family, ident, mark,
                    _reply_src(buf, reply) if reply is not None else None,
                    bytes(buf[orig[0] : orig[1]]),
                    bytes(buf[zone[0] : zone[1]]) if zone is not None else b"",
                ))  # fmt: skip
    return events


def delete_request(event: CtEvent, seq: int) -> bytes:
    return _request(event, CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, seq)


def get_request(event: CtEvent, seq: int) -> bytes:
    return _request(event, CT_GET, NLM_F_REQUEST, seq)


def _request(event: CtEvent, kind: int, flags: int, seq: int) -> bytes:
    body = struct.pack("=BBH", event.family, 0, 0) + _pad(event.orig) + _pad(event.zone)
    return _NLMSG.pack(_NLMSG.size + len(body), kind, flags, seq, 0) + body


def _pad(attr: bytes) -> bytes:
    return attr + b"\0" * (-len(attr) % 4)


# --- I/O ----------------------------------------------------------------------------------------


class CtEvents:
    """The event socket on the running loop, and a second socket for deletions."""

    def __init__(self, on_events: Callable[[list[CtEvent]], None], netns: str | None = None):
        self.on_events, self.netns = on_events, netns
        self.sock: socket.socket | None = None
        self.control: socket.socket | None = None
        self.lost = 0  # ENOBUFS: the socket's queue overflowed (events lost)
        self.received = 0  # events the kernel's filter let through
        self._seq = 0

    def start(self) -> None:
        sock = open_netlink(NETLINK_NETFILTER, self.netns)
        try:
            attach_filter(sock, mark_filter())
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.bind((0, GROUPS))
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.control = open_netlink(NETLINK_NETFILTER, self.netns)
        self.control.settimeout(1.0)
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        assert self.sock is not None
        events: list[CtEvent] = []
        while True:
            try:
                data = self.sock.recv(_RECV)
            except BlockingIOError:
                break
            except OSError as error:  # ENOBUFS: events lost; the windows' timers still run
                self.lost += 1
                log.warning("conntrack events lost: %s", error)
                continue
            try:
                events += parse_events(data)
            except ValueError as error:
                log.warning("conntrack event unreadable: %s", error)
        if events:
            self.received += len(events)
            self.on_events(events)

    def delete(self, events: list[CtEvent]) -> int:
        """Delete these legs' conntrack entries; how many the kernel deleted (a leg already
        gone answers ENOENT)."""
        if self.control is None or not events:
            return 0
        for event in events:
            self._seq += 1
            self.control.send(delete_request(event, self._seq))
        deleted = 0
        for _ in events:
            with contextlib.suppress(OSError):
                data = self.control.recv(_RECV)
                if len(data) >= _NLMSG.size + 4 and _NLMSG.unpack_from(data)[1] == NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", data, _NLMSG.size)
                    deleted += code == 0
        return deleted

    def answered(self, legs: list[CtEvent]) -> set[tuple[int, int]]:
        """The keys of the legs whose entry's mark says CONFIRMED now: a reply came whose
        event was lost (ENOBUFS); such a flow works and must not be rescued."""
        found: set[tuple[int, int]] = set()
        if self.control is None:
            return found
        for leg in legs:
            self._seq += 1
            with contextlib.suppress(OSError, ValueError):
                self.control.send(get_request(leg, self._seq))
                for now in parse_events(self.control.recv(_RECV)):
                    if now.confirmed:
                        found.add(leg.key)
        return found

    def stop(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None
        if self.control is not None:
            self.control.close()
            self.control = None
