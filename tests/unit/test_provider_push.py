"""A pushed operator's table (issue 28): through the control socket, and through ubus as a
remote agent reaches it (uhttpd -> rpcd's session ACL -> the object ``clat-eamt``, the rpcd
plugin -> the daemon's own object), where only the operator's access group may push.

STAND-INS, none of which runs here: usign (tests/unit/standin_provider/usign, signify-openbsd),
ubusd, rpcd's exec plugins and the `ubus` command (tests/unit/fakeubus.py, standin_bin/ubus),
and rpcd's session ACL, modelled below rule by rule from openwrt/rpcd session.c:

- a login (a ``config login`` section of /etc/config/rpcd) lists access-group globs under
  ``read`` and ``write``; it gets a group's "read" part when a ``read`` or a ``write`` glob
  matches the group's name (write implies read), its "write" part when a ``write`` glob does
  (``rpc_login_test_permission``, fnmatch);
- every file of /usr/share/rpcd/acl.d is read, every group in it (``rpc_login_setup_acls``,
  ``rpc_login_setup_acl_file``); a granted part's "ubus" table grants object -> methods
  (``rpc_login_setup_acl_scope``);
- a call is allowed when a grant matches scope "ubus", the object and the method
  (``rpc_session_acl_allowed``, fnmatch on object and function); uhttpd asks that before it
  forwards a call (openwrt/uhttpd ubus.c ``uh_ubus_allowed``) and answers "Access denied"
  (JSON-RPC -32002) otherwise.
The daemon, the plugin script and the ACL files are the real ones."""

from __future__ import annotations

import asyncio
import fnmatch
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from clat_eamt import cli
from clat_eamt.config import load_text
from clat_eamt.control.client import CallFailedError, call
from clat_eamt.control.methods import METHODS
from clat_eamt.daemon import Daemon
from tests.unit.fakeubus import FakeUbus
from tests.unit.standins import ScriptedDataplane, free_port, loopback_config
from tests.unit.test_provider_shell import STANDINS, make_key, sign
from tests.unit.test_ubus import RPCD_PLUGINS, SESSION, router_call, until

ROOT = Path(__file__).resolve().parents[2]
# Wherever the two packages install them: the LuCI app's group and the operator's.
ACL_DIRS = (ROOT / "luci-app/root/usr/share/rpcd/acl.d", ROOT / "files/usr/share/rpcd/acl.d")
OPERATOR_GROUP = "clat-eamt-provider"
LOGINS = {  # config login sections of /etc/config/rpcd
    "luci-read-only": {"read": ["luci-app-clat-eamt"], "write": []},
    "luci-write": {"read": ["luci-app-clat-eamt"], "write": ["luci-app-clat-eamt"]},
    "operator": {"read": [], "write": [OPERATOR_GROUP]},
}
TABLE = "serial {serial}\nrefresh 3600\n192.0.2.1 2001:db8:1::1 ttl=600 # cdn\n"


def grants(login: dict[str, list[str]]) -> set[tuple[str, str, str]]:
    """(scope, object, method) patterns the login's session holds (session.c, module doc)."""

    def permitted(part: str, group: str) -> bool:
        if any(fnmatch.fnmatchcase(group, glob) for glob in login[part]):
            return True
        return part == "read" and permitted("write", group)

    held: set[tuple[str, str, str]] = set()
    for directory in ACL_DIRS:
        for path in sorted(directory.glob("*.json")):
            for group, parts in json.loads(path.read_text()).items():
                for part in ("read", "write"):
                    if part in parts and permitted(part, group):
                        for obj, methods in parts[part].get("ubus", {}).items():
                            held |= {("ubus", obj, m) for m in methods}
    return held


def allowed(login: str, obj: str, method: str) -> bool:
    return any(
        scope == "ubus" and fnmatch.fnmatchcase(obj, o) and fnmatch.fnmatchcase(method, m)
        for scope, o, m in grants(LOGINS[login])
    )


def test_only_the_operators_group_grants_provider_and_luci_never_does():
    assert METHODS["provider"].operator and METHODS["provider"].writes
    assert not allowed("luci-read-only", "clat-eamt", "provider")
    assert not allowed("luci-write", "clat-eamt", "provider")
    assert allowed("operator", "clat-eamt", "provider")
    assert allowed("operator", "clat-eamt", "status")  # it reads what it did
    assert not allowed("operator", "clat-eamt", "add")  # and nothing else
    luci = json.loads((ACL_DIRS[0] / "luci-app-clat-eamt.json").read_text())
    for part in luci.values():
        for mode in ("read", "write"):
            methods = part.get(mode, {}).get("ubus", {}).get("clat-eamt", [])
            assert not any(METHODS[m].operator for m in methods), methods


@pytest.fixture
def keyed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    monkeypatch.setenv("PATH", f"{STANDINS}{os.pathsep}{os.environ['PATH']}")
    return make_key(tmp_path, "operator")


def daemon_config(tmp_path: Path, key: str) -> Any:
    extra = f"\toption provider_key '{key}'\n\toption host_mode 'all'\n"
    extra += f"\toption state_dir '{tmp_path}/state-run'\n"
    extra += f"\toption provider_serial_file '{tmp_path}/state/provider.serial'\n"
    return load_text(loopback_config(free_port(), f"{tmp_path}/control.sock", extra))


