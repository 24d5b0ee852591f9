"""What the driver reports to the runtime (``Runtime.handle``).  Plain frozen data: the driver
did the I/O, these are its results."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network

from clat_eamt.config import EffectiveConfig, StaticEntry
from clat_eamt.core.counters import ApplyResult
from clat_eamt.core.dataplane import DataplaneState
from clat_eamt.core.hosts import Neighbour
from clat_eamt.core.model import IPNetwork, LiveFlows, Observation
from clat_eamt.core.provider import ProviderTable


@dataclass(frozen=True)
class AnswerObserved:
    """An A answer and its AAAA passed the proxy (SPEC 3): decide, and say how long it lives."""

    observation: Observation


@dataclass(frozen=True)
class AnswerReleased:
    """An answer's wait for its dataplane batch ended (``ApplyResult``); it goes out now."""

    name: str
    result: ApplyResult


@dataclass(frozen=True)
class Tick:
    """The clock's second: the live flows (None: the flow oracle could not answer) and the
    neighbour tables (None: unreadable, ``neighbour_error`` says why)."""

    flows: LiveFlows | None
    neighbours: tuple[Neighbour, ...] | None
    neighbour_error: str | None = None


@dataclass(frozen=True)
class BatchDone:
    """A dataplane batch landed."""


@dataclass(frozen=True)
class BatchFailed:
    """A dataplane batch failed (the backend's words)."""

    error: str


@dataclass(frozen=True)
class Reconfigured:
    """The configuration file was read again (SIGHUP) and is valid."""

    config: EffectiveConfig


@dataclass(frozen=True)
class ReloadRefused:
    """The configuration file was read again and has problems: the running one stays."""

    error: str


@dataclass(frozen=True)
class OperatorAdd:
    """``clat-eamt add``: a static entry until a restart or reload."""

    entry: StaticEntry


@dataclass(frozen=True)
class OperatorDelete:
    """``clat-eamt del``: the static entry of this IPv4 prefix."""

    ipv4: IPv4Network


@dataclass(frozen=True)
class OperatorFlush:
    """``clat-eamt flush``: every learned entry retires (flows kept)."""


@dataclass(frozen=True)
class ProviderOffered:
    """An operator's table, fetched from provider_url (``via`` "fetch") or pushed by the
    operator's agent ("push"), read by the driver (``core.provider.parse_table``, off the event
    loop); or the ``problem`` that kept it from being read or trusted (the fetch failed, its
    signature is bad or missing, a line is wrong); ``wall`` the time of day."""

    table: ProviderTable | None
    via: str
    problem: str | None
    wall: float


@dataclass(frozen=True)
class ProviderRemembered:
    """At start: the serial of the operator's table taken last before the restart (the
    driver's state file)."""

    serial: int


@dataclass(frozen=True)
class ProviderContinue:
    """The driver let the event loop turn: install the next slice of the table being taken."""


OperatorEvent = OperatorAdd | OperatorDelete | OperatorFlush | ProviderOffered


@dataclass(frozen=True)
class DataplaneDied:
    """The dataplane stopped working since it started (tayga's process died)."""

    problem: str


@dataclass(frozen=True)
class ProbeResult:
    """The router's own addresses and prefixes, probed before the dataplane starts (SPEC 4:
    never mapped, and the pool must avoid them)."""

    never_mapped: tuple[IPNetwork, ...]
    in_use: tuple[IPNetwork, ...]


@dataclass(frozen=True)
class DataplaneStarted:
    """The dataplane started (or was adopted) and holds ``actual``; ``live`` its flows."""

    actual: DataplaneState
    live: LiveFlows | None


@dataclass(frozen=True)
class DataplaneReady:
    """The reconciling operations landed: the dataplane holds what the table wants."""


@dataclass(frozen=True)
class DataplaneStartFailed:
    """Starting, probing or reconciling failed: ``kind`` the error's type, ``message`` its
    words."""

    kind: str
    message: str


@dataclass(frozen=True)
class Pref64Found:
    """A source (``core.pref64``: RA, DNS) now knows these Pref64s (empty: none any more)."""

    source: str
    prefixes: tuple[IPv6Network, ...]


@dataclass(frozen=True)
class FlowsCounted:
    """A census of the live flows for the history (None: unreadable); ``wall``: the time of day
    it is stamped with (the browser's clock)."""

    native: int | None
    nat64: int | None
    wall: int


@dataclass(frozen=True)
class RefreshDone:
    """A name asked again ahead of its end got an answer (``ok``) or not."""

    name: str
    ok: bool


@dataclass(frozen=True)
class Listening:
    """The DNS sockets listen on ``port``."""

    port: int


Event = (
    AnswerObserved | AnswerReleased | Tick | BatchDone | BatchFailed | Reconfigured
    | ReloadRefused | OperatorAdd | OperatorDelete | OperatorFlush | ProviderOffered
    | ProviderContinue | ProviderRemembered    | DataplaneDied | ProbeResult
    | DataplaneStarted | DataplaneReady | DataplaneStartFailed | Pref64Found | FlowsCounted
    | RefreshDone | Listening
)  # fmt: skip
