"""The internet's TCP echo server of the 464XLAT lab (run as a script inside a namespace).

Listens on every address of both families (0.0.0.0 and [::] with IPV6_V6ONLY, so an IPv4
connection is reported as IPv4, not as a v4-mapped IPv6 one), echoes what it receives, and
appends one JSON line per event to its log (flushed at once, so a test can read it while the
server runs):

- {"event": "listening", "port": ...} once both sockets listen (the readiness signal);
- {"event": "accepted", "id": n, "family": "ipv4"|"ipv6", "local": ADDR, "local_port": ..,
   "peer": ADDR, "peer_port": .., "time": ..} per connection: `local` is the address the client
   reached, `peer` who the server sees (the NAT64's public IPv4, or the CLAT's IPv6);
- {"event": "first", "id": n, "line": "..."} with the first line received (clients send a tag
   first, so a test finds its own connection), written before that line is echoed;
- {"event": "closed", "id": n, "bytes": .., "duration": ..} when the peer closes or resets.

    python3 _tcpserver.py --port 8080 --log server.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import socket
import sys
import time
from typing import Any, TextIO

FIRST_LINE_MAX = 200


class Log:
    def __init__(self, out: TextIO) -> None:
        self.out = out

    def write(self, **event: Any) -> None:
        self.out.write(json.dumps(event, sort_keys=True) + "\n")
        self.out.flush()


def listener(family: int, port: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(("::", port))
    else:
        sock.bind(("0.0.0.0", port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def serve(port: int, log: Log) -> None:
    ids = itertools.count(1)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = next(ids)
        sock: socket.socket = writer.get_extra_info("socket")
        local, peer = writer.get_extra_info("sockname"), writer.get_extra_info("peername")
        start = time.monotonic()
        log.write(
            event="accepted",
            id=conn,
            family="ipv6" if sock.family == socket.AF_INET6 else "ipv4",
            local=local[0],
            local_port=local[1],
            peer=peer[0],
            peer_port=peer[1],
            time=time.time(),
        )
        total = 0
        first = True
        try:
            while True:
                data = await reader.readline()
                if not data:
                    break
                if first:
                    first = False
                    line = data.decode(errors="replace").rstrip("\r\n")[:FIRST_LINE_MAX]
                    log.write(event="first", id=conn, line=line)
                total += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            log.write(event="closed", id=conn, bytes=total, duration=time.monotonic() - start)
            writer.close()

    servers = [
        await asyncio.start_server(handle, sock=listener(family, port), limit=1 << 20)
        for family in (socket.AF_INET, socket.AF_INET6)
    ]
    log.write(event="listening", port=port)
    await asyncio.gather(*(s.serve_forever() for s in servers))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--log", required=True, help="JSON lines file (appended)")
    args = parser.parse_args(argv)
    with open(args.log, "a", encoding="utf-8") as out, contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, Log(out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
