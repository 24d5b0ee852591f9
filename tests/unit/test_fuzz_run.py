"""A short run of `make fuzz` (tests/fuzz.py) in `make test`: random and mutated messages
through the proxy's request and answer paths on loopback, none escapes, and the proxy answers a
good query over UDP afterwards."""

from __future__ import annotations

import asyncio
import random

from tests.fuzz import fuzz, line


def test_short_fuzz_run_escapes_nothing_and_the_proxy_answers_afterwards():
    seed = random.randrange(1 << 32)
    sent, escaped, answered, counters = asyncio.run(fuzz(3000, 120, seed))
    assert line(sent, escaped, answered) == (
        "fuzz: 3000 messages, 0 escaped exceptions, proxy answered afterwards"
    ), f"seed {seed}"
    # both paths were exercised: unreadable queries, unreadable answers, decisions
    assert counters["malformed.queries"] > 0 and counters["malformed.answers"] > 0, counters
    assert counters["queries.a"] > 0 and counters.get("observed", 0) > 0, counters
