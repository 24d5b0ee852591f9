"""The browser test's web server: the stand-in page (standin/), the LuCI app's files as uhttpd
serves them under /luci-static/, and /ubus, which answers the page's JSON-RPC calls to the ubus
object ``clat-eamt`` from a real daemon's control socket.

/ubus answers as uhttpd-mod-ubus and rpcd would for a user with the app's rpcd ACL: a method
the ACL does not grant gets JSON-RPC error -32002 "Access denied"; a reply is ``[0, object]``
with the object the daemon's ubus object sends (``ubus_object.reply`` and ``error_reply``, the
same functions); a call that does not carry exactly the method's arguments gets ubus'
INVALID_ARGUMENT (2), as ubus checks the signature; no answer on the socket (daemon stopped) and
any other object (the stand-in has no ``rc``) give JSON-RPC error -32000 "Object not found".
/uci?config=clat-eamt answers the settings view's uci.load (tests/browser/standin/
luci-form-standin.js) with the config file given as ``uci_file``, parsed by the daemon's own
parser (``clat_eamt.config.uci.parse_uci``) into the shape LuCI's uci.js holds (``uci_sections``);
any other config, or no file, gets 404, as rpcd's uci object answers a missing config with an
error.

It binds 127.0.0.1 on a free port and serves from a thread until the context exits.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from clat_eamt.config.uci import parse_uci
from clat_eamt.control.client import CallFailedError, DaemonNotRunningError, call
from clat_eamt.control.methods import METHODS
from clat_eamt.control.ubus_object import OBJECT, error_reply, reply

ROOT = Path(__file__).resolve().parents[2]
HTDOCS = ROOT / "luci-app" / "htdocs"
STANDIN = Path(__file__).resolve().parent / "standin"
ACL = ROOT / "luci-app" / "root" / "usr" / "share" / "rpcd" / "acl.d" / "luci-app-clat-eamt.json"
UBUS_INVALID_ARGUMENT = 2
UCI_CONFIG = "clat-eamt"
TYPES = {".js": "text/javascript", ".html": "text/html", ".css": "text/css"}


def granted() -> dict[str, set[str]]:
    """The ubus methods the app's rpcd ACL grants (read and write), per object."""
    acl = json.loads(ACL.read_text())["luci-app-clat-eamt"]
    methods: dict[str, set[str]] = {}
    for part in ("read", "write"):
        for obj, names in acl.get(part, {}).get("ubus", {}).items():
            methods.setdefault(obj, set()).update(names)
    return methods


def ubus_answer(socket: str, request: Any) -> dict[str, Any]:
    """One JSON-RPC request of LuCI's rpc.js: {"method": "call", "params": [sid, object,
    method, args]}."""
    base = {"jsonrpc": "2.0", "id": request.get("id")}
    _sid, obj, name, args = request["params"]
    if name not in granted().get(obj, set()):
        return base | {"error": {"code": -32002, "message": "Access denied"}}
    method = METHODS.get(name)
    if obj != OBJECT or method is None:
        return base | {"error": {"code": -32000, "message": "Object not found"}}
    if set(args) != {a.name for a in method.args} or not all(
        isinstance(v, str) for v in args.values()
    ):
        return base | {"result": [UBUS_INVALID_ARGUMENT]}
    try:
        result = reply(name, call(socket, name, args))
    except DaemonNotRunningError:
        return base | {"error": {"code": -32000, "message": "Object not found"}}
    except CallFailedError as error:
        result = error_reply(error.code, str(error))
    return base | {"result": [0, result]}


def uci_sections(text: str) -> dict[str, dict[str, Any]]:
    """A UCI file as LuCI's uci.js holds a loaded config: section id -> {".name", ".type",
    ".anonymous", ".index", option: value, or a list of values for a list}.  Anonymous
    sections get ids as ``cfg`` + hex, as libuci names them."""
    sections: dict[str, dict[str, Any]] = {}
    for index, section in enumerate(parse_uci(text)):
        sid = section.name or f"cfg{index:06x}"
        values: dict[str, Any] = {
            ".name": sid,
            ".type": section.type,
            ".anonymous": section.name is None,
            ".index": index,
        }
        for option in section.options:
            words = [v.text for v in option.values]
            values[option.name] = words if option.is_list else words[-1]
        sections[sid] = values
    return sections


class Bridge:
    """Serves the stand-in page, bridges /ubus to ``socket`` and /uci to ``uci_file`` (see
    the module doc)."""

    def __init__(self, socket: str, uci_file: Path | None = None) -> None:
        self.socket = socket
        self.uci_file = uci_file
        self.calls: list[tuple[str, str]] = []  # (object, method) as the page asked

    def url(self, module: str) -> str:
        return f"http://127.0.0.1:{self.port}/page.html?module={module}"

    @contextlib.contextmanager
    def serving(self) -> Iterator[Bridge]:
        bridge = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # http.server's name
                path, _, query = self.path.partition("?")
                if path == "/uci":
                    self.uci(query)
                    return
                if path in ("/page.html", "/luci-standin.js", "/luci-form-standin.js"):
                    file = STANDIN / path.lstrip("/")
                elif path.startswith("/luci-static/"):
                    file = (HTDOCS / path.lstrip("/")).resolve()
                    if HTDOCS.resolve() not in file.parents:
                        file = HTDOCS / "missing"
                else:
                    file = HTDOCS / "missing"
                if not file.is_file():
                    self.send_error(404)
                    return
                self.answer(file.read_bytes(), TYPES.get(file.suffix, "text/plain"))

            def uci(self, query: str) -> None:
                config = parse_qs(query).get("config", [""])[0]
                file = bridge.uci_file
                if config != UCI_CONFIG or file is None or not file.is_file():
                    self.send_error(404)
                    return
                body = json.dumps(uci_sections(file.read_text())).encode()
                self.answer(body, "application/json")

            def do_POST(self) -> None:
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                bridge.calls.append((request["params"][1], request["params"][2]))
                body = json.dumps(ubus_answer(bridge.socket, request)).encode()
                self.answer(body, "application/json")

            def answer(self, body: bytes, ctype: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = server.server_address[1]
        thread = threading.Thread(target=server.serve_forever, name="luci-bridge", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)
