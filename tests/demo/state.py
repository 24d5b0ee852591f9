"""What the running daemon says about itself, read the way a user reads it: its control API
through the CLI (`clat-eamt status|mappings|hosts [--json] --socket S`, S being the UCI option
`control_socket`), run as commands, so the demo exercises what a user types."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


class DaemonState:
    """status(), mappings(), hosts() of the daemon listening on `socket`."""

    def __init__(self, socket: Path) -> None:
        self.socket = socket

    def command(self, what: str) -> str:
        """The command line a user types for `what` (status, mappings, hosts)."""
        return f"clat-eamt {what} --socket {self.socket}"

    def _cli(self, what: str, *, json_output: bool = True) -> Any:
        argv = [sys.executable, "-m", "clat_eamt", what, "--socket", str(self.socket)]
        argv += ["--json"] if json_output else []
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[2:])}: {done.stderr.strip() or done.stdout}")
        return json.loads(done.stdout) if json_output else done.stdout

    def text(self, what: str) -> str:
        """What `clat-eamt WHAT` prints for a user."""
        return str(self._cli(what, json_output=False))

    def status(self) -> dict[str, Any]:
        return dict(self._cli("status"))

    def mappings(self) -> list[dict[str, Any]]:
        return list(self._cli("mappings"))

    def hosts(self) -> list[dict[str, Any]]:
        return list(self._cli("hosts"))

    def classified(self, ipv4_only: set[str], dual_stack: set[str]) -> bool:
        """Every client (by MAC) has the class it should have."""
        found = {str(h.get("mac", "")).lower(): h.get("class") for h in self.hosts()}
        return all(found.get(m) == "ipv4-only" for m in ipv4_only) and all(
            found.get(m) == "dual-stack" for m in dual_stack
        )

    def entry(self, ipv4: str) -> dict[str, Any] | None:
        return next((m for m in self.mappings() if m.get("ipv4") == ipv4), None)

    def wait(self, predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> float:
        """Poll until `predicate` holds (errors count as "not yet": the control socket may not
        be up yet); the seconds it took, TimeoutError with `what` and the last error."""
        start = time.monotonic()
        last: Exception | None = None
        while True:
            try:
                if predicate():
                    return time.monotonic() - start
            except (RuntimeError, ValueError, subprocess.TimeoutExpired) as error:  # not up yet
                last = error
            if time.monotonic() - start > timeout:
                detail = f" (last error: {last})" if last else ""
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}{detail}")
            time.sleep(0.2)
