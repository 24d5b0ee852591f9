"""Loading the configuration: types, schema rules, collected problems, round trips and flags."""

import argparse
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clat_eamt.config import (
    ConfigError,
    EffectiveConfig,
    StaticEntry,
    add_arguments,
    apply_overrides,
    defaults,
    from_values,
    load_file,
    load_text,
    schema,
)
from clat_eamt.config.nettypes import ServerAddress
from clat_eamt.config.types import (
    Bool,
    BoundedInt,
    Choice,
    DnsName,
    IPPrefix,
    IPv4Prefix,
    IPv6Prefix,
    Text,
)

LAB = "config globals 'globals'\n\toption allow_documentation '1'\n"


def problems_of(text: str, source: str = "clat-eamt.conf") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_text(text, source)
    return [str(p) for p in caught.value.problems]


def only_problem(text: str) -> str:
    found = problems_of(text)
    assert len(found) == 1, found
    return found[0]


def static(ipv4: str, ipv6: str, name: str = "") -> str:
    head = f"config static '{name}'" if name else "config static"
    return f"\n{head}\n\toption ipv4 '{ipv4}'\n\toption ipv6 '{ipv6}'\n"


# --- defaults and typed access ---------------------------------------------------------------


def test_empty_file_and_empty_globals_section_mean_all_defaults() -> None:
    assert load_text("") == defaults()
    assert load_text("config globals 'globals'\n") == defaults()


def test_defaults_match_the_schema() -> None:
    cfg = defaults()
    for option in schema.GLOBAL_OPTIONS:
        assert cfg[option] == option.default
    assert cfg[schema.TTL_MIN] == 30
    assert cfg[schema.POOL] == IPv4Network("100.127.0.0/16")
    assert cfg[schema.ENABLED] is True
    assert cfg.static == ()


def test_typed_access_returns_parsed_values() -> None:
    cfg = load_text(
        "config globals 'globals'\n"
        "\toption ttl_min '60'\n"
        "\toption require_dnssec 'yes'\n"
        "\tlist pref64 '2001:db8:64::/96'\n"
        "\tlist deny_name 'Ads.Example.COM.'\n"
        "\tlist deny_prefix '198.51.100.0/24'\n"
        "\tlist deny_prefix '2001:db8:bad::/48'\n"
    )
    assert cfg[schema.TTL_MIN] == 60
    assert cfg[schema.REQUIRE_DNSSEC] is True
    assert cfg[schema.PREF64] == (IPv6Network("2001:db8:64::/96"),)
    assert cfg[schema.DENY_NAME] == ("ads.example.com",)
    assert cfg[schema.DENY_PREFIX] == (
        IPv4Network("198.51.100.0/24"),
        IPv6Network("2001:db8:bad::/48"),
    )


def test_static_options_are_not_globals() -> None:
    with pytest.raises(KeyError, match="static"):
        defaults()[schema.STATIC_IPV4]


def test_static_entries_are_loaded_in_order_with_names_and_lines() -> None:
    cfg = load_text(
        LAB
        + static("192.0.2.10", "2001:db8::10", "web")
        + "\nconfig static\n\toption ipv4 '198.51.100.0/24'\n\toption ipv6 '2001:db8:1::/120'\n"
        "\toption comment 'lab net'\n"
    )
    assert cfg.static == (
        StaticEntry(IPv4Network("192.0.2.10/32"), IPv6Network("2001:db8::10/128"), "", "web"),
        StaticEntry(
            IPv4Network("198.51.100.0/24"), IPv6Network("2001:db8:1::/120"), "lab net", None
        ),
    )
    assert [entry.line for entry in cfg.static] == [4, 8]


# --- types -----------------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["1", "true", "yes", "on", "enabled", "TRUE", " on "])
def test_bool_accepts_uci_true_words(word: str) -> None:
    assert Bool().parse(word) is True


@pytest.mark.parametrize("word", ["0", "false", "no", "off", "disabled", "No"])
def test_bool_accepts_uci_false_words(word: str) -> None:
    assert Bool().parse(word) is False


def test_bool_renders_one_and_zero() -> None:
    assert (Bool().render(True), Bool().render(False)) == ("1", "0")


