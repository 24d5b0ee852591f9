"""tayga as the CLAT, run by the daemon (SPEC sections 5 and 7).

tayga is a user-space SIIT: the LAN's IPv4 is NAT44ed to ``clat_ipv4`` and routed into the tun,
where tayga turns it into IPv6 from ``clat_ipv6`` to Pref64::D, or, for a destination DNATed to
a pool address P, to the real X of its ``map P X`` line (an RFC 7757 EAM entry; tayga looks maps
up before the prefix).  Facts measured on tayga 0.9.2 (SPEC 7) shape this module:

- maps change only by a restart (SIGHUP makes 0.9.2 exit).  With the persistent tun made by
  ``--mktun`` a restart takes 10-16 ms and established TCP survives it.  Whether the installed
  tayga instead reloads its configuration on SIGHUP is detected once, by sending one and seeing
  whether it survives; it is never assumed.
- the tun must carry all IPv4 and the CLAT's own IPv6 addresses; a mapped destination IPv6 must
  never be routed into it (it would loop).
- tayga runs in a session of its own with a pid file, so a crashed or restarted daemon finds it
  running (flows keep going) and adopts it and its maps from the configuration file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path

from clat_eamt.dataplane.translator import EamTable, TranslatorError, run_command

log = logging.getLogger(__name__)
_STOP_WAIT = 2.0
_SIGHUP_PROBE = 0.2


@dataclass(frozen=True)
class TaygaSettings:
    tun: str
    tayga_ipv4: IPv4Address
    prefix: IPv6Network  # the Pref64
    clat_ipv4: IPv4Address
    clat_ipv6: IPv6Address
    tayga_ipv6: IPv6Address | None = None


def render_config(settings: TaygaSettings, maps: Mapping[IPv4Network, IPv6Network]) -> str:
    lines = [
        "# written by clat-eamt; changes are overwritten",
        f"tun-device {settings.tun}",
        f"ipv4-addr {settings.tayga_ipv4}",
        f"prefix {settings.prefix}",
    ]
    if settings.tayga_ipv6 is not None:
        lines.append(f"ipv6-addr {settings.tayga_ipv6}")
    lines.append(f"map {settings.clat_ipv4} {settings.clat_ipv6}")
    for pool, ipv6 in sorted(maps.items()):
        for p, x in zip(pool, ipv6, strict=False):  # tayga maps single addresses
            lines.append(f"map {p} {x}")
    return "\n".join(lines) + "\n"


def parse_maps(text: str, pool: IPv4Network) -> EamTable:
    """The ``map`` lines of a tayga configuration that lie in ``pool`` (ours), as /32 -> /128."""
    found: EamTable = {}
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) == 3 and words[0] == "map":
            try:
                p, x = IPv4Network(words[1]), IPv6Network(words[2])
            except ValueError:
                continue
            if p.subnet_of(pool):
                found[p] = x
    return found


class Tayga:
    name = "tayga"

    def __init__(self, settings: TaygaSettings, pool: IPv4Network, state_dir: str) -> None:
        self.settings, self.pool = settings, pool
        self.dir = Path(state_dir)
        self.config = self.dir / "tayga.conf"
        self.pidfile = self.dir / "tayga.pid"
        self.maps: EamTable = {}
        self.reloads_on_sighup: bool | None = None  # None: not probed yet
        self.restarts = 0

    @property
    def capabilities(self) -> frozenset[str]:
        return frozenset({"live-update" if self.reloads_on_sighup else "restart"})

    # --- life ----------------------------------------------------------------------------------

    async def start(self) -> None:
        import shutil  # noqa: PLC0415  (only here: it loads the compression modules)

        if shutil.which("tayga") is None and not Path("/usr/sbin/tayga").exists():
            raise TranslatorError("tayga is not installed (opkg install tayga)")
        self.dir.mkdir(parents=True, exist_ok=True)
        if self._running_pid() is not None and self.config.exists():
            self.maps = parse_maps(self.config.read_text(), self.pool)
            log.info("adopted running tayga with %d maps", len(self.maps))
        else:
            self._write()
            await self._tun()
            await self._spawn()
        await self._routes()
        if self.reloads_on_sighup is None:
            await self._probe_sighup()

    async def entries(self) -> EamTable:
        return dict(self.maps)

    async def apply(
        self, ensure: Mapping[IPv4Network, IPv6Network], remove: Iterable[IPv4Network]
    ) -> None:
        maps = dict(self.maps)
        for pool in remove:
            maps.pop(pool, None)
        for pool, ipv6 in ensure.items():
            if not pool.subnet_of(self.pool):
                raise ValueError(f"{pool} is outside the pool {self.pool}")
            maps[pool] = ipv6
        if maps == self.maps:
            return
        self.maps = maps
        self._write()
        await self._reload()

    async def stop(self, clean: bool) -> None:
        """Without ``clean`` tayga keeps running (it is the LAN's CLAT and running flows need
        their maps); with it, tayga, its tun and its routes go."""
        if not clean:
            return
        await self._kill()
        await self._ip("link", "delete", self.settings.tun, check=False)
        with contextlib.suppress(FileNotFoundError):
            self.config.unlink()

    def problem(self) -> str | None:
        if self._running_pid() is None:
            return f"tayga is not running (no live process in {self.pidfile})"
        return None

    # --- the process ---------------------------------------------------------------------------

    def _write(self) -> None:
        temporary = self.config.with_suffix(".new")
        temporary.write_text(render_config(self.settings, self.maps))
        os.replace(temporary, self.config)  # never a half-written file for tayga to read

    def _running_pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        return pid if cmdline and cmdline[0].endswith(b"tayga") else None

    async def _spawn(self) -> None:
        process = await asyncio.create_subprocess_exec(
            "tayga", "--nodetach", "-c", str(self.config),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,  # survives the daemon: the LAN's flows depend on it
        )  # fmt: skip
        self.pidfile.write_text(f"{process.pid}\n")
        await asyncio.sleep(0.005)
        if process.returncode is not None:
            raise TranslatorError(f"tayga exited at once ({process.returncode}); see its config")
        self.restarts += 1

    async def _kill(self) -> None:
        pid = self._running_pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        for _ in range(int(_STOP_WAIT / 0.005)):
            if self._running_pid() is None or not Path(f"/proc/{pid}").exists():
                break
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            await asyncio.sleep(0.005)

    async def _reload(self) -> None:
        pid = self._running_pid()
        if self.reloads_on_sighup and pid is not None:
            os.kill(pid, signal.SIGHUP)
            return
        await self._kill()
        await self._spawn()

    async def _probe_sighup(self) -> None:
        pid = self._running_pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGHUP)
        await asyncio.sleep(_SIGHUP_PROBE)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        self.reloads_on_sighup = self._running_pid() is not None and Path(f"/proc/{pid}").exists()
        log.info("tayga %s on SIGHUP", "reloads" if self.reloads_on_sighup else "exits")
        if not self.reloads_on_sighup:
            await self._spawn()

    # --- the tun and its routes ----------------------------------------------------------------

    async def _tun(self) -> None:
        result = await run_command(["tayga", "--mktun", "-c", str(self.config)])
        if result.returncode != 0:
            raise TranslatorError(
                f"tayga --mktun: {result.stderr.strip() or result.stdout.strip()}"
            )
        await self._ip("link", "set", self.settings.tun, "up")

    async def _routes(self) -> None:
        """All IPv4, and the CLAT's own IPv6 addresses, into the tun (SPEC 7)."""
        tun = self.settings.tun
        await self._ip("route", "replace", "default", "dev", tun)
        await self._ip("route", "replace", str(self.settings.tayga_ipv4), "dev", tun)
        for ipv6 in (self.settings.clat_ipv6, self.settings.tayga_ipv6):
            if ipv6 is not None:
                await self._ip("-6", "route", "replace", str(ipv6), "dev", tun)

    async def _ip(self, *args: str, check: bool = True) -> None:
        result = await run_command(["ip", *args])
        if check and result.returncode != 0:
            raise TranslatorError(f"ip {' '.join(args)}: {result.stderr.strip()}")
