"""Shared test set-up: a hypothesis profile for CI and the lab marker's root check."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

# CI runs the same examples every time (a red CI must be reproducible); locally hypothesis
# explores new ones each run.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

LAB_NEEDS_ROOT = "lab test: needs root (network namespaces, veth, nftables, raw sockets)"


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Lab tests skip without root, except in CI: CI runs as root, so there a missing root is
    breakage and a silent skip would hide it.  (Runs before the test's fixtures are set up.)"""
    if item.get_closest_marker("lab") is None or os.geteuid() == 0:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{LAB_NEEDS_ROOT}; CI is set and CI runs as root", pytrace=False)
    pytest.skip(LAB_NEEDS_ROOT)