@pytest.mark.parametrize(
    ("value_type", "word", "message"),
    [
        (Bool(), "maybe", "expected a boolean (1/0, yes/no, on/off, true/false, enabled/disabled)"),
        (Bool(), "", "expected a boolean"),
        (BoundedInt(0, 10), "abc", "expected an integer 0..10, got 'abc'"),
        (BoundedInt(0, 10), "11", "expected an integer 0..10, got '11'"),
        (BoundedInt(1, 10), "0", "expected an integer 1..10, got '0'"),
        (BoundedInt(0, 10), "1.5", "expected an integer 0..10"),
        (BoundedInt(0, 10_000), "5_000", "expected an integer 0..10000"),
        (BoundedInt(0, 10), "", "expected an integer 0..10, got ''"),
        (Choice(("a", "b")), "c", "expected one of a, b; got 'c'"),
        (IPv4Prefix(), "203.0.113.5/24",
         "203.0.113.5/24 has host bits set; did you mean 203.0.113.0/24?"),
        (IPv4Prefix(), "2001:db8::1", "expected an IPv4 address or prefix, got an IPv6 one"),
        (IPv4Prefix(), "example.com", "expected an IPv4 address or prefix like 192.0.2.0/24"),
        (IPv4Prefix(), "192.0.2.0/255.255.255.0", "expected an IPv4 address or prefix"),
        (IPv4Prefix(), "192.0.2.0/33", "not a valid IPv4 address or prefix"),
        (IPv4Prefix(), "192.0.2.256", "not a valid IPv4 address or prefix"),
        (IPv6Prefix(), "192.0.2.1", "expected an IPv6 address or prefix, got '192.0.2.1'"),
        (IPv6Prefix(), "2001:db8::1/64",
         "2001:db8::1/64 has host bits set; did you mean 2001:db8::/64?"),
        (IPv6Prefix(), "fe80::1%eth0", "zone ids like %eth0 are not allowed"),
        (IPv6Prefix(), "2001:db8:::1", "not a valid IPv6 address or prefix"),
        (IPPrefix(), "198.51.100.7/24", "did you mean 198.51.100.0/24?"),
        (IPPrefix(), "2001:db8::1/32", "did you mean 2001:db8::/32?"),
        (IPPrefix(), "nonsense", "expected an IPv4 address or prefix"),
        (DnsName(), "bad name.example",
         "expected a DNS name: 'bad name.example' has an invalid label"),
        (DnsName(), "", "expected a DNS name: empty name"),
        (DnsName(), "-lead.example", "invalid label '-lead'"),
        (Text(), "two\nlines", "expected text on one line"),
        (schema.PREF64.type, "2001:db8::/33",
         "a Pref64 must be one of /32, /40, /48, /56, /64, /96"),
        (schema.PREF64.type, "2001:db8:0:0:ff00::/96", "bits 64-71 of a Pref64 must be zero"),
    ],
)  # fmt: skip
def test_type_parse_errors_say_what_was_expected(value_type: Any, word: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        value_type.parse(word)
    assert message in str(caught.value)


def test_bare_addresses_mean_single_address_prefixes_and_render_bare() -> None:
    assert IPv4Prefix().parse("192.0.2.1") == IPv4Network("192.0.2.1/32")
    assert IPv6Prefix().parse("2001:db8::1") == IPv6Network("2001:db8::1/128")
    assert IPv4Prefix().render(IPv4Network("192.0.2.1/32")) == "192.0.2.1"
    assert IPv6Prefix().render(IPv6Network("2001:db8::/32")) == "2001:db8::/32"


def test_type_error_in_file_names_source_line_and_option() -> None:
    text = "config globals 'globals'\n" + "\n" * 5 + "\toption ttl_min 'abc'\n"
    assert only_problem(text) == (
        "clat-eamt.conf:7: option 'ttl_min': expected an integer 0..86400, got 'abc'"
    )


def test_each_bad_list_item_is_reported_at_its_own_line() -> None:
    found = problems_of(
        "config globals 'globals'\n"
        "\tlist pref64 '2001:db8:64::/96'\n"
        "\tlist pref64 '2001:db8::/33'\n"
        "\tlist allow_name 'ok.example'\n"
        "\tlist allow_name 'not ok.example'\n"
    )
    assert [line.split(":")[1] for line in found] == ["3", "5"]
    assert "option 'pref64'" in found[0] and "option 'allow_name'" in found[1]


# --- schema rules between options ------------------------------------------------------------


def test_ttl_min_above_ttl_max_names_both_options() -> None:
    text = "config globals 'globals'\n\toption ttl_min '600'\n\toption ttl_max '60'\n"
    assert only_problem(text) == (
        "clat-eamt.conf:2: option 'ttl_min': ttl_min (600) must not be larger than ttl_max (60)"
    )


def test_rules_are_skipped_for_values_that_did_not_parse() -> None:
    text = "config globals 'globals'\n\toption ttl_min 'x'\n\toption ttl_max '1'\n"
    assert only_problem(text).endswith("expected an integer 0..86400, got 'x'")


@pytest.mark.parametrize(
    ("pool", "fragment"),
    [
        ("8.8.8.0/24", "must lie inside private space"),
        ("10.0.0.0/31", "too small"),
        ("192.0.2.0/24", "must lie inside private space"),
    ],
)
def test_pool_must_be_private_and_large_enough(pool: str, fragment: str) -> None:
    problem = only_problem(f"config globals 'globals'\n\toption pool '{pool}'\n")
    assert problem.startswith("clat-eamt.conf:2: option 'pool': ")
    assert fragment in problem


def test_documentation_pool_is_accepted_in_a_lab() -> None:
    cfg = load_text(LAB + "\toption pool '192.0.2.0/24'\n")
    assert cfg[schema.POOL] == IPv4Network("192.0.2.0/24")


def test_static_documentation_addresses_are_refused_outside_a_lab_with_a_hint() -> None:
    found = problems_of(static("192.0.2.10", "2001:db8::10", "web"))
    assert len(found) == 2
    assert found[0].startswith("clat-eamt.conf:3: section 'web': option 'ipv4': cannot be mapped: ")
    assert "192.0.2.0/24 (documentation (TEST-NET-1), RFC 5737)" in found[0]
    assert found[1].startswith("clat-eamt.conf:4: section 'web': option 'ipv6': cannot be mapped: ")
    assert "2001:db8::/32 (documentation, RFC 3849)" in found[1]
    for problem in found:
        assert problem.endswith("(allowed only with allow_documentation, for test labs)")


@pytest.mark.parametrize(
    ("ipv4", "ipv6", "option", "fragment"),
    [
        ("10.1.2.3", "2001:db8::1", "ipv4", "10.0.0.0/8 (private-use"),
        ("224.0.0.1", "2001:db8::1", "ipv4", "multicast"),
        ("192.0.2.1", "fd00::1", "ipv6", "fc00::/7 (unique-local"),
        ("192.0.2.1", "64:ff9b::c000:201", "ipv6", "64:ff9b::/96 (IPv4-IPv6 translation"),
    ],
)
def test_static_special_purpose_addresses_are_refused(
    ipv4: str, ipv6: str, option: str, fragment: str
) -> None:
    found = problems_of(LAB + static(ipv4, ipv6))
    (problem,) = found  # a translation prefix is refused once, not again as a NAT64 prefix
    assert f"option '{option}': cannot be mapped: " in problem
    assert fragment in problem


def test_static_suffix_lengths_must_match_per_rfc_7757() -> None:
    problem = only_problem(LAB + static("198.51.100.0/24", "2001:db8::/64"))
    assert problem.startswith("clat-eamt.conf:6: section '@static[0]': option 'ipv6': ")
    assert "2001:db8::/64 leaves 64 host bits but 198.51.100.0/24 leaves 8" in problem
    assert "RFC 7757 section 3" in problem and "must be /120" in problem


def test_static_ipv6_must_not_lie_inside_a_configured_pref64() -> None:
    text = LAB + "\tlist pref64 '2001:db8:64::/96'\n" + static("192.0.2.1", "2001:db8:64::c000:201")
    problem = only_problem(text)
    assert "option 'ipv6'" in problem
    assert "inside the NAT64 prefix 2001:db8:64::/96" in problem


def test_static_ipv4_must_not_overlap_the_pool() -> None:
    text = LAB + "\toption pool '192.0.2.0/24'\n" + static("192.0.2.9", "2001:db8::9", "lab")
    assert only_problem(text) == (
        "clat-eamt.conf:6: section 'lab': option 'ipv4': 192.0.2.9 overlaps the mapping pool "
        "192.0.2.0/24 (pool)"
    )


def test_static_ipv4_prefixes_must_not_overlap_each_other() -> None:
    text = (
        LAB
        + static("198.51.100.0/24", "2001:db8:1::/120", "net")
        + static("198.51.100.7", "2001:db8::7")
    )
    assert only_problem(text) == (
        "clat-eamt.conf:9: section '@static[1]': option 'ipv4': 198.51.100.7 overlaps "
        "198.51.100.0/24 of static 'net'"
    )


# --- structure problems ----------------------------------------------------------------------


def test_unknown_option_suggests_the_closest_name() -> None:
    text = "config globals 'globals'\n\toption ttl_mni '5'\n"
    assert only_problem(text) == (
        "clat-eamt.conf:2: option 'ttl_mni': unknown option; did you mean 'ttl_min'?"
    )


def test_unknown_option_that_belongs_to_the_other_section_type_says_so() -> None:
    problem = only_problem("config globals 'globals'\n\toption comment 'x'\n")
    assert "'comment' belongs in a static section" in problem


def test_unknown_section_type_is_a_problem_with_a_suggestion() -> None:
    assert only_problem("config statics\n") == (
        "clat-eamt.conf:1: section '@statics[0]': unknown section type 'statics'; "
        "did you mean 'static'?"
    )


def test_scalar_option_given_as_list_is_a_problem() -> None:
    problem = only_problem("config globals 'globals'\n\tlist ttl_min '5'\n")
    assert problem.startswith("clat-eamt.conf:2: option 'ttl_min': takes a single value")


def test_list_option_given_with_option_is_a_one_item_list() -> None:
    cfg = load_text("config globals 'globals'\n\toption allow_name 'example.com'\n")
    assert cfg[schema.ALLOW_NAME] == ("example.com",)


def test_option_given_twice_last_one_wins() -> None:
    cfg = load_text("config globals 'globals'\n\toption ttl_min '5'\n\toption ttl_min '7'\n")
    assert cfg[schema.TTL_MIN] == 7


def test_missing_required_static_options_name_section_and_line() -> None:
    found = problems_of(LAB + "\nconfig static 'half'\n\toption ipv4 '192.0.2.1'\n")
    assert found == ["clat-eamt.conf:4: section 'half': option 'ipv6': required, but missing"]


def test_second_globals_section_is_a_problem() -> None:
    text = "config globals 'globals'\n\nconfig globals 'globals'\n\toption ttl_min '9'\n"
    found = problems_of(text)
    assert any("a second globals section (the first is at line 1)" in p for p in found)


def test_globals_section_must_be_named_globals() -> None:
    problem = only_problem("config globals\n")
    assert "the globals section must be named 'globals'" in problem


def test_section_names_must_be_unique() -> None:
    text = LAB + static("192.0.2.1", "2001:db8::1", "a") + static("192.0.2.2", "2001:db8::2", "a")
    assert "the name is already used at line 4" in only_problem(text)


def test_syntax_error_becomes_a_config_error_with_the_line() -> None:
    assert only_problem("config globals 'globals'\n\toption ttl_min '5\n") == (
        "clat-eamt.conf:2: unterminated single quote"
    )


def test_all_problems_of_a_file_are_reported_together_in_line_order() -> None:
    text = (
        "config globals 'globals'\n"  # 1
        "\toption ttl_min 'abc'\n"  # 2
        "\toption enabeld '1'\n"  # 3
        "\toption host_mode 'some'\n"  # 4
        "\toption pool '10.0.0.1/8'\n"  # 5
        "config static 'x'\n"  # 6
        "\toption ipv4 '192.0.2.1'\n"  # 7
        "config wrong\n"  # 8
    )
    found = problems_of(text)
    assert [p.split(":")[1] for p in found] == ["2", "3", "4", "5", "6", "8"]
    assert "section 'x': option 'ipv6': required, but missing" in found[4]
    assert "did you mean 'enabled'" in found[1]
    assert "did you mean 10.0.0.0/8" in found[3]
    error = ConfigError([])
    assert str(error) == ""


def test_config_error_prints_one_line_per_problem() -> None:
    with pytest.raises(ConfigError) as caught:
        load_text("config globals 'globals'\n\toption ttl_min 'a'\n\toption ttl_max 'b'\n", "f")
    assert str(caught.value).splitlines() == [
        "f:2: option 'ttl_min': expected an integer 0..86400, got 'a'",
        "f:3: option 'ttl_max': expected an integer 1..604800, got 'b'",
    ]


# --- files -----------------------------------------------------------------------------------


def test_load_file_reads_the_file_and_names_it_in_problems(tmp_path: Path) -> None:
    path = tmp_path / "clat-eamt"
    path.write_text("config globals 'globals'\n\toption ttl_min '45'\n")
    assert load_file(path)[schema.TTL_MIN] == 45
    path.write_text("config globals 'globals'\n\toption ttl_min 'x'\n")
    with pytest.raises(ConfigError, match=f"^{path}:2: option 'ttl_min'"):
        load_file(path)


def test_missing_file_is_a_clear_config_error(tmp_path: Path) -> None:
    path = tmp_path / "absent"
    with pytest.raises(ConfigError) as caught:
        load_file(path)
    assert str(caught.value) == f"{path}: cannot read: No such file or directory"


def test_file_that_is_not_utf8_is_a_clear_config_error(tmp_path: Path) -> None:
    path = tmp_path / "binary"
    path.write_bytes(b"config globals 'globals'\n\xff\n")
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_file(path)


# --- JSON and UCI output ---------------------------------------------------------------------


def test_to_json_uses_plain_json_values() -> None:
    cfg = load_text(LAB + "\tlist pref64 '2001:db8:64::/96'\n" + static("192.0.2.1", "2001:db8::1"))
    data = cfg.to_json()
    assert data["globals"]["enabled"] is True
    assert data["globals"]["ttl_min"] == 30
    assert data["globals"]["pool"] == "100.127.0.0/16"
    assert data["globals"]["pref64"] == ["2001:db8:64::/96"]
    assert data["static"] == [
        {"name": None, "ipv4": "192.0.2.1/32", "ipv6": "2001:db8::1/128", "comment": ""}
    ]
    assert set(data["globals"]) == {option.name for option in schema.GLOBAL_OPTIONS}


def test_to_uci_round_trips_a_hand_written_file() -> None:
    cfg = load_text(
        LAB
        + "\tlist allow_name 'example.com'\n\tlist deny_prefix '2001:db8:bad::/48'\n"
        + static("198.51.100.0/24", "2001:db8:1::/120", "net")
        + "\toption comment 'it''s \"quoted\" # not a comment'\n"
        + static("192.0.2.1", "2001:db8::1")
    )
    assert cfg.static[0].comment == 'its "quoted" # not a comment'
    again = load_text(cfg.to_uci(), "dump")
    assert again == cfg
    assert again.source == "dump"


def test_equality_ignores_source_and_lines() -> None:
    text = LAB + static("192.0.2.1", "2001:db8::1")
    assert load_text(text, "a") == load_text("\n\n" + text, "b")


_LABEL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=10)
_NAMES = st.lists(_LABEL, min_size=1, max_size=3).map(".".join)
_IPV4 = st.integers(0, 2**32 - 1).flatmap(
    lambda value: st.integers(0, 32).map(lambda length: IPv4Network((value, length), strict=False))
)
_IPV6 = st.integers(0, 2**128 - 1).flatmap(
    lambda value: st.integers(0, 128).map(lambda length: IPv6Network((value, length), strict=False))
)
_PREF64 = st.tuples(st.integers(0, 0xFFFF), st.sampled_from([32, 40, 48, 56, 64, 96])).map(
    # 3fff::/20 (documentation) stays clear of the static targets in 2001:db8::/32
    lambda pair: IPv6Network(f"3fff:64:{pair[0]:x}::/{pair[1]}", strict=False)
)
_POOL = st.tuples(st.integers(0, 2**24 - 1), st.integers(8, 30)).map(
    lambda pair: IPv4Network(((10 << 24) | pair[0], pair[1]), strict=False)
)
_COMMENT = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=30)


