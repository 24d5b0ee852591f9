"""The operator's table in the running daemon: whether a table offered (fetched from
``provider_url`` or pushed by the operator's agent) is taken, what it installs, when to fetch
again, and what status shows of it.  No I/O: the driver fetches the table and checks its
signature (``clat_eamt.provider``) and reports the result as ``ProviderOffered``.

A table is taken whole or refused whole (``core.provider``); a refused one changes nothing, so
the entries in place keep going until their own end (``Engine.tick`` expires them).
"""

from __future__ import annotations

import collections
from ipaddress import IPv4Network
from typing import Any, NamedTuple

from clat_eamt.config import EffectiveConfig, schema
from clat_eamt.core.addresses import AddressPolicy
from clat_eamt.core.engine import Engine, Outcome
from clat_eamt.core.model import Origin, State
from clat_eamt.core.provider import (
    FetchSchedule,
    ProviderEntry,
    ProviderTable,
    TableError,
    entry_problems,
    serial_problem,
)
from clat_eamt.runtime.events import ProviderOffered

FETCH, PUSH = "fetch", "push"  # how a table came (``ProviderOffered.via``)
# Work between two turns of the event loop, so a DNS answer waits at most one slice: entries
# checked (about 30 us each here) or installed (about 0.3 ms each here, ``make bench``).
CHECK_SLICE, SLICE = 128, 64
Pending = tuple[ProviderEntry, float]  # an entry to install, with its end


class _Checking(NamedTuple):
    """A table being checked, a slice at a time, before anything of it is installed (``done``:
    how many entries passed)."""

    table: ProviderTable
    live: tuple[ProviderEntry, ...]
    via: str
    now: float
    wall: float
    done: int = 0


