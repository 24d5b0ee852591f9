"""Base of the DNS servers a test runs (knot, unbound, dnsmasq).

A server is a config object: address, port, namespace, a directory of its own.  `start(group)`
writes its config, starts it under a ProcessGroup (which owns the cleanup) and waits until it
answers.  Used alone it is a context manager with a private ProcessGroup:

    with Knot(tmp_path) as knot:
        query("127.0.0.1", knot.port, "ds.lab.example")
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Self

from .netns import Netns, ns_name
from .ports import free_port
from .procs import Proc, ProcessGroup

READY_TIMEOUT = 30.0


class Server(contextlib.AbstractContextManager["Server"]):
    """Common plumbing; subclasses give `kind`, `argv()`, `write_config()` and `probe()`."""

    kind = "server"

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        addr: str = "127.0.0.1",
        port: int | None = None,
        netns: Netns | str | None = None,
        name: str | None = None,
    ) -> None:
        self.name = name or self.kind
        self._own_tmp: str | None = None
        if workdir is None:
            self._own_tmp = tempfile.mkdtemp(prefix=f"labkit-{self.name}-")
            workdir = Path(self._own_tmp)
        self.dir = Path(workdir) / self.name
        self.addr = addr
        self.netns = netns
        self.port = port if port is not None else free_port(addr, netns)
        self.proc: Proc | None = None
        self._group: ProcessGroup | None = None

    @property
    def netns_name(self) -> str | None:
        return ns_name(self.netns)

    @property
    def target(self) -> str:
        """ADDR#PORT, as dnsmasq's --server wants it."""
        return f"{self.addr}#{self.port}"

    @property
    def at(self) -> str:
        """ADDR@PORT, as knot and unbound write it."""
        return f"{self.addr}@{self.port}"

    def argv(self) -> list[str]:
        raise NotImplementedError

    def write_config(self) -> None:
        """Write config files under self.dir (called by start)."""

    def probe(self) -> bool:
        raise NotImplementedError

    def start(self, group: ProcessGroup, timeout: float = READY_TIMEOUT) -> Proc:
        """Write the config, start under `group`, wait until it answers."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.write_config()
        self.proc = group.start(
            self.name, self.argv(), ready=self.probe, timeout=timeout, netns=self.netns_name
        )
        return self.proc

    def log_text(self) -> str:
        return self.proc.log_text() if self.proc else ""

    def __enter__(self) -> Self:
        self._group = ProcessGroup(self.dir)
        try:
            self.start(self._group)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._group is not None:
                self._group.__exit__(*exc)
        finally:
            self._group = None
            if self._own_tmp is not None:
                shutil.rmtree(self._own_tmp, ignore_errors=True)