@st.composite
def lab_configs(draw: st.DrawFn) -> tuple[dict[Any, Any], list[StaticEntry]]:
    """Random valid values for every globals option, plus valid static entries (in a lab)."""
    ttl_min = draw(st.integers(0, 86400))
    values: dict[Any, Any] = {
        schema.ENABLED: draw(st.booleans()),
        schema.LISTEN: draw(st.sampled_from([ip_address("127.0.0.1"), ip_address("::1")])),
        schema.PORT: draw(st.integers(1, 65535)),
        schema.UPSTREAM: tuple(
            ServerAddress(ip_address(f"2001:db8::{i + 1:x}"), port)
            for i, port in enumerate(draw(st.lists(st.integers(1, 65535), max_size=3)))
        ),
        schema.RESOLV_FILE: draw(st.sampled_from(["/tmp/resolv.conf.d/resolv.conf.auto", "/x"])),
        schema.HOLD_MS: draw(st.integers(0, 1000)),
        schema.APPLY_TIMEOUT_MS: draw(st.integers(1, 5000)),
        schema.UPSTREAM_TIMEOUT_MS: draw(st.integers(50, 30000)),
        schema.TRANSLATOR: draw(st.sampled_from(["none", "jool", "auto", "external"])),
        schema.CLAT_DEVICE: draw(st.sampled_from(["", "464-wan6_4"])),
        schema.STATE_DIR: draw(st.sampled_from(["/var/run/clat-eamt", "/tmp/x"])),
        schema.CONTROL_SOCKET: draw(st.sampled_from(["/var/run/clat-eamt/control.sock", "/x"])),
        schema.TUN: draw(st.sampled_from(["clat", "clat-eamt.0"])),
        schema.CLAT_IPV4: ip_address("192.0.0.1"),
        schema.CLAT_IPV6: draw(st.sampled_from([None, ip_address("2001:db8:ce::66")])),
        schema.TAYGA_IPV4: ip_address("192.0.0.2"),
        schema.TAYGA_IPV6: draw(st.sampled_from([None, ip_address("2001:db8:ce::1")])),
        schema.JOOL_INSTANCE: draw(st.sampled_from(["clat-eamt", "siit0"])),
        schema.JOOL_NETNS: draw(st.sampled_from(["", "jool"])),
        schema.HOST_OBSERVE: draw(st.integers(0, 86400)),
        schema.LAN_INTERFACES: tuple(
            draw(st.lists(st.sampled_from(["br-lan", "lan2"]), max_size=2))
        ),
        schema.PREF64: tuple(draw(st.lists(_PREF64, max_size=3))),
        schema.POOL: draw(_POOL),
        schema.TTL_MIN: ttl_min,
        schema.TTL_MAX: draw(st.integers(max(ttl_min, 1), 604800)),
        schema.STALE_LINGER: draw(st.integers(0, 3600)),
        schema.REQUIRE_DNSSEC: draw(st.booleans()),
        schema.IPV6_ONLY: draw(st.booleans()),
        schema.IPV6_ONLY_PLACEHOLDER: tuple(
            draw(st.lists(st.sampled_from([ip_address("192.0.2.99"), ip_address("0.0.0.1")])))
        ),
        schema.IPV6_ONLY_QUARANTINE: draw(st.integers(0, 86400)),
        schema.HOST_MODE: draw(st.sampled_from(["ipv4-only", "all"])),
        schema.MAX_ENTRIES: draw(st.integers(1, 1000000)),
        schema.MAX_IPV4_PER_IPV6: draw(st.integers(1, 4096)),
        schema.CREATE_RATE: draw(st.integers(1, 100000)),
        schema.CREATE_BURST: draw(st.integers(1, 1000000)),
        schema.CLIENT_IDENTITY: draw(st.booleans()),
        schema.HOST_CREATE_RATE: draw(st.integers(1, 100000)),
        schema.HOST_CREATE_BURST: draw(st.integers(1, 1000000)),
        schema.ALLOW_NAME: tuple(draw(st.lists(_NAMES, max_size=3))),
        schema.DENY_NAME: tuple(draw(st.lists(_NAMES, max_size=3))),
        schema.ALLOW_PREFIX: tuple(draw(st.lists(st.one_of(_IPV4, _IPV6), max_size=3))),
        schema.DENY_PREFIX: tuple(draw(st.lists(st.one_of(_IPV4, _IPV6), max_size=3))),
        schema.ALLOW_DOCUMENTATION: True,
        schema.PROVIDER_URL: draw(st.sampled_from(["", "https://isp.example/t?x=1&y=2"])),
        schema.PROVIDER_KEY: draw(
            st.sampled_from(["", "RWRjZjh3Z1lYN2JuTn+C4bMuTtEZF7tl9yDK8Wr3+6nNSHrYSNS1DYgB"])
        ),
        schema.PROVIDER_CA: draw(st.sampled_from(["", "/etc/ssl/isp-ca.pem"])),
        schema.PROVIDER_MAX_ENTRIES: draw(st.integers(1, 100000)),
        schema.PROVIDER_SERIAL_FILE: draw(
            st.sampled_from(["/etc/clat-eamt/provider.serial", "/x"])
        ),
        schema.SAFETY: draw(st.booleans()),
        schema.RESCUE_WINDOW_MS: draw(st.integers(100, 5000)),
        schema.BROKEN_BACKOFF: draw(st.integers(1, 86400)),
        schema.BRAKE_FAILURES: draw(st.integers(0, 1000)),
        schema.BRAKE_WINDOW: draw(st.integers(1, 3600)),
        schema.MSS_CLAMP: draw(st.integers(0, 1460)),
    }
    assert {option for option in values} == set(schema.GLOBAL_OPTIONS)
    hosts = draw(st.lists(st.integers(0, 255), unique=True, max_size=4))
    names = draw(st.lists(st.from_regex(r"[A-Za-z0-9_]{1,8}", fullmatch=True), max_size=4))
    statics = [
        StaticEntry(
            ip_network(f"192.0.2.{host}/32"),  # type: ignore[arg-type]
            ip_network(f"2001:db8:1::{host:x}/128"),  # type: ignore[arg-type]
            draw(_COMMENT),
            names[index] if index < len(names) and names[index] not in names[:index] else None,
        )
        for index, host in enumerate(hosts)
    ]
    return values, statics


