"""A socket inside a named network namespace, for a process that lives outside it.

A socket belongs to the namespace it was created in, and setns(2) changes only the calling
thread: so a short-lived helper thread enters the namespace, creates the socket and ends, and
no thread that lives on ever changes namespace.  Jool's node-based set-up and the test lab put
things in namespaces of their own; the daemon reads their tables this way.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from typing import TypeVar

NETNS_DIR = "/var/run/netns"  # where `ip netns add` puts named namespaces (iproute2)
_CLONE_NEWNET = 0x40000000
T = TypeVar("T")


def _setns(fd: int) -> None:
    setns = getattr(os, "setns", None)  # Python >= 3.12
    if setns is not None:
        setns(fd, _CLONE_NEWNET)
        return
    import ctypes  # noqa: PLC0415  (only with a namespace, on Python < 3.12)

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def run_in(netns: str | None, make: Callable[[], T]) -> T:
    """``make()`` run in a short-lived thread that entered ``netns`` first (a name under
    /var/run/netns, or a path; None: here, in this thread)."""
    if netns is None:
        return make()
    path = netns if "/" in netns else os.path.join(NETNS_DIR, netns)
    result: list[T | BaseException] = []

    def worker() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(fd)
            finally:
                os.close(fd)
            result.append(make())
        except BaseException as error:  # handed to the caller's thread
            result.append(error)

    thread = threading.Thread(target=worker, name="setns", daemon=True)
    thread.start()
    thread.join()
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


def socket_in(netns: str | None, family: int, kind: int, protocol: int = 0) -> socket.socket:
    """A socket created inside ``netns`` (a name under /var/run/netns, or a path); None: here."""
    return run_in(netns, lambda: socket.socket(family, kind, protocol))
