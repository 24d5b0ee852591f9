"""The control API on a real daemon (DNS on loopback, a scripted dataplane): the method table,
argument validation through the config schema, the socket protocol and its errors.  The same
calls against the real nftables + tayga dataplane in the lab: tests/integration/test_control_lab.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from clat_eamt import cli
from clat_eamt.config import load_text
from clat_eamt.control import server, views
from clat_eamt.control.client import CallFailedError, DaemonNotRunningError, call
from clat_eamt.control.methods import METHODS
from clat_eamt.core.seen import CAPACITY
from clat_eamt.daemon import Daemon, StartError
from clat_eamt.history import FlowHistory
from tests.unit.standins import ScriptedDataplane, free_port, loopback_config

OFFICE = "config static 'office'\n\toption ipv4 '192.0.2.10'\n\toption ipv6 '2001:db8:1::10'\n"
OFFICE += "\toption comment 'printer'\n"


def config_text(port: int, socket: str) -> str:
    return loopback_config(port, socket, static=OFFICE)


Scenario = Callable[[Daemon, Callable[..., Awaitable[Any]]], Awaitable[None]]


def with_daemon(tmp_path: Path, scenario: Scenario) -> None:
    path = str(tmp_path / "control.sock")
    cfg = load_text(config_text(free_port(), path))

    async def main() -> None:
        daemon = Daemon(cfg, ScriptedDataplane())
        await daemon.start()

        async def ask(method: str, **args: str) -> Any:
            return await asyncio.to_thread(call, path, method, args)

        try:
            await scenario(daemon, ask)
        finally:
            await daemon.stop()

    asyncio.run(main())
    assert not Path(path).exists(), "the socket file outlived the daemon"


def rows(table: list[dict[str, Any]]) -> set[tuple[str, str, str, str]]:
    return {(r["ipv4"], r["ipv6"], r["origin"], r["state"]) for r in table}


def test_every_method_answers_with_the_shape_it_promises(tmp_path):
    async def scenario(daemon: Daemon, ask: Callable[..., Awaitable[Any]]) -> None:
        status = await ask("status")
        assert status["version"] and status["uptime"] >= 0
        adverts = status["pref64"].pop("router_adverts")  # the RA listener: what it heard
        assert adverts["prefixes"] == [] and adverts["heard"] == []
        assert status["pref64"] == {"prefixes": ["2001:db8:64::/96"], "source": "config",
                                    "discovery": None}  # fmt: skip
        assert status["summary"]["mappings"]["created"] == 1  # the static entry
        assert status["flows"] is None  # the scripted dataplane has no conntrack
        assert status["control"]["socket"].endswith("control.sock")
        mappings = await ask("mappings")
        assert rows(mappings) == {("192.0.2.10", "2001:db8:1::10", "static", "valid")}
        assert mappings[0]["comment"] == "printer" and mappings[0]["flows"] == 0
        assert await ask("hosts") == daemon.target.host_rows() == []  # lo has no neighbours
        config = await ask("config")
        assert config["static"][0]["ipv4"] == "192.0.2.10/32"
        assert await ask("history") == {"interval": 30.0, "points": []}  # no conntrack here
        assert config["globals"]["pool"] == "198.51.100.128/25"

    with_daemon(tmp_path, scenario)


def test_add_and_del_go_through_the_engine_and_the_dataplane(tmp_path):
    async def scenario(daemon: Daemon, ask: Callable[..., Awaitable[Any]]) -> None:
        added = await ask("add", ipv4="192.0.2.20", ipv6="2001:db8:1::20", comment="tv")
        assert added["dataplane"] == "done"
        assert [(e["ipv4"], e["ipv6"], e["comment"]) for e in added["added"]] == [
            ("192.0.2.20", "2001:db8:1::20", "tv")
        ]
        assert ("192.0.2.20", "2001:db8:1::20", "static", "valid") in rows(await ask("mappings"))
        assert len((await ask("config"))["static"]) == 2
        deleted = await ask("del", ipv4="192.0.2.20")
        assert [e["state"] for e in deleted["deleted"]] == ["stale"]  # its flows may go on
        assert len((await ask("config"))["static"]) == 1
        applied = [op for batch in daemon.dataplane.applied for op in batch]  # type: ignore[attr-defined]
        assert any("192.0.2.20" in str(op) for op in applied)

    with_daemon(tmp_path, scenario)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"ipv4": "192.0.2.30", "ipv6": "nonsense"}, "ipv6: expected an IPv6"),
        ({"ipv4": "192.0.2.300", "ipv6": "2001:db8::1"}, "ipv4:"),
        ({"ipv4": "192.0.2.0/24", "ipv6": "2001:db8::1"}, "host bits"),  # /24 needs a /120
        ({"ipv4": "198.51.100.200", "ipv6": "2001:db8::1"}, "overlaps the mapping pool"),
        ({"ipv4": "192.0.2.10", "ipv6": "2001:db8::1"}, "192.0.2.10"),  # the office's IPv4
        ({"ipv4": "192.0.2.30", "ipv6": "2001:db8:64::1"}, "inside the NAT64 prefix"),
        ({"ipv4": "192.0.2.30"}, "'ipv6' is required"),
        ({"ipv4": "192.0.2.30", "ipv6": "2001:db8::1", "ttl": "5"}, "unknown argument 'ttl'"),
    ],
)
def test_bad_add_is_refused_clearly_and_changes_nothing(tmp_path, args, message):
    async def scenario(daemon: Daemon, ask: Callable[..., Awaitable[Any]]) -> None:
        before, config = rows(await ask("mappings")), await ask("config")
        with pytest.raises(CallFailedError) as refused:
            await ask("add", **args)
        assert refused.value.code == "invalid-argument"
        assert message.lower() in str(refused.value).lower(), str(refused.value)
        assert rows(await ask("mappings")) == before
        assert await ask("config") == config
        assert not daemon.dataplane.applied[1:]  # type: ignore[attr-defined]

    with_daemon(tmp_path, scenario)


def test_del_of_an_unknown_entry_and_flush_keep_static_entries(tmp_path):
    async def scenario(daemon: Daemon, ask: Callable[..., Awaitable[Any]]) -> None:
        with pytest.raises(CallFailedError, match=r"no static entry for 192\.0\.2\.99/32"):
            await ask("del", ipv4="192.0.2.99")
        with pytest.raises(CallFailedError, match="ipv4"):
            await ask("del", ipv4="not-an-address")
        flushed = await ask("flush")
        assert flushed == {"flushed": 0, "dataplane": "none"}  # only dns entries are flushed
        assert rows(await ask("mappings")) == {("192.0.2.10", "2001:db8:1::10", "static", "valid")}

    with_daemon(tmp_path, scenario)


def test_socket_protocol_errors_do_not_hurt_the_daemon(tmp_path):
    async def scenario(daemon: Daemon, ask: Callable[..., Awaitable[Any]]) -> None:
        path = str(daemon.control.path)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # root's alone

        def raw(*lines: bytes) -> list[dict[str, Any]]:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(5)
                sock.connect(path)
                sock.sendall(b"".join(lines))
                sock.shutdown(socket.SHUT_WR)
                data = b""
                while chunk := sock.recv(65536):
                    data += chunk
            return [json.loads(line) for line in data.splitlines()]

        answers = await asyncio.to_thread(
            raw,
            b"{not json\n",
            b'["status"]\n',
            b'{"method": "reboot"}\n',
            b'{"method": "add", "args": {"ipv4": 5, "ipv6": "2001:db8::1"}}\n',
            b'{"method": "status"}\n',  # the same connection still works
        )
        codes = [a.get("error", {}).get("code") for a in answers]
        assert codes == ["bad-request", "bad-request", "invalid-argument", "invalid-argument",
                         None]  # fmt: skip
        assert "methods: " + ", ".join(METHODS) in answers[2]["error"]["message"]
        assert answers[4]["result"]["version"]
        huge = await asyncio.to_thread(raw, b"x" * (70 * 1024) + b"\n")
        assert huge[0]["error"]["code"] == "bad-request"
        assert (await ask("status"))["version"]

    with_daemon(tmp_path, scenario)


def test_a_second_daemon_on_the_same_socket_refuses_to_start(tmp_path):
    async def scenario(daemon: Daemon, ask: Callable[..., Awaitable[Any]]) -> None:
        cfg = load_text(config_text(free_port(), str(daemon.control.path)))
        second = Daemon(cfg, ScriptedDataplane())
        with pytest.raises(StartError, match="another clat-eamt answers"):
            await second.start()
        assert (await ask("status"))["version"]  # the first one is untouched

    with_daemon(tmp_path, scenario)


def test_a_socket_file_left_by_a_crash_is_replaced(tmp_path):
    left = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    left.bind(str(tmp_path / "control.sock"))
    left.close()  # the file stays, nobody listens: what SIGKILL leaves

    async def scenario(daemon: Daemon, ask: Callable[..., Awaitable[Any]]) -> None:
        assert (await ask("status"))["control"]["error"] is None

    with_daemon(tmp_path, scenario)


def test_client_says_when_no_daemon_runs(tmp_path):
    with pytest.raises(DaemonNotRunningError, match="not running"):
        call(str(tmp_path / "absent.sock"), "status")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(tmp_path / "dead.sock"))
    dead.close()
    with pytest.raises(DaemonNotRunningError, match="not running"):
        call(str(tmp_path / "dead.sock"), "status")


def test_history_holds_flow_samples_with_wall_clock_times():
    history = FlowHistory(interval=30, span=90, wall=lambda: 1_800_000_000.5)
    assert history.due(0.0)
    history.add(0.0, 3, 1)
    assert not history.due(29.0) and history.due(30.0)
    history.skip(30.0)  # conntrack unreadable: no point, the next try a whole interval later
    assert not history.due(59.0)
    for t in (60.0, 90.0, 120.0):
        history.add(t, 4, 2)
    points = history.json()["points"]
    assert len(points) == 3  # an hour's worth (here 90 s / 30 s): the oldest fell out
    assert points[-1] == {"time": 1_800_000_000, "native": 4, "nat64": 2}


def test_config_view_is_a_uci_file_that_reads_back_as_the_same_configuration(tmp_path):
    cfg = load_text(config_text_of(tmp_path))
    assert load_text(views.config_text(cfg.to_json())) == cfg


def config_text_of(tmp_path: Path) -> str:
    extra = "\toption translator 'jool'\n\tlist allow_name 'example.net'\n"
    extra += "\toption require_dnssec '1'\n"
    static = OFFICE.replace("'printer'", "'printer in the \"back\" room, it'\\''s old'")
    return loopback_config(5353, f"{tmp_path}/control.sock", extra, static)


def test_idle_clients_are_closed_and_status_answers_again(tmp_path, monkeypatch, capsys):
    """Issue 26: 16 connections that send nothing made every later call fail with `busy` for
    as long as they stayed, and `clat-eamt status` printed a BrokenPipeError traceback in 3
    of 10 runs while busy.  Now the busy answer is a clear error (exit 4) and the idle ones
    are closed after IDLE_TIMEOUT."""
    monkeypatch.setattr(server, "IDLE_TIMEOUT", 1.0)

    async def scenario(daemon: Daemon, ask: Callable[..., Awaitable[Any]]) -> None:
        path = str(daemon.control.path)
        idle = []
        for _ in range(server.MAX_CLIENTS):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(path)
            idle.append(sock)
        try:
            await asyncio.sleep(0.2)  # all of them accepted and counted
            codes = [
                await asyncio.to_thread(cli.main, ["status", "--socket", path]) for _ in range(10)
            ]
            assert codes == [4] * 10
            await asyncio.sleep(server.IDLE_TIMEOUT + 0.5)
            assert all(sock.recv(1) == b"" for sock in idle)  # closed by the daemon
            assert await asyncio.to_thread(cli.main, ["status", "--socket", path]) == 0
            seen = (await ask("status"))["memory"]["answers_seen"]  # how full it is (issue 26)
            assert seen["capacity"] == CAPACITY and seen["blind_for"] == 0
        finally:
            for sock in idle:
                sock.close()

    with_daemon(tmp_path, scenario)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    busy = [line for line in err.splitlines() if line]
    assert len(busy) == 10 and all("busy: 16 clients connected" in line for line in busy)


def test_overview_is_what_the_status_page_shows_in_one_call(tmp_path):
    """status, a page of the table (limit rows from offset, in the table's order) with its
    total, the hosts and the history: the LuCI page's one call per refresh."""

    async def scenario(daemon: Daemon, ask: Callable[..., Awaitable[Any]]) -> None:
        await ask("add", ipv4="192.0.2.11", ipv6="2001:db8:1::11")
        await ask("add", ipv4="192.0.2.12", ipv6="2001:db8:1::12")
        whole = await ask("overview")
        assert whole["mappings"]["total"] == 3 and len(whole["mappings"]["rows"]) == 3
        assert whole["mappings"]["rows"] == await ask("mappings")
        assert whole["status"]["mappings"] == 3 and whole["status"]["version"]
        assert whole["hosts"] == {"total": 0, "rows": []}
        assert whole["history"] == await ask("history")
        page = await ask("overview", offset="1", limit="1")
        assert page["mappings"]["offset"] == 1 and page["mappings"]["total"] == 3
        assert [r["ipv4"] for r in page["mappings"]["rows"]] == ["192.0.2.11"]
        for bad in ({"limit": "1001"}, {"limit": "-1"}, {"offset": "x"}):
            with pytest.raises(CallFailedError, match="expected an integer") as refused:
                await ask("overview", **bad)
            assert refused.value.code == "invalid-argument"

    with_daemon(tmp_path, scenario)


def test_check_is_the_config_check_of_a_text(tmp_path):
    async def scenario(daemon: Daemon, ask: Callable[..., Awaitable[Any]]) -> None:
        assert await ask("check", uci="config globals 'globals'\n") == {"valid": True}
        refused = await ask("check", uci="config globals 'globals'\n\toption ttl_min 9999\n")
        [problem] = refused["problems"]
        assert refused["valid"] is False and problem["option"] == "ttl_min"
        assert problem["line"] == 2 and "must not be larger than ttl_max" in problem["text"]

    with_daemon(tmp_path, scenario)
