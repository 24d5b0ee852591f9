"""`clat-eamt run` as a user starts it: clear errors and exit status 1 when it cannot work."""

from __future__ import annotations

import socket
import subprocess
import sys
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
