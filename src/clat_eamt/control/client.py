"""The CLI's side of the control socket: one blocking call, clear errors."""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from typing import Any


class DaemonNotRunningError(Exception):
    """Nothing answers on the socket: the daemon is not running (or uses another socket)."""


class CallFailedError(Exception):
    """The daemon answered with an error; ``code`` is invalid-argument, bad-request or failed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def call(
    path: str, method: str, args: Mapping[str, str] | None = None, timeout: float = 10.0
) -> Any:
    """The result of ``method`` on the daemon listening on ``path``."""
    request = json.dumps({"method": method, "args": dict(args or {})}).encode() + b"\n"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            raise DaemonNotRunningError(
                f"clat-eamt is not running (nothing answers on {path})"
            ) from None
        except PermissionError:
            raise DaemonNotRunningError(f"permission denied on {path}: run as root") from None
        data = b""
        try:
            sock.sendall(request)
            while not data.endswith(b"\n"):
                chunk = sock.recv(1 << 16)
                if not chunk:
                    raise CallFailedError("failed", "the daemon hung up without answering")
                data += chunk
        except TimeoutError:
            raise CallFailedError(
                "failed", f"no answer from the daemon in {timeout:.0f} s"
            ) from None
    reply = json.loads(data)
    if "error" in reply:
        raise CallFailedError(reply["error"]["code"], reply["error"]["message"])
    return reply["result"]
