"""What the runtime asks the driver to do (``Runtime.handle`` returns them, in order)."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

from clat_eamt.core.engine import Outcome
from clat_eamt.core.ipv6only import SyntheticA
from clat_eamt.core.model import DataplaneOp, Observation
from clat_eamt.runtime.events import Tick
from clat_eamt.runtime.settings import ShellSettings


@dataclass(frozen=True)
class ApplyOps:
    """Queue these operations on the dataplane (in order, after those queued before) and wait
    for them at most the apply deadline; empty: wait only for what is queued already."""

    ops: tuple[DataplaneOp, ...]


@dataclass(frozen=True)
class Release:
    """Release the A answer with this Valid life (the A TTL ceiling; None: untouched), or
    with the A record made for an IPv6-only name (``SyntheticA``, issue 27).
    ``waited``: after an ``ApplyOps``, whose result the driver reports (``AnswerReleased``)."""

    name: str
    life: float | SyntheticA | None
    waited: bool


@dataclass(frozen=True)
class Reply:
    """The operator's answer: ``result`` (the driver adds how the dataplane took it), or the
    ``error`` that refused the action (nothing changed)."""

    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class Publish:
    """Log what an outcome did to the entries (the decision log) and send its entry events to
    ubus.  ``action``: what caused it; ``observation`` the answer, for an answer's outcome."""

    outcome: Outcome
    action: str
    observation: Observation | None = None


@dataclass(frozen=True)
class RestartDataplane:
    """Probe the router's prefixes (``ProbeResult``) to start the dataplane again."""


@dataclass(frozen=True)
class StartDataplane:
    """Start or adopt the dataplane (``DataplaneStarted`` / ``DataplaneStartFailed``)."""


@dataclass(frozen=True)
class Reconcile:
    """Apply these operations now, inside the start (``DataplaneReady`` /
    ``DataplaneStartFailed``): what the table wants and the kernel does not hold."""

    ops: tuple[DataplaneOp, ...]


@dataclass(frozen=True)
class SetHosts:
    """The dataplane's host sets: never steered, and allowed to be (host_mode ipv4-only)."""

    dual_stack: frozenset[IPv4Address]
    ipv4_only: frozenset[IPv4Address]


@dataclass(frozen=True)
class AskAgain:
    """Ask this name again through the proxy, ahead of its mapping's end (``RefreshDone``)."""

    name: str


@dataclass(frozen=True)
class CountFlows:
    """Count the live flows for the history (``FlowsCounted``)."""


@dataclass(frozen=True)
class FetchProvider:
    """Fetch the operator's table from ``url`` (trusting ``ca`` besides the system's CAs), and
    its signature from ``url`` + ".sig" when a ``key`` is set; check it and report it
    (``ProviderOffered``)."""

    url: str
    key: str
    ca: str
    max_entries: int  # a larger table is refused as it is read


@dataclass(frozen=True)
class ProviderMore:
    """Let the event loop turn (DNS answers go first), then report ``ProviderContinue``: a
    table of 10,000 entries is installed a slice at a time, not in one stall of seconds."""


@dataclass(frozen=True)
class RememberProvider:
    """Keep the serial of the operator's table just taken across a restart (a state file:
    ``ProviderRemembered`` at the next start)."""

    serial: int


@dataclass(frozen=True)
class FollowPref64:
    """Run RFC 7050 discovery (``discover``) or stop it."""

    discover: bool


@dataclass(frozen=True)
class Configure:
    """Give the shells their live settings; ``changed``: the options a reload changed."""

    settings: ShellSettings
    changed: tuple[str, ...] = ()


@dataclass(frozen=True)
class RehookDns:
    """Tell the dnsmasq hook where DNS is served (``hook``: its guard points dnsmasq there)."""

    listen: str
    port: int
    client_identity: bool


@dataclass(frozen=True)
class Redo:
    """Hand this event to the runtime again, once the commands before it are done: a tick
    that found the dataplane due for repair goes on only after the restart, since adopting what
    the kernel holds changes the table the tick would otherwise already have aged."""

    event: Tick


@dataclass(frozen=True)
class Say:
    """A log line.  ``kind``: at most a few per minute of this kind (a failure that repeats
    every second must not fill the log); None: always."""

    level: int
    text: str
    kind: str | None = None


Command = (
    ApplyOps | Release | Reply | Publish | RestartDataplane | StartDataplane | Reconcile
    | SetHosts | AskAgain | CountFlows | FetchProvider | ProviderMore | RememberProvider
    | FollowPref64 | Configure | RehookDns | Redo | Say
)  # fmt: skip
