"""Log output of the daemon: readable lines for people (and OpenWrt's logread via procd's
stderr capture), or one JSON object per line for programs (``--log-format json``).

Records may carry structured fields in ``extra={"data": {...}}`` (the decision log does); the
JSON form includes them, the text form shows only the message.  ``RateLimitedLog`` keeps a
flood (malformed packets, a failing upstream, a broken dataplane) from filling the log.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Any


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        data = getattr(record, "data", None)
        if isinstance(data, dict):
            line.update(data)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def setup(level: str = "info", form: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if form == "json":
        handler.setFormatter(JsonFormatter())
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class RateLimitedLog:
    """Logging that a flood cannot turn into a disk-filling or CPU-eating problem: malformed
    packets and failing upstreams can arrive thousands of times a second; each kind is logged at
    most ``burst`` times per ``interval``, and the next message says how many were suppressed
    meanwhile."""

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
