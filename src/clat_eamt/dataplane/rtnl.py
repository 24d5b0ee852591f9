"""The three rtnetlink dumps the daemon reads: links (names), addresses and neighbours.

Its own small codec instead of pyroute2, for the router's memory: ``import pyroute2`` loads
every part of the library (ndb, ipdb, ipset, nl80211, ...), about 25 MB of RSS and 0.2-0.5 s
of start-up, for three dumps that need a hundred lines.  The parsers are pure (bytes in,
records out); ``dump`` is the blocking socket exchange (conntrack.open_netlink: inside a
network namespace if asked).  Formats: linux/netlink.h (nlmsghdr, NLMSG_DONE / NLMSG_ERROR,
NLM_F_REQUEST | NLM_F_DUMP), linux/rtnetlink.h (rtattr, RTM_* types), linux/if_link.h
(ifinfomsg, IFLA_IFNAME), linux/if_addr.h (ifaddrmsg, IFA_ADDRESS / IFA_LOCAL) and
linux/neighbour.h (ndmsg, NDA_DST / NDA_LLADDR).
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address

from clat_eamt.dataplane.netns import socket_in

NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
RTM_NEWLINK, RTM_GETLINK = 16, 18
RTM_NEWADDR, RTM_GETADDR = 20, 22
RTM_NEWNEIGH, RTM_GETNEIGH = 28, 30
IFLA_IFNAME = 3
IFA_ADDRESS, IFA_LOCAL = 1, 2
NDA_DST, NDA_LLADDR = 1, 2

_NLMSGHDR = struct.Struct("=IHHII")
_RTATTR = struct.Struct("=HH")
_IFINFOMSG = struct.Struct("=BxHiII")
_IFADDRMSG = struct.Struct("=BBBBI")
_NDMSG = struct.Struct("=BxxxiHBB")
_RECV = 65536


class NetlinkError(OSError):
    pass


@dataclass(frozen=True)
class Link:
    index: int
    name: str


@dataclass(frozen=True)
class Address:
    index: int
    address: IPv4Address | IPv6Address
    prefixlen: int


@dataclass(frozen=True)
class NeighbourEntry:
    ifindex: int
    state: int
    dst: IPv4Address | IPv6Address | None
    lladdr: str | None  # "aa:bb:cc:dd:ee:ff"


def _align(n: int) -> int:
    return (n + 3) & ~3


def attributes(data: bytes) -> dict[int, bytes]:
    """rtattrs (type -> payload); nested and repeated ones are not needed here."""
    found: dict[int, bytes] = {}
    offset = 0
    while offset + _RTATTR.size <= len(data):
        length, kind = _RTATTR.unpack_from(data, offset)
        if length < _RTATTR.size or offset + length > len(data):
            break
        found.setdefault(kind & 0x3FFF, data[offset + _RTATTR.size : offset + length])
        offset += _align(length)
    return found


def messages(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(type, payload) of each message of one datagram; NLMSG_DONE ends it, NLMSG_ERROR raises
    (an error 0 is an acknowledgement)."""
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > len(data):
            raise NetlinkError(errno.EBADMSG, "truncated netlink message")
        payload = data[offset + _NLMSGHDR.size : offset + length]
        if kind == NLMSG_ERROR:
            code = -struct.unpack_from("=i", payload)[0] if len(payload) >= 4 else errno.EBADMSG
            if code:
                raise NetlinkError(code, os.strerror(code))
        yield kind, payload
        offset += _align(length)


def _ip(raw: bytes | None) -> IPv4Address | IPv6Address | None:
    if raw is None or len(raw) not in (4, 16):
        return None
    return ip_address(raw)


def parse_link(payload: bytes) -> Link | None:
    if len(payload) < _IFINFOMSG.size:
        return None
    _family, _type, index, _flags, _change = _IFINFOMSG.unpack_from(payload)
    name = attributes(payload[_IFINFOMSG.size :]).get(IFLA_IFNAME)
    return Link(index, name.split(b"\0", 1)[0].decode(errors="replace")) if name else None


def parse_address(payload: bytes) -> Address | None:
    if len(payload) < _IFADDRMSG.size:
        return None
    _family, prefixlen, _flags, _scope, index = _IFADDRMSG.unpack_from(payload)
    attrs = attributes(payload[_IFADDRMSG.size :])
    # IFA_LOCAL is the own address; IFA_ADDRESS is the peer on point-to-point links.
    address = _ip(attrs.get(IFA_LOCAL)) or _ip(attrs.get(IFA_ADDRESS))
    return Address(index, address, prefixlen) if address is not None else None


def parse_neighbour(payload: bytes) -> NeighbourEntry | None:
    if len(payload) < _NDMSG.size:
        return None
    _family, ifindex, state, _flags, _type = _NDMSG.unpack_from(payload)
    attrs = attributes(payload[_NDMSG.size :])
    mac = attrs.get(NDA_LLADDR)
    lladdr = ":".join(f"{b:02x}" for b in mac) if mac else None
    return NeighbourEntry(ifindex, state, _ip(attrs.get(NDA_DST)), lladdr)


def request(kind: int, body: bytes, seq: int = 1) -> bytes:
    return (
        _NLMSGHDR.pack(_NLMSGHDR.size + len(body), kind, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body
    )


_REQUESTS = {
    RTM_GETLINK: (RTM_NEWLINK, _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)),
    RTM_GETADDR: (RTM_NEWADDR, _IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)),
    RTM_GETNEIGH: (RTM_NEWNEIGH, _NDMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)),
}


def dump(kind: int, netns: str | None = None, timeout: float = 5.0) -> list[bytes]:
    """Blocking: the payloads of one RTM_GET* dump."""
    answer, body = _REQUESTS[kind]
    found: list[bytes] = []
    sock = socket_in(netns, socket.AF_NETLINK, socket.SOCK_DGRAM, socket.NETLINK_ROUTE)
    with contextlib.closing(sock):
        sock.settimeout(timeout)
        sock.sendto(request(kind, body), (0, 0))
        while True:
            for message_kind, payload in messages(sock.recv(_RECV)):
                if message_kind == NLMSG_DONE:
                    return found
                if message_kind == answer:
                    found.append(payload)


def links(netns: str | None = None) -> list[Link]:
    return [x for x in map(parse_link, dump(RTM_GETLINK, netns)) if x is not None]


def addresses(netns: str | None = None) -> list[Address]:
    return [x for x in map(parse_address, dump(RTM_GETADDR, netns)) if x is not None]


def neighbours(netns: str | None = None) -> list[NeighbourEntry]:
    return [x for x in map(parse_neighbour, dump(RTM_GETNEIGH, netns)) if x is not None]
