"""Knot DNS as the authoritative server of the test zones.

knotd runs in the foreground with one config file; rundir, storage (zone files, journal,
timers) and the control socket all live in the server's own directory, so nothing is written
to /var/lib/knot or /run/knot.  Zones are loaded from the files we render and never written
back (`zonefile-sync: -1`, `journal-content: none`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .client import query
from .netns import Netns
from .procs import tool
from .server import Server
from .zone import Zone, all_zones


class Knot(Server):
    """knotd serving `zones` on addr@port (default: all test zones on 127.0.0.1, free port)."""

    kind = "knot"

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        zones: Sequence[Zone] | None = None,
        addr: str = "127.0.0.1",
        port: int | None = None,
        netns: Netns | str | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(workdir, addr=addr, port=port, netns=netns, name=name)
        self.zones = list(zones) if zones is not None else all_zones()
        if not self.zones:
            raise ValueError("knot needs at least one zone")

    @property
    def conf_path(self) -> Path:
        return self.dir / "knot.conf"

    def config_text(self) -> str:
        d = self.dir
        # Explicit: Debian's /etc/knot/knot.conf switches to user `knot`, which could not write
        # our temp dir (root:root is also knotd's built-in default).  As a normal user the line
        # is left out: there is nothing to switch to.
        user = "    user: root:root\n" if os.geteuid() == 0 else ""
        zones = "".join(f"  - domain: {z.origin}\n" for z in self.zones)
        return (
            "server:\n"
            f'    rundir: "{d}"\n'
            f'    pidfile: "{d}/knot.pid"\n'
            f"{user}"
            f"    listen: {self.at}\n"
            "    udp-workers: 1\n"
            "    tcp-workers: 1\n"
            "    background-workers: 1\n"
            "control:\n"
            f'    listen: "{d}/knot.sock"\n'
            "database:\n"
            f'    storage: "{d}"\n'
            "log:\n"
            "  - target: stderr\n"
            "    any: info\n"
            "template:\n"
            "  - id: default\n"
            f'    storage: "{d}"\n'
            '    file: "%s.zone"\n'
            "    zonefile-sync: -1\n"
            "    zonefile-load: whole\n"
            "    journal-content: none\n"
            "zone:\n"
            f"{zones}"
        )

    def write_config(self) -> None:
        for z in self.zones:
            (self.dir / f"{z.origin}zone").write_text(z.render())
        self.conf_path.write_text(self.config_text())

    def argv(self) -> list[str]:
        return [tool("knotd"), "-c", str(self.conf_path)]

    def probe(self) -> bool:
        """Ready when every zone's SOA is answered authoritatively."""
        for z in self.zones:
            r = query(self.addr, self.port, z.origin, "SOA", timeout=0.5, netns=self.netns)
            if r.header.rcode != 0 or not r.header.aa or not r.rr:
                return False
        return True
