"""Network namespaces for lab tests: create, wire with veth, run commands, nft, sockets inside.

Namespace names carry a fixed prefix and the creating pid (`clatlab-<pid>-<n>-<tag>`), so a
later run can delete what a crashed run left behind without touching the namespaces of a run
that is still going (another pytest on the same machine).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

from clat_eamt.dataplane.netns import socket_in as product_socket_in

from .procs import tool

PREFIX = "clatlab-"
_NETNS_DIR = Path("/run/netns")
_counter = itertools.count(1)
_veth_counter = itertools.count(1)


def ns_name(ns: Netns | str | None) -> str | None:
    """The namespace name of a Netns, a name, or None (the test's own namespace)."""
    return ns.name if isinstance(ns, Netns) else ns


def run(
    ns: Netns | str | None,
    argv: Sequence[str],
    *,
    check: bool = True,
    input: str | None = None,
    timeout: float = 30.0,
) -> subprocess.CompletedProcess[str]:
    """Run a short command inside `ns` (or here when None); output captured as text."""
    name = ns_name(ns)
    full = list(argv) if name is None else [tool("ip"), "netns", "exec", name, *argv]
    result = subprocess.run(
        full, input=input, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(full)} failed ({result.returncode}): {result.stderr.strip()}"
        )
    return result


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`ip ARGS` in the test's namespace (use `ip -n NS ...` to reach into a namespace)."""
    return run(None, [tool("ip"), *args], check=check)


def nft(ns: Netns | str, ruleset: str) -> None:
    """Load an nft ruleset (text for `nft -f -`) inside a namespace.

    Only namespaces: the host's rules are not the test's to change.  The rules vanish with the
    namespace.
    """
    name = ns_name(ns)
    if not name:
        raise ValueError("nft() only changes rules inside a test namespace")
    run(name, [tool("nft"), "-f", "-"], input=ruleset)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def netns_id(ns: Netns | str | None = None, pid: int | None = None) -> int:
    """Identity (inode) of a named namespace, or of the namespace process `pid` lives in."""
    name = ns_name(ns)
    if name is not None:
        return os.stat(_NETNS_DIR / name).st_ino
    return os.stat(f"/proc/{pid or os.getpid()}/ns/net").st_ino


def list_lab_namespaces() -> list[str]:
    """Names of all namespaces with the lab prefix (any run)."""
    out = ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(PREFIX)]


def _kill_pids_in(name: str) -> None:
    pids = run(None, [tool("ip"), "netns", "pids", name], check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), 9)


def delete_namespace(name: str) -> None:
    """Kill whatever still runs inside, then delete (a namespace with processes outlives
    `ip netns del`, and so would their sockets)."""
    _kill_pids_in(name)
    ip("netns", "del", name, check=False)


def remove_stale(prefix: str = PREFIX) -> list[str]:
    """Delete lab namespaces whose creating process is gone (a crashed earlier run)."""
    removed = []
    for name in list_lab_namespaces():
        match = re.match(re.escape(prefix) + r"(\d+)-", name)
        if match and not _pid_alive(int(match.group(1))):
            delete_namespace(name)
            removed.append(name)
    return removed


class Netns(contextlib.AbstractContextManager["Netns"]):
    """A fresh network namespace with `lo` up; deleted (with anything inside) on exit."""

    def __init__(self, tag: str = "ns") -> None:
        if not re.fullmatch(r"[a-z0-9]{1,12}", tag):
            raise ValueError(f"namespace tag {tag!r}: 1-12 lowercase letters/digits")
        self.name = f"{PREFIX}{os.getpid()}-{next(_counter)}-{tag}"
        self.tag = tag

    def __enter__(self) -> Netns:
        remove_stale()
        ip("netns", "add", self.name)
        try:
            ip("-n", self.name, "link", "set", "lo", "up")
        except BaseException:
            delete_namespace(self.name)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        delete_namespace(self.name)

    def exists(self) -> bool:
        return (_NETNS_DIR / self.name).exists()

    def run(self, argv: Sequence[str], **kw: object) -> subprocess.CompletedProcess[str]:
        return run(self, argv, **kw)  # type: ignore[arg-type]

    def nft(self, ruleset: str) -> None:
        nft(self, ruleset)

    def socket(self, family: int = socket.AF_INET, kind: int = socket.SOCK_DGRAM) -> socket.socket:
        return socket_in(self, family, kind)

    def __str__(self) -> str:
        return self.name


def veth(
    ns_a: Netns | str,
    ns_b: Netns | str,
    addr_a: str | Sequence[str],
    addr_b: str | Sequence[str],
) -> tuple[str, str]:
    """Link two namespaces with a veth pair, give each end its address(es) (CIDR, e.g.
    "192.0.2.1/24", "2001:db8:1::1/64"), bring both up; returns the two interface names.

    IPv6 addresses are added with `nodad` so they are usable at once.
    """
    a, b = ns_name(ns_a), ns_name(ns_b)
    assert a and b, "veth needs two namespaces"
    n = next(_veth_counter)
    # Interface names are at most 15 bytes; they only need to be unique inside each namespace.
    if_a, if_b = f"lab{n}a", f"lab{n}b"
    ip("-n", a, "link", "add", if_a, "type", "veth", "peer", "name", if_b, "netns", b)
    for ns, ifname, addrs in ((a, if_a, addr_a), (b, if_b, addr_b)):
        for addr in [addrs] if isinstance(addrs, str) else addrs:
            extra = ["nodad"] if ":" in addr else []
            ip("-n", ns, "addr", "add", addr, "dev", ifname, *extra)
        ip("-n", ns, "link", "set", ifname, "up")
    return if_a, if_b


def socket_in(
    ns: Netns | str | None, family: int = socket.AF_INET, kind: int = socket.SOCK_DGRAM
) -> socket.socket:
    """A socket that lives in namespace `ns`, usable from this process.

    A socket belongs to the namespace it was created in; a short-lived thread enters the
    namespace (setns changes only the calling thread), creates the socket and ends.  So a test
    can talk to servers inside a namespace without a subprocess per query.
    """
    name = ns_name(ns)
    return product_socket_in(str(_NETNS_DIR / name) if name else None, family, kind)
