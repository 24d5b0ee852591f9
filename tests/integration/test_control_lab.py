"""The control API and the CLI against the daemon on the lab's home router (nftables on tayga,
real flows, real conntrack): what `clat-eamt status|mappings|hosts|add|del|flush|config` show
and do, as a user types them on the router."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.proxykit import uci
from tests.integration.routerkit import CLAT_IPV6, NAT64_PEER, Router, lab_router


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Router]:
    yield from lab_router(
        tmp_path_factory, "control", translator="tayga", ttl_min="0", stale_linger="1"
    )


def cli(router: Router, *argv: str) -> subprocess.CompletedProcess[str]:
    """`clat-eamt ARGV --socket S` on the host (the socket is a file: no namespace needed)."""
    command = [sys.executable, "-m", "clat_eamt", *argv, "--socket", socket_path(router)]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def ask(router: Router, *argv: str) -> Any:
    result = cli(router, *argv, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def socket_path(router: Router) -> str:
    return str(router.options["control_socket"])


def row(router: Router, ipv4: str) -> dict[str, Any]:
    [found] = [r for r in ask(router, "mappings") if r["ipv4"] == ipv4]
    return found


def table(router: Router) -> set[tuple[str, str, str, str]]:
    return {(r["ipv4"], r["ipv6"], r["origin"], r["state"]) for r in ask(router, "mappings")}


@pytest.mark.lab
def test_status_and_mappings_show_the_native_flow_and_its_mapping(router: Router):
    lab = router.lab
    assert stat.S_IMODE(os.stat(socket_path(router)).st_mode) == 0o600
    [address] = router.resolve(lab.lan, "ds3.lab.example")
    with lab.flow(lab.lan, address) as flow:
        assert lab.accepted(flow.tag)["peer"] == CLAT_IPV6
        with lab.flow(lab.lan, "192.0.2.20") as nat64:  # IPv4-only server: the NAT64 path
            assert lab.accepted(nat64.tag)["peer"] == NAT64_PEER
            status = ask(router, "status")
            assert status["dataplane"]["name"] == "nftables on tayga"
            assert status["dataplane"]["error"] is None
            assert status["pref64"]["source"] == "config"
            assert status["summary"]["a_with_aaaa"] >= 1
            assert status["summary"]["mappings"]["created"] >= 1
            assert status["flows"]["native"] >= 1 and status["flows"]["nat64"] >= 1
            mapping = row(router, address)
            assert mapping["fqdn"] == "ds3.lab.example" and mapping["origin"] == "dns"
            assert mapping["state"] == "valid" and mapping["expires_in"] > 0
            assert mapping["flows"] == 1  # this connection, counted from conntrack
    router.wait(lambda: bool(ask(router, "history")["points"]), "a sample (from the first tick)")
    history = ask(router, "history")
    assert history["interval"] == 30
    assert {"time", "native", "nat64"} == set(history["points"][0])
    text = cli(router, "mappings").stdout
    assert text.splitlines()[0].split()[:3] == ["IPV4", "IPV6", "POOL"]
    assert "ds3.lab.example" in text
    status_text = cli(router, "status").stdout
    assert "nftables on tayga: ok" in status_text and "(source: config)" in status_text
    assert "clat (tun (tayga run by clat-eamt), config), Pref64 2001:db8:64::/96" in status_text


@pytest.mark.lab
def test_hosts_lists_the_lan_clients_with_their_mac(router: Router):
    lab = router.lab
    router.resolve(lab.lan, "v4only.lab.example")
    router.resolve(lab.lan6, "v4only.lab.example")

    def seen() -> bool:
        found = {(h["ipv4"], h["mac"]) for h in ask(router, "hosts")}
        return {(lab.LAN_ADDR4, lab.LAN_MAC), (lab.LAN6_ADDR4, lab.LAN6_MAC)} <= found

    router.wait(seen, "both LAN clients in `clat-eamt hosts`")
    for host in ask(router, "hosts"):
        assert host["class"] in ("ipv4-only", "dual-stack", "unknown") and host["why"]
    assert lab.LAN_MAC in cli(router, "hosts").stdout


@pytest.mark.lab
def test_add_steers_new_flows_and_del_keeps_the_running_one(router: Router):
    lab = router.lab
    # 192.0.2.20 is IPv4-only in DNS; the operator knows it also answers on ds4's IPv6.
    result = cli(router, "add", "192.0.2.20", "2001:db8:1::104", "--comment", "lab test")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("added: 192.0.2.20 -> 2001:db8:1::104")
    assert router.dnat_elements().get("192.0.2.20") == row(router, "192.0.2.20")["pool"]
    with lab.flow(lab.lan, "192.0.2.20") as flow:
        accepted = lab.accepted(flow.tag)
        assert (accepted["peer"], accepted["local"]) == (CLAT_IPV6, "2001:db8:1::104")
        assert any(s["comment"] == "lab test" for s in ask(router, "config")["static"])
        deleted = cli(router, "del", "192.0.2.20")
        assert deleted.returncode == 0, deleted.stderr
        assert "192.0.2.20" not in router.dnat_elements()  # new flows: NAT64 again
        with lab.flow(lab.lan, "192.0.2.20") as after:
            assert lab.accepted(after.tag)["peer"] == NAT64_PEER
        flow.roundtrip("still native")  # the running flow kept its path
        assert row(router, "192.0.2.20")["state"] == "stale"
    router.wait(lambda: "192.0.2.20" not in {r["ipv4"] for r in ask(router, "mappings")},
                "the deleted entry to go once its flow ended")  # fmt: skip


@pytest.mark.lab
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["add", "192.0.2.21", "2001:db8:zz::1"], "ipv6"),
        (["add", "192.0.2.0/24", "2001:db8:1::1"], "host bits"),
        (["add", "198.51.100.200", "2001:db8:1::1"], "overlaps the mapping pool"),
        (["add", "192.0.2.21", "2001:db8:64::1"], "NAT64 prefix"),
        (["del", "192.0.2.99"], "no static entry for 192.0.2.99"),
    ],
)
def test_bad_arguments_are_refused_and_change_nothing(router: Router, argv, message):
    before, nft_before = table(router), router.dnat_elements()
    result = cli(router, *argv)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    assert table(router) == before and router.dnat_elements() == nft_before


@pytest.mark.lab
def test_flush_retires_dns_entries_and_running_flows_keep_their_path(router: Router):
    lab = router.lab
    [address] = router.resolve(lab.lan, "ds5.lab.example")
    with lab.flow(lab.lan, address) as flow:
        flushed = ask(router, "flush")
        assert flushed["flushed"] >= 1
        assert row(router, address)["stale_reason"] == "flushed"
        assert address not in router.dnat_elements()
        flow.roundtrip("after the flush")
        assert lab.accepted(flow.tag)["peer"] == CLAT_IPV6
    router.resolve(lab.lan, "ds5.lab.example")  # DNS proves it again: valid once more
    router.wait(lambda: row(router, address)["state"] == "valid", "ds5 revived")


@pytest.mark.lab
def test_config_is_the_effective_configuration(router: Router):
    config = ask(router, "config")
    assert config["globals"]["translator"] == "tayga"
    assert config["globals"]["pool"] == router.options["pool"]
    assert config["globals"]["control_socket"] == socket_path(router)
    text = cli(router, "config").stdout
    assert text.startswith("config globals 'globals'") and "option translator 'tayga'" in text


@pytest.mark.lab
def test_a_killed_tayga_shows_in_status_and_is_restarted_with_its_maps(router: Router):
    lab = router.lab
    [address] = router.resolve(lab.lan, "ds6.lab.example")
    pidfile = Path(router.options["state_dir"]) / "tayga.pid"
    killed = int(pidfile.read_text())
    os.kill(killed, signal.SIGKILL)

    def restarted() -> bool:
        pid = pidfile.read_text().strip() if pidfile.exists() else ""
        return pid.isdigit() and int(pid) != killed and Path(f"/proc/{pid}").exists()

    router.wait(restarted, "the daemon to restart tayga", timeout=15)
    assert any("tayga is not running" in r["message"] for r in router.records())
    router.wait(lambda: ask(router, "status")["dataplane"]["error"] is None, "a healthy status")
    with lab.flow(lab.lan, address) as flow:  # the mapping made before the crash works again
        assert lab.accepted(flow.tag)["peer"] == CLAT_IPV6


@pytest.mark.lab
def test_sighup_reload_keeps_mappings_and_flows_and_applies_the_file(router: Router):
    """What `service clat-eamt reload` (procd: SIGHUP) does after a UCI commit."""
    lab = router.lab
    [address] = router.resolve(lab.lan, "ds7.lab.example")
    before = row(router, address)
    with lab.flow(lab.lan, address) as flow:
        options = {**router.options, "ttl_min": "120", "port": "5400"}
        router.config.write_text(
            uci(options)
            + "\nconfig static 'office'\n\toption ipv4 '192.0.2.20'\n"
            + "\toption ipv6 '2001:db8:1::108'\n"
        )
        try:
            os.kill(router.proc.pid, signal.SIGHUP)
            router.wait(lambda: "192.0.2.20" in router.dnat_elements(), "the static entry")
            status = ask(router, "status")
            assert status["restart_needed"] == ["port"]  # still answering on its old port
            assert status["counters"]["reload.done"] == 1
            after = row(router, address)
            assert (after["pool"], after["state"]) == (before["pool"], "valid")  # not dropped
            flow.roundtrip("across the reload")
            assert router.proc.alive()
        finally:
            router.config.write_text(uci(router.options))
            os.kill(router.proc.pid, signal.SIGHUP)  # back to the module's configuration


def test_cli_says_clearly_when_the_daemon_is_not_running(tmp_path: Path):
    for command in (["status"], ["mappings", "--json"], ["add", "192.0.2.1", "2001:db8::1"]):
        argv = [sys.executable, "-m", "clat_eamt", *command, "--socket", str(tmp_path / "x")]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        assert result.returncode == 3
        assert "clat-eamt is not running" in result.stderr and not result.stdout
