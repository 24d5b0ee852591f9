"""The ubus method ``check`` of ``clat-eamt``: the daemon's configuration check of a UCI text the
caller sends, the check ``clat-eamt config check FILE`` runs (``config.load_text``: every
option's type and every rule between options).

The LuCI settings page sends the settings as Save would stage them and saves only what this
accepts, so the form accepts exactly what the daemon accepts, rules between options included,
with the daemon's own words.  It needs no running daemon: the rpcd plugin runs
``clat-eamt config check --ubus`` with the call's arguments on stdin (files/usr/libexec/rpcd/
clat-eamt), and it changes nothing.
"""

from __future__ import annotations

import json
from typing import Any

from clat_eamt.config import ConfigError, load_text
from clat_eamt.config.schema import GLOBALS

MAX_TEXT = 65536  # bytes of UCI text: a file of a few hundred static entries
SOURCE = "settings"
WRAP = "uci"  # the one argument: the UCI text


def check_text(text: str) -> dict[str, Any]:
    """{"valid": true}, or {"valid": false, "problems": [{section, option, line, message,
    text}]} with ``text`` one line as the settings page shows it."""
    try:
        load_text(text, SOURCE)
    except ConfigError as error:
        problems = []
        for p in error.problems:
            where = [p.section] if p.section and p.section != GLOBALS else []
            where += [p.option] if p.option else []
            problems.append(
                {
                    "section": p.section,
                    "option": p.option,
                    "line": p.line,
                    "message": p.message,
                    "text": ": ".join([" ".join(where), p.message] if where else [p.message]),
                }
            )
        return {"valid": False, "problems": problems}
    return {"valid": True}


def check_call(request: str) -> dict[str, Any]:
    """One call's reply from its arguments as JSON (what rpcd hands the plugin on stdin): a
    refused call is {"error": {"code": "invalid-argument", "message"}}."""
    try:
        args = json.loads(request) if request.strip() else {}
    except ValueError as error:
        return _refused(f"arguments are not JSON: {error}")
    text = args.get(WRAP) if isinstance(args, dict) else None
    if not isinstance(text, str):
        return _refused(f'check takes {{"{WRAP}": the text of a UCI file}}')
    if len(text.encode()) > MAX_TEXT:
        return _refused(f"{WRAP}: longer than {MAX_TEXT} bytes")
    return check_text(text)


def _refused(message: str) -> dict[str, Any]:
    return {"error": {"code": "invalid-argument", "message": message}}
