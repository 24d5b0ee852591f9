"""Shared test set-up: a hypothesis profile for CI and the lab marker's root check."""

from __future__ import annotations

import os

from hypothesis import settings

# CI runs the same examples every time (a red CI must be reproducible); locally hypothesis
# explores new ones each run.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
