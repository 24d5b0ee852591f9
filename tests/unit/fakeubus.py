"""A recording stand-in for python-ubus (the ``ubus`` module of OpenWrt's python3-ubus).

ubusd and libubus do not run on these machines, so the daemon's ubus object is tested against
python-ubus's documented interface (its README and ubus.c), reproduced here where the daemon
depends on it:

- one global connection: ``connect(socket_path=...)`` raises when already connected or when
  ubusd is unreachable; ``get_connected()``; ``disconnect()``;
- ``add(name, methods)`` checks the shape ubus.c checks: each method a dict of exactly
  ``signature`` (name -> BLOBMSG type) and ``method`` (a callable);
- a call is refused with UBUS_STATUS_INVALID_ARGUMENT unless it carries exactly the signature's
  arguments with their types (ubus.c ``test_policies``), before the callback runs;
- the callback ``(handler, data)`` runs inside ``loop()``, on the thread that called it;
  ``handler.reply(data)`` only works during the callback and only with a JSON object
  (blobmsg_add_json_from_string needs one); an exception becomes UBUS_STATUS_UNKNOWN_ERROR;
- ``send(event, data)`` takes a JSON object; ``loop(timeout)`` returns after ``timeout`` ms.

Tests drive it like ``ubus call`` does: ``call(object, method, args)`` queues a request that the
next ``loop()`` serves, and waits for the reply.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

BLOBMSG_TYPE_UNSPEC, BLOBMSG_TYPE_ARRAY, BLOBMSG_TYPE_TABLE, BLOBMSG_TYPE_STRING = 0, 1, 2, 3
BLOBMSG_TYPE_INT64, BLOBMSG_TYPE_INT32, BLOBMSG_TYPE_BOOL = 4, 5, 7
UBUS_STATUS_OK, UBUS_STATUS_INVALID_ARGUMENT, UBUS_STATUS_NOT_FOUND = 0, 2, 4
UBUS_STATUS_UNKNOWN_ERROR = 9
_TYPES = {str: BLOBMSG_TYPE_STRING, bool: BLOBMSG_TYPE_BOOL, int: BLOBMSG_TYPE_INT32}


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

    def _need_connection(self) -> None:
        if not self.connected:
            raise RuntimeError("You are not connected to ubus.")
