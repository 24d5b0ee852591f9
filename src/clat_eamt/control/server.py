"""The control socket: the method table (``control.methods``) as JSON over a Unix socket.

Protocol: one request per line, ``{"method": "add", "args": {"ipv4": ..., "ipv6": ...}}``,
one answer per line, ``{"result": ...}`` or ``{"error": {"code": ..., "message": ...}}`` with
code ``invalid-argument`` (nothing changed; the message says why), ``bad-request`` (not our
protocol) or ``failed`` (the daemon could not do it; its log says more).  A connection may carry
any number of requests.

The socket is root's alone (mode 0600: ``add``/``del``/``flush`` change what the router does).
A socket file left by a crashed run is replaced; one a running daemon still answers on is not,
so a second daemon refuses to start instead of stealing the first one's API.

Nothing a client sends can stall DNS (issue 15): a request line is at most ``MAX_REQUEST``
bytes and ``MAX_DEPTH`` levels of JSON nesting (checked before parsing: 50,000 nested ``[`` made
the parser recurse until it failed), at most ``MAX_CLIENTS`` connections are served at once,
a connection that brings no whole request line within ``IDLE_TIMEOUT`` seconds is closed (issue
26: sixteen clients that sent nothing locked everyone else out for as long as they stayed),
and a large result (``mappings`` with 10,000 entries, about 4 MB) is encoded a chunk at a time,
letting the event loop answer DNS in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import socket
from typing import Any

from clat_eamt.control.methods import MAX_PUSHED, ControlTarget, MethodError, dispatch

log = logging.getLogger(__name__)
# bytes per request line: the largest is a pushed table (``methods.MAX_PUSHED`` characters, as
# JSON: its newlines escaped), the next largest an add with a long comment (~500)
MAX_REQUEST = 2 * MAX_PUSHED + 4096
MAX_DEPTH = 4  # JSON nesting: {"method": ..., "args": {...}} is 2
MAX_CLIENTS = 16
IDLE_TIMEOUT = 5.0  # seconds for a request line: the CLI sends its one at once
CHUNK = 256  # result rows encoded between two turns of the event loop


def too_deep(line: bytes, limit: int = MAX_DEPTH) -> bool:
    """True when the JSON text nests arrays/objects deeper than ``limit`` (brackets inside
    strings do not count).  Linear, no recursion."""
    if line.count(b"[") + line.count(b"{") <= limit:
        return False
    depth, in_string, escaped = 0, False, False
    for byte in line:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return False


async def encode(body: dict[str, Any]) -> bytes:
    """``body`` as one JSON line; a list result of many rows is encoded ``CHUNK`` rows at a time
    with a turn of the event loop between chunks, so DNS answers are not held up by it."""
    result = body.get("result")
    if not isinstance(result, list) or len(result) <= CHUNK:
        return json.dumps(body, separators=(",", ":")).encode() + b"\n"
    parts = [b'{"result":[']
    for first in range(0, len(result), CHUNK):
        rows = result[first : first + CHUNK]
        chunk = ",".join(json.dumps(row, separators=(",", ":")) for row in rows).encode()
        parts.append(chunk if first == 0 else b"," + chunk)
        await asyncio.sleep(0)
    parts.append(b"]}\n")
    return b"".join(parts)


def answer(result: Any = None, error: tuple[str, str] | None = None) -> bytes:
    if error is not None:
        code, message = error
        body: dict[str, Any] = {"error": {"code": code, "message": message}}
    else:
        body = {"result": result}
    return json.dumps(body, separators=(",", ":")).encode() + b"\n"


async def handle_line(target: ControlTarget, line: bytes) -> bytes:
    """One request line in, one answer line out; never raises."""
    if too_deep(line):
        return answer(error=("bad-request", f"JSON nested deeper than {MAX_DEPTH} levels"))
    try:
        request = json.loads(line)
    except (ValueError, RecursionError) as error:
        return answer(error=("bad-request", f"not JSON: {error}"))
    if not isinstance(request, dict) or "method" not in request:
        return answer(error=("bad-request", 'expected {"method": NAME, "args": {...}}'))
    try:
        result = await dispatch(target, request["method"], request.get("args"))
        return await encode({"result": result})
    except MethodError as error:
        return answer(error=("invalid-argument", str(error)))
    except Exception as error:  # a handler bug must not take the daemon (and DNS) down
        log.exception("control method %r failed", request["method"])
        return answer(error=("failed", f"{type(error).__name__}: {error}"))


class ControlServer:
    def __init__(self, path: str | os.PathLike[str], target: ControlTarget) -> None:
        self.path, self.target = os.fspath(path), target
        self._server: asyncio.AbstractServer | None = None
        self._inode: int | None = None
        self.clients = 0

    async def start(self) -> None:
        """Listen; OSError (EADDRINUSE) when another daemon answers on the path."""
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        if os.path.lexists(self.path):
            if await _answers(self.path):
                raise OSError(errno.EADDRINUSE, f"another clat-eamt answers on {self.path}")
            os.unlink(self.path)  # left by a run that did not stop cleanly
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # created 0600: no window in which others could connect
        try:
            sock.bind(self.path)
        except OSError:
            sock.close()
            raise
        finally:
            os.umask(old)
        self._inode = os.stat(self.path).st_ino
        self._server = await asyncio.start_unix_server(self._serve, sock=sock, limit=MAX_REQUEST)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
        with contextlib.suppress(OSError):  # only our own file, never a successor's
            if self._inode is not None and os.stat(self.path).st_ino == self._inode:
                os.unlink(self.path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.clients >= MAX_CLIENTS:
            writer.write(answer(error=("failed", f"busy: {MAX_CLIENTS} clients connected")))
            with contextlib.suppress(Exception):  # said before hanging up, if it can be
                await asyncio.wait_for(writer.drain(), 1.0)
            writer.close()
            return
        self.clients += 1
        try:
            while True:
                try:
                    line = await asyncio.wait_for(reader.readline(), IDLE_TIMEOUT)
                except TimeoutError:  # idle (or a line trickling in): make room for others
                    break
                except ValueError:  # longer than MAX_REQUEST: answer and hang up
                    message = f"request longer than {MAX_REQUEST} bytes"
                    writer.write(answer(error=("bad-request", message)))
                    break
                if not line:
                    break
                if line.strip():
                    writer.write(await handle_line(self.target, line))
                    await writer.drain()
        except OSError:
            pass  # the client went away
        finally:
            self.clients -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def _answers(path: str) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True
