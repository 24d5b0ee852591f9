"""What the running daemon says about itself, read the way a user reads it.

With the control API (`control_socket` in the UCI file): `clat-eamt status --json --socket S`,
`mappings --json`, `hosts --json`, run as commands, so the demo exercises the CLI a user types.
A daemon without it (an older build) is read from its SIGUSR1 dump in the JSON log
(tests.integration.proxykit.DaemonLog): status and mapping table, no per-host list.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clat_eamt.config import schema
from tests.integration.routerkit import Router


def has_control_api() -> bool:
    """The installed clat-eamt knows the `control_socket` option (and so the CLI commands)."""
    return schema.lookup(schema.GLOBALS, "control_socket") is not None


class DaemonState:
    """status(), mappings(), hosts() of the daemon of `router`."""

    def __init__(self, router: Router, socket: Path | None) -> None:
        self.router = router
        self.socket = socket
        self.via_cli = socket is not None

    def command(self, what: str) -> str:
        """The command line a user types for `what` (status, mappings, hosts)."""
        if self.via_cli:
            return f"clat-eamt {what} --socket {self.socket}"
        return f"kill -USR1 <clat-eamt pid> (then the '{what}' lines of its log)"

    def _cli(self, what: str, *, json_output: bool = True) -> Any:
        argv = [sys.executable, "-m", "clat_eamt", what, "--socket", str(self.socket)]
        argv += ["--json"] if json_output else []
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[2:])}: {done.stderr.strip() or done.stdout}")
        return json.loads(done.stdout) if json_output else done.stdout

    def text(self, what: str) -> str | None:
        """What `clat-eamt WHAT` prints for a user (None without the control API)."""
        return str(self._cli(what, json_output=False)) if self.via_cli else None

    def wait_cli(self, timeout: float = 10.0) -> None:
        """Once the daemon is up: use the CLI if it answers, else fall back to SIGUSR1."""
        if not self.via_cli:
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._cli("status")
                return
            except (RuntimeError, ValueError) as error:
                if "invalid choice" in str(error) or time.monotonic() > deadline:
                    print(f"demo: no control API ({error}); reading SIGUSR1 dumps instead")
                    self.via_cli = False
                    return
            time.sleep(0.1)

    def status(self) -> dict[str, Any]:
        return dict(self._cli("status")) if self.via_cli else self.router.status()

    def mappings(self) -> list[dict[str, Any]]:
        return list(self._cli("mappings")) if self.via_cli else self.router.mappings()

    def hosts(self) -> list[dict[str, Any]] | None:
        """The daemon's host table (None when only the SIGUSR1 dump is available)."""
        return list(self._cli("hosts")) if self.via_cli else None

    def classified(self, ipv4_only: dict[str, str], dual_stack: dict[str, str]) -> bool:
        """Every client (MAC -> name) has the class it should have."""
        hosts = self.hosts()
        if hosts is None:  # counts only
            counts = self.status()["hosts"]
            return bool(
                counts.get("ipv4_only") == len(ipv4_only)
                and counts.get("dual_stack") == len(dual_stack)
            )
        found = {str(h.get("mac", "")).lower(): h.get("class") for h in hosts}
        return all(found.get(m) == "ipv4-only" for m in ipv4_only) and all(
            found.get(m) == "dual-stack" for m in dual_stack
        )

    def entry(self, ipv4: str) -> dict[str, Any] | None:
        return next((m for m in self.mappings() if m.get("ipv4") == ipv4), None)

    def wait(self, predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> float:
        """Poll until `predicate` holds; the seconds it took (TimeoutError with `what`)."""
        start = time.monotonic()
        while not predicate():
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(0.2)
        return time.monotonic() - start
