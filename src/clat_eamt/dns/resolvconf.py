"""The WAN's resolvers from a resolv.conf file (OpenWrt: /tmp/resolv.conf.d/resolv.conf.auto,
written by netifd when the WAN comes up or its DNS servers change).

The file is checked at most once a second (a stat, no read) and read again only when its inode,
size or modification time changed, so following the WAN costs nothing per query.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from ipaddress import IPv6Address, ip_address

from clat_eamt.config.nettypes import ServerAddress

log = logging.getLogger(__name__)
_CHECK_INTERVAL = 1.0


def parse_resolv_conf(text: str) -> tuple[tuple[ServerAddress, ...], list[str]]:
    """The nameservers of ``text`` and what was skipped, and why.

    A loopback nameserver on port 53 is dnsmasq itself (OpenWrt's /tmp/resolv.conf says
    127.0.0.1): forwarding there would loop, so it is skipped.  Link-local IPv6 servers keep
    their zone (fe80::1%wan), which the socket needs."""
    servers: list[ServerAddress] = []
    skipped: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(words) < 2 or words[0] != "nameserver":
            continue
        try:
            address = ip_address(words[1])
        except ValueError:
            skipped.append(f"line {number}: {words[1]!r} is not an IP address")
            continue
        if address.is_loopback:
            skipped.append(f"line {number}: {address} is this router (dnsmasq): would loop")
            continue
        if isinstance(address, IPv6Address) and address.is_link_local and not address.scope_id:
            skipped.append(f"line {number}: link-local {address} without %interface")
            continue
        servers.append(ServerAddress(address))
    return tuple(dict.fromkeys(servers)), skipped


class ResolvConf:
    """``servers()`` gives the current nameservers of ``path``; an absent or unreadable file
    gives none (the proxy then answers SERVFAIL and says why in status)."""

    def __init__(self, path: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.path, self.clock = path, clock
        self._signature: tuple[int, int, int] | None = None
        self._checked = -_CHECK_INTERVAL
        self._servers: tuple[ServerAddress, ...] = ()
        self.problem: str | None = None

    def servers(self) -> tuple[ServerAddress, ...]:
        now = self.clock()
        if now - self._checked >= _CHECK_INTERVAL:
            self._checked = now
            self._refresh()
        return self._servers

    def _refresh(self) -> None:
        try:
            st = os.stat(self.path)
        except OSError as error:
            self._set((), f"{self.path}: {error.strerror}", None)
            return
        signature = (st.st_ino, st.st_size, st.st_mtime_ns)
        if signature == self._signature:
            return
        try:
            with open(self.path, encoding="utf-8", errors="replace") as file:
                text = file.read()
        except OSError as error:
            self._set((), f"{self.path}: {error.strerror}", None)
            return
        servers, skipped = parse_resolv_conf(text)
        for reason in skipped:
            log.warning("%s: skipped %s", self.path, reason)
        problem = None if servers else f"{self.path} lists no usable nameserver"
        self._set(servers, problem, signature)

    def _set(
        self,
        servers: tuple[ServerAddress, ...],
        problem: str | None,
        signature: tuple[int, int, int] | None,
    ) -> None:
        if servers != self._servers or problem != self.problem:
            shown = " ".join(map(str, servers)) or "none"
            log.info("upstream resolvers from %s: %s", self.path, shown)
            if problem:
                log.warning("%s", problem)
        self._servers, self.problem, self._signature = servers, problem, signature


def upstream_source(
    configured: Sequence[ServerAddress], resolv_file: str, clock: Callable[[], float]
) -> tuple[ResolvConf | None, Callable[[], Sequence[ServerAddress]]]:
    """The configured resolvers, or else the WAN's from ``resolv_file`` (followed as it
    changes): the file's reader (None for configured ones) and where the servers come from."""
    if configured:
        return None, lambda: configured
    resolv = ResolvConf(resolv_file, clock)
    return resolv, resolv.servers
