"""What the LuCI tests share: the app's paths, node (skip locally, fail in CI when it is
missing: `make test` installs it), the stand-in of LuCI that runs a module in node, and the ubus
calls the views declare."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from tests.labkit.require import skip_or_fail

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "luci-app"
RESOURCES = APP / "htdocs" / "luci-static" / "resources"
VIEWS = RESOURCES / "view" / "clat-eamt"
MENU = APP / "root" / "usr" / "share" / "luci" / "menu.d" / "luci-app-clat-eamt.json"
ACL = APP / "root" / "usr" / "share" / "rpcd" / "acl.d" / "luci-app-clat-eamt.json"
HARNESS = Path(__file__).with_name("luci_harness.js")
ACL_NAME = "luci-app-clat-eamt"


def js_files() -> list[Path]:
    """Every JavaScript file of the app, views and modules, as the tree has them now."""
    return sorted(APP.rglob("*.js"))


def node() -> str:
    found = shutil.which("node")
    if found is None:
        skip_or_fail("node is not installed (Debian: nodejs)")
        raise AssertionError  # not reached: skip_or_fail raises
    return found


def run_harness(mode: str, module: str) -> Any:
    """The JSON the stand-in of LuCI prints for ``module`` (see luci_harness.js)."""
    done = subprocess.run(
        [node(), str(HARNESS), str(RESOURCES), mode, module],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def i18n_pot() -> ModuleType:
    """openwrt/i18n_pot.py, the generator of the .pot (a script, not a package module)."""
    spec = importlib.util.spec_from_file_location("i18n_pot", REPO / "openwrt" / "i18n_pot.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("i18n_pot", module)
    spec.loader.exec_module(module)
    return module


def _declare_bodies(source: str) -> list[str]:
    """The object literal of each ``rpc.declare({...})``, braces balanced."""
    bodies = []
    for match in re.finditer(r"rpc\.declare\(\s*\{", source):
        depth, i = 1, match.end()
        while depth and i < len(source):
            depth += {"{": 1, "}": -1}.get(source[i], 0)
            i += 1
        bodies.append(source[match.end() : i - 1])
    return bodies


def ubus_calls() -> dict[str, set[str]]:
    """ubus object -> the methods some view or module declares with rpc.declare."""
    calls: dict[str, set[str]] = {}
    for path in js_files():
        for body in _declare_bodies(path.read_text()):
            obj = re.search(r"\bobject\s*:\s*(['\"])(.+?)\1", body)
            method = re.search(r"\bmethod\s*:\s*(['\"])(.+?)\1", body)
            assert obj and method, f"{path.name}: rpc.declare without a literal object/method"
            calls.setdefault(obj.group(2), set()).add(method.group(2))
    return calls


def uci_configs() -> tuple[set[str], set[str]]:
    """The UCI configs the views read (uci.load/get/sections, or a form.Map) and the ones they
    edit (a form.Map), named literally or by a variable ``CONFIG = '...'``."""
    read: set[str] = set()
    edited: set[str] = set()
    for path in js_files():
        source = path.read_text()
        constant = re.search(r"\bvar CONFIG = '([^']+)'", source)
        source = source.replace("CONFIG", f"'{constant.group(1)}'") if constant else source
        edited |= set(re.findall(r"new form\.Map\(\s*'([^']+)'", source))
        read |= set(re.findall(r"\buci\.(?:load|get|sections)\(\s*'([^']+)'", source))
    return read | edited, edited
