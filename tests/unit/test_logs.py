"""RateLimitedLog: a flood of one kind of message costs a few lines a minute, then one that says
how many were suppressed; other kinds are not held up.  The clock is the test's."""

from __future__ import annotations

import logging

from clat_eamt.logs import RateLimitedLog


def test_a_kind_is_logged_burst_times_per_interval_then_the_suppressed_are_counted(caplog):
    now = [0.0]
    limited = RateLimitedLog(logging.getLogger("t"), logging.WARNING, burst=2, interval=60.0,
                             clock=lambda: now[0])  # fmt: skip
    with caplog.at_level(logging.WARNING, "t"):
        for i in range(5):
            limited.note("upstream", "no answer %d", i)
        limited.note("query", "malformed")  # another kind is not held up
        now[0] = 61.0
        limited.note("upstream", "no answer again")
    assert [r.getMessage() for r in caplog.records] == [
        "no answer 0",
        "no answer 1",
        "malformed",
        "no answer again (3 similar messages suppressed)",
    ]
