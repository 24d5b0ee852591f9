"""What the daemon tells people and programs of its decisions: the decision log and the ubus
mapping events, and the runtime's own lines (``Say``), rate-limited by kind."""

from __future__ import annotations

import logging
from collections.abc import Callable

from clat_eamt.control.ubus_object import UbusObject
from clat_eamt.core.counters import UBUS_EVENT, EntryKind
from clat_eamt.core.engine import Outcome
from clat_eamt.core.model import Observation
from clat_eamt.logs import RateLimitedLog
from clat_eamt.present import (
    entry_json,
    observation_json,
    observation_text,
    outcome_json,
    outcome_text,
)
from clat_eamt.runtime.commands import Say

log = logging.getLogger("clat_eamt.daemon")
decisions = logging.getLogger("clat_eamt.decision")


class Announcer:
    """``bus``: where the mapping events go once ubus is up (None before and without it)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.bus: UbusObject | None = None
        self._said: dict[int, RateLimitedLog] = {}  # by level: the runtime's kinds of lines

    def say(self, say: Say) -> None:
        if say.kind is None:
            log.log(say.level, "%s", say.text)
            return
        limited = self._said.setdefault(say.level, RateLimitedLog(log, say.level))
        limited.note(say.kind, "%s", say.text)

    def publish(self, outcome: Outcome, action: str, obs: Observation | None) -> None:
        """The decision log (changes at info, the many no-change decisions at debug: a router's
        log must not fill with one line per DNS answer) and the ubus events."""
        if obs is not None:
            changed = any(event.kind != EntryKind.REFRESHED for event in outcome.events)
            level = logging.INFO if changed else logging.DEBUG
            if decisions.isEnabledFor(level):
                now = self.clock()
                data = {"observation": observation_json(obs), "outcome": outcome_json(outcome, now)}
                text = outcome_text(outcome)
                decisions.log(level, "%s: %s", observation_text(obs), text, extra={"data": data})
        elif outcome.events:
            decisions.info("%s: %s", action, outcome_text(outcome))
        if self.bus is not None and outcome.events:
            now = self.clock()
            for event in outcome.events:
                if event.kind in UBUS_EVENT:  # not refreshes: entry_json per answer was costly
                    self.bus.publish(event.kind, entry_json(event.entry, now))
