"""A throwaway OpenWrt root file system for the package's shell scripts (files/).

``FakeRoot`` builds a temporary directory laid out like a router: the package's files at their
installed paths and modes, ``/etc/config/dhcp`` and ``/etc/config/clat-eamt``, and stand-ins
only for what cannot run on Debian:

- ``/sbin/uci``: ``uci.py`` (the real CLI needs libuci, which Debian does not have);
- ``/etc/rc.common`` and ``/lib/functions/procd.sh`` (emu/): record what the init script asks
  procd for; ``procd.ProcdInstance`` runs the recorded instance the way procd does (respawn,
  crash loop, stop with SIGTERM then SIGKILL, output to the log), and the emulated
  ``procd_kill`` / ``procd_send_signal`` signal that process;
- ``/usr/bin/logger`` (emu/): writes to ``/var/log/messages`` in the root;
- ``/etc/init.d/dnsmasq`` (emu/): records restart/reload and the dhcp file it would read.

Everything else is real: the scripts run under Debian's /bin/sh (dash, a POSIX shell close to
busybox ash, OpenWrt's /bin/sh), with the host's coreutils, and ``/usr/bin/clat-eamt`` runs the
real daemon (``python -m clat_eamt`` of the test venv).  The scripts find the root through
``CLAT_EAMT_TESTROOT``, a path prefix that is empty on a router.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from tests.openwrtkit.procd import ProcdInstance

REPO = Path(__file__).resolve().parents[2]
FILES = REPO / "files"
EMU = Path(__file__).resolve().parent / "emu"
UCI_PY = Path(__file__).resolve().parent / "uci.py"

# The package's files at their installed paths (the Makefile installs them with these modes).
SCRIPTS = {
    "etc/init.d/clat-eamt": 0o755,
    "etc/uci-defaults/90-clat-eamt": 0o755,
    "usr/lib/clat-eamt/dnsmasq.sh": 0o755,
}

# /etc/config/dhcp as `uci commit` writes it: the dnsmasq section of a default OpenWrt.
DEFAULT_DHCP = """
config dnsmasq
\toption domainneeded '1'
\toption localise_queries '1'
\toption rebind_protection '1'
\toption local '/lan/'
\toption domain 'lan'
\toption expandhosts '1'
\toption authoritative '1'
\toption readethers '1'
\toption leasefile '/tmp/dhcp.leases'
\toption resolvfile '/tmp/resolv.conf.d/resolv.conf.auto'
\toption localservice '1'
\toption ednspacket_max '1232'

config dhcp 'lan'
\toption interface 'lan'
\toption start '100'
\toption limit '150'
\toption leasetime '12h'

config odhcpd 'odhcpd'
\toption maindhcp '0'
\toption leasefile '/tmp/hosts/odhcpd'

