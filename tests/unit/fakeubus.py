"""A recording STAND-IN for ubusd as the daemon and rpcd meet it: python-ubus (the ``ubus``
module of OpenWrt's python3-ubus 0.1.3), rpcd's exec plugins and the ``ubus`` command line.

ubusd, libubus, rpcd and the ``ubus`` tool do not run on these machines, so the daemon's ubus
object and the package's rpcd plugin are tested against what those parts do, rule by rule, each
from its source:

python-ubus (CZ-NIC/python-ubus, ubus_python.c and README), where the daemon depends on it:

- one global connection: ``connect(socket_path=...)`` raises when already connected or when
  ubusd is unreachable; ``get_connected()``; ``disconnect()``;
- ``add(name, methods)`` checks the shape ubus.c checks: each method a dict of exactly
  ``signature`` (name -> BLOBMSG type) and ``method`` (a callable);
- a call is refused with UBUS_STATUS_INVALID_ARGUMENT unless it carries exactly the signature's
  arguments with their types, before the callback runs (``test_policies``: an argument whose
  name the signature lacks fails, and the count of matched names must equal the signature's
  size, so every declared argument is required; a type other than BLOBMSG_TYPE_UNSPEC must
  match: a JSON string is STRING, an object TABLE, an array ARRAY, true/false BOOL);
- the callback ``(handler, data)`` runs inside ``loop()``, on the thread that called it;
  ``handler.reply(data)`` only works during the callback and only with a JSON object
  (blobmsg_add_json_from_string needs one); an exception becomes UBUS_STATUS_UNKNOWN_ERROR;
- ``send(event, data)`` takes a JSON object; ``loop(timeout)`` returns after ``timeout`` ms.

rpcd's exec plugins (openwrt/rpcd, plugin.c; line numbers of rpcd 4476687), for
``add_rpcd_plugins(directory)``:

- every regular, executable file of the directory is a plugin (``rpc_plugin_register_library``
  skips the rest); rpcd runs ``PLUGIN list`` once and registers an object named after the file
  with the methods of the JSON object it prints (``rpc_plugin_parse_exec``);
- a call of a method the list does not name is UBUS_STATUS_METHOD_NOT_FOUND (libubus looks the
  method up in the object's table);
- a call runs ``PLUGIN call METHOD`` with the call's arguments as JSON on stdin, unchecked
  (``rpc_plugin_call`` declares the list's signature but does not test the arguments against
  it); the exit status and stderr are ignored (``rpc_plugin_call_stderr_cb`` drops it); the
  first JSON value on stdout is the reply when it is an object, and then the status is always
  UBUS_STATUS_OK; no output (or JSON null) is UBUS_STATUS_NO_DATA with no data, anything else
  (a value that is not an object, or not JSON) UBUS_STATUS_INVALID_ARGUMENT with no data
  (``rpc_plugin_call_finish_cb``, plugin.c:170-198; exec.c ``rpc_exec_reply``, exec.c:121-145,
  sends data only with status OK);
- rpcd is a process of its own: a plugin's call is served outside the daemon's ``loop()``.

ubusd routes a call to the process that registered the object; a caller that gets no answer
within its timeout ends the call with UBUS_STATUS_TIMEOUT (libubus-req.c:150
``ubus_complete_request``:
``unanswered`` objects here); the ``ubus`` command line
(openwrt/ubus, cli.c) reaches it through ``serve_cli(path)``: see tests/unit/standin_bin/ubus,
and ``logger`` there writes the lines a plugin logs to a file (FAKE_SYSLOG).

Tests drive it like ``ubus call`` does: ``call(object, method, args)`` queues a request that the
next ``loop()`` serves (or runs the rpcd plugin), and waits for the reply.
"""

from __future__ import annotations

import contextlib
import json
import os
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BLOBMSG_TYPE_UNSPEC, BLOBMSG_TYPE_ARRAY, BLOBMSG_TYPE_TABLE, BLOBMSG_TYPE_STRING = 0, 1, 2, 3
BLOBMSG_TYPE_INT64, BLOBMSG_TYPE_INT32, BLOBMSG_TYPE_BOOL = 4, 5, 7
# libubus' ubusmsg.h
UBUS_STATUS_OK, UBUS_STATUS_INVALID_ARGUMENT, UBUS_STATUS_METHOD_NOT_FOUND = 0, 2, 3
UBUS_STATUS_NOT_FOUND, UBUS_STATUS_NO_DATA, UBUS_STATUS_UNKNOWN_ERROR = 4, 5, 9
UBUS_STATUS_TIMEOUT = 7
STANDIN_BIN = Path(__file__).resolve().parent / "standin_bin"  # the `ubus` command's stand-in
_TYPES = {
    str: BLOBMSG_TYPE_STRING,
    bool: BLOBMSG_TYPE_BOOL,
    int: BLOBMSG_TYPE_INT32,
    dict: BLOBMSG_TYPE_TABLE,
    list: BLOBMSG_TYPE_ARRAY,
}


