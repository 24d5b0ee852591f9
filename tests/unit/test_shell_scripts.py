"""The package's shell scripts: POSIX syntax (`sh -n`), shellcheck clean for a POSIX sh
(OpenWrt's /bin/sh is busybox ash; each script says so and disables, with a reason, only what
OpenWrt scripts need), executable, and the init script ordered after dnsmasq."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from tests.openwrtkit import FILES, SCRIPTS


def skip_or_fail(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: `make test` installs it)", pytrace=False)
    pytest.skip(reason)


@pytest.mark.parametrize("rel", SCRIPTS)
def test_posix_syntax_and_mode(rel: str) -> None:
    path = FILES / rel
    assert os.access(path, os.X_OK), f"{rel} must be executable (0755)"
    result = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("rel", SCRIPTS)
def test_shellcheck(rel: str) -> None:
    if shutil.which("shellcheck") is None:
        skip_or_fail("shellcheck is not installed (Debian: shellcheck)")
    path = FILES / rel
    # -x follows the scripts' `. dnsmasq.sh` (source-path=SCRIPTDIR directives); run from the
    # script's directory so relative source paths resolve.
    result = subprocess.run(
        ["shellcheck", "-s", "sh", "-x", path.name],
        cwd=path.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_shellcheck_disable_says_why() -> None:
    for rel in SCRIPTS:
        lines = (FILES / rel).read_text().splitlines()
        for i, line in enumerate(lines):
            if "shellcheck disable" in line:
                after = line.split("disable=", 1)[1]
                reason = "#" in after or lines[i - 1].lstrip().startswith("#")
                assert reason, f"{rel}:{i + 1}: a disable without a reason"


def test_init_script_starts_after_dnsmasq() -> None:
    text = (FILES / "etc/init.d/clat-eamt").read_text()
    assert text.startswith("#!/bin/sh /etc/rc.common\n")
    assert "\nUSE_PROCD=1\n" in text
    start = re.search(r"^START=(\d+)", text, re.M)
    assert start and int(start[1]) > 19  # dnsmasq's START
