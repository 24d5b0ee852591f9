"""The settings form accepts exactly what the daemon accepts: one table of good and bad values
for every typed option runs through

- the form: the whole widget path of the settings view as LuCI runs it (luci_harness.js
  ``widgets``: validation.js's empty check and the option's validate(), a Value's field optional
  unless required, a DynamicList's value through its "add" field and that field's empty state,
  then Save: form.js parse writes the value into uci and the view sends the UCI text it renders
  to the daemon's check, ``control.check.check_text``, which refuses or lets Save stage it);
- the daemon: ``clat-eamt config check`` of a file with that value (``load_file``: every type and
  every rule between options), written here independently of the view.

0 differences.  The values include those the form and the daemon used to disagree on (issues 14
and 24: a pool of a /31 or /32, a TTL floor above the default ceiling, an upstream that is the
proxy itself), and a list's empty "add" field must pass (issue 24: it made Save fail)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from clat_eamt.cli import main as cli_main
from clat_eamt.config import ConfigError, load_file, schema
from clat_eamt.config.render import luci_options
from clat_eamt.config.uci import statement
from clat_eamt.control.check import check_text
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
POOLS = [
    "100.127.0.0", "100.127.0.0/31", "100.127.0.0/30", "100.127.0.0/16", "10.99.0.0/24",
    "198.18.0.0/15", "8.8.8.0/24", "100.64.0.0/9",
]  # fmt: skip
TABLE: dict[str, list[str]] = {
    "listen": ["127.0.0.1", "::1", "127.0.0.1/32", "fe80::1%br-lan", "localhost", "01.2.3.4", ""],
    "port": [*INTS, ""],
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
        "127.0.0.1#5353",  # the proxy itself (listen/port): queries would loop
        "127.0.0.1",
    ],
    "resolv_file": ["/tmp/resolv.conf.auto", "tmp/resolv.conf", " /x ", "/a\tb", "/a\x01b"],
    "pref64": V6,
    "pool": V4 + POOLS,
    "ttl_min": [*INTS, "3600", "3601", "86400"],
    "ttl_max": [*INTS, "29", "30"],
    "hold_ms": [*INTS, "1000", "1001"],
    "state_dir": ["/var/run/clat-eamt", "var/run"],
    "provider_serial_file": ["/etc/clat-eamt/provider.serial", "etc/x", " /x "],
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


def daemon_file(option: schema.Option[Any], value: str) -> str:
    """A UCI file with ``value`` for ``option`` and every other option at its default (a static
    option in an entry whose other options are good, documentation addresses allowed)."""
    lines = ["config globals 'globals'"]
    keyword = "list" if option.is_list else "option"
    if option.section == schema.GLOBALS:
        lines += [f"\t{statement(keyword, option.name, value)}"] if value else []
        return "\n".join(lines) + "\n"
    entry = {"ipv4": "192.0.2.7", "ipv6": "2001:db8:1::7"} | {option.name: value}
    lines += ["\toption allow_documentation '1'", "", "config static"]
    lines += [f"\t{statement('option', k, v)}" for k, v in entry.items() if v]
    return "\n".join(lines) + "\n"


def daemon_accepts(path: Path, option: schema.Option[Any], value: str) -> bool:
    """`clat-eamt config check FILE` (its loader) on the file the value makes."""
    path.write_text(daemon_file(option, value))
    try:
        load_file(path)
    except ConfigError:
        return False
    return True


@pytest.fixture(scope="module")
def form() -> dict[str, Any]:
    return dict(run_harness("widgets", json.dumps(TABLE)))


def form_accepts(form: dict[str, Any], name: str, index: int) -> bool | str:
    """The form's verdict: its fields' check, then the daemon's check of what Save sends."""
    verdict, saved = form[name]["verdicts"][index], form[name]["saved"][index]
    if verdict is not True:
        return str(verdict)
    assert saved is not None, f"{name}: Save sent nothing to the daemon's check"
    found = check_text(saved)
    return True if found["valid"] else "; ".join(p["text"] for p in found["problems"])


