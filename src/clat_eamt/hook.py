"""The dnsmasq hook's guard: dnsmasq forwards to the daemon only while the daemon lives.

`clat-eamt run --dnsmasq-hook PATH` (the init script passes /usr/lib/clat-eamt/dnsmasq.sh)
starts ``PATH guard`` first thing, before the configuration is even read, with a pipe as its
stdin of which only the daemon holds the write end.  Once the DNS sockets listen, the daemon
writes ``apply PORT ADDR IDENTITY`` to it (its own values: nothing is restated in shell;
IDENTITY is its client_identity option, 1 or 0), and the guard points dnsmasq at it.  However
the daemon ends - a clean stop, a failed start, a crash, even SIGKILL or the OOM killer - the
kernel closes the write end, the guard reads end of file, puts dnsmasq back and exits.  No
polling, no process per check: one shell waiting in ``read``.

A clean stop also waits (a bounded time) for the guard to finish, so that when procd sees the
daemon gone, dnsmasq is restored already and a following start cannot race the restore.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess

log = logging.getLogger(__name__)
FINISH_TIMEOUT = 10.0  # the guard's restore: a uci commit and a dnsmasq restart


class DnsmasqHook:
    def __init__(self, script: str) -> None:
        self.script = script
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the guard.  A hook that cannot start only costs the optimization: DNS stays
        with dnsmasq's own resolvers, which is what the guard would restore anyway."""
        try:
            self.proc = subprocess.Popen(
                [self.script, "guard"],
                stdin=subprocess.PIPE,
                # It logs with logger; its output must not depend on procd's pipe, which goes
                # away with the daemon (a write then would kill it with SIGPIPE mid-restore).
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C or a group kill aimed at the daemon misses it
                close_fds=True,
            )
        except OSError as error:
            log.error("dnsmasq hook %s: %s; dnsmasq is left alone", self.script, error)

    def ready(self, address: str, port: int, identity: bool = False) -> None:
        """The daemon listens on ``address#port``: the guard points dnsmasq there (with the
        client identity options when ``identity``)."""
        if self.proc is None or self.proc.stdin is None:
            return
        try:
            self.proc.stdin.write(f"apply {port} {address} {int(identity)}\n".encode())
            self.proc.stdin.flush()
        except OSError as error:  # the guard died: nothing points dnsmasq here, DNS still works
            log.error("dnsmasq hook: %s; dnsmasq is left alone", error)

    def finish(self) -> None:
        """A clean end: close the pipe (the guard restores dnsmasq) and wait for it."""
        if self.proc is None:
            return
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(FINISH_TIMEOUT)
        except subprocess.TimeoutExpired:
            log.warning("dnsmasq hook: still restoring after %.0f s", FINISH_TIMEOUT)
        self.proc = None


def from_argument(path: str | None) -> DnsmasqHook | None:
    if not path:
        return None
    if not os.access(path, os.X_OK):
        log.error("dnsmasq hook %s: not an executable file; dnsmasq is left alone", path)
        return None
    return DnsmasqHook(path)
