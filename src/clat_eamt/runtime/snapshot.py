"""The frozen view of the runtime that status, the control socket, ubus and LuCI read.

Taken by ``Runtime.snapshot`` at one instant; nothing in it changes afterwards (entries are
immutable, the rest is copied), so a reader may take its time over it while the daemon goes on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from clat_eamt.config import EffectiveConfig
from clat_eamt.core.counters import summary
from clat_eamt.core.model import Entry, IPNetwork
from clat_eamt.core.pref64 import Pref64Set


@dataclass(frozen=True)
class Snapshot:
    taken: float  # the runtime's clock when taken
    started: float
    config: EffectiveConfig
    pref64: Pref64Set
    table_size: int
    entries: tuple[Entry, ...] | None  # sorted; None when not asked for
    counters: Mapping[str, int]  # every counter: the runtime's, the engine's, the shells'
    dataplane: str  # the backend's name
    dataplane_error: str | None  # why it does not run (None: it does)
    last_error: str | None  # of the last batch
    restart_needed: tuple[str, ...]
    hosts: tuple[dict[str, Any], ...]  # rows, as ``core.hosts.HostMemory.rows``
    ipv4_only_hosts: int
    dual_stack_hosts: int
    hosts_unsure: bool
    hosts_error: str | None
    history: Mapping[str, Any]
    local_prefixes: tuple[IPNetwork, ...]
    shells: Mapping[str, Any]  # the sockets' and processes' own state (listen, upstreams, ...)
    ipv6_only: Mapping[str, Any] = field(default_factory=dict)  # ``core.ipv6only.status``

    @property
    def uptime(self) -> float:
        return self.taken - self.started

    @property
    def summary(self) -> dict[str, Any]:
        return summary(self.counters)
