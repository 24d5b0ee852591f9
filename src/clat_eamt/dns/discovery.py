"""Pref64 discovery from DNS (RFC 7050): the AAAA records of ipv4only.arpa, asked through the
upstream resolvers, embed the well-known IPv4s under the NAT64 prefix.

The result is re-checked before its TTL ends (RFC 7050 section 3: the discovery is repeated as
the records' TTL runs out) and kept while it is fresh even if a re-check fails; once it has
expired without a successful re-check it is dropped.  A configured prefix always wins, and then
this never runs.  Only the shell lives here; the reading of the records is ``core.pref64``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network

from clat_eamt.core.model import AaaaStatus
from clat_eamt.core.pref64 import WKA_NAME, prefixes_from_wka
from clat_eamt.dns import answers
from clat_eamt.dns.upstream import UpstreamError, Upstreams
from clat_eamt.dns.wire import CLASS_IN, QTYPE_AAAA, Question, WireError, read_header, side_query

log = logging.getLogger(__name__)
_QUESTION = Question(tuple(label.encode() for label in WKA_NAME.split(".")), QTYPE_AAAA, CLASS_IN)
_RECHECK_FRACTION = 0.8
_MIN_RECHECK, _MAX_RECHECK = 10.0, 86400.0
_RETRY_FIRST, _RETRY_MAX = 5.0, 300.0


@dataclass(frozen=True)
class Discovered:
    prefixes: tuple[IPv6Network, ...]
    ttl: int
    problem: str | None = None  # why nothing was found


async def discover(upstreams: Upstreams) -> Discovered:
    """One discovery round through the upstreams."""
    query = side_query(0, _QUESTION, QTYPE_AAAA, want_dnssec=False)
    try:
        data = await upstreams.exchange(query, _QUESTION)
        if read_header(data).truncated:
            data = await upstreams.exchange(query, _QUESTION, tcp=True)
        found = answers.read_addresses(answers.parse(data), WKA_NAME, QTYPE_AAAA)
    except (UpstreamError, WireError) as error:
        return Discovered((), 0, f"{WKA_NAME} AAAA: {error}")
    if found.status in (AaaaStatus.NODATA, AaaaStatus.NXDOMAIN):
        return Discovered((), 0, f"{WKA_NAME} AAAA: {found.status} (the resolver is no DNS64)")
    if found.status is not AaaaStatus.ANSWER:
        return Discovered((), 0, f"{WKA_NAME} AAAA: {found.status}")
    prefixes = prefixes_from_wka(a for a in found.addresses if isinstance(a, IPv6Address))
    if not prefixes:
        shown = ", ".join(map(str, found.addresses))
        return Discovered((), 0, f"{WKA_NAME} AAAA {shown} embeds no well-known IPv4")
    return Discovered(prefixes, found.ttl)


class Pref64Discovery:
    """Keeps ``on_change(prefixes, source)`` told of the current discovered Pref64s."""

    def __init__(
        self,
        upstreams: Upstreams,
        on_change: Callable[[tuple[IPv6Network, ...], str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.upstreams, self.on_change, self.clock = upstreams, on_change, clock
        self.prefixes: tuple[IPv6Network, ...] = ()
        self.expires: float | None = None
        self.problem: str | None = "not run yet"
        self.next_check: float | None = None

    async def run(self) -> None:
        retry = _RETRY_FIRST
        while True:
            wait = await self.check_once(retry)
            retry = _RETRY_FIRST if self.problem is None else min(retry * 2, _RETRY_MAX)
            await asyncio.sleep(wait)

    async def check_once(self, retry: float = _RETRY_FIRST) -> float:
        """One round; returns the seconds until the next one."""
        found = await discover(self.upstreams)
        now = self.clock()
        if found.prefixes:
            self.problem = None
            self.expires = now + found.ttl
            wait = min(max(found.ttl * _RECHECK_FRACTION, _MIN_RECHECK), _MAX_RECHECK)
            self._set(found.prefixes)
        else:
            self.problem = found.problem
            log.warning("Pref64 discovery: %s", found.problem)
            if self.expires is not None and now >= self.expires:
                self.expires = None
                self._set(())
            wait = retry
        self.next_check = now + wait
        return wait

    def _set(self, prefixes: tuple[IPv6Network, ...]) -> None:
        if prefixes != self.prefixes:
            self.prefixes = prefixes
            shown = ", ".join(map(str, prefixes)) or "none"
            log.info("Pref64 from DNS (RFC 7050): %s", shown)
            self.on_change(prefixes, "dns (RFC 7050)" if prefixes else "none")

    def status(self) -> dict[str, object]:
        now = self.clock()
        return {
            "prefixes": [str(p) for p in self.prefixes],
            "expires_in": None if self.expires is None else round(self.expires - now, 1),
            "next_check_in": None if self.next_check is None else round(self.next_check - now, 1),
            "problem": self.problem,
        }
