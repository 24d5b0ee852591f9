"""The daemon's two ways of learning the Pref64 besides its configuration, as one shell: the
WAN's router advertisements (RFC 8781, heard all the time) and RFC 7050 discovery through the
resolvers (run only while the runtime wants it).  Both report to ``on_change``; the runtime
ranks the sources (RFC 9872: configuration, then RAs, then DNS)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from ipaddress import IPv6Network

from clat_eamt.dataplane.routeradv import RaListener
from clat_eamt.dns.discovery import Pref64Discovery
from clat_eamt.dns.upstream import Upstreams

OnChange = Callable[[tuple[IPv6Network, ...], str], None]


class Pref64Watch:
    def __init__(
        self, upstreams: Upstreams, on_change: OnChange, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.upstreams, self.on_change, self.clock = upstreams, on_change, clock
        self.router_adverts = RaListener(on_change, clock)
        self.discovery: Pref64Discovery | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.router_adverts.start()

    def follow(self, discover: bool) -> None:
        """RFC 7050 discovery while the runtime wants it."""
        if discover and self._task is None:
            self.discovery = Pref64Discovery(self.upstreams, self.on_change, self.clock)
            self._task = asyncio.create_task(self.discovery.run(), name="pref64")
        elif not discover and self._task is not None:
            self._task.cancel()
            self.discovery = self._task = None

    async def close(self) -> None:
        self.router_adverts.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def status(self) -> dict[str, object]:
        return {
            "discovery": self.discovery.status() if self.discovery else None,
            "router_adverts": self.router_adverts.status(),
        }
