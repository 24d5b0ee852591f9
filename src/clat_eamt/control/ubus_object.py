"""The daemon's object on OpenWrt's bus, behind the public ubus object ``clat-eamt``.

``ubus call clat-eamt status``, the LuCI pages and scripts get the same answers as
``clat-eamt status`` (the handlers are ``methods.dispatch``).  Mapping changes go out as
``clat-eamt.mapping`` events ({"event": "added"|"stale"|"removed", ...the mapping}: the kinds
of ``core.counters.UBUS_EVENT``), the safety net's as ``clat-eamt.safety`` events ({"event":
one of ``core.counters.SafetyEvent``, ...}), at most
``EVENT_RATE`` per second after a burst of ``EVENT_BURST``; the rest are counted as dropped.

Why two objects.  python-ubus (python3-ubus 0.1.3, ubus_python.c ``test_policies``) answers
UBUS_STATUS_INVALID_ARGUMENT to any call whose arguments are not exactly the method's
signature: an argument it does not declare fails, and every argument it declares is required.
uhttpd adds ``ubus_rpc_session`` to every call LuCI makes (uhttpd ubus.c), a shell's
``ubus call`` does not, and ``add`` takes an optional ``comment``: no one signature serves
them all.  So the public object ``clat-eamt`` is an rpcd exec plugin of the clat-eamt package
(files/usr/libexec/rpcd/clat-eamt, a few lines of sh: rpcd hands a plugin the call's
arguments unchecked) that passes every call on, its arguments wrapped whole as one table
``{"args": {...}}``, to this object, ``clat-eamt.daemon``, whose methods all take exactly that
one table, so python-ubus lets every call through; here ``call_args`` drops uhttpd's session id
and ``methods.checked_args`` checks the rest as the control socket does (unknown names, missing
required ones, non-strings: a clear ``invalid-argument`` error, nothing changed).  rpcd's ACL
keeps working on ``clat-eamt``'s method names, and nothing grants ``clat-eamt.daemon``.

What this relies on of python-ubus (its README and ubus.c):

- one global connection: ``connect(socket_path=None)``, ``disconnect()``;
- ``add(name, {method: {"method": callback, "signature": {arg: BLOBMSG_TYPE_*}}})``;
  ``callback(handler, data)`` runs inside ``loop()`` and must call ``handler.reply(dict)``
  before it returns; its return value is ignored; an exception becomes UBUS_STATUS_UNKNOWN_ERROR;
- the exact signature check above, with BLOBMSG_TYPE_TABLE matching a JSON object;
- a reply is a JSON object: list results are wrapped as ``{"mappings": [...]}``;
- ``loop(timeout=ms)`` runs libubus' uloop for that long (releasing the GIL); ``send(event,
  data)`` sends an event.

So the object lives in a thread of its own: a callback hands the call to the daemon's asyncio
loop and waits for the result there, so a slow or stuck bus never holds up a DNS answer, and
daemon state is only touched by the loop.  libubus is not thread-safe: events are queued and sent
from the ubus thread between short ``loop()`` slices.  Errors come back as
``{"error": {"code", "message"}}``, the codes of the control socket.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

from clat_eamt.control.methods import METHODS, ControlTarget, MethodError, dispatch
from clat_eamt.core.counters import UBUS_EVENT, SafetyEvent
from clat_eamt.core.limits import TokenBucket
from clat_eamt.logs import RateLimitedLog

log = logging.getLogger(__name__)
OBJECT, EVENT = "clat-eamt", "clat-eamt.mapping"  # the public object (rpcd plugin), events
SAFETY_EVENT = "clat-eamt.safety"
DAEMON_OBJECT = "clat-eamt.daemon"  # this object: the plugin's calls, wrapped
WRAP = "args"  # the one argument of DAEMON_OBJECT's methods: the call's arguments, whole
SESSION = "ubus_rpc_session"  # added by uhttpd to every call from LuCI (uhttpd ubus.c)
EVENT_RATE, EVENT_BURST = 10.0, 50
SLICE_MS = 200  # how long one loop() runs before queued events are sent
CALL_TIMEOUT = 10.0  # seconds a call may take in the daemon before the bus gets an error
RETRY_FIRST, RETRY_MAX = 1.0, 60.0  # reconnecting to ubusd (it restarts, or is not up yet)


class UbusObject:
    def __init__(
        self,
        target: ControlTarget,
        loop: asyncio.AbstractEventLoop,
        bus: Any = None,
        *,
        socket_path: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``bus`` is the python-ubus module (imported when None)."""
        self.target, self.loop, self.bus, self.socket_path = target, loop, bus, socket_path
        self.clock = clock
        self.state = "not started"
        self.sent = self.dropped = 0
        self._events: collections.deque[tuple[str, dict[str, Any]]] = collections.deque(
            maxlen=EVENT_BURST
        )
        self._bucket = TokenBucket(EVENT_RATE, EVENT_BURST)  # the creation limiter's kind
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._errors = RateLimitedLog(log, logging.WARNING)

    def start(self) -> bool:
        """Serve in a thread; False (and why in ``state``) without python-ubus."""
        if self.bus is None:
            try:
                import ubus  # type: ignore[import-not-found]  # noqa: PLC0415  # on OpenWrt only
            except ImportError:
                self.state = "unavailable: python3-ubus is not installed"
                return False
            self.bus = ubus
        self._thread = threading.Thread(target=self._run, name="ubus", daemon=True)
        self._thread.start()
        return True

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * SLICE_MS / 1000 + 1)

    def publish(self, kind: str, mapping: dict[str, Any]) -> None:
        """Queue a mapping event (from the daemon's loop); over the rate it is dropped."""
        event = UBUS_EVENT.get(kind)
        if event is not None:
            self._queue(EVENT, {"event": event, **mapping})

    def publish_safety(self, kind: SafetyEvent, data: dict[str, Any]) -> None:
        """Queue a safety net event (``rescue``), under the same rate as the mapping events."""
        self._queue(SAFETY_EVENT, {"event": str(kind), **data})

    def _queue(self, name: str, data: dict[str, Any]) -> None:
        if self._thread is None:
            return
        now = self.clock()
        if self._bucket.available(now) < 1:
            self.dropped += 1
            return
        self._bucket.take(now)
        self._events.append((name, data))

    def status(self) -> dict[str, Any]:
        return {"state": self.state, "events_sent": self.sent, "events_dropped": self.dropped}

    # --- the ubus thread -----------------------------------------------------------------------

    def _run(self) -> None:
        delay = RETRY_FIRST
        while not self._stopping.is_set():
            try:
                self._serve()
                return
            except Exception as error:  # ubusd gone or not up yet: DNS goes on, retry later
                self.state = f"error: {error}"
                self._errors.note(
                    "ubus", "ubus object %s: %s (retry in %.0f s)", OBJECT, error, delay
                )
                self._disconnect()
            self._stopping.wait(delay)
            delay = min(delay * 2, RETRY_MAX)

    def _serve(self) -> None:
        if self.socket_path is None:
            self.bus.connect()
        else:
            self.bus.connect(socket_path=self.socket_path)
        signature = {WRAP: self.bus.BLOBMSG_TYPE_TABLE}
        methods = {
            name: {"method": self._callback(name), "signature": signature} for name in METHODS
        }
        self.bus.add(DAEMON_OBJECT, methods)
        self.state = "connected"
        try:
            while not self._stopping.is_set():
                self.bus.loop(SLICE_MS)
                while self._events:
                    self.bus.send(*self._events.popleft())
                    self.sent += 1
        finally:
            self._disconnect()
            self.state = "stopped" if self._stopping.is_set() else self.state

    def _disconnect(self) -> None:
        try:
            if self.bus.get_connected():
                self.bus.disconnect()
        except Exception as error:  # nothing more to lose
            log.debug("ubus disconnect: %s", error)

    def _callback(self, name: str) -> Callable[[Any, Any], None]:
        def callback(handler: Any, data: Any) -> None:
            handler.reply(self.call(name, data))

        return callback

    def call(self, name: str, data: Any) -> dict[str, Any]:
        """One method call (``data`` as the plugin wraps it), run on the daemon's loop; the
        reply object."""
        try:
            args = call_args(data)
        except MethodError as error:
            return error_reply("invalid-argument", str(error))
        work: Coroutine[Any, Any, Any] = dispatch(self.target, name, args)
        future = asyncio.run_coroutine_threadsafe(work, self.loop)
        try:
            result = future.result(timeout=CALL_TIMEOUT)
        except MethodError as error:
            return error_reply("invalid-argument", str(error))
        except TimeoutError:
            future.cancel()
            return error_reply("failed", f"no result in {CALL_TIMEOUT:.0f} s")
        except Exception as error:  # a handler bug must not take the bus thread down
            log.exception("ubus method %s failed", name)
            return error_reply("failed", f"{type(error).__name__}: {error}")
        return reply(name, result)


