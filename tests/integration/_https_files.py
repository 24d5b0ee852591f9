"""A small HTTPS file server for the lab (run inside its internet namespace): serves a
directory over TLS with the certificate given, and logs each request's path as JSON."""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import socket
import ssl
import sys


class Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        print(json.dumps({"event": "request", "path": self.path}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("--addr", "--port", "--dir", "--cert", "--key"):
        parser.add_argument(name, required=True)
    args = parser.parse_args()
    handler = functools.partial(Files, directory=args.dir)
    family = socket.AF_INET6 if ":" in args.addr else socket.AF_INET
    server_class = type("Server", (http.server.ThreadingHTTPServer,), {"address_family": family})
    server = server_class((args.addr, int(args.port)), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(json.dumps({"event": "listening"}), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