@settings(max_examples=150, deadline=None)
@given(lab_configs())
def test_to_uci_then_load_text_gives_the_same_configuration(
    drawn: tuple[dict[Any, Any], list[StaticEntry]],
) -> None:
    values, statics = drawn
    cfg = from_values(values, statics)
    for option, value in values.items():
        assert cfg[option] == (
            tuple(option.type.parse(option.type.render(item)) for item in value)
            if option.is_list
            else value
        )
    assert cfg.static == tuple(statics)
    assert load_text(cfg.to_uci()) == cfg


def test_from_values_validates_like_a_file() -> None:
    with pytest.raises(ConfigError) as caught:
        from_values({schema.TTL_MIN: 100, schema.TTL_MAX: 10})
    assert str(caught.value) == (
        "<values>: option 'ttl_min': ttl_min (100) must not be larger than ttl_max (10)"
    )
    entry = StaticEntry(IPv4Network("192.0.2.1/32"), IPv6Network("2001:db8::1/128"), name="a b")
    with pytest.raises(ConfigError, match="section name may hold letters"):
        from_values({schema.ALLOW_DOCUMENTATION: True}, [entry])


# --- command-line flags ----------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser()
    add_arguments(result)
    return result


def test_every_globals_option_has_a_flag_that_defaults_to_not_given() -> None:
    namespace = parser().parse_args([])
    for option in schema.GLOBAL_OPTIONS:
        assert getattr(namespace, option.name) is None
    assert schema.TTL_MIN.flag == "--ttl-min"


