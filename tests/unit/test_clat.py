"""Finding the router's CLAT and its Pref64 (dataplane.clat) from what the router shows, and
T(P) (core.translation).

The netifd dump is a stand-in, not a recording from a router: no OpenWrt runs here.  It follows
netifd's `network.interface dump` format (interface.c `interface_dump_status`: interface, up,
l3_device, proto, device, data...) with the interfaces an IPv6-only router with OpenWrt's
464xlat shows: lan, wan6 (dhcpv6) and the dynamic `wan6_4` that 464xlat.sh brings up on its
nat46 device `464-<interface>` (proto_464xlat_setup: link="464-$cfg", an IPv4 default route,
SNAT to 192.0.0.1), plus a second 464xlat interface that is not up and must be ignored."""

from __future__ import annotations

import json
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path

import pytest

from clat_eamt.core.translation import PoolTranslation, tayga_pool_prefix
from clat_eamt.dataplane.clat import default_route_device, from_netifd_dump, nat46_pref64

DUMP = json.loads((Path(__file__).parent / "data" / "netifd-464xlat-dump.json").read_text())


def test_the_464xlat_interface_that_is_up_gives_its_l3_device():
    assert from_netifd_dump(DUMP) == [("wan6_4", "464-wan6_4")]


def test_no_464xlat_interface_gives_nothing():
    dump = {"interface": [i for i in DUMP["interface"] if i["proto"] != "464xlat"]}
    assert from_netifd_dump(dump) == []
    assert from_netifd_dump({}) == [] and from_netifd_dump({"interface": None}) == []


ROUTES = (  # /proc/net/route: hex little-endian addresses, flags 0x0001 RTF_UP
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
    "br-lan\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
    "vpn0\t00000000\t00000000\t0001\t0\t0\t4096\t00000000\t0\t0\t0\n"
    "464-wan6_4\t00000000\t00000000\t0001\t0\t0\t2048\t00000000\t0\t0\t0\n"
)


def test_the_ipv4_default_route_with_the_lowest_metric():
    assert default_route_device(ROUTES) == "464-wan6_4"
    assert default_route_device(ROUTES.splitlines()[0] + "\n") is None


def test_nat46s_own_pref64():
    # The form nat46-module.c prints its rules in; 464xlatcfg writes these settings.
    listing = (
        "add 464-wan6_4\n"
        "insert 464-wan6_4 local.v4 192.0.0.1/32 local.v6 2001:db8:ce:c1a7::1/128 "
        "local.style NONE local.ea-len 0 local.psid-offset 0 remote.v4 0.0.0.0/0 "
        "remote.v6 64:ff9b::/96 remote.style RFC6052 remote.ea-len 0 remote.psid-offset 0 "
        "debug 0\n"
    )
    assert nat46_pref64(listing, "464-wan6_4") == IPv6Network("64:ff9b::/96")
    assert nat46_pref64(listing, "464-other") is None
    assert nat46_pref64("", "464-wan6_4") is None


@pytest.mark.parametrize("length", [32, 40, 48, 56, 64, 96])
def test_t_of_p_embeds_like_the_clat_and_comes_back(length: int):
    prefix = IPv6Network((0x20010DB8_0064 << 80, length), strict=False)
    t = PoolTranslation(prefix)
    single = IPv4Network("198.51.100.129/32")
    [key] = t.of(single)
    assert key.prefixlen == 128 and t.back(key) == single
    block = IPv4Network("198.51.100.128/25")
    keys = t.of(block)
    assert all(k[0] in t.covering(block) for k in keys)
    if length == 96:
        assert keys == [IPv6Network("2001:db8:64::c633:6480/121")] and t.back(keys[0]) == block
    else:  # not one prefix: one element per address
        assert len(keys) == 128 and {t.back(k) for k in keys} == set(block.subnets(new_prefix=32))


def test_a_bad_pref64_is_refused_and_tayga_gets_a_96_of_the_clat_64():
    with pytest.raises(ValueError, match="RFC 6052"):
        PoolTranslation(IPv6Network("2001:db8::/80"))
    pool6 = tayga_pool_prefix(IPv6Network("2001:db8:ce:c1a7::66/128").network_address)
    assert pool6 == IPv6Network("2001:db8:ce:c1a7:ffff:ffff::/96")
    assert PoolTranslation(pool6).of(IPv4Network("198.51.100.128/25")) == [
        IPv6Network("2001:db8:ce:c1a7:ffff:ffff:c633:6480/121")
    ]