def test_every_typed_option_is_in_the_table() -> None:
    typed = {r["name"] for r in luci_options() if r["widget"] in ("value", "list")}
    assert typed - set(TABLE) <= {
        "control_socket", "tayga_ipv4", "jool_instance", "apply_timeout_ms",
        "upstream_timeout_ms", "stale_linger", "host_observe", "create_rate", "create_burst",
        "host_create_rate", "host_create_burst", "max_ipv4_per_ipv6",
        "ipv6_only_placeholder", "ipv6_only_quarantine",
        "rescue_window_ms", "broken_backoff", "brake_failures", "brake_window", "mss_clamp",
    }  # fmt: skip  # the same types as options in the table


@pytest.mark.parametrize("name", sorted(TABLE))
def test_the_form_accepts_exactly_what_the_daemon_accepts(form, name: str, tmp_path: Path):
    option = ALL[name]
    verdicts = [form_accepts(form, name, i) for i in range(len(TABLE[name]))]
    wrong = [
        (value, verdict)
        for value, verdict in zip(TABLE[name], verdicts, strict=True)
        if (verdict is True) != daemon_accepts(tmp_path / "clat-eamt", option, value)
    ]
    assert not wrong, f"{name}: the form and the daemon disagree on {wrong}"
    refused = [v for v, verdict in zip(TABLE[name], verdicts, strict=True) if verdict is not True]
    assert all(isinstance(m, str) and m for m in verdicts if m is not True)  # a message
    if name in ("port", "pool", "pref64", "upstream", "allow_name", "ttl_min"):
        assert refused and len(refused) < len(TABLE[name])  # the table has both kinds


@pytest.mark.parametrize("name", sorted(n for n in TABLE if ALL[n].is_list))
def test_a_lists_empty_add_field_is_valid(form, name: str):
    """ui.js UIDynamicList.render runs the option's validate() on the empty add field (issue
    24: refusing '' marked it invalid on load and form.js parse refused every Save)."""
    assert form[name]["add_field"] is True, form[name]["add_field"]


def test_the_fields_pass_nothing_through_a_refusal_of_their_own(form):
    """A value a field refuses never reaches Save; one it lets through reaches the check as the
    UCI text of the settings, which the daemon's own parser reads back to the same value."""
    for name, values in TABLE.items():
        for value, verdict, saved in zip(
            values, form[name]["verdicts"], form[name]["saved"], strict=True
        ):
            assert (verdict is True) == (saved is not None), (name, value)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("pool", "100.127.0.0/31", "pool 100.127.0.0/31 is too small (at most /30)"),
        ("pool", "100.127.0.0", "pool 100.127.0.0/32 is too small (at most /30)"),
        ("pool", "8.8.8.0/24", "must lie inside private space"),
        ("ttl_min", "3601", "ttl_min (3601) must not be larger than ttl_max (3600)"),
        ("upstream", "127.0.0.1#5353", "is the proxy itself"),
        ("port", "65536", "an integer 1..65535"),
    ],
)
def test_a_refused_value_gets_the_daemons_words(form, name: str, value: str, message: str):
    verdict = form_accepts(form, name, TABLE[name].index(value))
    assert isinstance(verdict, str) and message in verdict, verdict


def test_the_cli_check_over_ubus_answers_as_the_file_check(tmp_path: Path, capsys, monkeypatch):
    """`clat-eamt config check --ubus` (what the rpcd plugin runs for the method check)."""
    request = {"uci": daemon_file(ALL["pool"], "100.127.0.0/31"), "ubus_rpc_session": "x"}
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(json.dumps(request)))
    assert cli_main(["config", "check", "--ubus"]) == 0
    reply = json.loads(capsys.readouterr().out)
    assert reply["valid"] is False
    assert reply["problems"][0]["option"] == "pool"
    assert "too small" in reply["problems"][0]["message"]


def test_flags_and_choices_offer_only_words_the_daemon_accepts() -> None:
    for row in luci_options():
        option = ALL[row["name"]]
        if row["widget"] == "flag":
            words = ["0", "1"]  # the form's Flag writes these (settings.js)
        elif row["widget"] == "choice":
            words = row["values"]
        else:
            continue
        assert all(_type_accepts(option, w) for w in words), row["name"]


def _type_accepts(option: schema.Option[Any], word: str) -> bool:
    try:
        option.type.parse(word)
    except ValueError:
        return False
    return True
