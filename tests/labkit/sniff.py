"""What a server really receives: a UDP capture on an interface, without tcpdump.

The capture runs as a separate process (`_capture.py`, AF_PACKET, needs root) inside the
namespace of the receiving server and writes one line per datagram; this module starts it under
a ProcessGroup and parses the file into dnslib messages:

    sniffer = Sniffer(group, tmp_path / "cap.txt", port=unbound_port, netns=ns).start()
    ...
    sniffer.wait_for(lambda msgs: any(m.q.qname == "ds.lab.example." for m in msgs))
    assert 65001 in edns_option_codes(sniffer.messages()[-1])
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dnslib import DNSError, DNSRecord

from .client import edns_option, edns_option_codes
from .netns import Netns, ns_name
from .procs import Proc, ProcessGroup, wait_ready

__all__ = ["Packet", "Sniffer", "edns_option", "edns_option_codes", "read_capture"]

_CAPTURE = Path(__file__).with_name("_capture.py")


@dataclass(frozen=True)
class Packet:
    """One captured UDP datagram."""

    time: float
    src: str
    sport: int
    dst: str
    dport: int
    payload: bytes

    def dns(self) -> DNSRecord | None:
        """The payload as a DNS message, None when it does not parse."""
        try:
            return DNSRecord.parse(self.payload)
        except (DNSError, ValueError, IndexError):
            return None


def read_capture(path: Path) -> list[Packet]:
    """The packets of a capture file (a partly written last line is skipped)."""
    packets = []
    try:
        text = Path(path).read_text(encoding="ascii")
    except FileNotFoundError:
        return []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 6:
            continue
        try:
            payload = bytes.fromhex(fields[5])
        except ValueError:
            continue
        packets.append(
            Packet(float(fields[0]), fields[1], int(fields[2]), fields[3], int(fields[4]), payload)
        )
    return packets


class Sniffer:
    """A capture of UDP datagrams to `port` on `iface` (in `netns`), owned by `group`."""

    def __init__(
        self,
        group: ProcessGroup,
        out: Path,
        port: int,
        *,
        netns: Netns | str | None = None,
        iface: str = "lo",
        both: bool = False,
        name: str = "sniff",
    ) -> None:
        self.group = group
        self.out = Path(out)
        self.port = port
        self.netns = netns
        self.iface = iface
        self.both = both
        self.name = name
        self.proc: Proc | None = None

    def start(self, timeout: float = 30.0) -> Sniffer:
        argv = [sys.executable, str(_CAPTURE), "--iface", self.iface, "--port", str(self.port)]
        argv += ["--out", str(self.out)] + (["--both"] if self.both else [])
        proc = self.group.start(self.name, argv, netns=ns_name(self.netns))
        self.proc = proc
        wait_ready(lambda: "ready:" in proc.log_text(), timeout, what="capture", proc=proc)
        return self

    def packets(self) -> list[Packet]:
        return read_capture(self.out)

    def messages(self) -> list[DNSRecord]:
        """Every captured datagram that parses as DNS, in capture order."""
        return [m for m in (p.dns() for p in self.packets()) if m is not None]

    def queries(self, qname: str | None = None) -> list[DNSRecord]:
        """Captured queries (QR=0), only for `qname` if given (case-insensitive)."""
        want = qname.rstrip(".").lower() + "." if qname else None
        return [
            m
            for m in self.messages()
            if not m.header.qr and (want is None or str(m.q.qname).lower() == want)
        ]

    def wait_for(
        self, predicate: Callable[[list[DNSRecord]], bool], timeout: float = 10.0
    ) -> list[DNSRecord]:
        """Poll until predicate(messages) holds; returns the messages then."""
        wait_ready(lambda: predicate(self.messages()), timeout, what="captured DNS", proc=self.proc)
        return self.messages()
