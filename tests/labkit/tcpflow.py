"""Client side of the lab's TCP echo server (`_tcpserver.py`): connections that prove a path.

A `Flow` is one TCP connection from a client namespace.  It sends its tag as the first line, so
the server's log names the connection (`find_accepted(events, tag)` -> the "accepted" event:
`peer` tells whether it came through the NAT64 or natively over IPv6), and `roundtrip()` sends
a line and waits for its echo: a flow that answers after a translator restart survived it.
`ticker()` keeps sending in the background and records every round trip, for tests that watch
a long-lived flow through a change.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .netns import Netns, socket_in

_tags = itertools.count(1)


def read_events(path: Path, offset: int = 0) -> list[dict[str, Any]]:
    """The JSON lines of the server log from byte `offset` (a partly written last line is
    skipped)."""
    try:
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return []
    events = []
    for line in data.splitlines():
        with contextlib.suppress(ValueError):
            events.append(json.loads(line))
    return events


def find_accepted(events: list[dict[str, Any]], tag: str) -> dict[str, Any] | None:
    """The "accepted" event of the connection whose first line was `tag` (with a "tag" key),
    and its "closed" event's fields under "closed" once it ended."""
    ids = [e["id"] for e in events if e.get("event") == "first" and e.get("line") == tag]
    if not ids:
        return None
    conn = ids[-1]
    accepted = next(e for e in events if e.get("event") == "accepted" and e["id"] == conn)
    closed = [e for e in events if e.get("event") == "closed" and e["id"] == conn]
    return {**accepted, "tag": tag, "closed": closed[-1] if closed else None}


def family_of(addr: str) -> int:
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


@dataclass
class Tick:
    """One round trip of a ticker: when it was sent, how long it took, or why it failed."""

    sent: float
    rtt: float | None
    error: str | None = None


@dataclass
class Flow:
    """A connected TCP flow to the echo server (see the module doc)."""

    sock: socket.socket
    tag: str
    addr: str
    port: int
    ticks: list[Tick] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _buf: bytes = b""

    @classmethod
    def open(
        cls,
        ns: Netns | str | None,
        addr: str,
        port: int,
        *,
        tag: str | None = None,
        timeout: float = 5.0,
    ) -> Flow:
        """Connect from namespace `ns`, send the tag and wait for its echo (so the server has
        logged the connection when this returns)."""
        sock = socket_in(ns, family_of(addr), socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect((addr, port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except BaseException:
            sock.close()
            raise
        flow = cls(sock, tag or f"flow-{next(_tags)}-{time.monotonic_ns()}", addr, port)
        try:
            flow.roundtrip(flow.tag, timeout)
        except BaseException:
            flow.close()
            raise
        return flow

    def roundtrip(self, text: str = "ping", timeout: float = 5.0) -> float:
        """Send one line, wait for the same line back; the round trip time in seconds."""
        line = (text + "\n").encode()
        with self._lock:
            start = time.monotonic()
            self.sock.settimeout(timeout)
            self.sock.sendall(line)
            deadline = start + timeout
            while b"\n" not in self._buf:
                self.sock.settimeout(max(deadline - time.monotonic(), 0.001))
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionError(f"{self.tag}: closed by the peer")
                self._buf += data
            got, self._buf = self._buf.split(b"\n", 1)
            if got + b"\n" != line:
                raise ConnectionError(f"{self.tag}: sent {line!r}, echo {got!r}")
            return time.monotonic() - start

    # -- a background ticker ---------------------------------------------------------------------
    def start_ticker(self, interval: float = 0.05, timeout: float = 5.0) -> None:
        """Send a line every `interval` s in a thread (each waits up to `timeout` for its echo)."""
        if self._thread is not None:
            raise RuntimeError("ticker already running")
        self._stop.clear()

        def tick() -> None:
            n = 0
            while not self._stop.is_set():
                n += 1
                sent = time.monotonic()
                try:
                    self.ticks.append(Tick(sent, self.roundtrip(f"tick {n}", timeout)))
                except (OSError, ConnectionError) as exc:
                    self.ticks.append(Tick(sent, None, repr(exc)))
                    return
                self._stop.wait(max(interval - (time.monotonic() - sent), 0))

        self._thread = threading.Thread(target=tick, name=f"ticker-{self.tag}", daemon=True)
        self._thread.start()

    def stop_ticker(self) -> list[Tick]:
        """Stop the ticker; all ticks so far (the last one has `error` if the flow broke)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        return list(self.ticks)

    @contextlib.contextmanager
    def ticking(self, interval: float = 0.05) -> Iterator[Flow]:
        self.start_ticker(interval)
        try:
            yield self
        finally:
            self.stop_ticker()

    def max_stall(self) -> float:
        """The longest round trip of the ticker (seconds; inf if one failed)."""
        if any(t.error for t in self.ticks):
            return float("inf")
        return max((t.rtt or 0.0 for t in self.ticks), default=0.0)

    def close(self) -> None:
        self.stop_ticker()
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> Flow:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
