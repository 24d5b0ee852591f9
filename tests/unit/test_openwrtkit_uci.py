"""The uci emulation of tests/openwrtkit against what the real uci does (openwrt/uci: libuci's
list.c and file.c, cli.c), so that byte-for-byte checks made with it mean something on a
router: the format `uci commit` writes, in-place edits, anonymous section names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.openwrtkit import UCI_PY
from tests.openwrtkit.uci import djbhash, export, parse


def uci(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(UCI_PY), "-c", str(tmp_path / "config")]
    argv += ["--savedir", str(tmp_path / "save"), *args]
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    (tmp_path / "config").mkdir()
    path = tmp_path / "config" / "dhcp"
    path.write_text(
        "\nconfig dnsmasq\n\toption domain 'lan'\n\tlist server '192.0.2.1'\n"
        "\toption noresolv '0'\n\nconfig dhcp 'lan'\n\toption interface 'lan'\n\n"
    )
    return path


def test_anonymous_names_are_libucis() -> None:
    """Names every OpenWrt user has seen: system.cfg01e48a, firewall.cfg01e63d (defaults),
    dhcp.cfg01411c (the first dnsmasq section)."""
    assert [djbhash(t) % 65536 for t in ("system", "defaults", "dnsmasq")] == [
        0xE48A,
        0xE63D,
        0x411C,
    ]
    sections = parse("config dnsmasq\nconfig dhcp 'lan'\nconfig dnsmasq\n")
    assert [s.name for s in sections] == ["cfg01411c", "lan", "cfg03411c"]


def test_commit_format_from_a_hand_written_file() -> None:
    """Comments go, every value is single-quoted, a blank line before each section and at the
    end, a quote written as '\\''."""
    text = (
        "# a comment\nconfig dnsmasq # trailing\n  option domain lan\n"
        "\toption local \"/it's.lan/\"\n\tlist server '192.0.2.1'\n"
        "config dhcp lan\n\toption start 100\n"
    )
    assert export(parse(text)) == (
        "\nconfig dnsmasq\n\toption domain 'lan'\n\toption local '/it'\\''s.lan/'\n"
        "\tlist server '192.0.2.1'\n\nconfig dhcp 'lan'\n\toption start '100'\n\n"
    )


def test_changes_wait_for_commit(tmp_path: Path, conf: Path) -> None:
    before = conf.read_text()
    assert uci(tmp_path, "set", "dhcp.@dnsmasq[0].noresolv=1").returncode == 0
    assert uci(tmp_path, "get", "dhcp.@dnsmasq[0].noresolv").stdout == "1\n"
    assert conf.read_text() == before
    assert uci(tmp_path, "commit", "dhcp").returncode == 0
    assert "\toption noresolv '1'\n" in conf.read_text()


def test_edits_keep_options_in_place(tmp_path: Path, conf: Path) -> None:
    for change in (
        ["add_list", "dhcp.@dnsmasq[0].domain=other"],  # a plain option becomes a list there
        ["set", "dhcp.@dnsmasq[0].server=198.51.100.1"],  # a list becomes a plain option there
        ["set", "dhcp.@dnsmasq[0].addmac=1"],  # a new option goes to the end
        ["delete", "dhcp.@dnsmasq[0].noresolv"],
        ["add_list", "dhcp.lan.dhcp_option=6,192.0.2.1"],
    ):
        assert uci(tmp_path, *change).returncode == 0
    assert uci(tmp_path, "commit", "dhcp").returncode == 0
    assert conf.read_text() == (
        "\nconfig dnsmasq\n\tlist domain 'lan'\n\tlist domain 'other'\n"
        "\toption server '198.51.100.1'\n\toption addmac '1'\n\nconfig dhcp 'lan'\n"
        "\toption interface 'lan'\n\tlist dhcp_option '6,192.0.2.1'\n\n"
    )


def test_get_show_and_errors(tmp_path: Path, conf: Path) -> None:
    uci(tmp_path, "add_list", "dhcp.@dnsmasq[0].server=2001:db8::53")
    assert uci(tmp_path, "get", "dhcp.@dnsmasq[0].server").stdout == "192.0.2.1 2001:db8::53\n"
    assert uci(tmp_path, "get", "dhcp.@dnsmasq[-1]").stdout == "dnsmasq\n"
    show = uci(tmp_path, "show", "dhcp").stdout.splitlines()
    assert show[:2] == ["dhcp.@dnsmasq[0]=dnsmasq", "dhcp.@dnsmasq[0].domain='lan'"]
    assert "dhcp.@dnsmasq[0].server='192.0.2.1' '2001:db8::53'" in show
    assert uci(tmp_path, "-X", "show", "dhcp").stdout.startswith("dhcp.cfg01411c=dnsmasq\n")
    missing = uci(tmp_path, "-q", "get", "dhcp.@dnsmasq[0].addmac")
    assert (missing.returncode, missing.stdout, missing.stderr) == (1, "", "")
    assert uci(tmp_path, "get", "dhcp.@dnsmasq[1]").returncode == 1
    uci(tmp_path, "del_list", "dhcp.@dnsmasq[0].server=192.0.2.1")
    assert uci(tmp_path, "get", "dhcp.@dnsmasq[0].server").stdout == "2001:db8::53\n"
