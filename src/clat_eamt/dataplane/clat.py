"""Which CLAT the router runs, and with which Pref64 (translator auto / external).

clat-eamt steers on the CLAT the router already has and never changes it (SPEC 5, v2): it only
needs the CLAT's device (the ip6 leg acts on packets from it) and the prefix it writes IPv4
destinations under (T(P) for the pool, ``core.translation``).  Where they come from:

- ``clat_device`` configured: that device.
- OpenWrt: netifd's ``network.interface dump`` (over ubus); an interface whose ``proto`` is
  ``464xlat`` and that is ``up`` runs nat46 on its ``l3_device`` (464xlat.sh names it
  ``464-<interface>`` and 464xlatcfg configures it ``remote.style RFC6052 remote.v6 <pref64>``).
- elsewhere: the device holding the IPv4 default route, when it is a CLAT: a tun (tayga, clatd)
  or a nat46 device.  A route into anything else (a VPN, a real IPv4 uplink) is no CLAT.

The Pref64: nat46's own configuration (``/proc/net/nat46/control`` lists each device's rules,
nat46-module.c), else the configured ``pref64``, else the one discovered from DNS (RFC 7050):
464xlat takes its prefix from the same DNS64 when none is configured.  The parsers here are pure
and tested on recorded input; the readers are thin.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv6Network
from typing import Any

from clat_eamt.dataplane.process import run_command

NAT46_CONTROL = "/proc/net/nat46/control"
PROC_ROUTE = "/proc/net/route"
SYS_NET = "/sys/class/net"


@dataclass(frozen=True)
class Clat:
    """A CLAT found (or configured): its device, how it was found, its kind, its Pref64."""

    device: str
    found_by: str  # "config", "netifd 464xlat interface wan6_4", "IPv4 default route"
    kind: str = "unknown"  # "nat46", "tun", "unknown"
    pref64: IPv6Network | None = None  # what the CLAT itself says, where it can be read


class ClatNotFoundError(Exception):
    """No CLAT to steer on; the message says what was looked at (status shows it)."""


def from_netifd_dump(dump: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(interface, device) of every 464xlat interface that is up, from
    ``ubus call network.interface dump``."""
    found = []
    for iface in dump.get("interface", []) or []:
        if not isinstance(iface, dict) or iface.get("proto") != "464xlat" or not iface.get("up"):
            continue
        device = iface.get("l3_device") or iface.get("device")
        if isinstance(device, str) and device:
            found.append((str(iface.get("interface", "?")), device))
    return found


def default_route_device(route_text: str) -> str | None:
    """The device of the IPv4 default route in /proc/net/route (lowest metric, up)."""
    best: tuple[int, str] | None = None
    for line in route_text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8 or fields[1] != "00000000" or fields[7] != "00000000":
            continue  # destination and mask both 0.0.0.0: a default route
        if not int(fields[3], 16) & 1:  # RTF_UP
            continue
        metric = int(fields[6])
        if best is None or metric < best[0]:
            best = (metric, fields[0])
    return best[1] if best else None


def nat46_pref64(control_text: str, device: str) -> IPv6Network | None:
    """The ``remote.v6`` of ``device``'s RFC6052 rule in nat46's control listing."""
    for line in control_text.splitlines():
        words = line.split()
        if device not in words:
            continue
        settings = dict(zip(words[2::2], words[3::2], strict=False))
        if settings.get("remote.style") == "RFC6052" and "remote.v6" in settings:
            try:
                return IPv6Network(settings["remote.v6"], strict=False)
            except ValueError:
                return None
    return None


def device_kind(device: str, sys_net: str = SYS_NET) -> str | None:
    """ "tun", "nat46" or "unknown" for an existing device, None when it does not exist."""
    base = os.path.join(sys_net, device)
    if not os.path.exists(base):
        return None
    if os.path.exists(os.path.join(base, "tun_flags")):
        return "tun"
    if device.startswith(("nat46", "464-")) or _listed_by_nat46(device):
        return "nat46"
    return "unknown"


def device_up(device: str, sys_net: str = SYS_NET) -> bool:
    try:
        flags = int(_read(os.path.join(sys_net, device, "flags"), strict=True).strip(), 16)
    except (OSError, ValueError):
        return False
    return bool(flags & 1)  # IFF_UP


def _listed_by_nat46(device: str) -> bool:
    try:
        return device in _read(NAT46_CONTROL, strict=True).split()
    except OSError:
        return False


async def netifd_464xlat() -> list[tuple[str, str]]:
    """netifd's 464xlat interfaces ([] where there is no ubus: not OpenWrt)."""
    try:
        result = await run_command(["ubus", "call", "network.interface", "dump"], timeout=3.0)
    except Exception:  # no ubus binary: not OpenWrt
        return []
    if result.returncode != 0:
        return []
    try:
        return from_netifd_dump(json.loads(result.stdout))
    except (ValueError, AttributeError):
        return []


def _read(path: str, strict: bool = False) -> str:
    """The file's text; "" if it cannot be read (OSError instead when ``strict``)."""
    try:
        with open(path) as file:
            return file.read()
    except OSError:
        if strict:
            raise
        return ""


async def find_clat(
    configured: str | None, openwrt: Iterable[tuple[str, str]] | None = None
) -> Clat:
    """The CLAT to steer on (ClatNotFoundError saying what was looked at when there is none)."""
    if configured:
        clat = Clat(configured, "config")
    else:
        found = list(openwrt) if openwrt is not None else await netifd_464xlat()
        if found:
            interface, device = found[0]
            clat = Clat(device, f"netifd 464xlat interface {interface}")
        else:
            route = default_route_device(_read(PROC_ROUTE))
            if route is None:
                raise ClatNotFoundError(
                    "no CLAT found: no 464xlat interface in netifd and no IPv4 default route"
                )
            if device_kind(route) in ("tun", "nat46"):
                clat = Clat(route, "IPv4 default route")
            else:
                raise ClatNotFoundError(
                    f"no CLAT found: the IPv4 default route goes to {route}, which is neither "
                    "a tun nor a nat46 device (set clat_device if it is the CLAT)"
                )
    kind = device_kind(clat.device)
    if kind is None:
        raise ClatNotFoundError(f"CLAT device {clat.device} ({clat.found_by}) does not exist")
    if not device_up(clat.device):
        raise ClatNotFoundError(f"CLAT device {clat.device} ({clat.found_by}) is down")
    pref64 = nat46_pref64(_read(NAT46_CONTROL), clat.device) if kind == "nat46" else None
    return Clat(clat.device, clat.found_by, kind, pref64)
