"""Free ports for test servers.

DNS servers listen on UDP and TCP on the same port, so a port is handed out only when both
are free.  Ports handed out in this process are remembered and not handed out again, because
the servers bind them a moment later (two servers started back to back would otherwise get the
same port).
"""

from __future__ import annotations

import contextlib
import socket

from .netns import Netns, socket_in

_handed_out: set[tuple[str | None, str, int]] = set()


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def port_is_free(port: int, host: str = "127.0.0.1", netns: Netns | str | None = None) -> bool:
    """True when both UDP and TCP `port` can be bound on `host` (in `netns` if given)."""
    family = _family(host)
    socks = []
    try:
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            sock = socket_in(netns, family, kind)
            socks.append(sock)
            sock.bind((host, port))
    except OSError:
        return False
    finally:
        for sock in socks:
            sock.close()
    return True


def free_port(host: str = "127.0.0.1", netns: Netns | str | None = None) -> int:
    """A port free for both UDP and TCP on `host`, not handed out before by this process."""
    family = _family(host)
    key_ns = netns.name if isinstance(netns, Netns) else netns
    for _ in range(200):
        with contextlib.closing(socket_in(netns, family, socket.SOCK_STREAM)) as probe:
            probe.bind((host, 0))
            port = int(probe.getsockname()[1])
        key = (key_ns, host, port)
        if key not in _handed_out and port_is_free(port, host, netns):
            _handed_out.add(key)
            return port
    raise RuntimeError(f"no free UDP+TCP port on {host}")
