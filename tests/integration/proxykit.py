"""Run the real daemon (`python -m clat_eamt run`) in a DnsChain and read what it decided.

The daemon logs one JSON object per line (``--log-format json``); decisions come from the
logger ``clat_eamt.decision`` with the observation and the outcome, and SIGUSR1 makes it log
its status, so tests see what a user would see, without reaching into the process.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterable
from typing import Any

from dnslib import DNSRecord

from tests.labkit import DnsChain
from tests.labkit.client import query
from tests.labkit.procs import Proc

LAB_OPTIONS = {
    "allow_documentation": "1",  # the lab uses documentation addresses only
    "pool": "198.51.100.128/25",
    "host_mode": "all",  # the proxy's tests are about DNS, not about classifying hosts
    # The host's own interfaces are not the LAN of these tests (CI machines may hold
    # documentation prefixes themselves); the LAN here is loopback, which is never mapped.
    "lan_interface": ["lo"],
}


def uci(options: dict[str, str | Iterable[str]]) -> str:
    lines = ["config globals 'globals'"]
    for name, value in options.items():
        if isinstance(value, str):
            lines.append(f"\toption {name} '{value}'")
        else:
            lines += [f"\tlist {name} '{item}'" for item in value]
    return "\n".join(lines) + "\n"


class DaemonLog:
    """What a running daemon says in its JSON log: records, decisions, status (SIGUSR1) and the
    mapping table.  ``proc`` is the daemon's process (it may change when a test restarts it)."""

    proc: Proc

    def records(self) -> list[dict[str, Any]]:
        """Every JSON log line; the last one only once the daemon has written all of it (a
        large line, such as the mapping dump, may be read while it is being written)."""
        text = self.proc.log_text()
        lines = text.splitlines()
        if lines and not text.endswith("\n"):
            lines.pop()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def decisions(self, name: str | None = None) -> list[dict[str, Any]]:
        found = [
            r for r in self.records() if r["logger"] == "clat_eamt.decision" and "observation" in r
        ]
        return [r for r in found if name is None or r["observation"]["name"] == name]

    def wait_decision(self, name: str, timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.decisions(name)
            if found:
                return found[-1]
            time.sleep(0.02)
        raise AssertionError(f"no decision for {name} in the log:\n{self.proc.log_tail()}")

    def status(self, timeout: float = 5.0) -> dict[str, Any]:
        """Ask for a status dump (SIGUSR1) and return it."""
        return dict(self._dump("status ", timeout))

    def mappings(self, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The mapping table as the daemon dumps it with its status (JSON at debug level)."""
        return list(self._dump("mappings-json ", timeout))

    def _dump(self, prefix: str, timeout: float) -> Any:
        """Ask for a dump (SIGUSR1) and return its new line starting with ``prefix``: the
        daemon writes the status, then the mapping table, so each waits for its own line (an
        older dump's table is not this one's)."""
        before = len(self._dumped(prefix))
        os.kill(self.proc.pid, signal.SIGUSR1)  # `ip netns exec` execs: the pid is the daemon's
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self._dumped(prefix)
            if len(found) > before:
                return found[-1]
            time.sleep(0.02)
        raise AssertionError(f"no {prefix.strip()} dump in the log:\n{self.proc.log_tail()}")

    def state_of(self, ipv4: str) -> str | None:
        return next((m["state"] for m in self.mappings() if m["ipv4"] == ipv4), None)

    def _dumped(self, prefix: str) -> list[Any]:
        return [
            json.loads(r["message"][len(prefix) :])
            for r in self.records()
            if r["message"].startswith(prefix)
        ]


class Daemon(DaemonLog):
    """The daemon as a process of ``chain``, listening on ``addr``#``port``."""

    def __init__(self, chain: DnsChain, proc: Proc, addr: str, port: int) -> None:
        self.chain, self.proc, self.addr, self.port = chain, proc, addr, port

    @property
    def target(self) -> str:
        return f"{self.addr}#{self.port}"

    def query(self, name: str, qtype: str = "A", **kwargs: Any) -> DNSRecord:
        kwargs.setdefault("netns", self.chain.netns)
        return query(self.addr, self.port, name, qtype, **kwargs)


def start_daemon(
    chain: DnsChain,
    name: str = "clat-eamt",
    *,
    upstream: str | Iterable[str] | None = None,
    addr: str | None = None,
    log_level: str = "debug",
    **options: str | Iterable[str],
) -> Daemon:
    """Start the daemon forwarding to ``upstream`` (default: the chain's unbound), with the lab
    options plus ``options`` (UCI option names); ready when it answers a SOA query."""
    addr = addr or chain.addr
    port = chain.free_port(addr)
    settings: dict[str, str | Iterable[str]] = {**LAB_OPTIONS, "listen": addr, "port": str(port)}
    if upstream is None:
        upstream = chain.unbound_target
    if upstream:
        settings["upstream"] = [upstream] if isinstance(upstream, str) else list(upstream)
    # Files of the daemon stay in the test's directory, never in the machine's /var/run.
    settings["control_socket"] = str(chain.path(name) / "control.sock")
    settings["state_dir"] = str(chain.path(name) / "state")
    settings["provider_serial_file"] = str(chain.path(name) / "state" / "provider.serial")
    settings.update(options)
    config = chain.path(name) / "clat-eamt.uci"
    config.write_text(uci(settings))
    argv = [sys.executable, "-m", "clat_eamt", "run", "--config", str(config)]
    argv += ["--log-format", "json", "--log-level", log_level]

    def ready() -> bool:
        return query(addr, port, "lab.example", "SOA", netns=chain.netns, timeout=0.5) is not None

    proc = chain.start(name, argv, ready=ready)  # the package is installed in the test venv
    return Daemon(chain, proc, addr, port)
