"""The package's OpenWrt scripts in a throwaway root file system (tests/openwrtkit).

Real: /etc/init.d/clat-eamt, /usr/lib/clat-eamt/dnsmasq.sh (the guard included) and
/etc/uci-defaults/90-clat-eamt from files/, run by Debian's /bin/sh (dash: POSIX, close to
busybox ash), and the real daemon (`python -m clat_eamt` of this venv) as /usr/bin/clat-eamt.
Stand-ins, because they cannot run on Debian: `uci` (libuci; tests/openwrtkit/uci.py writes the
format `uci commit` writes), /etc/rc.common and procd.sh (they record what the init script asks
procd for), procd's supervision of the instance (tests/openwrtkit/procd.py: respawn, crash
loop, SIGTERM then SIGKILL, each rule from procd's sources), `logger` (to a file) and
/etc/init.d/dnsmasq (records restarts).
Every test uses loopback and documentation addresses, a free port, and its own root, removed
with every process it started, also when it fails.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.openwrtkit import (
    DEFAULT_DHCP,
    FILES,
    FakeRoot,
    daemon_config,
    fake_root,
    free_port,
)
from tests.openwrtkit.procd import ProcdInstance

# The default: dnsmasq keeps its cache (no addmac/addsubnet; client_identity is off).
HOOKED_LINES = "\tlist server '127.0.0.1#{port}'\n\toption noresolv '1'\n"
IDENTITY_LINES = "\toption addmac '1'\n\toption addsubnet '32,128'\n"
SYSTEM_RESPAWN = (
    "\nconfig system\n\toption hostname 'OpenWrt'\n\nconfig service\n"
    "\toption respawn_timeout '{timeout}'\n\toption respawn_retry '{retry}'\n\n"
)


@pytest.fixture
def root() -> Iterator[FakeRoot]:
    with fake_root() as r:
        yield r


@pytest.fixture
def port(root: FakeRoot) -> int:
    port = free_port()
    root.write("etc/config/clat-eamt", daemon_config(root.path, port))
    return port


def start(root: FakeRoot, port: int) -> ProcdInstance:
    """/etc/init.d/clat-eamt start, procd starts the instance, the guard hooks dnsmasq."""
    restarts = len(root.dnsmasq_actions())
    assert root.init("start").returncode == 0
    instance = root.start_instance()
    wait_hooked(root, port, restarts)
    return instance


def wait_hooked(root: FakeRoot, port: int, restarts: int) -> None:
    def hooked() -> bool:  # the hook commits dhcp, then restarts dnsmasq: wait for both
        return f"#{port}'".encode() in root.dhcp() and len(root.dnsmasq_actions()) > restarts

    root.wait_for("dnsmasq hooked and restarted", hooked)


def wait_restored(root: FakeRoot, original: bytes) -> None:
    root.wait_for("dnsmasq restored", lambda: root.dhcp() == original)
    root.wait_for("the state file gone", lambda: not (root.path / "etc/clat-eamt").exists())


def test_start_registers_the_procd_instance_and_triggers(root: FakeRoot) -> None:
    """procd is asked for the daemon itself (no wrapper) with respawn (procd.sh's defaults),
    stdout/stderr to the log, a stop timeout, a reload on config change and on events of
    every interface of the wan firewall zone."""
    root.write(
        "etc/config/firewall",
        "\nconfig zone\n\toption name 'lan'\n\tlist network 'lan'\n"
        "\nconfig zone\n\toption name 'wan'\n\tlist network 'wan'\n\tlist network 'wan6'\n"
        "\tlist network 'wwan'\n\n",
    )
    assert root.init("start").returncode == 0
    service = root.service()
    assert service.instances == {
        "instance1": {
            "command": [
                str(root.path / "usr/bin/clat-eamt"),
                "run",
                "--config",
                str(root.path / "etc/config/clat-eamt"),
                "--dnsmasq-hook",
                str(root.path / "usr/lib/clat-eamt/dnsmasq.sh"),
            ],
            "respawn": ["3600", "5", "5"],
            "stdout": ["1"],
            "stderr": ["1"],
            "term_timeout": ["15"],
        }
    }
    script = "/etc/init.d/clat-eamt"
    assert service.triggers == [
        ["config.change", "clat-eamt", script, "reload"],
        ["interface.*", "wan", script, "reload"],
        ["interface.*", "wan6", script, "reload"],
        ["interface.*", "wwan", script, "reload"],
    ]


def test_respawn_takes_the_system_defaults(root: FakeRoot) -> None:
    """procd.sh fills a bare `respawn` from system.@service[0] (the router owner's choice)."""
    root.write("etc/config/system", SYSTEM_RESPAWN.format(timeout=2, retry=3))
    assert root.init("start").returncode == 0
    assert root.service().instances["instance1"]["respawn"] == ["3600", "2", "3"]


def test_wan_interfaces_default_without_a_firewall_config(root: FakeRoot) -> None:
    assert root.init("start").returncode == 0
    ifaces = [t[1] for t in root.service().triggers if t[0] == "interface.*"]
    assert ifaces == ["wan", "wan6"]


def test_client_identity_on_adds_addmac_and_addsubnet_and_stop_restores_the_bytes(
    root: FakeRoot,
) -> None:
    port = free_port()
    root.write("etc/config/clat-eamt", daemon_config(root.path, port, client_identity="yes"))
    original = root.dhcp()
    instance = start(root, port)
    expected = DEFAULT_DHCP.replace(
        "\toption ednspacket_max '1232'\n",
        "\toption ednspacket_max '1232'\n" + HOOKED_LINES.format(port=port) + IDENTITY_LINES,
    )
    assert root.dhcp().decode() == expected
    assert root.init("stop").returncode == 0
    instance.wait_state("stopped")
    assert instance.exits == [0]
    assert root.dhcp() == original


def test_start_writes_exactly_the_options_and_stop_restores_the_bytes(
    root: FakeRoot, port: int
) -> None:
    """The dnsmasq section gains exactly server and noresolv (at its end, as uci adds them),
    dnsmasq restarts reading that; stop gives back the original bytes."""
    original = root.dhcp()
    instance = start(root, port)
    expected = DEFAULT_DHCP.replace(
        "\toption ednspacket_max '1232'\n",
        "\toption ednspacket_max '1232'\n" + HOOKED_LINES.format(port=port),
    )
    assert root.dhcp().decode() == expected
    assert root.dnsmasq_actions() == ["restart"]
    assert root.read("var/log/dnsmasq/dhcp.1") == expected  # what dnsmasq read on restart

    result = root.init("stop")
    assert result.returncode == 0, result.stderr
    instance.wait_state("stopped")
    assert instance.exits == [0]
    assert root.dhcp() == original
    assert root.dnsmasq_actions() == ["restart", "restart"]
    assert not (root.path / "etc/clat-eamt").exists()
    assert ["delete", "clat-eamt", "*"] in root.procd_log()
    assert "the daemon ended; dnsmasq resolves on its own" in root.messages()
    assert root.processes() == []  # the guard is gone with the daemon


def test_no_process_polls_while_it_runs(root: FakeRoot, port: int) -> None:
    """Hooked and running: the daemon and one shell (the guard, waiting in `read`), and no
    process started meanwhile (the old wrapper ran `clat-eamt status` every 0.2 s until the
    daemon answered)."""
    instance = start(root, port)
    # the guard's apply finishes (its last logger call) just after dnsmasq's restart
    root.wait_for("the guard idle", lambda: len(root.processes()) == 2)
    before = sorted(root.processes())
    assert instance.proc is not None and instance.proc.pid in before
    guard = next(pid for pid in before if pid != instance.proc.pid)
    assert (Path("/proc") / str(guard) / "cmdline").read_bytes().split(b"\0")[-2] == b"guard"
    time.sleep(1.0)
    assert sorted(root.processes()) == before


def test_sigterm_to_the_daemon_stops_it_and_restores(root: FakeRoot, port: int) -> None:
    """procd stopping the instance on its own (no stop_service first): SIGTERM to the daemon,
    its clean stop, and the guard restores dnsmasq before the daemon has exited."""
    original = root.dhcp()
    instance = start(root, port)
    (root.path / "var/run/procd/clat-eamt.halt").touch()  # what procd_kill leaves
    assert instance.proc is not None
    instance.proc.send_signal(signal.SIGTERM)
    instance.wait_state("stopped")
    assert instance.exits == [0]
    assert root.dhcp() == original  # at once: the daemon waits for the guard
    assert "stopping" in root.instance_output()  # the daemon's own clean stop


def test_enabled_0_still_runs_the_daemon_as_a_plain_forwarder(root: FakeRoot) -> None:
    """`option enabled 0` is the daemon's switch (schema: DNS still forwarded unchanged), not
    the service's: the service starts and dnsmasq forwards to it; the daemon says it is off."""
    port = free_port()
    root.write("etc/config/clat-eamt", daemon_config(root.path, port, enabled="0"))
    start(root, port)
    socket = str(root.path / "var/run/clat-eamt/control.sock")
    status = root.sh("clat-eamt", "status", "--json", "--socket", socket)
    assert status.returncode == 0 and '"enabled": false' in status.stdout
    assert root.init("stop").returncode == 0


def test_sigkill_restores_at_once_and_procd_respawns(root: FakeRoot, port: int) -> None:
    """A crash nothing in the daemon can see (SIGKILL): the kernel closes the guard's pipe and
    the guard restores dnsmasq at once; procd starts the daemon again after respawn_timeout
    (5 s) and the new one hooks dnsmasq again."""
    original = root.dhcp()
    instance = start(root, port)
    assert instance.proc is not None
    os.kill(instance.proc.pid, signal.SIGKILL)
    instance.wait_state("respawning", "running", exits=1)
    assert instance.exits == [128 + signal.SIGKILL]
    wait_restored(root, original)
    # The guard restores, then logs: the line follows the restore by a moment.
    ended = "the daemon ended; dnsmasq resolves on its own"
    root.wait_for("the guard's last line", lambda: ended in root.messages())
    restarts = len(root.dnsmasq_actions())
    instance.wait_state("running", exits=1)
    wait_hooked(root, port, restarts)
    assert len(instance.pids) == 2
    assert root.init("stop").returncode == 0
    instance.wait_state("stopped")
    assert root.dhcp() == original


def test_failed_start_restores_a_left_over_hook_and_procd_gives_up(root: FakeRoot) -> None:
    """A bad config file: the daemon exits 1 before it listens.  dnsmasq was hooked by an
    earlier run that lost power (its state file is on flash): the failed start restores it.
    procd respawns it anyway (respawn ignores the status) until its crash loop rule stops it
    (here system.@service[0] asks 0 s between tries and 2 tries)."""
    root.write("etc/config/system", SYSTEM_RESPAWN.format(timeout=0, retry=2))
    original = root.dhcp()
    assert root.hook("apply", "5353", "127.0.0.1").returncode == 0  # then a power cut
    root.write("etc/config/clat-eamt", "\nconfig globals 'globals'\n\toption port '70000'\n\n")
    assert root.init("start").returncode == 0
    instance = root.start_instance()
    instance.wait_state("failed")
    assert instance.exits == [1, 1, 1]
    wait_restored(root, original)
    assert "option 'port'" in root.instance_output()  # the daemon's reason, in the log


def test_uninstall_restores_the_bytes(root: FakeRoot, port: int) -> None:
    """opkg remove: the package's prerm runs `dnsmasq.sh restore`, then default_prerm
    disables and stops the service (emulated here in that order)."""
    original = root.dhcp()
    assert root.init("enable").returncode == 0
    instance = start(root, port)
    result = root.sh(str(root.path / "usr/lib/clat-eamt/dnsmasq.sh"), "restore")
    assert result.returncode == 0, result.stderr
    assert root.dhcp() == original
    assert root.init("disable").returncode == 0
    assert root.init("stop").returncode == 0
    instance.wait_state("stopped")
    assert instance.exits == [0]
    assert root.dhcp() == original
    assert not (root.path / "etc/clat-eamt").exists()
    assert list((root.path / "etc/rc.d").iterdir()) == []


def test_reload_sends_sighup_and_keeps_dnsmasq(root: FakeRoot, port: int) -> None:
    """reload: SIGHUP through procd to the daemon; it re-reads its file, keeps its static
    mapping, and dnsmasq is not touched."""
    instance = start(root, port)
    hooked = root.dhcp()
    socket = str(root.path / "var/run/clat-eamt/control.sock")
    added = root.sh("clat-eamt", "add", "192.0.2.10", "2001:db8::10", "--socket", socket)
    assert added.returncode == 0, added.stderr
    assert root.init("reload").returncode == 0
    assert root.procd_log()[-1] == ["signal", "clat-eamt", "*", "HUP"]
    root.wait_for("the daemon's reload", lambda: "reloaded" in root.instance_output())
    assert instance.state == "running" and instance.exits == []
    assert root.dhcp() == hooked and root.dnsmasq_actions() == ["restart"]
    mappings = root.sh("clat-eamt", "mappings", "--socket", socket)
    assert "192.0.2.10" in mappings.stdout


def test_reload_with_a_new_port_restarts_and_moves_dnsmasq(root: FakeRoot, port: int) -> None:
    """A new listen port cannot be taken over by SIGHUP without leaving dnsmasq on the old
    one: reload restarts (stop, start) and the new instance hooks the new port."""
    original = root.dhcp()
    instance = start(root, port)
    new_port = free_port()
    root.write("etc/config/clat-eamt", daemon_config(root.path, new_port))
    assert root.init("reload").returncode == 0
    assert root.procd_log()[-2:] == [["delete", "clat-eamt", "*"], ["set", "clat-eamt"]]
    instance.wait_state("stopped")
    assert instance.exits == [0]
    assert root.dhcp() == original
    start(root, new_port)  # procd starts the re-registered instance
    assert f"127.0.0.1#{new_port}" in root.read("etc/clat-eamt/dnsmasq.state")
    assert root.init("stop").returncode == 0
    root.instances[-1].wait_state("stopped")
    assert root.dhcp() == original


def test_uci_defaults_writes_the_defaults_once(root: FakeRoot) -> None:
    """No /etc/config/clat-eamt: the schema's defaults are written; run again (OpenWrt deletes
    the script after exit 0, but a second run must be harmless) nothing changes."""
    script = str(root.path / "etc/uci-defaults/90-clat-eamt")
    for _ in range(2):
        result = root.sh("/bin/sh", "-c", f'. "{script}"')  # OpenWrt sources it
        assert result.returncode == 0, result.stderr
        assert root.read("etc/config/clat-eamt") == (FILES / "etc/config/clat-eamt").read_text()
    assert root.messages().count("wrote the default") == 1


def test_uci_defaults_keeps_an_existing_config(root: FakeRoot) -> None:
    config = root.write("etc/config/clat-eamt", daemon_config(root.path, 5353))
    before = config.read_bytes()
    result = root.sh(str(root.path / "etc/uci-defaults/90-clat-eamt"))
    assert result.returncode == 0
    assert config.read_bytes() == before
