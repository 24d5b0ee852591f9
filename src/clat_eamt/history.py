"""The live flows, native vs through the NAT64, sampled over the last hour: the series the LuCI
status page draws.  Samples come from the conntrack census (control.target), one every
``interval`` seconds of the daemon's clock, stamped with wall-clock time for the browser."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

INTERVAL, SPAN = 30.0, 3600.0  # one sample every 30 s, an hour of them


class FlowHistory:
    def __init__(
        self,
        interval: float = INTERVAL,
        span: float = SPAN,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.interval, self.wall = interval, wall
        self.samples: deque[tuple[int, int, int]] = deque(maxlen=max(1, int(span // interval)))
        self._next: float | None = None

    def due(self, now: float) -> bool:
        return self._next is None or now >= self._next

    def add(self, now: float, native: int, nat64: int, wall: int | None = None) -> None:
        """``wall``: the time of day of the sample (read from ``wall`` when not given)."""
        self.samples.append((int(self.wall()) if wall is None else wall, native, nat64))
        self._next = now + self.interval

    def skip(self, now: float) -> None:
        """No census this time (conntrack unreadable): try again at the next interval."""
        self._next = now + self.interval

    def json(self) -> dict[str, object]:
        return {
            "interval": self.interval,
            "points": [{"time": t, "native": n, "nat64": m} for t, n, m in self.samples],
        }
