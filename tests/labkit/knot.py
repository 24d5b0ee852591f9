"""Knot DNS as the authoritative server of the test zones.

knotd runs in the foreground with one config file; rundir, storage (zone files, journal,
timers) and the control socket all live in the server's own directory, so nothing is written
to /var/lib/knot or /run/knot.  Zones are loaded from the files we render and never written
back (`zonefile-sync: -1`, `journal-content: none`).

`signed` zones are signed by knot itself when loaded (`dnssec-signing: on`, one ECDSA P-256
CSK, NSEC): the key is made at the first start and kept in the KASP database and PEM keystore
under the server's directory (`keys/`), nothing outside it.  A signed zone is ready when its
DNSKEY answers with an RRSIG; `dnskeys()` gives the records for a resolver's trust anchor.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from dnslib import QTYPE

from .client import query
from .netns import Netns
from .procs import tool, wait_ready
from .server import READY_TIMEOUT, Server
from .zone import Zone, all_zones

POLICY = "labkit"
DNSKEY = QTYPE.DNSKEY
RRSIG = QTYPE.RRSIG


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
        signed: Sequence[Zone] = (),
    ) -> None:
        """`signed`: zones (among `zones`) knot signs with DNSSEC."""
        super().__init__(workdir, addr=addr, port=port, netns=netns, name=name)
        self.zones = list(zones) if zones is not None else all_zones()
        if not self.zones:
            raise ValueError("knot needs at least one zone")
        self.signed = [z.origin for z in signed]
        unknown = set(self.signed) - {z.origin for z in self.zones}
        if unknown:
            raise ValueError(f"signed zones not served by this knot: {sorted(unknown)}")

    @property
    def conf_path(self) -> Path:
        return self.dir / "knot.conf"

    def config_text(self) -> str:
        d = self.dir
        # Explicit: Debian's /etc/knot/knot.conf switches to user `knot`, which could not write
        # our temp dir (root:root is also knotd's built-in default).  As a normal user the line
        # is left out: there is nothing to switch to.
        user = "    user: root:root\n" if os.geteuid() == 0 else ""
        signing = f"    dnssec-signing: on\n    dnssec-policy: {POLICY}\n"
        zones = "".join(
            f"  - domain: {z.origin}\n" + (signing if z.origin in self.signed else "")
            for z in self.zones
        )
        # Keys: KASP database and PEM keystore in our directory (the defaults would follow
        # `storage` too; explicit so a change of storage cannot move them to /var/lib/knot).
        dnssec = (
            (
                "keystore:\n"
                f"  - id: {POLICY}\n"
                "    backend: pem\n"
                f'    config: "{d}/keys"\n'
                "policy:\n"
                f"  - id: {POLICY}\n"
                f"    keystore: {POLICY}\n"
                "    algorithm: ecdsap256sha256\n"
                "    single-type-signing: on\n"  # one CSK: its DNSKEY is the trust anchor
                "    nsec3: off\n"
            )
            if self.signed
            else ""
        )
        kasp = f'    kasp-db: "{d}/keys"\n' if self.signed else ""
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
            f"{kasp}"
            "log:\n"
            "  - target: stderr\n"
            "    any: info\n"
            f"{dnssec}"  # before the zones that refer to the policy
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
        """Ready when every zone's SOA is answered authoritatively, and every signed zone's
        DNSKEY with its RRSIG."""
        for z in self.zones:
            r = query(self.addr, self.port, z.origin, "SOA", timeout=0.5, netns=self.netns)
            if r.header.rcode != 0 or not r.header.aa or not r.rr:
                return False
        return all(self._dnskeys(origin) for origin in self.signed)

    def _dnskeys(self, origin: str) -> list[str]:
        r = query(self.addr, self.port, origin, "DNSKEY", timeout=0.5, netns=self.netns, do=True)
        keys = [f"{rr.rname} {rr.ttl} IN DNSKEY {rr.rdata}" for rr in r.rr if rr.rtype == DNSKEY]
        signed = any(rr.rtype == RRSIG and rr.rdata.covered == DNSKEY for rr in r.rr)
        return keys if r.header.aa and signed else []

    def dnskeys(self, origin: str, timeout: float = READY_TIMEOUT) -> list[str]:
        """The DNSKEY records of signed zone `origin` in zone-file format (a trust anchor for
        unbound), once knot serves them signed."""
        if origin not in self.signed:
            raise ValueError(f"{origin} is not signed by {self.name}")
        found: list[str] = []

        def probe() -> bool:
            found[:] = self._dnskeys(origin)
            return bool(found)

        wait_ready(probe, timeout, what=f"DNSKEY of {origin}", proc=self.proc)
        return found
