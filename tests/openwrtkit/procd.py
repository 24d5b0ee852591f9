"""A stand-in for procd's supervision of one service instance (procd cannot run on Debian).

It reads what the init script registered (emu/procd.sh's record) and runs the instance the way
procd's service/instance.c does, rule by rule (openwrt/procd, service/instance.c):

- instance_start / instance_run: the command runs with its stdout and stderr on pipes that
  procd forwards to logd line by line (instance_stdout / instance_stderr -> ulog); here both
  go to ``var/log/instance.out`` in the root, our "logd".
- instance_exit: the exit code is WEXITSTATUS, or 128 + the signal (SIGNALLED_OFFSET) when
  killed.  A stopped instance (``halt``: procd_kill, i.e. `ubus call service delete`) is not
  started again.  With ``respawn`` every other exit, whatever its status, counts as a crash
  when the instance ran less than ``respawn_threshold`` seconds (else the count resets); more
  than ``respawn_retry`` crashes in a row (retry > 0) is a crash loop: procd gives up
  ("instance.fail").  Otherwise it starts the command again after ``respawn_timeout`` s.
- instance_stop: SIGTERM to the instance's pid (not its process group), then SIGKILL when it
  has not exited after ``term_timeout`` s (default 5).

The emulated procd.sh signals the pid this writes to ``var/run/procd/SERVICE.pid`` and leaves
``SERVICE.halt`` when procd_kill stops the service.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path

SIGNALLED_OFFSET = 128  # service/instance.h
DEFAULT_TERM_TIMEOUT = 5  # instance_init: in->term_timeout = 5


class ProcdInstance:
    def __init__(
        self, root: Path, name: str, params: Mapping[str, list[str]], env: dict[str, str]
    ) -> None:
        self.root, self.name, self.env = root, name, env
        self.command = params["command"]
        respawn = params.get("respawn")
        self.respawn = (
            (int(respawn[0]), float(respawn[1]), int(respawn[2])) if respawn is not None else None
        )
        self.term_timeout = float(params.get("term_timeout", [str(DEFAULT_TERM_TIMEOUT)])[0])
        self.dir = root / "var/run/procd"
        self.exits: list[int] = []  # exit codes, as procd's instance_exit_code gives them
        self.pids: list[int] = []
        self.state = "running"  # running, respawning, stopped, failed (a crash loop)
        self.proc: subprocess.Popen[bytes] | None = None
        self._changed = threading.Condition()
        self._halt = self.dir / f"{name}.halt"
        self._halt.unlink(missing_ok=True)
        self._start()
        self._thread = threading.Thread(target=self._supervise, daemon=True)
        self._thread.start()

    def _start(self) -> None:
        log = (self.root / "var/log/instance.out").open("ab")
        self.proc = subprocess.Popen(
            self.command,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # its own process group, so that the test kit's teardown can kill what is left;
            # procd itself signals the pid only (instance_stop)
            start_new_session=True,
        )
        log.close()
        self.pids.append(self.proc.pid)
        self.started = time.monotonic()
        (self.dir / f"{self.name}.pid").write_text(f"{self.proc.pid}\n")

    def _halted(self) -> bool:
        return self._halt.exists()

    def _wait(self) -> int:
        """Wait for the current process; a stop (halt) gets SIGKILL after term_timeout."""
        assert self.proc is not None
        kill_at: float | None = None
        while True:
            with suppress(subprocess.TimeoutExpired):
                return self.proc.wait(timeout=0.05)
            if self._halted():
                kill_at = kill_at or time.monotonic() + self.term_timeout
                if time.monotonic() >= kill_at:
                    with suppress(ProcessLookupError):
                        os.kill(self.proc.pid, signal.SIGKILL)

    def _supervise(self) -> None:
        crashes = 0
        while True:
            status = self._wait()
            code = SIGNALLED_OFFSET - status if status < 0 else status
            runtime = time.monotonic() - self.started
            with self._changed:
                self.exits.append(code)
                if self._halted() or self.respawn is None:
                    self.state = "stopped"
                    self._changed.notify_all()
                    return
                threshold, timeout, retry = self.respawn
                crashes = crashes + 1 if runtime < threshold else 0
                if crashes > retry and retry > 0:
                    self.state = "failed"
                    self._changed.notify_all()
                    return
                self.state = "respawning"
                self._changed.notify_all()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and not self._halted():
                time.sleep(0.05)
            if self._halted():
                with self._changed:
                    self.state = "stopped"
                    self._changed.notify_all()
                return
            with self._changed:
                self._start()
                self.state = "running"
                self._changed.notify_all()

    def wait_state(self, *states: str, exits: int = 0, timeout: float = 60) -> None:
        """Until the instance is in one of ``states`` having exited at least ``exits`` times."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not (self.state in states and len(self.exits) >= exits):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"procd instance {self.name}: state {self.state}, exits {self.exits}; "
                        f"wanted {states} after {exits} exits"
                    )
                self._changed.wait(left)

    def kill_all(self) -> None:
        """Teardown: stop supervising and kill every process group it started."""
        self._halt.touch()
        for pid in self.pids:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        self._thread.join(timeout=10)
