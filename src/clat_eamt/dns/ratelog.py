"""Logging that a flood cannot turn into a disk-filling or CPU-eating problem.

Malformed packets and failing upstreams can arrive thousands of times a second; each kind is
logged at most ``burst`` times per ``interval``, and the next message says how many were
suppressed meanwhile.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RateLimitedLog:
    def __init__(
        self,
        logger: logging.Logger,
        level: int,
        burst: int = 5,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger, self.level, self.burst, self.interval, self.clock = (
            logger,
            level,
            burst,
            interval,
            clock,
        )
        self._window: dict[str, tuple[float, int, int]] = {}  # kind -> (start, logged, dropped)

    def note(self, kind: str, message: str, *args: object, exc_info: bool = False) -> None:
        now = self.clock()
        start, logged, dropped = self._window.get(kind, (now, 0, 0))
        if now - start >= self.interval:
            start, logged = now, 0
        if logged >= self.burst:
            self._window[kind] = (start, logged, dropped + 1)
            return
        if dropped:
            message += f" ({dropped} similar messages suppressed)"
        self.logger.log(self.level, message, *args, exc_info=exc_info)
        self._window[kind] = (start, logged + 1, 0)