def test_flags_parse_scalars_lists_and_booleans() -> None:
    namespace = parser().parse_args(
        ["--ttl-min", "5", "--allow-name", "a.example", "--allow-name", "b.example", "--no-enabled"]
    )
    assert namespace.ttl_min == "5"
    assert namespace.allow_name == ["a.example", "b.example"]
    assert namespace.enabled is False
    assert parser().parse_args(["--require-dnssec"]).require_dnssec is True


def test_overrides_apply_typed_values_and_replace_lists() -> None:
    cfg = load_text("config globals 'globals'\n\tlist allow_name 'file.example'\n", "f")
    namespace = parser().parse_args(
        ["--ttl-min", "5", "--allow-name", "flag.example", "--no-enabled", "--host-mode", "all"]
    )
    result = apply_overrides(cfg, namespace)
    assert result[schema.TTL_MIN] == 5
    assert result[schema.ALLOW_NAME] == ("flag.example",)
    assert result[schema.ENABLED] is False
    assert result[schema.HOST_MODE] == "all"
    assert result[schema.TTL_MAX] == cfg[schema.TTL_MAX]
    assert apply_overrides(cfg, parser().parse_args([])) == cfg


def test_override_type_errors_name_the_flag() -> None:
    namespace = parser().parse_args(["--ttl-min", "abc", "--pool", "10.0.0.1/8"])
    with pytest.raises(ConfigError) as caught:
        apply_overrides(defaults(), namespace)
    assert str(caught.value).splitlines() == [
        "--pool: 10.0.0.1/8 has host bits set; did you mean 10.0.0.0/8?",
        "--ttl-min: expected an integer 0..86400, got 'abc'",
    ]


