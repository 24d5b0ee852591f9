"""Pref64 from router advertisements: the PREF64 option (RFC 8781) and the RA checks of RFC
4861 section 6.1.2 (core/ra.py), the lifetimes, the precedence config > RA > DNS
(core/pref64.choose, RFC 9872), and the listener's WAN filter (dataplane/routeradv.py)."""

from __future__ import annotations

import struct
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path

import pytest

from clat_eamt.core.pref64 import CONFIG, DNS, PRECEDENCE, RA, choose
from clat_eamt.core.ra import (
    Advert,
    Pref64Option,
    Pref64Table,
    RaError,
    encode_pref64,
    encode_ra,
    parse_pref64,
    parse_ra,
)
from clat_eamt.dataplane.routeradv import RaListener, default_route_interfaces

ROUTER = IPv6Address("fe80::1")
P96 = IPv6Network("2001:db8:64::/96")


def option(scaled: int, plc: int, high: bytes, length: int = 2) -> bytes:
    body = struct.pack("!BBH", 38, length, scaled << 3 | plc) + high
    return body + b"\0" * (length * 8 - len(body))


@pytest.mark.parametrize(("plc", "length"), [(0, 96), (1, 64), (2, 56), (3, 48), (4, 40), (5, 32)])
def test_plc_gives_the_prefix_length(plc: int, length: int) -> None:
    high = bytes.fromhex("20010db80064") + b"\0" * 6
    parsed = parse_pref64(option(75, plc, high))
    assert parsed == Pref64Option(
        IPv6Network((int.from_bytes(high, "big") << 32, length), strict=False), 600
    )


def test_invalid_plc_and_length_are_ignored_with_a_reason() -> None:
    high = bytes.fromhex("20010db80064") + b"\0" * 6
    assert "PLC 6" in str(parse_pref64(option(1, 6, high)))
    assert "length 3" in str(parse_pref64(option(1, 0, high, length=3)))


def test_bits_beyond_the_prefix_length_are_ignored() -> None:
    """RFC 8781 section 4: a /32 with junk in bits 32-95 is 2001:db8::/32."""
    high = bytes.fromhex("20010db8ffffffff") + b"\0" * 4
    assert parse_pref64(option(1, 5, high)) == Pref64Option(IPv6Network("2001:db8::/32"), 8)


def test_a_prefix_rfc_6052_forbids_is_ignored() -> None:
    high = bytes.fromhex("20010db800640000ff000000")  # u octet (bits 64-71) not zero
    assert "bits 64-71" in str(parse_pref64(option(1, 0, high)))


def test_scaled_lifetime_is_in_units_of_8_seconds_and_round_trips() -> None:
    assert parse_pref64(encode_pref64(P96, 1800)) == Pref64Option(P96, 1800)
    assert parse_pref64(encode_pref64(P96, 65528 * 2)) == Pref64Option(P96, 65528)  # 13 bits


def test_ra_with_options() -> None:
    other = struct.pack("!BB", 25, 3) + b"\0" * 22  # RDNSS, 24 octets, skipped
    packet = encode_ra([other, encode_pref64(P96, 600), option(1, 7, b"\0" * 12)])
    advert = parse_ra(packet, ROUTER, 255)
    assert advert.options == (Pref64Option(P96, 600),)
    assert len(advert.ignored) == 1 and "PLC 7" in advert.ignored[0]


@pytest.mark.parametrize(
    ("packet", "source", "hops", "why"),
    [
        (encode_ra([encode_pref64(P96, 600)]), ROUTER, 64, "hop limit"),
        (encode_ra([encode_pref64(P96, 600)]), IPv6Address("2001:db8::1"), 255, "link-local"),
        (encode_ra([])[:12], ROUTER, 255, "shorter"),
        (b"\x87" + encode_ra([])[1:], ROUTER, 255, "type 135"),
        (encode_ra([b"\x26\x00" + b"\0" * 14]), ROUTER, 255, "length 0"),
        (encode_ra([encode_pref64(P96, 600)[:10]]), ROUTER, 255, "past the end"),
    ],
)
def test_invalid_ras_are_dropped_whole(
    packet: bytes, source: IPv6Address, hops: int, why: str
) -> None:
    with pytest.raises(RaError, match=why):
        parse_ra(packet, source, hops)


