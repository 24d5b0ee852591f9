"""tayga as the CLAT, run by the daemon (translator tayga; SPEC sections 5 and 7).

tayga is a user-space SIIT: the LAN's IPv4 is NAT44ed to ``clat_ipv4`` (the daemon's nft table
does it, ``nft.Steering.nat44``) and routed into the tun, where tayga turns it into IPv6 from
``clat_ipv6`` to Pref64::D.  Its configuration never changes per mapping (dataplane v2): the
pool has one static prefix ``map`` line into a /96 of the CLAT's /64 (RFC 7757 EAM),
because tayga refuses non-global IPv4 such as the private pool under 64:ff9b::/96 (RFC 6052
section 3.1, SPEC 7); every mapping is then nft elements only (``core.translation``).

- tayga runs in a session of its own with a pid file, so a crashed or restarted daemon finds it
  running with the same configuration and adopts it (flows keep going); a different
  configuration (options changed) restarts it once.
- the tun must carry all IPv4 and the CLAT's own IPv6 addresses; a mapped destination IPv6 must
  never be routed into it (it would loop).
- on stop it keeps running: it is the LAN's CLAT, and every IPv4 flow of the LAN goes through
  it; ``--clean-stop`` stops it and removes its tun and routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from clat_eamt.core.translation import PoolTranslation, tayga_pool_prefix
from clat_eamt.dataplane.process import TranslatorError, run_command

log = logging.getLogger(__name__)
_STOP_WAIT = 2.0


@dataclass(frozen=True)
class TaygaSettings:
    tun: str
    tayga_ipv4: IPv4Address
    prefix: IPv6Network  # the Pref64
    clat_ipv4: IPv4Address
    clat_ipv6: IPv6Address
    pool: IPv4Network
    tayga_ipv6: IPv6Address | None = None

    @property
    def translation(self) -> PoolTranslation:
        """T(P) for this tayga: the pool under its static map (module doc)."""
        return PoolTranslation(tayga_pool_prefix(self.clat_ipv6))


def _read(path: str) -> str | None:
    try:
        with open(path) as file:
            return file.read()
    except OSError:
        return None


def render_config(settings: TaygaSettings) -> str:
    """tayga's whole configuration: the same for the daemon's whole life."""
    [pool6] = settings.translation.of(settings.pool)
    lines = [
        "# written by clat-eamt; changes are overwritten",
        f"tun-device {settings.tun}",
        f"ipv4-addr {settings.tayga_ipv4}",
        f"prefix {settings.prefix}",
    ]
    if settings.tayga_ipv6 is not None:
        lines.append(f"ipv6-addr {settings.tayga_ipv6}")
    lines.append(f"map {settings.clat_ipv4} {settings.clat_ipv6}")
    lines.append(f"map {settings.pool} {pool6}")  # the pool, once (RFC 7757 prefix EAM)
    return "\n".join(lines) + "\n"


class Tayga:
    name = "tayga"

    def __init__(self, settings: TaygaSettings, state_dir: str) -> None:
        self.settings = settings
        self.dir = state_dir
        self.config = os.path.join(state_dir, "tayga.conf")
        self.pidfile = os.path.join(state_dir, "tayga.pid")
        self.restarts = 0

    # --- life ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Run tayga, or adopt the one a previous run left with this same configuration."""
        import shutil  # noqa: PLC0415  (only here: it loads the compression modules)

        if shutil.which("tayga") is None and not os.path.exists("/usr/sbin/tayga"):
            raise TranslatorError("tayga is not installed (opkg install tayga)")
        os.makedirs(self.dir, exist_ok=True)
        wanted = render_config(self.settings)
        running = self._running_pid() is not None
        if running and _read(self.config) == wanted:
            log.info("adopted the running tayga (pid %s)", self._running_pid())
        else:
            if running:
                log.info("restarting tayga: its configuration changed")
                await self._kill()
            self._write(wanted)
            await self._tun()
            await self._spawn()
        await self._routes()

    async def stop(self, clean: bool) -> None:
        """Without ``clean`` tayga keeps running: it is the LAN's CLAT (every IPv4 flow goes
        through it, native or not).  With it, tayga, its tun and its routes go."""
        if not clean:
            pid = self._running_pid()
            if pid is not None:
                log.info("tayga (pid %d) keeps running as the LAN's CLAT", pid)
            return
        await self._kill()
        await self._ip("link", "delete", self.settings.tun, check=False)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.config)
        log.info("tayga stopped, its tun %s removed", self.settings.tun)

    def problem(self) -> str | None:
        if self._running_pid() is None:
            return f"tayga is not running (no live process in {self.pidfile})"
        return None

    # --- the process ---------------------------------------------------------------------------

    def _write(self, text: str) -> None:
        temporary = self.config + ".new"
        with open(temporary, "w") as file:
            file.write(text)
        os.replace(temporary, self.config)  # never a half-written file for tayga to read

    def _running_pid(self) -> int | None:
        try:
            with open(self.pidfile) as file:
                pid = int(file.read().strip())
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                cmdline = file.read().split(b"\0")
        except (OSError, ValueError):
            return None
        return pid if cmdline and cmdline[0].endswith(b"tayga") else None

    async def _spawn(self) -> None:
        process = await asyncio.create_subprocess_exec(
            "tayga", "--nodetach", "-c", self.config,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,  # survives the daemon: the LAN's flows depend on it
        )  # fmt: skip
        with open(self.pidfile, "w") as file:
            file.write(f"{process.pid}\n")
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
            if self._running_pid() is None or not os.path.exists(f"/proc/{pid}"):
                break
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            await asyncio.sleep(0.005)

    # --- the tun and its routes ----------------------------------------------------------------

    async def _tun(self) -> None:
        result = await run_command(["tayga", "--mktun", "-c", self.config])
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
