"""The operator's table in the running daemon: whether a table offered (fetched from
``provider_url`` or pushed by the operator's agent) is taken, what it installs, when to fetch
again, and what status shows of it.  No I/O: the driver fetches the table and checks its
signature (``clat_eamt.provider``) and reports the result as ``ProviderOffered``.

A table is taken whole or refused whole (``core.provider``); a refused one changes nothing, so
the entries in place keep going until their own end (``Engine.tick`` expires them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Network
from typing import Any

from clat_eamt.config import EffectiveConfig, schema
from clat_eamt.core.addresses import AddressPolicy
from clat_eamt.core.engine import Engine, Outcome
from clat_eamt.core.model import Origin, State
from clat_eamt.core.provider import (
    FetchSchedule,
    ProviderTable,
    TableError,
    entry_problems,
    serial_problem,
)
from clat_eamt.runtime.events import ProviderOffered

FETCH, PUSH = "fetch", "push"  # how a table came (``ProviderOffered.via``)


@dataclass
class ProviderSource:
    url: str
    key: str  # the operator's usign public key: only tables signed with it are taken
    ca: str  # a CA file the fetcher trusts besides the system's
    max_entries: int
    schedule: FetchSchedule | None  # None: nothing to fetch (no provider_url)
    table: ProviderTable | None = None  # the one taken last
    taken_at: float | None = None  # its time of day
    last: dict[str, Any] = field(default_factory=dict)  # the last offer: at, via, result, error

    @classmethod
    def from_config(cls, cfg: EffectiveConfig, now: float) -> ProviderSource:
        url = str(cfg[schema.PROVIDER_URL])
        schedule = FetchSchedule(now) if url else None
        key, ca = str(cfg[schema.PROVIDER_KEY]), str(cfg[schema.PROVIDER_CA])
        return cls(url, key, ca, cfg[schema.PROVIDER_MAX_ENTRIES], schedule)

    def reconfigure(self, cfg: EffectiveConfig, now: float) -> None:
        """A reload: a new URL, key or CA is fetched with at once; the table in place stays."""
        new = ProviderSource.from_config(cfg, now)
        if (new.url, new.key, new.ca) != (self.url, self.key, self.ca):
            self.url, self.key, self.ca, self.schedule = new.url, new.key, new.ca, new.schedule
        self.max_entries = new.max_entries

    def settings(self) -> tuple[str, str, str, int]:
        """What the running source holds of the configuration (the reload test reads it)."""
        return self.url, self.key, self.ca, self.max_entries

    def due(self, now: float) -> bool:
        """Time to fetch (the caller starts it: nothing else is fetched until it reports)."""
        if self.schedule is None or not self.schedule.due(now):
            return False
        self.schedule.running = True
        return True

    def offer(
        self, engine: Engine, offered: ProviderOffered, now: float, pool: IPv4Network
    ) -> tuple[Outcome, str | None]:
        """Take the table offered or refuse it whole: its outcome, or why it was refused (the
        driver's ``problem``: a failed fetch or a bad signature; or the table's own)."""
        table, via, problem, wall = offered.table, offered.via, offered.problem, offered.wall
        self.last = {"at": round(wall), "via": via}
        refresh = self.table.refresh if self.table else None
        try:
            if problem is not None or table is None:
                raise TableError(problem or "no table")
            if len(table.entries) > self.max_entries:  # read with another limit: a reload
                raise TableError(f"more than {self.max_entries} entries (provider_max_entries)")
            policy = engine.policy
            addresses = AddressPolicy(
                policy.addresses.allow_documentation, policy.addresses.excluded
            )  # the operator's table is not held to the allow lists of DNS names' addresses
            live = table.live(wall)
            why = serial_problem(table, self.table) or entry_problems(
                live, addresses, policy.pref64.prefixes, pool
            )
            if why is not None:
                raise TableError(why)
        except TableError as error:
            self.last |= {"result": "refused", "error": str(error)}
            if via == FETCH and self.schedule is not None:
                self.schedule.running = False
                self.schedule.failed(now, refresh)
            return Outcome(), f"table refused: {error}; the entries in place stay to their end"
        ends = ((e.ipv4, e.ipv6, e.ends(now, wall), e.comment) for e in live)
        outcome = engine.sync_provider(ends, now)
        self.table, self.taken_at = table, wall
        not_installed = [r.detail for r in outcome.refusals]
        self.last |= {
            "result": "taken",
            "error": "; ".join(not_installed[:3]) or None,
            "not_installed": len(not_installed),
        }
        if via == FETCH and self.schedule is not None:
            self.schedule.running = False
            self.schedule.succeeded(now, table.refresh)
        return outcome, None

    def status(self, engine: Engine, now: float) -> dict[str, Any]:
        """URL, serial, entries, the last fetch or push and its result, the next fetch."""
        table, schedule = self.table, self.schedule
        return {
            "url": self.url or None,
            "signed": bool(self.key),
            "serial": table.serial if table else None,
            "entries": len(table.entries) if table else 0,
            "installed": engine.table.count(Origin.PROVIDER, State.VALID),
            "taken_at": None if self.taken_at is None else round(self.taken_at),
            "refresh": table.refresh if table else None,
            "last": self.last or None,
            "next_fetch_in": (
                None if schedule is None else max(0.0, round(schedule.due_at - now, 1))
            ),
            "fetching": bool(schedule and schedule.running),
        }
