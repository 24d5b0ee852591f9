"""The settings form accepts exactly what the daemon accepts: one table of good and bad values
per option runs through the daemon's parser (the option's type, as the UCI loader uses it) and
through the form's check (clat-eamt/validate.js with the rule schema.js holds for the option,
run in node by luci_harness.js as LuCI's validation.js calls a field's validate()).  The
values include those the form and the daemon used to disagree on (issue 14)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from clat_eamt.config import schema
from clat_eamt.config.render import luci_options
from tests.unit.lucikit import run_harness

ALL = {o.name: o for o in schema.GLOBAL_OPTIONS + schema.STATIC_OPTIONS}
V4 = [
    "192.0.2.1", " 192.0.2.1 ", "192.0.2.0/24", "192.0.2.1/24", "192.0.2.0/255.255.255.0",
    "010.0.0.1", "256.0.0.1", "192.0.2", "0.0.0.0/0", "10.0.0.0/08", "192.0.2.0/33",
    "2001:db8::1", "", "x",
]  # fmt: skip
V6 = [
    "2001:db8::1", "2001:db8::/32", "2001:db8::1/32", "2001:db8:64::/96", "2001:db8:64::1",
    "2001:db8::/33", "64:ff9b::/96", "2001:db8:0:0:ff00::/96", "2001:db8::/40", "::",
    "::ffff:192.0.2.1", "::ffff:192.0.2.01", "1::2:3:4:5:6:7", "1:2:3:4:5:6:7::",
    "1:2:3:4:5:6:7:8:9", "1:::2", ":1::2", "1::2:", "12345::", "2001:DB8::A", "fe80::1%eth0",
    " 2001:db8::1", "192.0.2.1", "2001:db8::/129",
]  # fmt: skip
INTS = ["0", "1", "5353", "65535", "65536", "-1", "-0", " 42 ", "+5", "4.0", "1e3", "05", "x"]
NAMES = ["br-lan", "eth0.2", "br lan!", "a" * 15, "a" * 16, "wg_0", "", " lan ", "lan/1"]
DNS = [
    "example.com", "*.example.com", "www.example.com.", "EXAMPLE.com", "-bad.example",
    "bad-.example", "a..b", "exa mple.com", "_srv.example", "é.example", "a" * 64 + ".com",
    ".", "",
]  # fmt: skip
TABLE: dict[str, list[str]] = {
    "listen": ["127.0.0.1", "::1", "127.0.0.1/32", "fe80::1%br-lan", "localhost", "01.2.3.4"],
    "port": INTS,
    "upstream": [
        "2001:db8::53",
        "192.0.2.53#5353",
        "192.0.2.53#",
        "192.0.2.53#0",
        "192.0.2.53#65536",
        "[2001:db8::53]:53",
        "2001:db8::53#53",
        "whatever",
        "192.0.2.53:53",
        " 192.0.2.53 ",
        "dns.example",
    ],
    "resolv_file": ["/tmp/resolv.conf.auto", "tmp/resolv.conf", " /x ", "/a\tb", "/a\x01b"],
    "pref64": V6,
    "pool": V4,
    "ttl_min": INTS,
    "ttl_max": INTS,
    "hold_ms": [*INTS, "1000", "1001"],
    "state_dir": ["/var/run/clat-eamt", "var/run"],
    "tun": NAMES,
    "clat_ipv4": ["192.0.0.1", "192.0.0.1/32", "2001:db8::1", "", "1.2.3"],
    "clat_ipv6": ["2001:db8::66", "", " ", "192.0.2.1", "2001:db8::66/128", "2001:db8::66%x"],
    "tayga_ipv6": ["2001:db8::67", ""],
    "jool_netns": NAMES,
    "clat_device": [*NAMES, "464-wan6_4"],
    "lan_interface": NAMES,
    "max_entries": [*INTS, "1000000", "1000001"],
    "allow_name": DNS,
    "deny_name": DNS,
    "allow_prefix": V4 + V6,
    "deny_prefix": V4 + V6,
    "ipv4": V4,
    "ipv6": V6,
    "provider_url": [
        "https://isp.example/t",
        "http://isp.example/t",
        "",
        "ftp://isp.example",
        "https:///x",
        "https://isp.example/a b",
        "https://isp.example/\x07",
    ],
    "provider_key": [
        "RWRjZjh3Z1lYN2JuTn+C4bMuTtEZF7tl9yDK8Wr3+6nNSHrYSNS1DYgB",
        "",
        "RWRj",
        "not base64!",
        "RWRjZjh3Z1lYN2JuTn+C4bMuTtEZF7tl9yDK8Wr3+6nNSHrYSNS1DYg=",
        "AAAAZjh3Z1lYN2JuTn+C4bMuTtEZF7tl9yDK8Wr3+6nNSHrYSNS1DYgB",
    ],
    "provider_ca": ["/etc/ssl/isp.pem", "", "etc/ssl/isp.pem"],
    "provider_max_entries": [*INTS, "100000", "100001"],
    "comment": ["office NAS", "tab\there", "", "new\nline", "bell\x07", "ü", "del\x7f"],
}


def daemon_accepts(option: schema.Option[Any], value: str) -> bool:
    """The daemon's verdict: an empty field is an absent option (its default) unless it is
    required; anything else is one UCI word for the option's type."""
    if value == "" and not option.required:
        return True
    try:
        option.type.parse(value)
    except ValueError:
        return False
    return True


