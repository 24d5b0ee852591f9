"""A scripted dataplane with chosen timing and failures, for the applier's and the daemon's
deadline contract (the real nftables + translator backends run in tests/integration)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from clat_eamt.apply import DataplaneError
from clat_eamt.core.dataplane import DataplaneState, Note
from clat_eamt.core.model import DataplaneOp, FlowCensus, LiveFlows
from tests.labkit.ports import free_port as labkit_free_port


class ScriptedDataplane:
    name = "scripted"

    def __init__(self, delay: float = 0.0, fail: str | None = None) -> None:
        self.delay, self.fail = delay, fail
        self.applied: list[tuple[DataplaneOp, ...]] = []
        self.died: str | None = None  # set by a test: what problem() reports
        self.starts = 0
        self.describe: Callable[[IPv4Network], Note | None] = lambda ipv4: None

    async def start(self) -> DataplaneState:
        self.starts += 1
        self.died = None
        if self.fail:
            raise DataplaneError(self.fail)
        return DataplaneState()

    async def apply(self, ops: Sequence[DataplaneOp]) -> None:
        await asyncio.sleep(self.delay)
        if self.fail:
            raise DataplaneError(self.fail)
        self.applied.append(tuple(ops))

    async def live_flows(self) -> LiveFlows | None:
        return None

    async def flow_census(self) -> FlowCensus | None:
        return None

    def problem(self) -> str | None:
        return self.died

    def facts(self) -> dict[str, Any]:
        return {}

    async def set_hosts(self, dual_stack: set[IPv4Address], ipv4_only: set[IPv4Address]) -> None:
        return None

    async def stop(self, clean: bool) -> None:
        return None


def free_port() -> int:
    """A port on loopback free for UDP and TCP now (the daemon binds both on it; a port free
    for UDP alone may be the local end of a TCP connection, an upstream's say)."""
    return labkit_free_port()


def loopback_config(
    port: int | str,
    control_socket: str,
    extra: str = "",
    static: str = "",
    upstream: str = "127.0.0.1#9",
) -> str:
    """A UCI file for a daemon on loopback in a unit test: documentation addresses allowed, the
    lab's pool and Pref64, an upstream (by default one that refuses: port 9), this machine's own
    prefixes not
    its LAN.  ``extra``: more globals lines; ``static``: sections after it.  The provider's
    serial is kept beside the control socket, never in the machine's /etc."""
    if "provider_serial_file" not in extra:
        extra = f"\toption provider_serial_file '{control_socket}.serial'\n{extra}"
    return (
        "config globals 'globals'\n"
        "\toption allow_documentation '1'\n\toption pool '198.51.100.128/25'\n"
        "\tlist pref64 '2001:db8:64::/96'\n\toption listen '127.0.0.1'\n"
        f"\toption port '{port}'\n\tlist upstream '{upstream}'\n\tlist lan_interface 'lo'\n"
        f"\toption control_socket '{control_socket}'\n{extra}\n{static}"
    )