def call_args(data: Any) -> Any:
    """The arguments of one call of DAEMON_OBJECT: the table under WRAP (python-ubus let only
    that through), without the session id uhttpd added for LuCI."""
    if not isinstance(data, dict) or set(data) != {WRAP}:
        raise MethodError(f"{DAEMON_OBJECT} takes its arguments as one table {WRAP!r}")
    args = data[WRAP]
    if isinstance(args, dict) and isinstance(args.get(SESSION), str):
        return {key: value for key, value in args.items() if key != SESSION}
    return args


def plugin_signatures() -> dict[str, dict[str, str]]:
    """What the rpcd plugin's ``list`` declares for ``clat-eamt``: every method and its
    arguments, all strings (rpcd takes a JSON string's type as BLOBMSG_TYPE_STRING and shows
    it in ``ubus -v list``; it does not check calls against it)."""
    return {name: {arg.name: "str" for arg in method.args} for name, method in METHODS.items()}


def reply(name: str, result: Any) -> dict[str, Any]:
    """A method's result as the object a ubus reply must be: a list result is wrapped under the
    method's name (``{"mappings": [...]}``).  Pure, so a stand-in bus (the LuCI page's browser
    test) answers exactly as this object does."""
    return result if isinstance(result, dict) else {name: result}


def error_reply(code: str, message: str) -> dict[str, Any]:
    """A refused or failed call, with the control socket's error codes."""
    return {"error": {"code": code, "message": message}}