class ProviderSource:
    """The operator's table as the runtime holds it (a plain class: see ``ProviderEntry``)."""

    def __init__(
        self, url: str, key: str, ca: str, max_entries: int, schedule: FetchSchedule | None
    ) -> None:
        self.url = url
        self.key = key  # the operator's usign public key: only tables signed with it are taken
        self.ca = ca  # a CA file the fetcher trusts instead of the router's store
        self.max_entries = max_entries
        self.schedule = schedule  # None: nothing to fetch (no provider_url)
        self.table: ProviderTable | None = None  # the one taken last (its entries dropped)
        self.size = 0  # how many entries it holds
        self.taken_at: float | None = None  # its time of day
        self.last: dict[str, Any] = {}  # the last offer: at, via, result, error
        self.checking: _Checking | None = None
        self.pending: collections.deque[Pending] = collections.deque()
        self.not_installed: list[str] = []  # refusals of the table being taken
        self.installed_last = False  # the last step installed a slice (else checked or retired)
        # The serial taken last, kept across a switch-off and (the driver's state file) a
        # restart: no table with a lower one is taken then.
        self.floor: int | None = None

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

    def forget(self) -> None:
        """The optimization was switched off and the entries retired: the next table offered
        (after it is on again) is taken whole, as after a restart (its serial not lower than
        the last one taken); a fetch is due then at once."""
        self.table, self.size, self.checking, self.pending = None, 0, None, collections.deque()
        if self.schedule is not None:
            self.schedule.due_at, self.schedule.running = float("-inf"), False

    @property
    def busy(self) -> bool:
        """A table is being checked or installed (the driver reports ``ProviderContinue``)."""
        return self.checking is not None or bool(self.pending)

    def offer(self, offered: ProviderOffered, now: float) -> str | None:
        """Start judging the table offered: why it is refused at once (the driver's
        ``problem``: a failed fetch or a bad signature; its size, its serial), else None and
        ``step`` goes on.  A table offered while another is being taken replaces it."""
        table, via, problem = offered.table, offered.via, offered.problem
        self.last = {"at": round(offered.wall), "via": via}
        self.checking, self.pending = None, collections.deque()
        try:
            if problem is not None or table is None:
                raise TableError(problem or "no table")
            if len(table.entries) > self.max_entries:  # read with another limit: a reload
                raise TableError(f"more than {self.max_entries} entries (provider_max_entries)")
            why = serial_problem(table, self.table, self.floor)
            if why is not None:
                raise TableError(why)
        except TableError as error:
            return self._refused(str(error), via, now)
        self.checking = _Checking(table, table.live(offered.wall), via, now, offered.wall)
        self.last["result"] = "checking"
        return None

    def step(self, engine: Engine, now: float, pool: IPv4Network) -> tuple[Outcome, str | None]:
        """One slice of work: check entries (every one before any is installed), or install
        them; the outcome, or why the table was refused (then nothing of it changed)."""
        checking = self.checking
        self.installed_last = checking is None
        if checking is not None:
            policy = engine.policy
            addresses = AddressPolicy(
                policy.addresses.allow_documentation, policy.addresses.excluded
            )  # the operator's table is not held to the allow lists of DNS names' addresses
            batch = checking.live[checking.done : checking.done + CHECK_SLICE]
            why = entry_problems(batch, addresses, policy.pref64.prefixes, pool)
            if why is not None:
                self.checking = None
                return Outcome(), self._refused(why, checking.via, now)
            self.checking = checking = checking._replace(done=checking.done + len(batch))
            if checking.done < len(checking.live):
                return Outcome(), None
            return self._take(engine, checking), None
        slice_ = [self.pending.popleft() for _ in range(min(SLICE, len(self.pending)))]
        outcome = engine.install_provider(
            ((e.ipv4, e.ipv6, end, e.comment) for e, end in slice_), now
        )
        self.not_installed += [r.detail for r in outcome.refusals]
        if not self.pending and self.last.get("result") == "taking":
            self.last |= {
                "result": "taken",
                "error": "; ".join(self.not_installed[:3]) or None,
                "not_installed": len(self.not_installed),
            }
        return outcome, None

    def _take(self, engine: Engine, checked: _Checking) -> Outcome:
        """Checked whole: the entries it no longer lists retire now, its own go in a slice at
        a time; its entries are not kept beyond that (the table's memory is theirs)."""
        table, now, wall = checked.table, checked.now, checked.wall
        self.checking = None
        self.pending = collections.deque((e, e.ends(now, wall)) for e in checked.live)
        keep = {(e.v4, e.v4len, e.v6, e.v6len) for e in checked.live}  # as ``Entry.ident``
        outcome = engine.retire_provider(keep, now)
        self.table, self.size, self.taken_at = table._replace(entries=()), len(table.entries), wall
        self.floor = table.serial
        self.not_installed = []
        self.last |= {"result": "taking" if self.pending else "taken", "error": None}
        if checked.via == FETCH and self.schedule is not None:
            self.schedule.running = False
            self.schedule.succeeded(now, table.refresh)
        return outcome

    def _refused(self, why: str, via: str, now: float) -> str:
        self.last |= {"result": "refused", "error": why}
        if via == FETCH and self.schedule is not None:
            self.schedule.running = False
            self.schedule.failed(now, self.table.refresh if self.table else None)
        return f"table refused: {why}; the entries in place stay to their end"

    def status(self, engine: Engine, now: float) -> dict[str, Any]:
        """URL, serial, entries, the last fetch or push and its result, the next fetch."""
        table, schedule = self.table, self.schedule
        return {
            "url": self.url or None,
            "signed": bool(self.key),
            "serial": table.serial if table else None,
            "entries": self.size,
            "installed": engine.table.count(Origin.PROVIDER, State.VALID),
            "taken_at": None if self.taken_at is None else round(self.taken_at),
            "refresh": table.refresh if table else None,
            "last": self.last or None,
            "next_fetch_in": (
                None if schedule is None else max(0.0, round(schedule.due_at - now, 1))
            ),
            "fetching": bool(schedule and schedule.running),
            "busy": self.busy,
        }
