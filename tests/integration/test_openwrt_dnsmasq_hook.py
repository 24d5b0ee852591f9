"""/usr/lib/clat-eamt/dnsmasq.sh on its own, in a throwaway root file system (tests/openwrtkit).

Real: the hook from files/, executed by Debian's /bin/sh (dash, close to busybox ash).
Emulated, because they cannot run on Debian: `uci` (tests/openwrtkit/uci.py, libuci's
semantics and the file format `uci commit` writes), `logger` and /etc/init.d/dnsmasq (record
what they are asked).  No daemon is needed: apply only edits dnsmasq's configuration.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator

import pytest

from tests.openwrtkit import DEFAULT_DHCP, FakeRoot, fake_root

HEAD = "\nconfig dnsmasq\n\toption domainneeded '1'\n\toption domain 'lan'\n"
TAIL = "\toption localservice '1'\n\nconfig dhcp 'lan'\n\toption interface 'lan'\n\n"

# Originals in the format `uci commit` writes (any dhcp file LuCI or uci ever saved).
ORIGINALS = {
    "default OpenWrt": DEFAULT_DHCP,
    "upstream servers": HEAD + "\tlist server '/corp.example/192.0.2.1'\n"
    "\tlist server '2001:db8::53'\n" + TAIL,
    "noresolv already on": HEAD + "\toption noresolv '1'\n" + TAIL,
    "other values": HEAD + "\toption noresolv '0'\n\toption addmac '0'\n"
    "\toption addsubnet '24,56'\n" + TAIL,
    "server as a plain option": HEAD + "\toption server '198.51.100.53'\n" + TAIL,
    "our server already listed": HEAD + "\tlist server '127.0.0.1#5353'\n" + TAIL,
    "named section": "\nconfig dnsmasq 'main'\n\toption domain 'lan'\n\n",
    "two instances": HEAD + TAIL[:-1] + "\nconfig dnsmasq 'guest'\n\toption domain 'guest'\n"
    "\tlist interface 'guest'\n\toption noresolv '1'\n\n",
    "quote in a value": HEAD + "\toption local '/it'\\''s.lan/'\n" + TAIL,
}


@pytest.fixture
def root() -> Iterator[FakeRoot]:
    with fake_root() as r:
        yield r


def sections(root: FakeRoot) -> int:
    shown = root.uci("show", "dhcp").stdout.splitlines()
    return sum(1 for line in shown if line.endswith("=dnsmasq"))


def get(root: FakeRoot, section: int, option: str) -> str:
    return root.uci("-q", "get", f"dhcp.@dnsmasq[{section}].{option}").stdout.strip()


def client_options(root: FakeRoot, section: int) -> list[str]:
    return [get(root, section, o) for o in ("noresolv", "addmac", "addsubnet")]


@pytest.mark.parametrize("original", ORIGINALS.values(), ids=ORIGINALS.keys())
def test_apply_sets_every_section_and_restore_gives_back_the_bytes(
    root: FakeRoot, original: str
) -> None:
    """The default (client_identity off): server and noresolv only; dnsmasq keeps its cache,
    so addmac and addsubnet stay whatever they were."""
    root.write("etc/config/dhcp", original)
    before = [client_options(root, i)[1:] for i in range(sections(root))]
    result = root.hook("apply", "5353", "127.0.0.1")
    assert result.returncode == 0, result.stderr
    for i in range(sections(root)):
        assert "127.0.0.1#5353" in get(root, i, "server").split()
        assert client_options(root, i) == ["1", *before[i]]

    result = root.hook("restore")
    assert result.returncode == 0, result.stderr
    assert root.dhcp() == original.encode()
    assert not (root.path / "etc/clat-eamt").exists()


@pytest.mark.parametrize("original", ORIGINALS.values(), ids=ORIGINALS.keys())
def test_client_identity_adds_addmac_and_addsubnet_and_restore_gives_back_the_bytes(
    root: FakeRoot, original: str
) -> None:
    root.write("etc/config/dhcp", original)
    result = root.hook("apply", "5353", "127.0.0.1", "1")
    assert result.returncode == 0, result.stderr
    for i in range(sections(root)):
        assert "127.0.0.1#5353" in get(root, i, "server").split()
        assert client_options(root, i) == ["1", "1", "32,128"]
    assert root.hook("restore").returncode == 0
    assert root.dhcp() == original.encode()


def test_switching_client_identity_off_gives_dnsmasq_its_cache_back(root: FakeRoot) -> None:
    """A restart with client_identity changed: the old hook is undone first, so addmac and
    addsubnet go back to what they were, and restore still gives back the original bytes."""
    root.write("etc/config/dhcp", ORIGINALS["other values"])
    assert root.hook("apply", "5353", "127.0.0.1", "1").returncode == 0
    assert client_options(root, 0) == ["1", "1", "32,128"]
    assert root.hook("apply", "5353", "127.0.0.1", "0").returncode == 0
    assert client_options(root, 0) == ["1", "0", "24,56"]  # the user's own values
    assert root.hook("apply", "5353", "127.0.0.1", "1").returncode == 0
    assert client_options(root, 0) == ["1", "1", "32,128"]
    assert root.hook("restore").returncode == 0
    assert root.dhcp() == ORIGINALS["other values"].encode()


def test_apply_when_nothing_changes_touches_nothing(root: FakeRoot) -> None:
    plain = "\tlist server '127.0.0.1#5353'\n\toption noresolv '1'\n"
    for original, identity in (
        (HEAD + plain + TAIL, "0"),
        (HEAD + plain + "\toption addmac '1'\n\toption addsubnet '32,128'\n" + TAIL, "1"),
    ):
        dhcp = root.write("etc/config/dhcp", original)
        mtime = dhcp.stat().st_mtime_ns
        assert root.hook("apply", "5353", "127.0.0.1", identity).returncode == 0
        assert root.hook("restore").returncode == 0
        assert dhcp.stat().st_mtime_ns == mtime and root.dhcp() == original.encode()
        assert root.dnsmasq_actions() == []  # no restart when nothing changed


def test_second_apply_keeps_the_first_originals(root: FakeRoot) -> None:
    root.write("etc/config/dhcp", ORIGINALS["other values"])
    assert root.hook("apply", "5353", "127.0.0.1", "1").returncode == 0
    state = root.read("etc/clat-eamt/dnsmasq.state")
    hooked = root.dhcp()
    assert root.hook("apply", "5353", "127.0.0.1", "1").returncode == 0
    assert root.read("etc/clat-eamt/dnsmasq.state") == state
    assert root.dhcp() == hooked and root.dnsmasq_actions() == ["restart"]
    assert "0\taddmac\tset\t0" in state.splitlines()
    assert root.hook("restore").returncode == 0
    assert root.dhcp() == ORIGINALS["other values"].encode()


def test_apply_to_a_new_address_moves_the_hook(root: FakeRoot) -> None:
    """The daemon moved (another port, an IPv6 listen address): the old entry goes, the
    originals stay the first ones."""
    root.write("etc/config/dhcp", ORIGINALS["upstream servers"])
    assert root.hook("apply", "5353", "127.0.0.1").returncode == 0
    assert root.hook("apply", "5454", "::1").returncode == 0
    servers = root.uci("get", "dhcp.@dnsmasq[0].server").stdout.split()
    assert servers == ["/corp.example/192.0.2.1", "2001:db8::53", "::1#5454"]
    assert root.hook("restore").returncode == 0
    assert root.dhcp() == ORIGINALS["upstream servers"].encode()


def test_wildcard_listen_address_is_reached_on_loopback(root: FakeRoot) -> None:
    assert root.hook("apply", "5353", "0.0.0.0").returncode == 0
    assert root.uci("get", "dhcp.@dnsmasq[0].server").stdout.split() == ["127.0.0.1#5353"]


def test_restore_after_a_power_cut(root: FakeRoot) -> None:
    """The originals live on flash: after a reboot (tmpfs gone: uci's deltas, the lock, a
    stale lock directory of a killed hook included) restore still puts everything back."""
    root.write("etc/config/dhcp", ORIGINALS["noresolv already on"])
    assert root.hook("apply", "5353", "127.0.0.1").returncode == 0
    shutil.rmtree(root.path / "tmp/.uci")
    (root.path / "var/lock/clat-eamt-dnsmasq.lock").mkdir()  # left by a hook killed midway
    shutil.rmtree(root.path / "var/lock")  # ... but /var/lock is tmpfs
    assert root.hook("restore").returncode == 0
    assert root.dhcp() == ORIGINALS["noresolv already on"].encode()


def test_restore_without_state_does_nothing(root: FakeRoot) -> None:
    assert root.hook("restore").returncode == 0
    assert root.dhcp() == DEFAULT_DHCP.encode() and root.dnsmasq_actions() == []


def test_restore_keeps_what_the_user_changed_meanwhile(root: FakeRoot) -> None:
    """Only what apply changed is put back: an option the user set while clat-eamt ran
    stays (and a section deleted meanwhile is skipped)."""
    root.write("etc/config/dhcp", ORIGINALS["two instances"])
    assert root.hook("apply", "5353", "127.0.0.1").returncode == 0
    assert root.uci("set", "dhcp.@dnsmasq[0].cachesize=1000").returncode == 0
    assert root.uci("delete", "dhcp.guest").returncode == 0
    assert root.uci("commit", "dhcp").returncode == 0
    assert root.hook("restore").returncode == 0
    expected = HEAD + TAIL.replace(
        "\toption localservice '1'\n", "\toption localservice '1'\n\toption cachesize '1000'\n"
    )
    assert root.dhcp().decode() == expected


def test_usage_errors(root: FakeRoot) -> None:
    assert root.hook().returncode == 2
    assert root.hook("apply").returncode == 2
    assert root.hook("apply", "5353").returncode == 2  # the address is the daemon's to say
    assert root.hook("apply", "53a", "127.0.0.1").returncode == 2
    assert root.hook("apply", "5353", "127.0.0.1", "yes").returncode == 2
    assert root.dhcp() == DEFAULT_DHCP.encode()


def guard(root: FakeRoot, writer: str) -> subprocess.Popen[bytes]:
    """`dnsmasq.sh guard` fed by a process (``writer``, a shell snippet) that holds the only
    write end of its stdin, as the daemon does."""
    hook = root.path / "usr/lib/clat-eamt/dnsmasq.sh"
    return subprocess.Popen(
        ["/bin/sh", "-c", f'{{ {writer} ; }} | "{hook}" guard'],
        env=root.env,
        start_new_session=True,
    )


def test_guard_applies_what_it_is_told_and_restores_at_end_of_file(root: FakeRoot) -> None:
    proc = guard(root, "echo 'apply 5454 ::1'; sleep 1")
    root.wait_for("hooked", lambda: b"::1#5454" in root.dhcp())
    assert proc.wait(timeout=30) == 0
    assert root.dhcp() == DEFAULT_DHCP.encode()
    assert root.dnsmasq_actions() == ["restart", "restart"]


def test_guard_restores_when_its_writer_is_killed(root: FakeRoot) -> None:
    """SIGKILL to the writer (the daemon): the pipe ends, the guard restores."""
    proc = guard(root, "echo 'apply 5353 127.0.0.1'; exec sleep 60")
    root.wait_for("hooked", lambda: b"127.0.0.1#5353" in root.dhcp())
    writer = [p for p in _children(proc.pid) if _cmdline(p).startswith(b"sleep\x0060")]
    assert len(writer) == 1
    os.kill(writer[0], signal.SIGKILL)
    assert proc.wait(timeout=30) == 0
    assert root.dhcp() == DEFAULT_DHCP.encode()


def test_guard_ignores_the_signals_meant_for_the_daemon(root: FakeRoot) -> None:
    proc = guard(root, "echo 'apply 5353 127.0.0.1'; exec sleep 60")
    root.wait_for("hooked", lambda: b"127.0.0.1#5353" in root.dhcp())
    os.killpg(proc.pid, signal.SIGTERM)  # the whole group: the writer dies, the guard stays
    proc.wait(timeout=30)
    root.wait_for("restored", lambda: root.dhcp() == DEFAULT_DHCP.encode())


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def _children(parent: int) -> list[int]:
    found = []
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            found.append(pid)
    return found
