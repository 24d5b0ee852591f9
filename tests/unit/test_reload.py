"""SIGHUP reload: the pure plan (what changes now, what waits for a restart) and a real daemon
(DNS on loopback, a scripted dataplane) re-reading its file without dropping mappings."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from clat_eamt.config import load_file, load_text, schema
from clat_eamt.config.reload import plan_reload
from clat_eamt.core.model import Origin, State
from clat_eamt.daemon import Daemon
from tests.unit.standins import ScriptedDataplane, free_port, loopback_config

OFFICE = "config static 'office'\n\toption ipv4 '192.0.2.10'\n\toption ipv6 '2001:db8:1::10'\n"


def text(tmp_path: Path, port: int | str, ttl_min: int = 30, extra: str = "") -> str:
    extra = f"\toption ttl_min '{ttl_min}'\n{extra}"
    return loopback_config(port, f"{tmp_path}/control.sock", extra, OFFICE)


def test_plan_applies_live_options_and_keeps_restart_options(tmp_path):
    running = load_text(text(tmp_path, 5353))
    new = load_text(text(tmp_path, 5400, ttl_min=60, extra="\toption pool '198.51.100.0/25'\n"))
    plan = plan_reload(running, new)
    assert plan.changed == ("ttl_min",)
    assert set(plan.restart_needed) == {"port", "pool"}
    assert plan.config[schema.TTL_MIN] == 60
    assert plan.config[schema.PORT] == 5353  # the socket stays what it is until a restart
    assert str(plan.config[schema.POOL]) == "198.51.100.128/25"


def test_plan_of_an_unchanged_file_changes_nothing(tmp_path):
    cfg = load_text(text(tmp_path, 5353))
    assert plan_reload(cfg, load_text(text(tmp_path, 5353))) == plan_reload(cfg, cfg)
    assert plan_reload(cfg, cfg).changed == () and plan_reload(cfg, cfg).restart_needed == ()


def test_every_restart_option_shapes_sockets_pool_or_translator():
    """The schema's restart flags, spelled out once here so a change to them is deliberate."""
    restart = {o.name for o in schema.GLOBAL_OPTIONS if o.restart}
    assert restart == {
        "listen", "port", "control_socket", "pool", "translator", "clat_device", "state_dir",
        "tun",
        "clat_ipv4", "clat_ipv6", "tayga_ipv4", "tayga_ipv6", "jool_instance", "jool_netns",
        "host_mode", "lan_interface",
        "client_identity",  # dnsmasq's options are set by the hook when the service starts
        "provider_serial_file",  # the serial's floor is read from it at start
        "safety", "mss_clamp",  # the event listener and the guard's rules are made at start
    }  # fmt: skip
    for option in schema.GLOBAL_OPTIONS:
        assert ("Takes effect on restart" in option.full_help) == option.restart


def run_reload(tmp_path: Path, new_text: str) -> tuple[bool, Daemon, dict[str, Any]]:
    port = free_port()
    config = tmp_path / "clat-eamt"
    config.write_text(text(tmp_path, port))
    dataplane = ScriptedDataplane()

    async def scenario() -> tuple[bool, Daemon, dict[str, Any]]:
        daemon = Daemon(load_file(config), dataplane, load=lambda: load_file(config))
        await daemon.start()
        try:
            config.write_text(new_text.replace("PORT", str(port)))
            done = await daemon.reload()
            return done, daemon, daemon.status()
        finally:
            await daemon.stop()

    return asyncio.run(scenario())


def keys(daemon: Daemon) -> dict[str, State]:
    return {
        f"{e.ipv4.network_address}>{e.ipv6.network_address}": e.state
        for e in daemon.runtime.engine.table
    }


def test_reload_applies_ttl_and_static_entries_and_keeps_the_port(tmp_path):
    new = text(tmp_path, "PORT", ttl_min=120, extra="\toption hold_ms '80'\n")
    new = new.replace("\toption port 'PORT'", "\toption port '5999'")
    new += "\nconfig static 'tv'\n\toption ipv4 '192.0.2.20'\n\toption ipv6 '2001:db8:1::20'\n"
    done, daemon, status = run_reload(tmp_path, new)
    assert done
    assert daemon.runtime.engine.policy.ttl_min == 120
    assert daemon.proxy.settings.hold == 0.08
    assert daemon.cfg[schema.PORT] != 5999 and status["restart_needed"] == ["port"]
    table = keys(daemon)
    assert table["192.0.2.20>2001:db8:1::20"] is State.VALID  # the new static entry
    assert table["192.0.2.10>2001:db8:1::10"] is State.VALID  # the old one was not touched
    assert status["counters"]["reload.done"] == 1
    applied = [op for batch in daemon.dataplane.applied for op in batch]  # type: ignore[attr-defined]
    assert any("192.0.2.20" in str(op) for op in applied)


def test_reload_of_a_static_entry_removed_from_the_file_retires_it(tmp_path):
    without_static = text(tmp_path, "PORT").split("config static")[0]
    done, daemon, _ = run_reload(tmp_path, without_static)
    assert done
    [entry] = list(daemon.runtime.engine.table)
    assert entry.origin is Origin.STATIC and entry.state is State.STALE  # its flows may go on


def test_a_broken_file_is_refused_and_the_running_configuration_stays(tmp_path, caplog):
    done, daemon, status = run_reload(tmp_path, "config globals 'globals'\n\toption ttl_min 'x'\n")
    assert not done
    assert daemon.cfg[schema.TTL_MIN] == 30 and len(daemon.runtime.engine.table) == 1
    assert status["counters"]["reload.refused"] == 1
    assert "reload refused, the running configuration stays" in caplog.text
    assert "ttl_min" in caplog.text
