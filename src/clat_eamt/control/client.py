"""The CLI's side of the control socket: one blocking call, clear errors (never a traceback:
a daemon that is busy or hangs up is a ``CallFailedError`` like any other refusal)."""

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
        except TimeoutError:  # its backlog is full: it does not take connections now
            raise CallFailedError(
                "failed", f"the daemon took no connection in {timeout:.0f} s"
            ) from None
        try:
            sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # hung up at once (busy): what it said before is read below
        except TimeoutError:
            raise CallFailedError(
                "failed", f"no answer from the daemon in {timeout:.0f} s"
            ) from None
        data = _answer(sock, timeout)
    try:
        reply = json.loads(data)
        if "error" in reply:
            raise CallFailedError(reply["error"]["code"], reply["error"]["message"])
        return reply["result"]
    except (ValueError, TypeError, KeyError):
        raise CallFailedError("failed", "the daemon's answer is not the control protocol") from None


def _answer(sock: socket.socket, timeout: float) -> bytes:
    """The daemon's answer line; CallFailedError when it hangs up or says nothing in time."""
    data = b""
    try:
        while not data.endswith(b"\n"):
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        raise CallFailedError("failed", f"no answer from the daemon in {timeout:.0f} s") from None
    except ConnectionResetError:
        pass  # what arrived before the reset may still be a whole answer
    if not data.endswith(b"\n"):
        raise CallFailedError("failed", "the daemon hung up without answering")
    return data
