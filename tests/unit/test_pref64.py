"""RFC 6052 section 2.2 embedding at every length; SPEC 3 synthesized-AAAA test."""

from ipaddress import IPv4Address, IPv6Address, IPv6Network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clat_eamt.core.pref64 import (
    LOCAL_USE_PREFIX,
    RFC6052_LENGTHS,
    WELL_KNOWN_PREFIX,
    Pref64Set,
    embed,
    extract,
    pref64_problem,
    prefixes_from_wka,
)

# RFC 6052 section 2.4, the table of examples for 192.0.2.33.
RFC6052_EXAMPLES = [
    ("2001:db8::/32", "2001:db8:c000:221::"),
    ("2001:db8:100::/40", "2001:db8:1c0:2:21::"),
    ("2001:db8:122::/48", "2001:db8:122:c000:2:2100::"),
    ("2001:db8:122:300::/56", "2001:db8:122:3c0:0:221::"),
    ("2001:db8:122:344::/64", "2001:db8:122:344:c0:2:2100:0"),
    ("2001:db8:122:344::/96", "2001:db8:122:344::192.0.2.33"),
]


@pytest.mark.parametrize(("prefix", "expected"), RFC6052_EXAMPLES)
def test_rfc6052_section_2_4_examples(prefix, expected):
    net = IPv6Network(prefix)
    assert embed(net, IPv4Address("192.0.2.33")) == IPv6Address(expected)
    assert extract(net, IPv6Address(expected)) == IPv4Address("192.0.2.33")


@given(st.sampled_from(RFC6052_LENGTHS), st.integers(0, 2**32 - 1), st.integers(0, 2**128 - 1))
def test_embed_extract_round_trip_at_every_length(length, v4, bits):
    prefix = IPv6Network((bits >> (128 - length) << (128 - length), length))
    prefix = IPv6Network((int(prefix.network_address) & ~(0xFF << 56), length))
    assert extract(prefix, embed(prefix, IPv4Address(v4))) == IPv4Address(v4)


@pytest.mark.parametrize("prefix", ["2001:db8::/33", "2001:db8::/128", "2001:db8:0:0:ff00::/96"])
def test_invalid_pref64_is_explained(prefix):
    assert pref64_problem(IPv6Network(prefix)) is not None
    with pytest.raises(ValueError):
        embed(IPv6Network(prefix), IPv4Address("192.0.2.1"))


def test_extract_refuses_non_zero_u_octet():
    assert extract(IPv6Network("2001:db8::/32"), IPv6Address("2001:db8:c000:221:ff00::")) is None


def test_spec3_well_known_and_local_use_prefixes_are_always_known():
    assert WELL_KNOWN_PREFIX in Pref64Set().prefixes
    assert LOCAL_USE_PREFIX in Pref64Set().prefixes
    custom = Pref64Set((IPv6Network("2001:db8:64::/96"),), "rfc7050")
    assert custom.prefixes[0] == IPv6Network("2001:db8:64::/96")
    assert WELL_KNOWN_PREFIX in custom.prefixes


def test_spec3_aaaa_inside_a_known_pref64_is_synthesized():
    known = Pref64Set((IPv6Network("2001:db8:64::/96"),))
    a = [IPv4Address("192.0.2.10")]
    assert known.synthesized_reason(IPv6Address("2001:db8:64::c000:20a"), a)
    assert known.synthesized_reason(IPv6Address("64:ff9b::1:2"), a)
    assert known.synthesized_reason(IPv6Address("64:ff9b:1:1::1"), a)


@pytest.mark.parametrize(("prefix", "_"), RFC6052_EXAMPLES)
def test_spec3_aaaa_embedding_an_a_record_is_synthesized_under_an_unknown_prefix(prefix, _):
    """A DNS64 with a prefix we never learned still gives itself away (RFC 7050 heuristic)."""
    synthesized = embed(IPv6Network(prefix), IPv4Address("203.0.113.9"))
    reason = Pref64Set().synthesized_reason(synthesized, [IPv4Address("203.0.113.9")])
    assert reason is not None and "203.0.113.9" in reason


def test_spec3_real_aaaa_is_not_synthesized():
    a = [IPv4Address("192.0.2.10")]
    assert Pref64Set().synthesized_reason(IPv6Address("2001:db8:1::10"), a) is None
    # embeds some IPv4, but not one of the A records
    assert Pref64Set().synthesized_reason(IPv6Address("2001:db8::c000:20b"), a) is None


# --- RFC 7050 discovery from ipv4only.arpa ---------------------------------------------------

WKA = (IPv4Address("192.0.0.170"), IPv4Address("192.0.0.171"))


@pytest.mark.parametrize("length", [32, 40, 48, 56, 64, 96])
def test_wka_reveals_prefix_at_every_rfc6052_length(length):
    prefix = IPv6Network(
        (int(IPv6Address("2001:db8:122:300::")) >> (128 - length) << (128 - length), length)
    )
    records = [embed(prefix, w) for w in WKA]
    assert prefixes_from_wka(records) == (prefix,)


def test_wka_from_the_lab_dns64():
    records = [IPv6Address("2001:db8:64::c000:aa"), IPv6Address("2001:db8:64::c000:ab")]
    assert prefixes_from_wka(records) == (IPv6Network("2001:db8:64::/96"),)


def test_two_nat64_prefixes_are_both_found():
    records = [IPv6Address("64:ff9b::c000:aa"), IPv6Address("2001:db8:64::c000:aa")]
    assert set(prefixes_from_wka(records)) == {
        IPv6Network("64:ff9b::/96"),
        IPv6Network("2001:db8:64::/96"),
    }


def test_records_without_a_wka_reveal_nothing():
    assert (
        prefixes_from_wka([IPv6Address("2001:db8:1::10"), IPv6Address("2001:db8:64::c000:201")])
        == ()
    )
