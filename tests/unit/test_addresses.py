"""SPEC section 4: never map special-purpose, local or deny-listed addresses."""

from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

import pytest

from clat_eamt.core.addresses import (
    IPV4_SPECIAL,
    IPV6_RETURNED,
    IPV6_SPECIAL,
    AddressPolicy,
    documentation_blocks,
    special_block,
)
from clat_eamt.core.model import Reason

STRICT = AddressPolicy()
LAB = AddressPolicy(allow_documentation=True)


@pytest.mark.parametrize("block", IPV4_SPECIAL + IPV6_SPECIAL, ids=lambda b: str(b.network))
def test_spec4_every_registry_block_is_refused_on_a_real_router(block):
    first = block.network.network_address
    inner = first + max(0, block.network.num_addresses // 2 - 1)  # no nested block sits there
    for address in (first, inner):
        refusal = STRICT.refusal(address)
        assert refusal is not None and refusal.reason is Reason.SPECIAL_PURPOSE
        assert block.rfc in refusal.detail


@pytest.mark.parametrize("block", IPV6_RETURNED, ids=lambda b: str(b.network))
def test_returned_and_deprecated_ipv6_blocks_are_refused_with_their_rfc(block):
    """Issue 26: 3ffe::/16 (the 6bone's, returned by RFC 3701) was mapped.  The middle of each
    block (its first address may sit in a more specific registry block, :: or 5f00::/16)."""
    inner = block.network.network_address + block.network.num_addresses // 2
    refusal = STRICT.refusal(inner)
    assert refusal is not None and refusal.reason is Reason.SPECIAL_PURPOSE
    assert block.rfc in refusal.detail
    assert STRICT.refusal(ip_address("3ffe:831f::1")) is not None  # pre-RFC Teredo inside


@pytest.mark.parametrize(
    "address",
    ["192.0.0.170", "192.0.0.171", "100.64.0.1", "64:ff9b::c000:20a", "64:ff9b:1::1", "fd00::1"],
)
def test_spec4_translation_and_discovery_addresses_are_special(address):
    assert special_block(ip_address(address)) is not None


@pytest.mark.parametrize("address", ["224.0.0.1", "239.255.255.250"])
def test_spec4_ipv4_multicast_is_not_global_unicast(address):
    refusal = STRICT.refusal(ip_address(address))
    assert refusal is not None and refusal.reason is Reason.NOT_GLOBAL_UNICAST


@pytest.mark.parametrize("address", ["ff02::1", "4000::1", "::2"])
def test_spec4_ipv6_outside_2000_slash_3_is_not_global_unicast(address):
    refusal = STRICT.refusal(ip_address(address))
    assert refusal is not None
    assert refusal.reason in (Reason.NOT_GLOBAL_UNICAST, Reason.SPECIAL_PURPOSE)


def test_documentation_ranges_are_special_unless_the_lab_switch_is_on():
    for block in documentation_blocks():
        address = block.network.network_address + 1
        assert STRICT.refusal(address) is not None
        assert LAB.refusal(address) is None, block


def test_lab_switch_exempts_only_documentation_blocks():
    assert LAB.refusal(ip_address("10.0.0.1")) is not None
    assert LAB.refusal(ip_address("2001:2::1")) is not None  # benchmarking inside 2001::/23


def test_spec4_excluded_prefixes_are_refused_with_the_prefix_named():
    policy = LAB.with_excluded([IPv4Network("192.0.2.0/28"), IPv6Network("2001:db8:53::/48")])
    refusal = policy.refusal(ip_address("192.0.2.5"))
    assert refusal is not None and refusal.reason is Reason.EXCLUDED
    assert "192.0.2.0/28" in refusal.detail
    assert policy.refusal(ip_address("2001:db8:53::1")) is not None
    assert policy.refusal(ip_address("192.0.2.20")) is None


def test_spec4_allow_list_admits_only_its_family_members():
    policy = AddressPolicy(allow_documentation=True, allowed=(ip_network("203.0.113.0/25"),))
    assert policy.refusal(ip_address("203.0.113.7")) is None
    refusal = policy.refusal(ip_address("203.0.113.200"))
    assert refusal is not None and refusal.reason is Reason.PREFIX_NOT_ALLOWED
    assert policy.refusal(ip_address("2001:db8::1")) is None  # no IPv6 allow list: any


def test_prefix_overlapping_a_special_block_is_refused():
    assert STRICT.refusal(ip_network("10.0.0.0/7", strict=False)) is not None


def test_refusal_of_single_address_carries_the_address():
    refusal = STRICT.refusal(ip_address("127.0.0.1"))
    assert refusal is not None and refusal.address == ip_address("127.0.0.1")
