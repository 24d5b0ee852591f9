"""dataplane/rtnl.py: the rtnetlink codec on hand-made messages (the kernel headers' layouts),
and the three dumps against this machine's kernel (no root needed: dumps are unprivileged)."""

from __future__ import annotations

import errno
import socket
import struct
from ipaddress import ip_address

import pytest

from clat_eamt.dataplane import rtnl


def attr(kind: int, payload: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(payload), kind) + payload
    return raw + b"\0" * (-len(raw) % 4)


def message(kind: int, payload: bytes) -> bytes:
    raw = struct.pack("=IHHII", 16 + len(payload), kind, 2, 1, 0) + payload
    return raw + b"\0" * (-len(raw) % 4)


def test_link_name() -> None:
    body = struct.pack("=BxHiII", 0, 1, 7, 0, 0) + attr(rtnl.IFLA_IFNAME, b"br-lan\0")
    assert rtnl.parse_link(body) == rtnl.Link(7, "br-lan")
    assert rtnl.parse_link(body[:10]) is None


def test_address_prefers_the_local_one_over_the_peer() -> None:
    """Point-to-point: IFA_ADDRESS is the peer, IFA_LOCAL the router's own (if_addr.h)."""
    head = struct.pack("=BBBBI", socket.AF_INET, 32, 0, 0, 3)
    peer = attr(rtnl.IFA_ADDRESS, bytes([192, 0, 2, 1]))
    local = attr(rtnl.IFA_LOCAL, bytes([192, 0, 2, 2]))
    assert rtnl.parse_address(head + peer + local) == rtnl.Address(3, ip_address("192.0.2.2"), 32)
    six = struct.pack("=BBBBI", socket.AF_INET6, 64, 0, 0, 4)
    addr6 = ip_address("2001:db8::1")
    assert rtnl.parse_address(six + attr(rtnl.IFA_ADDRESS, addr6.packed)) == rtnl.Address(
        4, addr6, 64
    )
    assert rtnl.parse_address(head) is None  # no address at all


def test_neighbour() -> None:
    head = struct.pack("=BxxxiHBB", socket.AF_INET6, 5, 0x02, 0, 1)
    dst = attr(rtnl.NDA_DST, ip_address("2001:db8::5").packed)
    mac = attr(rtnl.NDA_LLADDR, bytes.fromhex("02aabbccddee"))
    found = rtnl.parse_neighbour(head + dst + mac)
    assert found == rtnl.NeighbourEntry(5, 0x02, ip_address("2001:db8::5"), "02:aa:bb:cc:dd:ee")
    bridge = rtnl.parse_neighbour(struct.pack("=BxxxiHBB", 7, 5, 0x80, 2, 0) + mac)
    assert bridge is not None and bridge.dst is None  # an fdb entry: no IP


def test_messages_stop_at_done_and_raise_errors() -> None:
    link = struct.pack("=BxHiII", 0, 1, 1, 0, 0) + attr(rtnl.IFLA_IFNAME, b"lo\0")
    data = message(rtnl.RTM_NEWLINK, link) + message(rtnl.NLMSG_DONE, b"\0" * 4)
    kinds = [kind for kind, _ in rtnl.messages(data)]
    assert kinds == [rtnl.RTM_NEWLINK, rtnl.NLMSG_DONE]
    error = message(rtnl.NLMSG_ERROR, struct.pack("=i", -errno.EPERM) + b"\0" * 16)
    with pytest.raises(rtnl.NetlinkError) as raised:
        list(rtnl.messages(error))
    assert raised.value.errno == errno.EPERM
    with pytest.raises(rtnl.NetlinkError):
        list(rtnl.messages(message(rtnl.RTM_NEWLINK, link)[:-8] + b"\xff" * 4))


def test_attributes_skip_a_truncated_tail() -> None:
    good = attr(rtnl.IFLA_IFNAME, b"eth0\0")
    assert rtnl.attributes(good + struct.pack("=HH", 200, 9)) == {rtnl.IFLA_IFNAME: b"eth0\0"}


def test_dumps_against_the_kernel() -> None:
    """The links are the kernel's interfaces (socket.if_nameindex), loopback has 127.0.0.1/8,
    and the neighbour dump parses (its entries carry interfaces that exist)."""
    links = rtnl.links()
    assert sorted((link.index, link.name) for link in links) == sorted(socket.if_nameindex())
    lo = socket.if_nametoindex("lo")
    assert rtnl.Address(lo, ip_address("127.0.0.1"), 8) in rtnl.addresses()
    indexes = {link.index for link in links}
    assert all(n.ifindex in indexes for n in rtnl.neighbours())
