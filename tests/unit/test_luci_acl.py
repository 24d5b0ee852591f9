"""The rpcd ACL of luci-app-clat-eamt grants what the views use and nothing else: the ubus
methods of clat-eamt they declare with rpc.declare (read methods under "read", the ones that
change the daemon, `writes` in control.methods.METHODS, under "write"), rc list/init if they
start the service, and the UCI config they edit.

The checks run over the views the tree holds.  "Nothing unused" needs the views that call ubus:
while no view declares an rpc call (the status view is the one that does), it is skipped."""

from __future__ import annotations

import json
from typing import Any

import pytest

from clat_eamt.control.methods import METHODS
from tests.unit.lucikit import ACL, ACL_NAME, ubus_calls, uci_configs

# rc's methods as LuCI's own pages use them: list reads, init starts and stops services.
RC_WRITES = {"init"}
# What rpcd grants every session itself (openwrt/rpcd, unauthenticated.json: session access
# and login), so the app's ACL does not: the status view asks `session access` which buttons
# the login may use.
RPCD_GRANTS = {"session": {"access", "login"}}


def grant() -> dict[str, Any]:
    acl = json.loads(ACL.read_text())
    assert list(acl) == [ACL_NAME]
    grant = dict(acl[ACL_NAME])
    assert set(grant) == {"description", "read", "write"}
    return grant


def granted(mode: str, obj: str) -> set[str]:
    return set(grant()[mode].get("ubus", {}).get(obj, []))


def test_every_call_of_the_views_is_a_daemon_method_and_granted() -> None:
    calls = ubus_calls()
    for method in sorted(calls.get("clat-eamt", set())):
        assert method in METHODS, f"the views call clat-eamt {method}, which the daemon lacks"
        mode = "write" if METHODS[method].writes else "read"
        assert method in granted(mode, "clat-eamt"), f"clat-eamt {method} not granted: {mode}"
    for method in sorted(calls.get("rc", set())):
        mode = "write" if method in RC_WRITES else "read"
        assert method in granted(mode, "rc"), f"rc {method} not granted under {mode}"
    for obj, methods in calls.items():
        if obj in RPCD_GRANTS:
            assert methods <= RPCD_GRANTS[obj], f"{obj} {methods - RPCD_GRANTS[obj]}"
    others = set(calls) - set(RPCD_GRANTS)
    assert others <= {"clat-eamt", "rc"}, f"the views call other ubus objects: {calls}"


def test_nothing_is_granted_that_the_views_do_not_call() -> None:
    calls = ubus_calls()
    if not calls:
        pytest.skip("no view declares an rpc call yet (the status view does)")
    daemon = calls.get("clat-eamt", set())
    assert granted("read", "clat-eamt") == {m for m in daemon if not METHODS[m].writes}
    assert granted("write", "clat-eamt") == {m for m in daemon if METHODS[m].writes}
    rc = calls.get("rc", set())
    assert granted("read", "rc") == rc - RC_WRITES
    assert granted("write", "rc") == rc & RC_WRITES
    for mode in ("read", "write"):
        called = {o for o, methods in calls.items() if methods and o not in RPCD_GRANTS}
        assert set(grant()[mode]["ubus"]) == called


def test_the_granted_methods_are_the_daemons() -> None:
    """Whatever the views call, the ACL names only methods of METHODS, by their `writes`."""
    for method in granted("read", "clat-eamt"):
        assert method in METHODS and not METHODS[method].writes, method
    for method in granted("write", "clat-eamt"):
        assert method in METHODS and METHODS[method].writes, method


def test_uci_is_the_config_the_views_read_and_edit() -> None:
    read, edited = uci_configs()
    assert edited == {"clat-eamt"}  # the settings view's form.Map
    acl = grant()
    assert set(acl["read"]["uci"]) == read
    assert set(acl["write"]["uci"]) == edited
