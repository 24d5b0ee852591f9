"""`clat-eamt run` as a user starts it: clear errors and exit status 1 when it cannot work."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.proxykit import LAB_OPTIONS, uci


def run(config: Path, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "clat_eamt", "run", "--config", str(config)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def test_bad_config_is_refused_with_every_problem(tmp_path: Path):
    config = tmp_path / "clat-eamt"
    config.write_text(uci({"port": "70000", "upstream": ["192.0.2.53:53"], "hold_ms": "x"}))
    result = run(config)
    assert result.returncode == 1
    for option in ("port", "upstream", "hold_ms"):
        assert f"option '{option}'" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_config_file_is_a_clear_error(tmp_path: Path):
    result = run(tmp_path / "absent")
    assert result.returncode == 1 and "cannot read" in result.stderr


def test_port_in_use_is_a_clear_error(tmp_path: Path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        config = tmp_path / "clat-eamt"
        options = {**LAB_OPTIONS, "port": str(port), "upstream": ["192.0.2.53"]}
        options["control_socket"] = str(tmp_path / "control.sock")
        config.write_text(uci(options))
        result = run(config)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1#{port}" in result.stderr
    assert "Traceback" not in result.stderr


OPENWRT_FILE = """
config globals 'globals'
	option enabled '1'
	option listen '127.0.0.1'
	option port '{port}'
	list upstream '127.0.0.1#9'
	list upstream "::1#9"
	option pool 198.51.100.128/25
	list pref64 '2001:db8:64::/96'
	option ttl_min '45'   # hand-edited: a comment after a value
	option allow_documentation '1'
	list lan_interface 'lo'
	option control_socket '{dir}/control.sock'
	option state_dir '{dir}/state'
	option provider_serial_file '{dir}/state/provider.serial'

# an anonymous static section, as LuCI's grid writes them
config static
	option ipv4 '192.0.2.10'
	option ipv6 '2001:db8:1::10'
	option comment 'printer on the "office" shelf'

config static 'nas'
	option ipv4 '192.0.2.16/30'
	option ipv6 '2001:db8:1::10:0/126'
"""


def test_daemon_reads_an_openwrt_uci_file_and_reports_the_config_the_cli_checks(tmp_path):
    """A file as OpenWrt writes and people edit it (quoting styles, comments, anonymous and
    named sections): the running daemon's effective configuration is exactly what
    `clat-eamt config check` prints for the file."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "clat-eamt"
    config.write_text(OPENWRT_FILE.format(port=port, dir=tmp_path))
    argv = [sys.executable, "-m", "clat_eamt", "run", "--config", str(config)]
    daemon = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    sock = str(tmp_path / "control.sock")
    try:
        cli = [sys.executable, "-m", "clat_eamt"]
        for _ in range(100):
            ask = [*cli, "config", "--json", "--socket", sock]
            asked = subprocess.run(ask, capture_output=True, text=True, timeout=30, check=False)
            if asked.returncode != 3:
                break
            time.sleep(0.1)
        assert asked.returncode == 0, asked.stderr
        check = [*cli, "config", "check", str(config), "--json"]
        checked = subprocess.run(check, capture_output=True, text=True, timeout=30, check=True)
        running, file = json.loads(asked.stdout), json.loads(checked.stdout)
        assert running == file
        assert file["globals"]["ttl_min"] == 45 and len(file["static"]) == 2
        assert file["static"][0]["comment"] == 'printer on the "office" shelf'
        assert file["globals"]["upstream"] == ["127.0.0.1#9", "::1#9"]  # dnsmasq's own syntax
    finally:
        daemon.terminate()
        daemon.wait(10)
