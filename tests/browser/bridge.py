"""The browser test's web server: the stand-in page (standin/), the LuCI app's files as uhttpd
serves them under /luci-static/, /uci for the settings view, and /ubus, which answers the page's
JSON-RPC calls as a router does: uhttpd's ubus module, rpcd and ubusd, here STAND-INS (none of
them runs on the test machine), with the daemon's real code behind them.

/ubus models, rule by rule:

- uhttpd's ubus module (openwrt/uhttpd f682cca, ubus.c, legacy JSON-RPC "call"): a call of an
  object ubusd does not know is JSON-RPC error -32000 "Object not found" (``ubus_lookup_id``
  first, ubus.c:792-795); then the session's ACL is asked (``uh_ubus_allowed``, ubus.c:280-294):
  not granted is -32002 "Access denied" (ubus.c:104, 798-800), rpcd and the object are not
  called; arguments that already hold "ubus_rpc_session" are -32602 "Invalid parameters";
  otherwise the call goes out with ``"ubus_rpc_session": SID`` added to its arguments
  (``uh_ubus_send_request``, ubus.c:564-579), and the reply is ``{"result": [status]}``, or
  ``[status, data]`` when the object sent data (``uh_ubus_request_cb``, legacy format);
- rpcd's ACL by access group (openwrt/rpcd 4476687, session.c:1109 ``rpc_login_setup_acls``): a
  login's `read` and `write` lists (/etc/config/rpcd) name access groups; a group's "read" part
  is granted with read or write (session.c:923-976 ``rpc_login_test_permission``: write implies
  read), its "write" part with write; each part's "ubus" lists grant object -> methods and its
  "uci" list configs.  Every session here also has rpcd's own group "unauthenticated"
  (unauthenticated.json: session access and login), as a login whose lists name it or '*' has.
  The stand-in's login (``Login``) has the app's group, luci-app-clat-eamt, read and write
  unless a test gives another (the app's acl.d file, read here);
- rpcd's `session access` (session.c:611 ``rpc_handle_access``): {"access": true|false} for the
  scope ("ubus" by default, or "uci", or "access-group"), object and function asked;
- rpcd's `uci` object (uci.c), as far as the form saves: `add` (a section, named by rpcd when
  anonymous, with its values), `set` (values) and `delete` (options) stage changes in the
  session's delta, refused with UBUS_STATUS_PERMISSION_DENIED
  without write access to the config (uci.c:893-894, 1026-1027 ``rpc_uci_write_access``), in
  the session's own save directory (uci.c:289 ``rpc_uci_set_savedir``); `changes` answers
  {"changes": [[op, section, option, value], ...]} for a config; `apply` commits the staged
  changes into the config file (the ``uci_file``) and would have procd reload the service
  (``on_apply`` here); uhttpd lets every LuCI login call `uci` (luci-base's ACL grants it);
- ubusd, rpcd's exec plugins, python-ubus and the `ubus` command: tests/unit/fakeubus.py and
  tests/unit/standin_bin/ubus (their rules are there).  The object ``clat-eamt`` is served by
  what serves it on a router: the clat-eamt package's rpcd plugin (files/usr/libexec/rpcd/) if
  there is one, run as rpcd runs it, and the daemon's own ubus object
  (``clat_eamt.control.ubus_object.UbusObject``, the real class, on the stand-in bus) when the
  daemon runs: its method calls go to the daemon's control socket (``SocketTarget``), so the
  answers are the running daemon's.  No socket file: the daemon is not running, so its object
  is not on the bus.

/uci?config=clat-eamt answers the settings view's uci.load (tests/browser/standin/
luci-form-standin.js) with the config file given as ``uci_file``, parsed by the daemon's own
parser (``clat_eamt.config.uci.parse_uci``) into the shape LuCI's uci.js holds (``uci_sections``);
any other config, or no file, gets 404, as rpcd's uci object answers a missing config with an
error.

It binds 127.0.0.1 on a free port and serves from a thread until the context exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import quote as quote_url

from clat_eamt.config import StaticEntry
from clat_eamt.config.types import show_prefix
from clat_eamt.config.uci import parse_uci, quote, statement
from clat_eamt.control.client import CallFailedError, call
from clat_eamt.control.methods import MethodError
from clat_eamt.control.ubus_object import UbusObject
from tests.unit.fakeubus import FakeUbus

ROOT = Path(__file__).resolve().parents[2]
HTDOCS = ROOT / "luci-app" / "htdocs"
STANDIN = Path(__file__).resolve().parent / "standin"
ACL_DIR = ROOT / "luci-app" / "root" / "usr" / "share" / "rpcd" / "acl.d"
RPCD_PLUGINS = ROOT / "files" / "usr" / "libexec" / "rpcd"  # the clat-eamt package's
GROUPS = ("luci-app-clat-eamt",)  # the access groups of the stand-in's login
SESSION_ID = "0123456789abcdef0123456789abcdef"
UCI_CONFIG = "clat-eamt"
TYPES = {".js": "text/javascript", ".html": "text/html", ".css": "text/css"}


@dataclass(frozen=True)
class Login:
    """A login of /etc/config/rpcd: the access groups it may read and write."""

    read: tuple[str, ...] = GROUPS
    write: tuple[str, ...] = GROUPS


READ_ONLY = Login(write=())
UNAUTHENTICATED = {"ubus": {"session": {"access", "login"}}}  # rpcd's unauthenticated.json


def granted(login: Login = Login(), scope: str = "ubus") -> dict[str, set[str]]:
    """object -> functions the login's session may call in ``scope`` ("ubus": methods; "uci":
    configs -> {"read", "write"}; "access-group": groups -> parts), from acl.d."""
    found: dict[str, set[str]] = {k: set(v) for k, v in UNAUTHENTICATED.get(scope, {}).items()}
    for path in sorted(ACL_DIR.glob("*.json")):
        for group, acl in json.loads(path.read_text()).items():
            for part in ("read", "write"):
                allowed = group in login.write or (part == "read" and group in login.read)
                if not allowed:
                    continue
                if scope == "access-group":
                    found.setdefault(group, set()).add(part)
                elif scope == "uci":
                    for config in acl.get(part, {}).get("uci", []):
                        found.setdefault(config, set()).add(part)
                else:
                    for obj, names in acl.get(part, {}).get(scope, {}).items():
                        found.setdefault(obj, set()).update(names)
    return found


class SocketTarget:
    """The daemon as ``control.methods`` sees it (a ``ControlTarget``), answered by the running
    daemon's control socket: the bridge's ubus object is the daemon's ubus object in another
    process."""

    def __init__(self, socket: str) -> None:
        self.socket = socket

    def _call(self, method: str, args: dict[str, str] | None = None) -> Any:
        try:
            return call(self.socket, method, args)
        except CallFailedError as error:
            if error.code == "invalid-argument":
                raise MethodError(str(error)) from None
            raise

    async def status_report(self) -> Any:
        return self._call("status")

    async def mapping_rows(self) -> Any:
        return self._call("mappings")

    async def overview_report(self, offset: int, limit: int) -> Any:
        return self._call("overview", {"offset": str(offset), "limit": str(limit)})

    def host_rows(self) -> Any:
        return self._call("hosts")

    async def add_static(self, entry: StaticEntry) -> Any:
        args = {"ipv4": show_prefix(entry.ipv4), "ipv6": show_prefix(entry.ipv6)}
        return self._call("add", args | {"comment": entry.comment})

    async def delete_static(self, ipv4: IPv4Network) -> Any:
        return self._call("del", {"ipv4": show_prefix(ipv4)})

    async def flush_dns(self) -> Any:
        return self._call("flush")

    def effective_config(self) -> Any:
        return self._call("config")

    def flow_history(self) -> Any:
        return self._call("history")


class Router:
    """ubusd (the stand-in bus) with rpcd's plugins of the app and, when the daemon runs, the
    daemon's ubus object; ``answer`` is uhttpd's /ubus."""

    def __init__(
        self,
        socket: str,
        workdir: Path,
        plugins: Path = RPCD_PLUGINS,
        login: Login = Login(),
        uci_file: Path | None = None,
    ) -> None:
        self.socket, self.workdir, self.plugins = socket, workdir, plugins
        self.login, self.uci_file = login, uci_file
        self.bus = FakeUbus()
        self.calls: list[tuple[str, str]] = []
        self.staged: list[list[Any]] = []  # the session's delta: [op, section, option, value]
        self.applied: list[str] = []  # the config file after each apply
        self.on_apply: Callable[[Path], None] | None = None  # procd's reload of the service

    @contextlib.contextmanager
    def running(self) -> Iterator[Router]:
        with contextlib.ExitStack() as stack:
            stack.enter_context(self.bus.serve_cli(self.workdir / "ubusd.sock"))
            self.bus.add_rpcd_plugins(self.plugins)
            if Path(self.socket).exists():
                stack.enter_context(self._daemon_object())
            yield self

    @contextlib.contextmanager
    def _daemon_object(self) -> Iterator[None]:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="daemon-loop", daemon=True)
        thread.start()
        ubus = UbusObject(SocketTarget(self.socket), loop, self.bus)  # type: ignore[arg-type]
        ubus.start()
        try:
            for _ in range(250):
                if ubus.state == "connected":
                    break
                threading.Event().wait(0.02)
            yield
        finally:
            ubus.stop()
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
            loop.close()

    def answer(self, request: Any) -> dict[str, Any]:
        """One JSON-RPC request of LuCI's rpc.js: {"method": "call", "params": [sid, object,
        method, args]}, as uhttpd answers it (module doc)."""
        base = {"jsonrpc": "2.0", "id": request.get("id")}
        _sid, obj, name, args = request["params"]
        self.calls.append((obj, name))
        rpcd = {"session": self._session, "uci": self._uci}  # rpcd's own objects
        if obj not in self.bus.objects and obj not in self.bus.rpcd and obj not in rpcd:
            return base | {"error": {"code": -32000, "message": "Object not found"}}
        if obj != "uci" and name not in granted(self.login).get(obj, set()):
            return base | {"error": {"code": -32002, "message": "Access denied"}}
        if "ubus_rpc_session" in args:
            return base | {"error": {"code": -32602, "message": "Invalid parameters"}}
        if obj in rpcd:
            status, reply = rpcd[obj](name, args)
            return base | {"result": [status, reply] if reply is not None else [status]}
        done = self.bus.call(obj, name, {**args, "ubus_rpc_session": SESSION_ID})
        result = [done.status, done.reply] if done.reply else [done.status]
        return base | {"result": result}

    def _session(self, name: str, args: dict[str, Any]) -> tuple[int, Any]:
        if name != "access" or "object" not in args or "function" not in args:
            return 2, None  # UBUS_STATUS_INVALID_ARGUMENT: only what the views ask
        functions = granted(self.login, args.get("scope", "ubus")).get(args["object"], set())
        return 0, {"access": args["function"] in functions or "*" in functions}

    def _uci(self, name: str, args: dict[str, Any]) -> tuple[int, Any]:
        config = args.get("config")
        may_write = "write" in granted(self.login, "uci").get(str(config), set())
        if name in ("add", "set", "delete") and not may_write:
            return 6, None  # UBUS_STATUS_PERMISSION_DENIED
        if name == "add":  # rpcd names an anonymous section itself (uci.c rpc_uci_add)
            sid = args.get("name") or f"cfg{len(self.staged) + 0xA000:06x}"
            self.staged.append(["add", sid, args["type"]])
            for option, value in args.get("values", {}).items():
                self.staged.append(["set", sid, option, value])
            return 0, {"section": sid}
        if name == "set":
            for option, value in args["values"].items():
                self.staged.append(["set", args["section"], option, value])
        elif name == "delete":
            for option in args.get("options", [args.get("option")]):
                self.staged.append(["remove", args["section"], option])
        elif name == "changes":
            return 0, {"changes": list(self.staged)}
        elif name == "apply":
            self._commit()
        else:
            return 3, None  # UBUS_STATUS_METHOD_NOT_FOUND: not modelled
        return 0, None

    def _commit(self) -> None:
        assert self.uci_file is not None
        sections = uci_sections(self.uci_file.read_text())
        for change in self.staged:
            if change[0] == "add":
                sid, anonymous = change[1], change[1].startswith("cfg")
                index = len(sections)
                sections[sid] = {".type": change[2], ".name": sid, ".anonymous": anonymous}
                sections[sid][".index"] = index
            elif change[0] == "set":
                sections[change[1]][change[2]] = change[3]
            else:
                sections[change[1]].pop(change[2], None)
        self.staged.clear()
        self.uci_file.write_text(uci_text(sections))
        self.applied.append(self.uci_file.read_text())
        if self.on_apply is not None:
            self.on_apply(self.uci_file)


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


def uci_text(sections: dict[str, dict[str, Any]]) -> str:
    """``uci_sections``' shape back to a UCI file (what `uci commit` writes)."""
    blocks = []
    for sid, values in sections.items():
        head = f"config {values['.type']}" + ("" if values[".anonymous"] else f" {quote(sid)}")
        lines = [head]
        for option, value in values.items():
            if option.startswith("."):
                continue
            keyword = "list" if isinstance(value, list) else "option"
            lines += [f"\t{statement(keyword, option, v)}" for v in _words(value)]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def _words(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


class Bridge:
    """Serves the stand-in page, bridges /ubus to ``socket`` and /uci to ``uci_file`` (see
    the module doc)."""

    def __init__(
        self,
        socket: str,
        uci_file: Path | None = None,
        rpcd_plugins: Path = RPCD_PLUGINS,
        login: Login = Login(),
    ) -> None:
        """``rpcd_plugins``: the folder rpcd finds its plugins in (a test can give its own);
        ``login``: whose session the page has."""
        self.socket = socket
        self.uci_file = uci_file
        self.rpcd_plugins = rpcd_plugins
        self.login = login
        self.calls: list[tuple[str, str]] = []  # (object, method) as the page asked

    def url(self, module: str, steps: list[dict[str, str]] | None = None) -> str:
        """The page of ``module``; ``steps``: what standin/user.js does on it."""
        played = f"&steps={quote_url(json.dumps(steps))}" if steps else ""
        return f"http://127.0.0.1:{self.port}/page.html?module={module}{played}"

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
                if path in ("/page.html", "/luci-standin.js", "/luci-form-standin.js", "/user.js"):
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
                body = json.dumps(router.answer(request)).encode()
                self.answer(body, "application/json")

            def answer(self, body: bytes, ctype: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

        workdir = tempfile.TemporaryDirectory(prefix="luci-bridge-")
        router = self.router = Router(
            self.socket, Path(workdir.name), self.rpcd_plugins, self.login, self.uci_file
        )
        self.calls = router.calls
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = server.server_address[1]
        thread = threading.Thread(target=server.serve_forever, name="luci-bridge", daemon=True)
        thread.start()
        try:
            with router.running():
                yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)
            workdir.cleanup()