def test_overrides_are_checked_against_the_file_values_by_the_same_rules() -> None:
    cfg = load_text("config globals 'globals'\n\toption ttl_min '600'\n", "f")
    with pytest.raises(ConfigError) as caught:
        apply_overrides(cfg, parser().parse_args(["--ttl-max", "60"]))
    assert str(caught.value) == "--ttl-max: ttl_min (600) must not be larger than --ttl-max (60)"


def test_overrides_recheck_static_entries_of_the_file() -> None:
    cfg = load_text(LAB + static("192.0.2.9", "2001:db8::9", "lab"), "f")
    with pytest.raises(ConfigError) as caught:
        apply_overrides(cfg, parser().parse_args(["--pool", "192.0.2.0/24"]))
    assert str(caught.value) == (
        "f:5: section 'lab': option 'ipv4': 192.0.2.9 overlaps the mapping pool 192.0.2.0/24 "
        "(--pool)"
    )
    with pytest.raises(ConfigError, match="allowed only with --allow-documentation"):
        apply_overrides(cfg, parser().parse_args(["--no-allow-documentation"]))


def test_effective_config_is_immutable() -> None:
    cfg: EffectiveConfig = defaults()
    with pytest.raises(AttributeError):
        cfg.static = ()  # type: ignore[misc]


