"""A minimal DNS client over plain sockets (dnslib for the wire format).

`query` asks one question and returns the parsed response; `query_raw` sends bytes exactly as
given (malformed packets, odd flags).  Both work from inside a namespace (`netns=`) and raise
TimeoutError when no answer comes, so a test can assert that something did *not* answer in time.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from collections.abc import Iterable

from dnslib import CLASS, EDNS0, QTYPE, RCODE, DNSQuestion, DNSRecord, EDNSOption

from .netns import Netns, socket_in

DEFAULT_BUFSIZE = 1232


def make_query(
    name: str,
    qtype: str | int = "A",
    *,
    qclass: str | int = "IN",
    edns: bool = True,
    bufsize: int = DEFAULT_BUFSIZE,
    options: Iterable[tuple[int, bytes]] = (),
    rd: bool = True,
    do: bool = False,
    ad: bool = False,
) -> DNSRecord:
    """A query message; EDNS (with `options` as (code, data)) unless edns=False; `do` sets the
    DO flag (needs EDNS), `ad` the AD bit in the header (RFC 6840 5.7: "I understand AD")."""
    qt = getattr(QTYPE, qtype) if isinstance(qtype, str) else qtype
    qc = getattr(CLASS, qclass) if isinstance(qclass, str) else qclass
    msg = DNSRecord(q=DNSQuestion(name, qt, qc))
    msg.header.rd = int(rd)
    msg.header.ad = int(ad)
    opts = [EDNSOption(code, data) for code, data in options]
    if edns or opts:
        msg.add_ar(EDNS0(udp_len=bufsize, opts=opts, flags="do" if do else ""))
    return msg


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    buf = b""
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            raise ConnectionError("connection closed mid-message")
        buf += chunk
    return buf


def query_raw(
    addr: str,
    port: int,
    payload: bytes,
    *,
    tcp: bool = False,
    timeout: float = 5.0,
    netns: Netns | str | None = None,
    source: tuple[str, int] | None = None,
) -> bytes:
    """Send `payload` to addr#port and return the first response's bytes.

    UDP: the first datagram whose id matches the query's (any datagram if the payload is
    shorter than an id).  TCP: one length-prefixed message.  TimeoutError after `timeout`.
    """
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    kind = socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM
    deadline = time.monotonic() + timeout
    with contextlib.closing(socket_in(netns, family, kind)) as sock:
        if source is not None:
            sock.bind(source)
        sock.settimeout(timeout)
        sock.connect((addr, port))
        if tcp:
            sock.sendall(struct.pack("!H", len(payload)) + payload)
            (length,) = struct.unpack("!H", _recv_exact(sock, 2))
            return _recv_exact(sock, length)
        sock.send(payload)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no UDP answer from {addr}#{port} within {timeout}s")
            sock.settimeout(remaining)
            data = sock.recv(65535)
            if len(payload) < 2 or data[:2] == payload[:2]:
                return data


def query(
    addr: str,
    port: int,
    name: str,
    qtype: str | int = "A",
    *,
    tcp: bool = False,
    timeout: float = 5.0,
    netns: Netns | str | None = None,
    source: tuple[str, int] | None = None,
    **make: object,
) -> DNSRecord:
    """Ask addr#port one question; `make` goes to make_query (edns, bufsize, options, rd, do,
    ad)."""
    msg = make_query(name, qtype, **make)  # type: ignore[arg-type]
    raw = query_raw(addr, port, msg.pack(), tcp=tcp, timeout=timeout, netns=netns, source=source)
    return DNSRecord.parse(raw)


def answers(response: DNSRecord, qtype: str | None = None) -> list[str]:
    """The rdata strings of the answer section (only type `qtype` if given), as dnslib prints
    them (addresses normalised, names absolute with trailing dot)."""
    want = getattr(QTYPE, qtype) if qtype else None
    return [str(rr.rdata) for rr in response.rr if want is None or rr.rtype == want]


def rcode(response: DNSRecord) -> str:
    """The rcode as text: NOERROR, NXDOMAIN, SERVFAIL, ..."""
    return str(RCODE[response.header.rcode])


def edns_option_codes(message: DNSRecord) -> list[int]:
    """EDNS option codes of a message in wire order ([] without OPT record)."""
    codes: list[int] = []
    for rr in message.ar:
        if rr.rtype == QTYPE.OPT:
            codes.extend(opt.code for opt in rr.rdata)
    return codes


def edns_option(message: DNSRecord, code: int) -> bytes | None:
    """Data of the first EDNS option `code`, None when absent."""
    for rr in message.ar:
        if rr.rtype == QTYPE.OPT:
            for opt in rr.rdata:
                if opt.code == code:
                    return bytes(opt.data)
    return None
