"""The DNS chain of the lab: knot (authoritative) <- unbound DNS64 (ISP) [<- proxy] <- dnsmasq.

`DnsChain` starts the two knots and unbound on 127.0.0.1 with free ports (inside `netns` if
given) and owns everything started through it.  It does not start the proxy: `start()` is the
hook for any process in the middle, and `dnsmasq(servers=...)` forwards to whatever ADDR#PORT
the test names (the proxy, or unbound directly).

    with DnsChain(tmp_path) as chain:
        proxy = chain.start("proxy", [...], ready=lambda: ...)
        dm = chain.dnsmasq(servers=f"127.0.0.1#{proxy_port}")
        chain.query("ds.lab.example", "AAAA")            # asks unbound

Slow AAAA without netem: slow.lab.example lives on a second knot, and `slow_aaaa()` loads an
nft rule (namespaces only) dropping the AAAA queries to that knot on input; A is untouched, and
unbound keeps separate timeouts for A and AAAA per server, so A stays fast.  What the client
gets for AAAA depends on unbound (measured with unbound 1.17.1, see `SLOW_MODES`):

- "lost": unbound's defaults.  It retries for ~17 s (376 ms doubling, 5 sends), then SERVFAIL;
  DNS64 treats that like an empty answer and synthesizes from A, but the reply is dropped
  because it is older than `discard-timeout` (1900 ms).  The client never gets an AAAA answer.
- "late": `outbound-msg-retry: 1` and `discard-timeout: 0`.  After ~0.75 s the client gets the
  DNS64-synthesized AAAA (2001:db8:64::c000:232), like an ISP resolver whose upstream lost it.

DNSSEC (`dnssec=True`): knot signs lab.example. (ipv4only.arpa. and slow.lab.example. stay
unsigned), the chain reads its DNSKEY once signed and starts unbound validating with it as the
only trust anchor, so lab.example is an island of security and unbound answers AD=1 for its
names when asked with DO or AD.  slow.lab.example. is not delegated in the signed zone (it is a
stub of its own), so it is declared `domain-insecure`; ipv4only.arpa. and everything else have
no anchor above them and are simply insecure.  Measured with unbound 1.17.1: a DNS64 AAAA
synthesized for a signed name has AD=1 too (RFC 6147 5.5: the NODATA and the A validated), so
AD alone does not tell a real AAAA from a synthesized one.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

from dnslib import DNSRecord

from .client import query
from .dnsmasq import Dnsmasq
from .knot import Knot
from .netns import Netns, nft, ns_name, run
from .ports import free_port
from .procs import Proc, ProcessGroup, tool
from .server import READY_TIMEOUT
from .sniff import Sniffer
from .unbound import Stub, Unbound
from .zone import DNS64_PREFIX, IPV4ONLY, LAB, SLOW

SLOW_TABLE = "labkit_slow"
SLOW_MODES = {
    "lost": "",
    "late": "outbound-msg-retry: 1\ndiscard-timeout: 0",
}
QTYPE_AAAA = 0x1C
UDP_HEADER = 8
DNS_HEADER = 12
TCP_LENGTH_PREFIX = 2


def qtype_offset_bits(qname: str, *, tcp: bool = False) -> int:
    """Bit offset of QTYPE in a query for `qname`.

    UDP: from the transport header (nft `@th`): 8 bytes UDP header + 12 bytes DNS header +
    the encoded qname.  TCP headers vary in length (options), so for TCP the offset is from the
    start of the payload (nft `@ih`): 2 bytes length prefix + 12 + qname.
    """
    labels = [lab.encode("idna") for lab in qname.rstrip(".").split(".") if lab]
    qname_len = sum(len(lab) + 1 for lab in labels) + 1  # length bytes + root label
    head = TCP_LENGTH_PREFIX if tcp else UDP_HEADER
    return (head + DNS_HEADER + qname_len) * 8


def slow_aaaa_ruleset(port: int, qname: str = SLOW.origin, table: str = SLOW_TABLE) -> str:
    """nft rules dropping AAAA queries for `qname` to `port` (UDP and TCP), with counters."""
    udp = qtype_offset_bits(qname)
    tcp = qtype_offset_bits(qname, tcp=True)
    return (
        f"table inet {table} {{\n"
        # Input, not output: a drop in output fails the sender's sendto() at once (EPERM), and
        # unbound then gives up on the server at once; dropped on input the query is lost.
        "  chain input {\n"
        "    type filter hook input priority 0; policy accept;\n"
        f"    udp dport {port} @th,{udp},16 {QTYPE_AAAA:#x} counter drop\n"
        f"    tcp dport {port} @ih,{tcp},16 {QTYPE_AAAA:#x} counter drop\n"
        "  }\n"
        "}\n"
    )


def slow_aaaa(netns: Netns | str, port: int, qname: str = SLOW.origin) -> None:
    """Make AAAA queries for `qname` to `port` inside `netns` vanish (A still answered)."""
    nft(netns, slow_aaaa_ruleset(port, qname))


def slow_aaaa_drops(netns: Netns | str, table: str = SLOW_TABLE) -> int:
    """How many AAAA query packets the slow_aaaa rules dropped so far."""
    out = run(netns, [tool("nft"), "list", "table", "inet", table]).stdout
    return sum(int(n) for n in re.findall(r"counter packets (\d+)", out))


class DnsChain(contextlib.AbstractContextManager["DnsChain"]):
    """knot + knot-slow + unbound DNS64, all on `addr` (inside `netns` if given)."""

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        netns: Netns | str | None = None,
        addr: str = "127.0.0.1",
        slow: str | None = None,
        dns64_prefix: str | None = DNS64_PREFIX,
        unbound_extra: str = "",
        dnssec: bool = False,
        timeout: float = READY_TIMEOUT,
    ) -> None:
        """`slow` ("lost" or "late", see SLOW_MODES) loads the slow-AAAA rule (needs `netns`);
        `unbound_extra` goes into unbound's `server:` section (e.g. "rrset-roundrobin: no");
        `dnssec` signs lab.example and makes unbound validate it (see the module doc)."""
        if slow is not None:
            if slow not in SLOW_MODES:
                raise ValueError(f"slow must be one of {sorted(SLOW_MODES)} or None")
            if netns is None:
                raise ValueError("slow AAAA needs a namespace for its nft rule")
            unbound_extra = f"{SLOW_MODES[slow]}\n{unbound_extra}"
        self._own_tmp = None if workdir is not None else tempfile.mkdtemp(prefix="labkit-chain-")
        self.workdir = Path(workdir if workdir is not None else self._own_tmp or "")
        self.netns = netns
        self.addr = addr
        self.slow = slow
        self.dnssec = dnssec
        self.timeout = timeout
        self.procs = ProcessGroup(self.workdir / "logs")
        signed = [LAB] if dnssec else []
        self.knot = Knot(self.workdir, zones=[LAB, IPV4ONLY], addr=addr, netns=netns, signed=signed)
        self.knot_slow = Knot(self.workdir, zones=[SLOW], addr=addr, netns=netns, name="knot-slow")
        stubs = [
            Stub(LAB.origin, (self.knot.at,)),
            Stub(IPV4ONLY.origin, (self.knot.at,)),
            Stub(SLOW.origin, (self.knot_slow.at,)),
            # Anything else also goes to knot (REFUSED -> SERVFAIL), never off the machine.
            Stub(".", (self.knot.at,)),
        ]
        self.unbound = Unbound(
            self.workdir,
            stubs=stubs,
            addr=addr,
            netns=netns,
            dns64_prefix=dns64_prefix,
            extra=unbound_extra,
            domain_insecure=[SLOW.origin] if dnssec else [],
        )

    # -- addresses ------------------------------------------------------------------------
    @property
    def knot_port(self) -> int:
        return self.knot.port

    @property
    def slow_port(self) -> int:
        return self.knot_slow.port

    @property
    def unbound_addr(self) -> str:
        return self.unbound.addr

    @property
    def unbound_port(self) -> int:
        return self.unbound.port

    @property
    def unbound_target(self) -> str:
        """Unbound as ADDR#PORT, for dnsmasq --server or a proxy's upstream."""
        return self.unbound.target

    @property
    def netns_name(self) -> str | None:
        return ns_name(self.netns)

    @property
    def trust_anchors(self) -> list[str]:
        """The DNSKEY records unbound trusts (dnssec=True; read from knot at start)."""
        return list(self.unbound.trust_anchors)

    # -- lifecycle ------------------------------------------------------------------------
    def __enter__(self) -> Self:
        try:
            self.knot.start(self.procs, self.timeout)
            self.knot_slow.start(self.procs, self.timeout)
            if self.slow is not None:
                assert self.netns is not None
                slow_aaaa(self.netns, self.slow_port)
            if self.dnssec:
                self.unbound.trust_anchors = self.knot.dnskeys(LAB.origin, self.timeout)
            self.unbound.start(self.procs, self.timeout)
        except BaseException as exc:
            self.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.procs.__exit__(*exc)
        finally:
            if self._own_tmp is not None:
                shutil.rmtree(self._own_tmp, ignore_errors=True)

    # -- the hook for the proxy (or any other process in the middle) ----------------------
    def start(
        self,
        name: str,
        argv: Sequence[str],
        ready: Callable[[], bool] | None = None,
        *,
        timeout: float | None = None,
        netns: Netns | str | bool | None = True,
        env: dict[str, str] | None = None,
    ) -> Proc:
        """Start an extra process (the proxy) owned by the chain, so its cleanup covers it.

        `netns=True` (default) runs it in the chain's namespace; pass another one or None.
        `ready` is polled until True (see `free_port`, `query` to build one).
        """
        return self.procs.start(
            name,
            argv,
            ready=ready,
            timeout=self.timeout if timeout is None else timeout,
            netns=ns_name(self._where(netns)),
            env=env,
        )

    def _where(self, netns: Netns | str | bool | None) -> Netns | str | None:
        """True means the chain's namespace; None or False the test's own."""
        if netns is True:
            return self.netns
        return netns or None

    def free_port(self, host: str | None = None) -> int:
        """A free port on `host` (default the chain's address) in the chain's namespace."""
        return free_port(host or self.addr, self.netns)

    def path(self, name: str) -> Path:
        """A directory for a process's files (config, state) inside the chain's workdir."""
        p = self.workdir / name
        p.mkdir(parents=True, exist_ok=True)
        return p

    # -- clients and observers ------------------------------------------------------------
    def dnsmasq(
        self,
        servers: str | Sequence[str],
        *,
        netns: Netns | str | bool | None = True,
        name: str = "dnsmasq",
        **kwargs: Any,
    ) -> Dnsmasq:
        """Start dnsmasq forwarding to `servers` ("ADDR#PORT"); kwargs go to Dnsmasq (addr,
        port, add_mac, add_subnet, cache_size, extra)."""
        dm = Dnsmasq(self.workdir, servers=servers, netns=self._where(netns), name=name, **kwargs)
        dm.start(self.procs, self.timeout)
        return dm

    def sniffer(
        self,
        port: int,
        *,
        iface: str = "lo",
        netns: Netns | str | bool | None = True,
        name: str = "sniff",
        both: bool = False,
    ) -> Sniffer:
        """Capture UDP datagrams to `port` (root only: AF_PACKET)."""
        out = self.path("captures") / f"{name}.txt"
        where = self._where(netns)
        sniffer = Sniffer(self.procs, out, port, netns=where, iface=iface, both=both, name=name)
        return sniffer.start(self.timeout)

    def query(self, name: str, qtype: str = "A", **kwargs: Any) -> DNSRecord:
        """Ask unbound (from inside the chain's namespace)."""
        kwargs.setdefault("netns", self.netns)
        return query(self.unbound_addr, self.unbound_port, name, qtype, **kwargs)

    def logs(self) -> str:
        return self.procs.logs()
