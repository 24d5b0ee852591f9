"""Skip locally, fail in CI: what a test does when the lab cannot run here.

A developer without root or without the Debian servers gets a skip with the reason; in CI (env
CI set), which installs everything and runs as root, the same situation is breakage and fails.
"""

from __future__ import annotations

import os

import pytest

from .procs import find_tool

# The servers the chain needs; the Makefile installs them (Debian packages in brackets).
SERVER_TOOLS = ("knotd", "unbound", "unbound-checkconf", "dnsmasq")
LAB_TOOLS = ("ip", "nft")


def skip_or_fail(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: this must not be skipped)", pytrace=False)
    pytest.skip(reason)


def require_tools(*names: str) -> None:
    missing = [n for n in names if find_tool(n) is None]
    if missing:
        skip_or_fail(
            f"missing {', '.join(missing)} (Debian: knot, unbound, dnsmasq-base, iproute2, "
            "nftables)"
        )


def require_root() -> None:
    if os.geteuid() != 0:
        skip_or_fail("needs root (network namespaces, nftables, AF_PACKET)")