"""


def free_port() -> int:
    """A port free for UDP and TCP on 127.0.0.1 (the daemon listens on both)."""
    for _ in range(50):
        with closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM)) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


def daemon_config(root: Path, port: int, **extra: str) -> str:
    """A clat-eamt config for the fake root: loopback and documentation addresses only, no
    translator, its socket and state inside the root."""
    options = {
        "listen": "127.0.0.1",
        "port": str(port),
        "upstream": "192.0.2.53",  # never asked: the tests send no queries
        "pref64": "2001:db8:64::/96",  # no discovery queries
        "translator": "none",
        "allow_documentation": "1",
        "host_mode": "all",
        "lan_interface": "lo",
        "state_dir": str(root / "var/run/clat-eamt"),
        "provider_serial_file": str(root / "etc/clat-eamt/provider.serial"),
        "control_socket": str(root / "var/run/clat-eamt/control.sock"),
        **extra,
    }
    lists = {"upstream", "pref64", "lan_interface"}
    lines = ["", "config globals 'globals'"]
    for name, value in options.items():
        lines.append(f"\t{'list' if name in lists else 'option'} {name} '{value}'")
    return "\n".join(lines) + "\n\n"


@dataclass
class Service:
    """What an init script registered with (emulated) procd."""

    instances: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    triggers: list[list[str]] = field(default_factory=list)


class FakeRoot:
    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="owrt-"))
        self.instances: list[ProcdInstance] = []
        self.env = {
            **os.environ,
            "CLAT_EAMT_TESTROOT": str(self.path),
            "PATH": f"{self.path}/sbin:{self.path}/usr/bin:{os.environ['PATH']}",
        }
        self._build()

    def _build(self) -> None:
        p = self.path
        for rel, mode in SCRIPTS.items():
            self.install(FILES / rel, rel, mode)
        for rel in ("etc/config", "etc/rc.d", "var/lock", "var/log", "var/run", "tmp/.uci"):
            (p / rel).mkdir(parents=True, exist_ok=True)
        self.install(EMU / "rc.common", "etc/rc.common", 0o644)
        self.install(EMU / "procd.sh", "lib/functions/procd.sh", 0o644)
        self.install(EMU / "logger", "usr/bin/logger", 0o755)
        self.install(EMU / "dnsmasq.init", "etc/init.d/dnsmasq", 0o755)
        # -S: the stand-in needs only the standard library, and site's start (the venv's .pth
        # files) was a third of each call; the hook and init script tests make hundreds.
        self.write(
            "sbin/uci",
            f"#!/bin/sh\nexec {sys.executable} -S {UCI_PY} -c {p}/etc/config "
            f'--savedir {p}/tmp/.uci "$@"\n',
            0o755,
        )
        launcher = f'#!/bin/sh\nexec {sys.executable} -m clat_eamt "$@"\n'
        self.write("usr/bin/clat-eamt", launcher, 0o755)
        self.write("etc/config/dhcp", DEFAULT_DHCP)

    def install(self, src: Path, rel: str, mode: int) -> None:
        dest = self.path / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        dest.chmod(mode)

    def write(self, rel: str, text: str, mode: int = 0o644) -> Path:
        dest = self.path / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text)
        dest.chmod(mode)
        return dest

    def read(self, rel: str) -> str:
        return (self.path / rel).read_text()

    def dhcp(self) -> bytes:
        return (self.path / "etc/config/dhcp").read_bytes()

    def messages(self) -> str:
        path = self.path / "var/log/messages"
        return path.read_text() if path.exists() else ""

    def dnsmasq_actions(self) -> list[str]:
        path = self.path / "var/log/dnsmasq/actions"
        return path.read_text().split() if path.exists() else []

    def procd_log(self) -> list[list[str]]:
        path = self.path / "var/run/procd/procd.log"
        return [line.split("\t") for line in path.read_text().splitlines()] if path.exists() else []

    def sh(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a command in the root's environment (its PATH and CLAT_EAMT_TESTROOT)."""
        return subprocess.run(
            list(argv), env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def uci(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.sh(str(self.path / "sbin/uci"), *args)

    def hook(self, *args: str) -> subprocess.CompletedProcess[str]:
        """/usr/lib/clat-eamt/dnsmasq.sh executed (its shebang: /bin/sh)."""
        return self.sh(str(self.path / "usr/lib/clat-eamt/dnsmasq.sh"), *args)

    def init(self, action: str) -> subprocess.CompletedProcess[str]:
        """/etc/init.d/clat-eamt ACTION, as its shebang line `#!/bin/sh /etc/rc.common` runs it."""
        script = str(self.path / "etc/init.d/clat-eamt")
        return self.sh("/bin/sh", str(self.path / "etc/rc.common"), script, action)

    def service(self, name: str = "clat-eamt") -> Service:
        """Parse what the last start registered (emulated procd's record)."""
        service, current = Service(), ""
        text = (self.path / f"var/run/procd/{name}.service").read_text()
        for line in text.splitlines():
            kind, *rest = line.split("\t")
            if kind == "instance":
                current = rest[0]
                service.instances[current] = {}
            elif kind == "param":
                service.instances[current][rest[0]] = rest[1:]
            elif kind == "trigger":
                service.triggers.append(rest)
        return service

    def start_instance(self, name: str = "clat-eamt") -> ProcdInstance:
        """Do what procd does with the registered instance (tests/openwrtkit/procd.py)."""
        (params,) = self.service(name).instances.values()
        instance = ProcdInstance(self.path, name, params, self.env)
        self.instances.append(instance)
        return instance

    def instance_output(self) -> str:
        path = self.path / "var/log/instance.out"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_for(self, what: str, check: object, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if callable(check) and check():
                return
            time.sleep(0.05)
        raise AssertionError(
            f"timed out waiting for {what}\nmessages:\n{self.messages()}\n"
            f"instance output:\n{self.instance_output()[-3000:]}"
        )

    def processes(self) -> list[int]:
        """Processes still running with this root in their command line (the daemons, the
        hook's guards, anything they started)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            with suppress(OSError):
                if str(self.path).encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
        return found

    def close(self) -> None:
        for instance in self.instances:
            instance.kill_all()
        # A guard restores dnsmasq when its daemon is gone: give it a moment, then kill.
        deadline = time.monotonic() + 10
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in self.processes():
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.path, ignore_errors=True)


@contextmanager
def fake_root() -> Iterator[FakeRoot]:
    root = FakeRoot()
    try:
        yield root
    finally:
        root.close()