# --- where the proxy listens and forwards ------------------------------------------------------


def test_dns_options_parse_dnsmasq_style_servers():
    from ipaddress import ip_address  # noqa: PLC0415

    from clat_eamt.config import load_text, schema  # noqa: PLC0415
    from clat_eamt.config.nettypes import ServerAddress  # noqa: PLC0415

    cfg = load_text(
        "config globals 'globals'\n"
        "\toption listen '::1'\n"
        "\toption port '5300'\n"
        "\tlist upstream '2001:db8::53'\n"
        "\tlist upstream '192.0.2.53#5353'\n"
    )
    assert cfg[schema.LISTEN] == ip_address("::1")
    assert cfg[schema.UPSTREAM] == (
        ServerAddress(ip_address("2001:db8::53")),
        ServerAddress(ip_address("192.0.2.53"), 5353),
    )
    assert "list upstream '192.0.2.53#5353'" in cfg.to_uci()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("list upstream '192.0.2.53:53'", "ADDRESS#PORT"),
        ("list upstream '192.0.2.53#0'", "port 1..65535"),
        ("list upstream 'dns.example'", "ADDRESS#PORT"),
        ("option listen '192.0.2.0/24'", "without /length"),
        ("option listen 'fe80::1%br-lan'", "zone ids"),
        ("option resolv_file 'resolv.conf'", "absolute path"),
        ("option hold_ms '5000'", "0..1000"),
    ],
)
def test_bad_dns_options_say_what_is_expected(line, message):
    from clat_eamt.config import ConfigError, load_text  # noqa: PLC0415

    with pytest.raises(ConfigError, match=message):
        load_text(f"config globals 'globals'\n\t{line}\n")


def test_upstream_pointing_at_the_proxy_itself_is_refused():
    from clat_eamt.config import ConfigError, load_text  # noqa: PLC0415

    with pytest.raises(ConfigError, match="would loop"):
        load_text("config globals 'globals'\n\tlist upstream '127.0.0.1#5353'\n")


def test_tayga_needs_its_addresses_and_keeps_them_out_of_the_pool():
    from clat_eamt.config import ConfigError, load_text  # noqa: PLC0415

    with pytest.raises(ConfigError) as caught:
        load_text(
            "config globals 'globals'\n\toption translator 'tayga'\n\toption pool '192.0.0.0/29'\n"
        )
    text = str(caught.value)
    assert "translator tayga needs clat_ipv6" in text and "tayga needs pref64" in text
    assert "clat_ipv4 192.0.0.1 lies inside pool" in text
    cfg = load_text(
        "config globals 'globals'\n\toption translator 'tayga'\n"
        "\toption clat_ipv6 '2001:db8:ce::66'\n\tlist pref64 '2001:db8:64::/96'\n"
    )
    assert str(cfg[schema.CLAT_IPV6]) == "2001:db8:ce::66"
