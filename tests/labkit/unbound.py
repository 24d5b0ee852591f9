"""unbound as the ISP's DNS64 resolver in front of knot.

`module-config: "dns64 iterator"` with the network-specific prefix 2001:db8:64::/96 (SPEC 7);
by default no validator, no trust anchor.  The test zones are stub zones pointing at knot, and
so is the root ("."), so the iterator can never send a query off the machine: a name outside
the test zones ends in SERVFAIL instead of a trip to the real root servers.

With `trust_anchors` (DNSKEY or DS records in zone-file format, e.g. from `Knot.dnskeys`) the
validator runs between DNS64 and the iterator (`module-config: "dns64 validator iterator"`)
with those anchors as its only ones: the anchored zone is an island of security, everything
else (no root anchor) is insecure, and `domain_insecure` names zones below an anchor that are
not signed (slow.lab.example on its own knot).  It then answers AD=1 for validated data when the
query has DO or AD (RFC 6840 5.7), also for an AAAA it synthesized from a validated NODATA and a
validated A (RFC 6147 5.5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .client import query
from .netns import Netns, run
from .procs import find_tool, tool
from .server import Server
from .zone import DNS64_PREFIX

# Who may query: loopback and the documentation ranges the lab namespaces use.
ACCESS = (
    "127.0.0.0/8",
    "::1/128",
    "192.0.2.0/24",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "2001:db8::/32",
)


@dataclass(frozen=True)
class Stub:
    """A stub zone: queries for `zone` go straight to `addrs` ("ADDR@PORT")."""

    zone: str
    addrs: tuple[str, ...]


class Unbound(Server):
    """unbound -d on addr@port with DNS64, resolving the test zones through `stubs`."""

    kind = "unbound"

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        stubs: Sequence[Stub],
        addr: str = "127.0.0.1",
        port: int | None = None,
        netns: Netns | str | None = None,
        name: str | None = None,
        dns64_prefix: str | None = DNS64_PREFIX,
        extra: str = "",
        trust_anchors: Sequence[str] = (),
        domain_insecure: Sequence[str] = (),
    ) -> None:
        """`dns64_prefix=None` gives a plain resolver; `extra` is appended to `server:`;
        `trust_anchors` (zone-file lines) turn the validator on (may be set until `start`)."""
        super().__init__(workdir, addr=addr, port=port, netns=netns, name=name)
        self.stubs = list(stubs)
        self.dns64_prefix = dns64_prefix
        self.extra = extra
        self.trust_anchors = list(trust_anchors)
        self.domain_insecure = list(domain_insecure)

    @property
    def validating(self) -> bool:
        return bool(self.trust_anchors)

    @property
    def trust_anchor_path(self) -> Path:
        return self.dir / "trust-anchors.zone"

    @property
    def conf_path(self) -> Path:
        return self.dir / "unbound.conf"

    def config_text(self) -> str:
        d = self.dir
        access = "".join(f"    access-control: {net} allow\n" for net in ACCESS)
        chain = "validator iterator" if self.validating else "iterator"
        if self.dns64_prefix:
            modules = f'    module-config: "dns64 {chain}"\n'
            modules += f"    dns64-prefix: {self.dns64_prefix}\n"
        else:
            modules = f'    module-config: "{chain}"\n'
        if self.validating:
            modules += f'    trust-anchor-file: "{self.trust_anchor_path}"\n'
            modules += "".join(f'    domain-insecure: "{z}"\n' for z in self.domain_insecure)
            # Why something is bogus, in the log; no RFC 8145 key-tag queries to knot.
            modules += "    val-log-level: 2\n"
            modules += "    trust-anchor-signaling: no\n"
        stubs = "".join(
            f'stub-zone:\n    name: "{s.zone}"\n'
            + "".join(f"    stub-addr: {a}\n" for a in s.addrs)
            for s in self.stubs
        )
        extra = "".join(f"    {line.strip()}\n" for line in self.extra.splitlines() if line.strip())
        return (
            "server:\n"
            f"    interface: {self.at}\n"
            f"    port: {self.port}\n"
            f"{access}"
            '    chroot: ""\n'
            '    username: ""\n'
            f'    directory: "{d}"\n'
            f'    pidfile: "{d}/unbound.pid"\n'
            "    use-syslog: no\n"
            '    logfile: ""\n'
            "    do-daemonize: no\n"
            "    verbosity: 1\n"
            "    log-queries: yes\n"
            "    log-replies: yes\n"
            "    log-servfail: yes\n"
            "    num-threads: 1\n"
            f"{modules}"
            "    do-not-query-localhost: no\n"
            "    qname-minimisation: no\n"
            # The nft rule of chain.slow_aaaa matches the query bytes; keep the name's case.
            "    use-caps-for-id: no\n"
            # Only the stubs' own addresses; no fetching of NS names' addresses.
            '    target-fetch-policy: "0 0 0 0 0"\n'
            "    prefetch: no\n"
            f"{extra}"
            "remote-control:\n"
            "    control-enable: no\n"
            f"{stubs}"
        )

    def write_config(self) -> None:
        if self.validating:
            self.trust_anchor_path.write_text("\n".join(self.trust_anchors) + "\n")
        self.conf_path.write_text(self.config_text())
        # A config error shows here with unbound's own message, not as a readiness timeout.
        checkconf = find_tool("unbound-checkconf")
        if checkconf:
            run(None, [checkconf, str(self.conf_path)])

    def argv(self) -> list[str]:
        return [tool("unbound"), "-d", "-c", str(self.conf_path)]

    def probe(self) -> bool:
        """Ready when it resolves the first stub zone's SOA (so knot is reachable too)."""
        zone = next((s.zone for s in self.stubs if s.zone != "."), ".")
        r = query(self.addr, self.port, zone, "SOA", timeout=1.0, netns=self.netns)
        return r.header.rcode == 0 and bool(r.rr)
