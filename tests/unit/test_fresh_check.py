"""tools/fresh-check (`make fresh-check`): bash syntax, shellcheck clean, and the mirror it
gives debootstrap read from the host's apt sources in both of apt's formats.  The check itself
(debootstrap, the Set-up in the fresh root) needs root, a mirror and a quarter of an hour: it
is run by hand before an issue touching set-up is resolved, not by `make test`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "fresh-check"


def test_bash_syntax_mode_and_shellcheck() -> None:
    assert os.access(SCRIPT, os.X_OK)
    done = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    if shutil.which("shellcheck") is None:
        if os.environ.get("CI"):
            pytest.fail("shellcheck is not installed (CI is set: `make test` installs it)")
        pytest.skip("shellcheck is not installed (Debian: shellcheck)")
    done = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout


def mirror(apt: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FRESH_CHECK_APT_ETC": str(apt)}
    argv = [str(SCRIPT), "--mirror"]
    return subprocess.run(argv, capture_output=True, text=True, env=env, check=False)


def test_mirror_from_one_line_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(
        "# deb http://old.example/debian bookworm main\n"
        "deb http://security.example/debian-security bookworm-security main\n"
        "deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://mirror.example/debian"
        " bookworm main contrib\n"
    )
    done = mirror(tmp_path)
    assert (done.returncode, done.stdout) == (0, "http://mirror.example/debian\n"), done.stderr


def test_mirror_from_deb822_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n"
        "URIs: http://security.example/debian-security\n"
        "Suites: bookworm-security\n"
        "Components: main\n"
        "\n"
        "Types: deb-src deb\n"
        "# a comment inside the stanza\n"
        "URIs: http://mirror.example/debian http://second.example/debian\n"
        "Suites: bookworm bookworm-updates\n"
        "Components: main\n"
    )
    (tmp_path / "sources.list.d" / "other.sources.disabled").write_text(
        "Types: deb\nURIs: http://disabled.example/\nSuites: bookworm\nComponents: main\n"
    )
    done = mirror(tmp_path)
    assert (done.returncode, done.stdout) == (0, "http://mirror.example/debian\n"), done.stderr


def test_no_bookworm_source_is_a_message(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text("deb http://mirror.example/debian trixie main\n")
    done = mirror(tmp_path)
    assert done.returncode == 2
    assert done.stderr == f"fresh-check: no 'bookworm' source in {tmp_path}/sources.list*\n"
