"""Long-running test servers: spawn, wait until ready, stop for sure.

Every server runs in its own process group (its own session) with stdout and stderr in one log
file, so a test can read what the server said and so stopping it also reaches its children
(dnsmasq forks for TCP, `ip netns exec` may leave a child).  A `ProcessGroup` owns the servers a
test starts and stops all of them on exit, also when the test fails, and prints their logs then.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Debian puts the servers in /usr/sbin, which is not on a normal user's PATH.
_SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")

# Every ProcessGroup still open, so a pytest hook can attach their logs to a failed test.
_LIVE: weakref.WeakSet[ProcessGroup] = weakref.WeakSet()


class ReadyTimeoutError(TimeoutError):
    """A server did not become ready (or died) in time; the message carries its log."""


def find_tool(name: str) -> str | None:
    """Path of an executable, also looking in the sbin directories (None when absent)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN_DIRS])
    return shutil.which(name, path=path)


def tool(name: str) -> str:
    """Like `find_tool` but raising FileNotFoundError with the name."""
    found = find_tool(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found (PATH and {', '.join(_SBIN_DIRS)})")
    return found


def process_gone(pid: int) -> bool:
    """True when `pid` no longer runs (absent, or a zombie waiting for its reaper)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def in_netns(netns: str | None, argv: Sequence[str]) -> list[str]:
    """argv prefixed with `ip netns exec NS` when a namespace is given."""
    if netns is None:
        return list(argv)
    return [tool("ip"), "netns", "exec", netns, *argv]


@dataclass
class Proc:
    """One running server and its log file."""

    name: str
    argv: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes] = field(repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        """Everything the server wrote so far (stdout and stderr interleaved)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM to the whole group, SIGKILL after `grace` seconds; returns the exit code."""
        _signal_group(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal_group(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=grace)
        # Children that ignored SIGTERM (or outlived the leader) go too.
        _signal_group(self.popen.pid, signal.SIGKILL)
        return self.popen.returncode


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def spawn(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    *,
    netns: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Proc:
    """Start argv (inside `netns` if given) in a new session, output appended to log_path."""
    full = in_netns(netns, argv)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            full,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=cwd,
        )
    return Proc(name=name, argv=full, log_path=log_path, popen=popen)


def wait_ready(
    probe: Callable[[], bool],
    timeout: float = 30.0,
    *,
    interval: float = 0.05,
    what: str = "condition",
    proc: Proc | None = None,
) -> None:
    """Poll `probe` until it returns True; exceptions from it count as "not yet".

    Readiness is polled, never assumed after a sleep; the timeout is generous because CI
    machines are slow, and a server that died ends the wait at once (with its log).
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            if probe():
                return
        except Exception as exc:
            last_error = exc
        if proc is not None and not proc.alive():
            raise ReadyTimeoutError(
                f"{proc.name} exited with {proc.popen.returncode} before {what}; "
                f"argv={proc.argv}\n--- log ---\n{proc.log_tail()}"
            )
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            log = f"\n--- {proc.name} log ---\n{proc.log_tail()}" if proc else ""
            raise ReadyTimeoutError(
                f"timed out after {timeout:.0f}s waiting for {what}{detail}{log}"
            )
        time.sleep(interval)


class ProcessGroup(contextlib.AbstractContextManager["ProcessGroup"]):
    """Owner of the processes a test starts: `with ProcessGroup(logdir) as pg: pg.start(...)`."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = Path(logdir)
        self.procs: list[Proc] = []
        _LIVE.add(self)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        ready: Callable[[], bool] | None = None,
        timeout: float = 30.0,
        netns: str | None = None,
        env: dict[str, str] | None = None,
    ) -> Proc:
        """Spawn a server, register it for cleanup, and wait for `ready` if given."""
        if any(p.name == name for p in self.procs):
            raise ValueError(f"a process named {name!r} already runs in this group")
        proc = spawn(name, argv, self.logdir / f"{name}.log", netns=netns, env=env)
        self.procs.append(proc)
        if ready is not None:
            wait_ready(ready, timeout, what=f"{name} ready", proc=proc)
        return proc

    def __getitem__(self, name: str) -> Proc:
        for proc in self.procs:
            if proc.name == name:
                return proc
        raise KeyError(name)

    def __iter__(self) -> Iterator[Proc]:
        return iter(list(self.procs))

    def logs(self, lines: int = 60) -> str:
        """The tail of every log, one block per process (for failure reports)."""
        return "\n".join(
            f"--- {p.name} (pid {p.pid}, {'running' if p.alive() else 'exited'}) ---\n"
            f"{p.log_tail(lines)}"
            for p in self.procs
        )

    def stop(self, name: str) -> None:
        proc = self[name]
        proc.stop()
        self.procs.remove(proc)

    def stop_all(self) -> None:
        """Stop in reverse start order (clients before the servers they use)."""
        errors: list[BaseException] = []
        while self.procs:
            proc = self.procs.pop()
            try:
                proc.stop()
            except BaseException as exc:  # keep stopping the others
                errors.append(exc)
        _LIVE.discard(self)
        if errors:
            raise errors[0]

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        # Logs help after a failure; after Ctrl-C they only bury what the user was reading.
        if exc is not None and not isinstance(exc, KeyboardInterrupt) and self.procs:
            print(f"labkit: processes at failure:\n{self.logs()}", file=sys.stderr)
        self.stop_all()


def live_groups() -> list[ProcessGroup]:
    """The ProcessGroups not yet closed (used by the integration conftest's report hook)."""
    return list(_LIVE)
