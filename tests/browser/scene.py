"""What the browser test and `make screenshots` show: the daemon on the lab's home router
(tests.integration.routerkit) with live mappings, a static entry and open flows, native and
through the NAT64, and the bridge serving the stand-in page for it (/ubus from the daemon's
socket, /uci from the config file it runs with).  Everything is stopped and
removed on exit, also on failure."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clat_eamt.control.client import call
from tests.browser.bridge import Bridge
from tests.integration.routerkit import Router, home_router

NAMES = ("ds1.lab.example", "ds2.lab.example", "cname.lab.example")  # dual-stack: mapped
V6ONLY = "v6only.lab.example"  # AAAA only: with ipv6_only on, its A is a pool address
IPV4_ONLY_SERVER = "192.0.2.20"  # no AAAA: its flow goes through the NAT64
STATIC = {"ipv4": "192.0.2.99", "ipv6": "2001:db8:1::99", "comment": "office NAS"}
STATUS_VIEW, OVERVIEW_WIDGET = "view/clat-eamt/status", "view/status/include/90_clat-eamt"
SETTINGS_VIEW = "view/clat-eamt/settings"


@dataclass
class Scene:
    router: Router
    bridge: Bridge
    mapped: dict[str, str]  # FQDN -> the IPv4 its answer carried

    @property
    def socket(self) -> str:
        return str(self.router.options["control_socket"])

    def ask(self, method: str) -> Any:
        return call(self.socket, method)


@contextlib.contextmanager
def live_scene(workdir: Path, samples: int = 1) -> Iterator[Scene]:
    """The lab with flows open until exit; `samples`: flow-history samples to wait for (one
    every 30 s, the first at start)."""
    with home_router(workdir, ipv6_only="1") as router:
        lab, socket = router.lab, str(router.options["control_socket"])
        mapped = {name: router.resolve(lab.lan, name)[0] for name in (*NAMES, V6ONLY)}
        call(socket, "add", STATIC)
        with contextlib.ExitStack() as flows:
            flows.enter_context(lab.flow(lab.lan, mapped[NAMES[0]]))
            flows.enter_context(lab.flow(lab.lan, IPV4_ONLY_SERVER))

            def sampled() -> bool:
                return len(call(socket, "history")["points"]) >= samples

            router.wait(sampled, f"{samples} flow-history samples", timeout=30 * samples + 15)
            with Bridge(socket, uci_file=router.config).serving() as bridge:
                yield Scene(router, bridge, mapped)