@pytest.fixture(scope="module")
def form() -> dict[str, list[Any]]:
    return dict(run_harness("validate", json.dumps(TABLE)))


def test_every_typed_option_is_in_the_table() -> None:
    typed = {r["name"] for r in luci_options() if r["widget"] in ("value", "list")}
    assert typed - set(TABLE) <= {
        "control_socket", "tayga_ipv4", "jool_instance", "apply_timeout_ms",
        "upstream_timeout_ms", "stale_linger", "host_observe", "create_rate", "create_burst",
        "host_create_rate", "host_create_burst",
    }  # fmt: skip  # the same types as options in the table


@pytest.mark.parametrize("name", sorted(TABLE))
def test_the_form_accepts_exactly_what_the_daemon_accepts(form: dict[str, list[Any]], name: str):
    option = ALL[name]
    verdicts = form[name]
    wrong = [
        (value, verdict)
        for value, verdict in zip(TABLE[name], verdicts, strict=True)
        if (verdict is True) != daemon_accepts(option, value)
    ]
    assert not wrong, f"{name}: the form and the daemon disagree on {wrong}"
    refused = [v for v, verdict in zip(TABLE[name], verdicts, strict=True) if verdict is not True]
    assert all(isinstance(m, str) and m for m in verdicts if m is not True)  # a message
    if name in ("port", "pool", "pref64", "upstream", "allow_name"):
        assert refused and len(refused) < len(TABLE[name])  # the table has both kinds


@pytest.mark.parametrize(
    ("name", "value", "accepted"),
    [
        ("upstream", "whatever", False),
        ("lan_interface", "br lan!", False),
        ("pref64", "2001:db8:64::1", False),
        ("pref64", "2001:db8::/33", False),
        ("allow_name", "*.example.com", True),
    ],
)
def test_the_values_issue_14_found(form: dict[str, list[Any]], name: str, value: str, accepted):
    verdict = form[name][TABLE[name].index(value)]
    assert (verdict is True) is accepted
    assert daemon_accepts(ALL[name], value) is accepted


def test_flags_and_choices_offer_only_words_the_daemon_accepts() -> None:
    for row in luci_options():
        option = ALL[row["name"]]
        if row["widget"] == "flag":
            words = ["0", "1"]  # the form's Flag writes these (settings.js)
        elif row["widget"] == "choice":
            words = row["values"]
        else:
            continue
        assert all(daemon_accepts(option, w) for w in words), row["name"]
