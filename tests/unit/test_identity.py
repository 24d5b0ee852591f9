"""Client identity from dnsmasq's EDNS options (formats as dnsmasq 2.90 sends them, SPEC 7)."""

from __future__ import annotations

import base64
import struct
from ipaddress import IPv4Address, IPv6Address

import pytest

from clat_eamt.dns.identity import identify
from clat_eamt.dns.wire import OPTION_ECS, OPTION_MAC_BINARY, OPTION_MAC_TEXT

MAC = bytes.fromhex("0200c0000264")
LOOPBACK = IPv4Address("127.0.0.1")


def ecs(family: int, length: int, address: bytes) -> bytes:
    return struct.pack("!HBB", family, length, 0) + address


@pytest.mark.parametrize(
    "option",
    [
        (OPTION_MAC_BINARY, MAC),
        (OPTION_MAC_TEXT, b"02:00:c0:00:02:64"),
        (OPTION_MAC_TEXT, b"02:00:C0:00:02:64"),
        (OPTION_MAC_TEXT, base64.b64encode(MAC)),
    ],
)
def test_every_mac_format_gives_the_same_key(option):
    identity = identify([option], LOOPBACK)
    assert identity.mac == "02:00:c0:00:02:64" == identity.key
    assert identity.problems == ()


def test_ecs_with_a_full_length_address_names_the_client():
    identity = identify([(OPTION_ECS, ecs(1, 32, bytes([192, 0, 2, 100])))], LOOPBACK)
    assert identity.address == IPv4Address("192.0.2.100")
    assert identity.key == "192.0.2.100"


def test_ipv6_ecs_at_128_names_the_client():
    address = IPv6Address("2001:db8::100")
    assert identify([(OPTION_ECS, ecs(2, 128, address.packed))]).address == address


def test_mac_wins_over_the_address_as_the_key():
    options = [(OPTION_ECS, ecs(1, 32, bytes([192, 0, 2, 100]))), (OPTION_MAC_BINARY, MAC)]
    identity = identify(options, LOOPBACK)
    assert identity.key == "02:00:c0:00:02:64"
    assert identity.address == IPv4Address("192.0.2.100")


def test_subnet_zero_names_nobody():
    assert identify([(OPTION_ECS, ecs(1, 0, b""))], LOOPBACK).key is None


def test_no_options_from_dnsmasq_means_unknown_client():
    assert identify([], LOOPBACK).key is None


def test_a_lan_host_asking_directly_is_known_by_its_address():
    assert identify([], IPv4Address("192.0.2.77")).key == "192.0.2.77"


@pytest.mark.parametrize(
    "option",
    [
        (OPTION_MAC_BINARY, b"\x02\x00"),
        (OPTION_MAC_TEXT, b"not a mac"),
        (OPTION_ECS, b"\x00"),
        (OPTION_ECS, ecs(3, 32, b"\x01\x02\x03\x04")),
        (OPTION_ECS, ecs(1, 33, b"\x01\x02\x03\x04\x05")),
        (OPTION_ECS, ecs(1, 32, b"\x01\x02")),
    ],
)
def test_unreadable_options_are_reported_not_fatal(option):
    identity = identify([option], LOOPBACK)
    assert identity.key is None
    assert len(identity.problems) == 1


def test_identities_are_remembered_per_options_and_peer() -> None:
    """identify is pure, so the proxy remembers its result per (options, peer): the same
    options from another peer, or other options, are read afresh; a bytearray value works."""
    mac = (OPTION_MAC_BINARY, bytes.fromhex("0200c0000264"))
    first = identify([mac], LOOPBACK)
    assert identify([mac], LOOPBACK) is first
    other = IPv4Address("192.0.2.77")
    assert identify([mac], other).address == other and first.address is None
    assert identify([(OPTION_MAC_BINARY, bytearray(mac[1]))], LOOPBACK).mac == first.mac
