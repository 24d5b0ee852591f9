"""The daemon's ubus object and the public object ``clat-eamt`` (the LuCI app's rpcd plugin)
against STAND-INS of python-ubus, ubusd, rpcd's exec plugins and the ``ubus`` command
(tests/unit/fakeubus.py, tests/unit/standin_bin/ubus: none of them runs here; each rule there
cites its source).  The daemon is real (DNS on loopback, a scripted dataplane), the plugin is
the real sh script, and the method handlers are the ones the control-socket tests exercise
(tests/unit/test_control.py)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from dnslib import DNSRecord

from clat_eamt.config import load_text
from clat_eamt.control.methods import METHODS
from clat_eamt.control.ubus_object import (
    DAEMON_OBJECT,
    EVENT,
    EVENT_BURST,
    OBJECT,
    WRAP,
    plugin_signatures,
)
from clat_eamt.daemon import Daemon
from tests.unit.fakeubus import (
    BLOBMSG_TYPE_TABLE,
    UBUS_STATUS_INVALID_ARGUMENT,
    UBUS_STATUS_METHOD_NOT_FOUND,
    UBUS_STATUS_NO_DATA,
    FakeUbus,
)
from tests.unit.standins import ScriptedDataplane, free_port, loopback_config

RPCD_PLUGINS = Path(__file__).resolve().parents[2] / "files/usr/libexec/rpcd"


def with_bus(tmp_path: Path, bus: FakeUbus, scenario: Callable[[Daemon], Awaitable[None]]) -> None:
    cfg = load_text(loopback_config(free_port(), f"{tmp_path}/control.sock"))

    async def main() -> None:
        daemon = Daemon(cfg, ScriptedDataplane(), bus=bus)
        await daemon.start()
        try:
            await scenario(daemon)
        finally:
            await daemon.stop()

    asyncio.run(main())


async def ubus_call(bus: FakeUbus, method: str, **args: Any) -> Any:
    """`ubus call clat-eamt.daemon METHOD '{"args": ARGS}'` from another process (the rpcd
    plugin's)."""
    return await asyncio.to_thread(bus.call, DAEMON_OBJECT, method, {WRAP: args})


async def until(predicate: Callable[[], bool], what: str) -> None:
    for _ in range(200):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_object_offers_the_control_method_table_each_taking_one_table(tmp_path):
    bus = FakeUbus()

    async def scenario(daemon: Daemon) -> None:
        await until(lambda: DAEMON_OBJECT in bus.objects, "the object on the bus")
        methods = bus.objects[DAEMON_OBJECT]
        assert set(methods) == set(METHODS)
        for name in METHODS:
            assert methods[name]["signature"] == {WRAP: BLOBMSG_TYPE_TABLE}
        assert daemon.status()["ubus"]["state"] == "connected"

    with_bus(tmp_path, bus, scenario)
    assert not bus.connected  # stop disconnected


def test_calls_run_on_the_daemon_loop_and_reply_from_the_ubus_thread(tmp_path):
    bus = FakeUbus()

    async def scenario(daemon: Daemon) -> None:
        await until(lambda: DAEMON_OBJECT in bus.objects, "the object on the bus")
        status = await ubus_call(bus, "status")
        assert status.reply["version"] and status.thread == "ubus"
        mappings = await ubus_call(bus, "mappings")
        assert mappings.reply == {"mappings": []}  # lists are wrapped: replies are objects
        config = await ubus_call(bus, "config")
        assert config.reply["globals"]["pool"] == "198.51.100.128/25"

    with_bus(tmp_path, bus, scenario)


def test_add_and_del_over_ubus_validate_like_the_config_and_send_events(tmp_path):
    bus = FakeUbus()

    async def scenario(daemon: Daemon) -> None:
        await until(lambda: DAEMON_OBJECT in bus.objects, "the object on the bus")
        # python-ubus lets only the one table through
        unwrapped = await asyncio.to_thread(bus.call, DAEMON_OBJECT, "status", {})
        assert unwrapped.status == UBUS_STATUS_INVALID_ARGUMENT
        bad = await ubus_call(bus, "add", ipv4="192.0.2.20", ipv6="2001:db8:64::1", comment="")
        assert bad.reply["error"]["code"] == "invalid-argument"
        assert "NAT64 prefix" in bad.reply["error"]["message"]
        assert len(daemon.runtime.engine.table) == 0
        added = await ubus_call(bus, "add", ipv4="192.0.2.20", ipv6="2001:db8:1::20", comment="")
        assert added.reply["dataplane"] == "done"
        await until(lambda: any(e[1]["event"] == "added" for e in bus.events), "an added event")
        deleted = await ubus_call(bus, "del", ipv4="192.0.2.20")
        assert deleted.reply["deleted"][0]["state"] == "stale"
        await until(lambda: any(e[1]["event"] == "stale" for e in bus.events), "a stale event")
        for event, data, thread in bus.events:
            assert (event, thread, data["ipv4"]) == (EVENT, "ubus", "192.0.2.20")

    with_bus(tmp_path, bus, scenario)


def test_events_are_bounded_and_the_excess_is_counted(tmp_path):
    bus = FakeUbus()

    async def scenario(daemon: Daemon) -> None:
        await until(lambda: DAEMON_OBJECT in bus.objects, "the object on the bus")
        assert daemon.ubus is not None
        mapping = {"ipv4": "192.0.2.1"}
        for _ in range(EVENT_BURST * 4):  # a burst far above the budget, all at once
            daemon.ubus.publish("added", mapping)
        await until(lambda: len(bus.events) >= EVENT_BURST, "the burst to be sent")
        status = daemon.status()["ubus"]
        assert EVENT_BURST <= status["events_sent"] <= EVENT_BURST + 5
        assert status["events_dropped"] >= EVENT_BURST * 3 - 5
        daemon.ubus.publish("refreshed", mapping)  # not an event kind of the interface
        await asyncio.sleep(0.3)
        assert all(e[1]["event"] == "added" for e in bus.events)

    with_bus(tmp_path, bus, scenario)


def test_a_stuck_bus_does_not_hold_up_dns(tmp_path):
    bus = FakeUbus(stall=3.0)  # the first loop() blocks 3 s, as a wedged ubusd would

    async def scenario(daemon: Daemon) -> None:
        await until(lambda: DAEMON_OBJECT in bus.objects, "the object on the bus")
        query = DNSRecord.question("lab.example", "SOA").pack()
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.setblocking(False)
            client.connect(("127.0.0.1", daemon.server.port))
            begin = time.monotonic()
            await loop.sock_sendall(client, query)
            reply = await asyncio.wait_for(loop.sock_recv(client, 4096), 2.0)
        assert DNSRecord.parse(reply).header.id == DNSRecord.parse(query).header.id
        assert time.monotonic() - begin < 2.0  # answered (SERVFAIL: no resolver) meanwhile

    with_bus(tmp_path, bus, scenario)


def test_no_ubusd_is_retried_and_dns_goes_on(tmp_path):
    bus = FakeUbus(reachable=False)

    async def scenario(daemon: Daemon) -> None:
        await until(lambda: bus.connects >= 1, "a connection attempt")
        assert daemon.status()["ubus"]["state"].startswith("error: Failed to connect")
        bus.reachable = True  # ubusd came up: the next attempt (after 1 s) registers
        await until(lambda: DAEMON_OBJECT in bus.objects, "the object after the retry")

    with_bus(tmp_path, bus, scenario)


def test_without_python_ubus_the_daemon_says_so(tmp_path):
    """On Debian there is no python-ubus: the real import fails, as on a router without the
    package."""

    async def scenario(daemon: Daemon) -> None:
        assert daemon.status()["ubus"]["state"] == "unavailable: python3-ubus is not installed"

    with_bus(tmp_path, None, scenario)  # type: ignore[arg-type]


# --- the object `clat-eamt` as LuCI and a shell reach it ---------------------------------------
# uhttpd's ubus module adds "ubus_rpc_session" (a string) to the arguments of every call it
# forwards (openwrt/uhttpd, ubus.c ``uh_ubus_send_request``); a shell's `ubus call` sends only
# what it is given.  `clat-eamt` is the rpcd plugin of the clat-eamt package (files/usr/libexec/
# rpcd/: only that package's files here, no LuCI app); both must get an answer, and a failed
# call is an error object for LuCI and a failed ubus status for a shell.

SESSION = {"ubus_rpc_session": "0123456789abcdef0123456789abcdef"}


def with_router(
    tmp_path: Path, scenario: Callable[[Daemon, FakeUbus], Awaitable[None]], *, daemon: bool = True
) -> None:
    """The daemon on the stand-in bus, with rpcd's plugins of the LuCI app registered and the
    `ubus` command's stand-in served, as on a router with both packages installed."""
    bus = FakeUbus()

    async def run(d: Daemon) -> None:
        await until(lambda: any(o.startswith(OBJECT) for o in bus.objects), "the object on the bus")
        await scenario(d, bus)

    with bus.serve_cli(tmp_path / "ubusd.sock"):
        bus.add_rpcd_plugins(RPCD_PLUGINS)
        if daemon:
            with_bus(tmp_path, bus, run)
        else:
            asyncio.run(scenario(None, bus))  # type: ignore[arg-type]


async def router_call(bus: FakeUbus, method: str, args: dict[str, Any]) -> Any:
    return await asyncio.to_thread(bus.call, OBJECT, method, args)


def test_a_call_through_uhttpd_with_the_session_argument_is_answered(tmp_path):
    async def scenario(daemon: Daemon, bus: FakeUbus) -> None:
        status = await router_call(bus, "status", SESSION)
        assert status.status == 0, f"ubus status {status.status}"
        assert status.reply["version"] and status.reply["dataplane"]
        mappings = await router_call(bus, "mappings", SESSION)
        assert (mappings.status, mappings.reply) == (0, {"mappings": []})
        await router_call(bus, "add", {"ipv4": "192.0.2.20", "ipv6": "2001:db8:1::20"})
        deleted = await router_call(bus, "del", {"ipv4": "192.0.2.20", **SESSION})
        assert deleted.status == 0 and deleted.reply["deleted"][0]["state"] == "stale"

    with_router(tmp_path, scenario)


def test_ubus_call_add_without_comment_works_and_with_one_keeps_it(tmp_path):
    async def scenario(daemon: Daemon, bus: FakeUbus) -> None:
        bare = await router_call(bus, "add", {"ipv4": "192.0.2.20", "ipv6": "2001:db8:1::20"})
        assert bare.status == 0, f"ubus status {bare.status}"
        assert bare.reply["dataplane"] == "done" and bare.reply["added"][0]["comment"] == ""
        args = {"ipv4": "192.0.2.21", "ipv6": "2001:db8:1::21", "comment": 'it\'s "NAS"\n'}
        noted = await router_call(bus, "add", args | SESSION)
        assert noted.status == 0 and noted.reply["error"]["code"] == "invalid-argument"
        args["comment"] = 'it\'s "NAS" ü'
        noted = await router_call(bus, "add", args)
        assert noted.reply["added"][0]["comment"] == args["comment"]
        assert len(daemon.runtime.engine.table) == 2

    with_router(tmp_path, scenario)


def test_bad_arguments_get_the_daemons_message_and_change_nothing(tmp_path):
    """From LuCI (the session argument): the daemon's error object.  From a shell: status
    UBUS_STATUS_INVALID_ARGUMENT, so `ubus call` fails, and the message in the system log."""

    async def scenario(daemon: Daemon, bus: FakeUbus) -> None:
        unknown = await router_call(bus, "status", {"verbose": "1", **SESSION})
        assert unknown.status == 0
        assert unknown.reply["error"]["code"] == "invalid-argument"
        assert "unknown argument 'verbose'" in unknown.reply["error"]["message"]
        missing = await router_call(bus, "add", {"ipv4": "192.0.2.20", **SESSION})
        assert "argument 'ipv6' is required" in missing.reply["error"]["message"]
        typed = await router_call(bus, "del", {"ipv4": 7, **SESSION})
        assert "must be a string" in typed.reply["error"]["message"]
        args = {"ipv4": "192.0.2.20", "ipv6": "2001:db8:64::1"}
        nat64 = await router_call(bus, "add", args | SESSION)
        assert "NAT64 prefix" in nat64.reply["error"]["message"]
        shell = await router_call(bus, "add", args)
        assert (shell.status, shell.reply) == (UBUS_STATUS_INVALID_ARGUMENT, None)
        log = Path(bus.env["FAKE_SYSLOG"]).read_text()
        assert "clat-eamt: ubus call clat-eamt add failed: invalid-argument:" in log
        assert "NAT64 prefix" in log
        assert len(daemon.runtime.engine.table) == 0
        nothing = await router_call(bus, "reboot", {})
        assert nothing.status == UBUS_STATUS_METHOD_NOT_FOUND

    with_router(tmp_path, scenario)


def test_without_the_daemon_the_object_says_it_is_not_running(tmp_path):
    async def scenario(daemon: None, bus: FakeUbus) -> None:
        done = await router_call(bus, "status", SESSION)
        assert done.status == 0
        assert done.reply["error"]["code"] == "not-running"
        assert "service clat-eamt start" in done.reply["error"]["message"]
        shell = await router_call(bus, "status", {})
        assert (shell.status, shell.reply) == (UBUS_STATUS_NO_DATA, None)
        assert "not running" in Path(bus.env["FAKE_SYSLOG"]).read_text()

    with_router(tmp_path, scenario, daemon=False)


def ubus_cli(bus: FakeUbus, *argv: str) -> subprocess.CompletedProcess[str]:
    """The `ubus` command (its stand-in) as a script runs it: stderr a pipe, not a terminal."""
    return subprocess.run(
        ["ubus", *argv], capture_output=True, text=True, env=bus.env, timeout=60, check=False
    )


def test_a_shell_script_sees_a_failed_call_as_a_failed_command(tmp_path):
    """What a script gets from `ubus call clat-eamt ...`: the answer on stdout and exit 0, or
    for a bad `add` exit 254 (256 minus UBUS_STATUS_INVALID_ARGUMENT: cli.c ubus_cli_error
    when stderr is not a terminal) and "Command failed" on stderr."""

    async def scenario(daemon: Daemon, bus: FakeUbus) -> None:
        status = await asyncio.to_thread(ubus_cli, bus, "call", "clat-eamt", "status")
        assert status.returncode == 0 and json.loads(status.stdout)["version"]
        bad = '{"ipv4": "192.0.2.20", "ipv6": "2001:db8:64::1"}'
        added = await asyncio.to_thread(ubus_cli, bus, "call", "clat-eamt", "add", bad)
        assert added.returncode == 256 - UBUS_STATUS_INVALID_ARGUMENT, added
        assert added.stdout == ""
        assert "Command failed: ubus call clat-eamt add" in added.stderr
        assert "(Invalid argument)" in added.stderr
        assert "Usage: ubus" in added.stderr  # cli.c main: -2 is also its usage error
        good = '{"ipv4": "192.0.2.20", "ipv6": "2001:db8:1::20"}'
        added = await asyncio.to_thread(ubus_cli, bus, "call", "clat-eamt", "add", good)
        assert added.returncode == 0 and json.loads(added.stdout)["dataplane"] == "done"
        checked = await asyncio.to_thread(
            ubus_cli, bus, "call", "clat-eamt", "check", json.dumps({"uci": "config x\n"})
        )
        assert checked.returncode == 0, checked.stderr
        assert "unknown section type 'x'" in checked.stdout

    with_router(tmp_path, scenario)


def test_the_ubus_commands_exit_status(tmp_path):
    """cli.c: a failed invoke exits 256 minus the status when stderr is not a terminal (a
    timeout, 7, is 249), the status itself with -S; a missing object exits 4 (the lookup's)."""
    bus = FakeUbus()
    with bus.serve_cli(tmp_path / "ubusd.sock"):
        bus.add_rpcd_plugins(RPCD_PLUGINS)
        bus.unanswered.add("slow")
        bus.rpcd["slow"] = bus.rpcd[OBJECT]
        assert ubus_cli(bus, "call", "slow", "status").returncode == 249
        assert ubus_cli(bus, "-S", "call", "slow", "status").returncode == 7
        missing = ubus_cli(bus, "call", "nothing", "status")
        assert (missing.returncode, missing.stderr) == (4, "Command failed: Not found\n")
        assert ubus_cli(bus, "call", OBJECT, "status", "{bad").returncode == 256 - 11


def test_the_plugin_reports_the_daemons_ubus_status_as_it_is(tmp_path):
    """Issue 24: a timeout read "ubus status 249" on the pages (the plugin took `ubus`'s exit
    code, 256 minus the status, for the status)."""

    async def scenario(daemon: Daemon, bus: FakeUbus) -> None:
        bus.unanswered.add(DAEMON_OBJECT)
        done = await router_call(bus, "status", SESSION)
        assert done.reply["error"]["code"] == "failed"
        message = done.reply["error"]["message"]
        assert "no answer in 15 s (ubus status 7)" in message, done.reply

    with_router(tmp_path, scenario)


def test_the_plugin_lists_the_daemons_methods_and_arguments():
    """rpcd registers what `PLUGIN list` prints; it must be the daemon's method table."""
    bus = FakeUbus()
    assert bus.add_rpcd_plugins(RPCD_PLUGINS) == [OBJECT]
    plugin, methods = bus.rpcd[OBJECT]
    listed = json.loads(subprocess.run([plugin, "list"], capture_output=True, check=True).stdout)
    assert listed == plugin_signatures(), f"update the list line of {plugin}"
    assert methods == set(METHODS)