def test_lifetimes() -> None:
    table = Pref64Table()
    other = IPv6Network("2001:db8:65::/96")
    table.observe(100.0, "wan", ROUTER, Advert((Pref64Option(P96, 600), Pref64Option(other, 60))))
    assert table.prefixes(100.0) == (P96, other)  # the longest-lived first
    assert table.next_expiry(100.0) == 160.0
    assert table.prefixes(160.0) == (P96,)
    table.observe(200.0, "wan", ROUTER, Advert((Pref64Option(P96, 0),)))  # withdrawn at once
    assert table.prefixes(200.0) == ()
    table.observe(300.0, "wan", ROUTER, Advert((Pref64Option(P96, 600),)))
    table.observe(301.0, "wan", IPv6Address("fe80::2"), Advert((Pref64Option(P96, 60),)))
    assert table.prefixes(400.0) == (P96,)  # the first router's lifetime still runs
    table.expire(901.0)
    assert table.expiry == {}


def test_precedence_config_then_ra_then_dns() -> None:
    ra, dns, config = (IPv6Network(f"2001:db8:{n}::/96") for n in (65, 64, 66))
    assert PRECEDENCE == (CONFIG, RA, DNS)
    assert choose({DNS: (dns,), RA: (ra,)}).source == RA
    assert choose({DNS: (dns,), RA: (ra,), CONFIG: (config,)}).extra == (config,)
    assert choose({DNS: (dns,), RA: ()}).source == DNS
    assert choose({CONFIG: ()}).source == "none"
    # a source another issue adds joins by its place in the list
    assert choose({"clat": (ra,), DNS: (dns,)}, (CONFIG, "clat", RA, DNS)).source == "clat"


def test_listener_takes_only_the_wan_and_tells_changes() -> None:
    told: list[tuple[tuple[IPv6Network, ...], str]] = []
    now = [10.0]
    listener = RaListener(lambda p, s: told.append((p, s)), lambda: now[0], lambda: {"wan"})
    packet = encode_ra([encode_pref64(P96, 80)])
    listener.handle(packet, ROUTER, 255, "br-lan")  # a LAN host's RA: never used
    assert told == [] and listener.counters["not_wan"] == 1
    listener.handle(packet, ROUTER, 64, "wan")
    assert told == [] and listener.counters["invalid"] == 1
    listener.handle(packet, ROUTER, 255, "wan")
    assert told == [((P96,), RA)]
    listener.handle(packet, ROUTER, 255, "wan")  # a refresh changes nothing
    assert len(told) == 1
    now[0] = 100.0
    listener.update()  # the timer's call at the expiry
    assert told[-1] == ((), RA)
    status = listener.status()
    assert status["counters"] == {"heard": 2, "not_wan": 1, "invalid": 1}


def test_default_route_interfaces(tmp_path: Path) -> None:
    zero = "0" * 32
    lines = [
        f"{zero} 00 {zero} 00 fe800000000000000000000000000001 00000400 00000001 0 00450003 wan",
        f"{zero} 00 {zero} 00 {zero} ffffffff 00000001 0 00200200 lo",  # unreachable
        f"20010db8000000000000000000000000 40 {zero} 00 {zero} 00000100 0 0 00000001 br-lan",
    ]
    table = tmp_path / "ipv6_route"
    table.write_text("\n".join(lines) + "\n")
    assert default_route_interfaces(table) == {"wan"}
    assert default_route_interfaces(tmp_path / "missing") == set()