def test_pushed_through_the_control_socket(tmp_path: Path, keyed: tuple[str, Path]) -> None:
    key, secret = keyed
    socket_path = f"{tmp_path}/control.sock"

    async def main() -> None:
        daemon = Daemon(daemon_config(tmp_path, key), ScriptedDataplane())
        await daemon.start()
        try:
            table = TABLE.format(serial=7)
            push = {"table": table, "signature": sign(tmp_path, table.encode(), secret)}
            taken = await asyncio.to_thread(call, socket_path, "provider", push)
            assert taken["provider"]["serial"] == 7 and taken["provider"]["installed"] == 1
            assert taken["dataplane"] == "done"
            with pytest.raises(CallFailedError, match="no signature"):
                await asyncio.to_thread(call, socket_path, "provider", {"table": table})
            lower = TABLE.format(serial=6)
            push = {"table": lower, "signature": sign(tmp_path, lower.encode(), secret)}
            with pytest.raises(CallFailedError, match="lower than 7"):
                await asyncio.to_thread(call, socket_path, "provider", push)
            # `clat-eamt provider FILE --signature SIG`: the CLI sends the files' text
            newer = TABLE.format(serial=8)
            (tmp_path / "t").write_text(newer)
            (tmp_path / "t.sig").write_text(sign(tmp_path, newer.encode(), secret))
            argv = ["provider", str(tmp_path / "t"), "--signature", str(tmp_path / "t.sig"),
                    "--socket", socket_path]  # fmt: skip
            assert await asyncio.to_thread(cli.main, argv) == 0
            argv[1] = str(tmp_path / "missing")
            assert await asyncio.to_thread(cli.main, argv) == 1
            status = await asyncio.to_thread(call, socket_path, "status")
            assert status["provider"]["serial"] == 8
            assert status["provider"]["last"]["result"] == "taken"
            rows = await asyncio.to_thread(call, socket_path, "mappings")
            assert [(r["ipv4"], r["origin"], r["state"]) for r in rows] == [
                ("192.0.2.1", "provider", "valid")
            ]
        finally:
            await daemon.stop()

    asyncio.run(main())


def test_pushed_through_ubus_only_by_the_operators_login(
    tmp_path: Path, keyed: tuple[str, Path]
) -> None:
    key, secret = keyed
    table = TABLE.format(serial=9)
    push = {"table": table, "signature": sign(tmp_path, table.encode(), secret)}

    def uhttpd(login: str, bus: FakeUbus, method: str, args: dict[str, Any]) -> Any:
        """uhttpd's /ubus for a session of ``login``: the ACL first (module doc)."""
        if not allowed(login, "clat-eamt", method):
            return {"code": -32002, "message": "Access denied"}
        return router_call(bus, method, {**args, **SESSION})

    async def scenario(daemon: Daemon, bus: FakeUbus) -> None:
        for login in ("luci-read-only", "luci-write"):
            refused = uhttpd(login, bus, "provider", push)
            assert refused == {"code": -32002, "message": "Access denied"}, login
        assert daemon.runtime.provider.table is None  # nothing reached the daemon
        done = await uhttpd("operator", bus, "provider", push)
        assert done.status == 0, f"ubus status {done.status}"
        assert done.reply["provider"]["serial"] == 9, done.reply
        status = await uhttpd("operator", bus, "status", {})
        assert status.reply["provider"]["installed"] == 1

    bus = FakeUbus()

    async def run(d: Daemon) -> None:
        await until(lambda: any(o.startswith("clat-eamt") for o in bus.objects), "the object")
        await scenario(d, bus)

    async def main() -> None:
        daemon = Daemon(daemon_config(tmp_path, key), ScriptedDataplane(), bus=bus)
        await daemon.start()
        try:
            await run(daemon)
        finally:
            await daemon.stop()

    with bus.serve_cli(tmp_path / "ubusd.sock"):
        bus.add_rpcd_plugins(RPCD_PLUGINS)
        asyncio.run(main())


def test_a_restarted_or_rebooted_daemon_refuses_a_table_older_than_the_last_it_took(
    tmp_path: Path, keyed: tuple[str, Path]
) -> None:
    key, secret = keyed
    socket_path = f"{tmp_path}/control.sock"

    def push(serial: int) -> Any:
        table = TABLE.format(serial=serial)
        signed = {"table": table, "signature": sign(tmp_path, table.encode(), secret)}
        return call(socket_path, "provider", signed)

    async def run(body: Any) -> None:
        daemon = Daemon(daemon_config(tmp_path, key), ScriptedDataplane())
        await daemon.start()
        try:
            await asyncio.to_thread(body)
        finally:
            await daemon.stop()

    asyncio.run(run(lambda: push(12)))
    assert (tmp_path / "state" / "provider.serial").read_text() == "12\n"

    def after_restart() -> None:
        with pytest.raises(CallFailedError, match="lower than 12, the last one taken"):
            push(11)
        assert push(12)["provider"]["serial"] == 12

    asyncio.run(run(after_restart))

    # A reboot: the run-time files (state_dir, tmpfs on OpenWrt) are gone, the serial file on
    # flash is not; a replayed older table is still refused.
    shutil.rmtree(tmp_path / "state-run", ignore_errors=True)
    written = (tmp_path / "state" / "provider.serial").stat().st_mtime_ns
    asyncio.run(run(after_restart))
    # the same serial taken again is not written again (flash wear)
    assert (tmp_path / "state" / "provider.serial").stat().st_mtime_ns == written