@dataclass
class Call:
    obj: str
    method: str
    args: dict[str, Any]
    done: threading.Event = field(default_factory=threading.Event)
    status: int | None = None
    reply: dict[str, Any] | None = None
    thread: str = ""


class Handler:
    def __init__(self, call: Call) -> None:
        self._call: Call | None = call

    def reply(self, data: Any) -> bool:
        if self._call is None:
            raise RuntimeError("Handler is not linked to a call response.")
        decoded = json.loads(json.dumps(data))
        if not isinstance(decoded, dict):
            raise TypeError("Failed to create json for ubus.")
        self._call.reply = decoded
        return True


class FakeUbus:
    BLOBMSG_TYPE_TABLE = BLOBMSG_TYPE_TABLE
    BLOBMSG_TYPE_STRING = BLOBMSG_TYPE_STRING
    BLOBMSG_TYPE_BOOL = BLOBMSG_TYPE_BOOL
    BLOBMSG_TYPE_INT32 = BLOBMSG_TYPE_INT32

    def __init__(self, *, reachable: bool = True, stall: float = 0.0) -> None:
        self.reachable, self.stall = reachable, stall  # stall: one loop() blocks this long
        self.connected = False
        self.objects: dict[str, dict[str, Any]] = {}
        self.events: list[tuple[str, dict[str, Any], str]] = []  # (event, data, thread)
        self.connects = 0
        self._queue: list[Call] = []
        self._lock = threading.Lock()
        self.rpcd: dict[str, tuple[Path, set[str]]] = {}  # object -> (plugin, its methods)
        self.env: dict[str, str] = dict(os.environ)  # what rpcd runs its plugins with
        # objects that never answer: a call ends with UBUS_STATUS_TIMEOUT when the caller's
        # timeout runs out (libubus, ubus_complete_request)
        self.unanswered: set[str] = set()

    # --- python-ubus's interface -----------------------------------------------------------------

    def connect(self, socket_path: str | None = None) -> bool:
        if self.connected:
            raise RuntimeError("You are already connected to ubus.")
        self.connects += 1
        if not self.reachable:
            raise OSError(f"Failed to connect to the ubus socket '{socket_path}'")
        self.connected = True
        return True

    def get_connected(self) -> bool:
        return self.connected

    def disconnect(self, deregister: bool = True) -> None:
        self._need_connection()
        self.connected = False
        self.objects.clear()

    def add(self, object_name: str, methods: dict[str, Any]) -> None:
        self._need_connection()
        for value in methods.values():
            if not isinstance(value, dict) or set(value) != {"signature", "method"}:
                raise TypeError("Incorrect method arguments!")
            if not callable(value["method"]) or not all(
                isinstance(k, str) and isinstance(t, int) for k, t in value["signature"].items()
            ):
                raise TypeError("Incorrect method arguments!")
        self.objects[object_name] = methods

    def send(self, event: str, data: Any) -> bool:
        self._need_connection()
        decoded = json.loads(json.dumps(data))
        if not isinstance(decoded, dict):
            raise TypeError("Failed to create json for ubus.")
        self.events.append((event, decoded, threading.current_thread().name))
        return True

    def loop(self, timeout: int = -1) -> None:
        self._need_connection()
        if self.stall:
            stall, self.stall = self.stall, 0.0
            time.sleep(stall)
        with self._lock:
            calls, self._queue = self._queue, []
        for call in calls:
            self._serve(call)
        if not calls:
            time.sleep(min(timeout, 20) / 1000 if timeout > 0 else 0.02)

    # --- the test's side: `ubus call OBJECT METHOD ARGS` -----------------------------------------

    def call(self, obj: str, method: str, args: dict[str, Any] | None = None) -> Call:
        call = Call(obj, method, args or {})
        if obj not in self.objects and obj not in self.rpcd:  # ubusd: no such object
            call.status = UBUS_STATUS_NOT_FOUND
            call.done.set()
            return call
        if obj in self.unanswered:
            call.status = UBUS_STATUS_TIMEOUT
            call.done.set()
            return call
        if obj in self.rpcd:
            self._rpcd_call(call)
            return call
        with self._lock:
            self._queue.append(call)
        if not call.done.wait(10):
            raise TimeoutError(f"nobody served ubus call {obj} {method}")
        return call

    def _serve(self, call: Call) -> None:
        call.thread = threading.current_thread().name
        try:
            entry = self.objects.get(call.obj, {}).get(call.method)
            if entry is None:
                call.status = UBUS_STATUS_NOT_FOUND
                return
            signature = entry["signature"]
            given = {
                name: _TYPES.get(type(v), BLOBMSG_TYPE_UNSPEC) for name, v in call.args.items()
            }
            if set(given) != set(signature) or any(
                signature[n] not in (BLOBMSG_TYPE_UNSPEC, t) for n, t in given.items()
            ):
                call.status = UBUS_STATUS_INVALID_ARGUMENT
                return
            handler = Handler(call)
            try:
                entry["method"](handler, call.args)
                call.status = UBUS_STATUS_OK
            except Exception:
                call.status = UBUS_STATUS_UNKNOWN_ERROR
            handler._call = None  # a reply after the callback returned goes nowhere
        finally:
            call.done.set()

    # --- rpcd's exec plugins ---------------------------------------------------------------------

    def add_rpcd_plugins(self, directory: Path) -> list[str]:
        """Register the plugins of ``directory`` as rpcd does at start; their object names."""
        names = []
        for plugin in sorted(directory.iterdir()) if directory.is_dir() else []:
            if not plugin.is_file() or not os.access(plugin, os.X_OK):
                continue
            done = subprocess.run(
                [str(plugin), "list"], capture_output=True, text=True, env=self.env, check=False
            )
            signatures = json.loads(done.stdout)
            self.rpcd[plugin.name] = (plugin, set(signatures))
            names.append(plugin.name)
        return names

    def _rpcd_call(self, call: Call) -> None:
        plugin, methods = self.rpcd[call.obj]
        call.thread = "rpcd"
        if call.method not in methods:
            call.status = UBUS_STATUS_METHOD_NOT_FOUND
        else:
            done = subprocess.run(
                [str(plugin), "call", call.method],
                input=json.dumps(call.args),
                capture_output=True,
                text=True,
                env=self.env,
                timeout=30,
                check=False,
            )
            out = done.stdout.lstrip()
            try:
                value = json.JSONDecoder().raw_decode(out)[0] if out else None
                parsed = True
            except ValueError:
                value, parsed = None, False
            if isinstance(value, dict):
                call.status, call.reply = UBUS_STATUS_OK, value
            elif parsed and value is None:  # no output, or JSON null (json-c: a NULL object)
                call.status = UBUS_STATUS_NO_DATA
            else:  # not JSON, or a value that is not an object (false, [], "text", 1)
                call.status = UBUS_STATUS_INVALID_ARGUMENT
        call.done.set()

    # --- the ubus command line's way in -----------------------------------------------------------

    @contextlib.contextmanager
    def serve_cli(self, path: Path) -> Iterator[Path]:
        """A socket the ``ubus`` stand-in (tests/unit/standin_bin/ubus) sends its calls to: one
        JSON line {"object", "method", "args"} in, {"status", "reply"} out.  ``env`` points
        the stand-in here (FAKE_UBUSD), and rpcd's plugins find it on PATH."""
        bus = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                request = json.loads(self.rfile.readline())
                obj = request["object"]
                found = obj in bus.objects or obj in bus.rpcd  # ubus_lookup_id
                done = bus.call(obj, request["method"], request["args"])
                answer = {"status": done.status, "reply": done.reply, "found": found}
                self.wfile.write(json.dumps(answer).encode() + b"\n")

        server = socketserver.ThreadingUnixStreamServer(str(path), Handler)
        thread = threading.Thread(target=server.serve_forever, name="ubusd-cli", daemon=True)
        thread.start()
        self.env["FAKE_UBUSD"] = str(path)
        self.env["PATH"] = f"{STANDIN_BIN}{os.pathsep}{self.env.get('PATH', '')}"
        # the package's `clat-eamt` command (standin_bin/clat-eamt: this interpreter, this tree)
        self.env["CLAT_EAMT_PYTHON"] = sys.executable
        self.env["PYTHONPATH"] = str(STANDIN_BIN.parents[2] / "src")
        self.env["FAKE_SYSLOG"] = str(path.with_name("syslog"))  # standin_bin/logger
        try:
            yield path
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)

    def _need_connection(self) -> None:
        if not self.connected:
            raise RuntimeError("You are not connected to ubus.")
