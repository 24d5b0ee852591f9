"""The rpcd ACL of luci-app-clat-eamt: the status page may call exactly the daemon's reading
methods, the settings page exactly its writing ones (control.methods.METHODS, by `writes`),
plus the UCI config and starting the service (rc init, as LuCI's own pages do)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clat_eamt.control.methods import METHODS

ACL = (
    Path(__file__).resolve().parents[2]
    / "luci-app/root/usr/share/rpcd/acl.d/luci-app-clat-eamt.json"
)


def grant() -> dict[str, Any]:
    acl = json.loads(ACL.read_text())
    assert list(acl) == ["luci-app-clat-eamt"]
    return dict(acl["luci-app-clat-eamt"])


def test_ubus_methods_are_the_daemons_split_by_writes() -> None:
    acl = grant()
    reads = {name for name, m in METHODS.items() if not m.writes}
    writes = {name for name, m in METHODS.items() if m.writes}
    assert set(acl["read"]["ubus"]["clat-eamt"]) == reads
    assert set(acl["write"]["ubus"]["clat-eamt"]) == writes
    assert reads == {"status", "mappings", "hosts", "config", "history"}  # the status page
    assert writes == {"add", "del", "flush"}


def test_uci_and_service() -> None:
    acl = grant()
    assert acl["read"]["uci"] == ["clat-eamt"]
    assert acl["write"]["uci"] == ["clat-eamt"]
    assert acl["read"]["ubus"]["rc"] == ["list"]
    assert acl["write"]["ubus"]["rc"] == ["init"]
    assert set(acl) == {"description", "read", "write"}
    assert set(acl["read"]["ubus"]) == set(acl["write"]["ubus"]) == {"clat-eamt", "rc"}
