"""Jool SIIT as the translator, driven through ``jool_siit`` (SPEC section 5).

Jool is a kernel module; its CLAT instance usually lives in a network namespace of its own
("node-based translation", https://nicmx.github.io/Jool/en/node-based-translation.html, and
OpenWrt's ``jool_clat`` netifd protocol), so with ``netns`` every command runs as
``ip netns exec NS jool_siit -i NAME ...``.  Facts from Jool 4.x's documentation and client
(usr-flags-eamt.md, the jool_siit(8) man page, src/usr/argp/wargp/eamt.c) shape this module:

- ``eamt add <IPv6 prefix> <IPv4 prefix>`` (the client tells the families apart by ':' and '.';
  the man page and the client's own usage put IPv6 first), ``eamt remove`` with either or both
  prefixes (with both, only the entry holding both goes), ``eamt display --csv`` prints
  ``IPv6 Prefix,IPv4 Prefix`` then one ``X/len,P/len`` line per entry (``--no-headers`` drops
  the header on newer clients; both forms are read).
- the kernel refuses an entry whose IPv4 or IPv6 prefix is already in another entry of the same
  length, even with ``--force``; so a changed entry (same P, new X) is removed, then added, and
  all removals of a batch go before its additions (an X moving from one P to another is free by
  then).  ``--force`` (overlap with a shorter foreign entry) is never passed: such an overlap
  changes how someone else's prefix translates, so it is reported instead.
- ``file handle`` (atomic configuration) is not used: it describes the whole instance, resets
  everything it omits to defaults and is "the same as dropping it and creating it anew"
  (config-atomic.md), so it would wipe entries, pool6 and globals that are not the daemon's.
  Per-entry commands touch exactly the entry they name.
- the instance is not created here: creating it (framework, pool6, namespace, veth, routes) is
  the network setup of the operator or of OpenWrt's jool package; ``start`` only checks that it
  is there, through ``-i NAME global display``, which the kernel answers for the current
  namespace only ("This namespace lacks an instance named 'NAME'.").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from ipaddress import IPv4Network, IPv6Network

from clat_eamt.dataplane.process import CommandResult, Runner, TranslatorError, run_command
from clat_eamt.dataplane.translator import EamTable

_NOT_FOUND = 127  # a shell's "command not found"


class JoolSiit:
    name = "jool"

    def __init__(
        self,
        instance: str,
        pool: IPv4Network,
        *,
        netns: str | None = None,
        runner: Runner = run_command,
        binary: str = "jool_siit",
    ) -> None:
        if not 0 < len(instance) <= 15 or not instance.isascii() or not instance.isprintable():
            raise ValueError(f"{instance!r}: a Jool instance name is 1-15 printable ASCII")
        self.instance, self.pool, self.netns = instance, pool, netns
        self.runner, self.binary = runner, binary

    async def start(self) -> None:
        await self._jool("global", "display", "--csv", what="checking the Jool instance")

    def problem(self) -> str | None:
        return None  # a kernel module has no process to die; each apply reports its errors

    async def entries(self) -> EamTable:
        out = await self._jool("eamt", "display", "--csv", what="reading the EAMT")
        return parse_eamt_csv(out, self.pool)

    async def apply(
        self, ensure: Mapping[IPv4Network, IPv6Network], remove: Iterable[IPv4Network]
    ) -> None:
        """Removals first, then additions; a P in both ends as ``ensure`` says.  Entries already
        as wanted, and removals of absent entries, issue nothing."""
        wanted, gone = dict(ensure), set(remove) - set(ensure)
        for p in gone:
            _check_pool(p, self.pool)
        for p, x in wanted.items():
            check_entry(p, x, self.pool)
        if wanted or gone:
            await self._execute(await self.entries(), wanted, gone)

    async def stop(self, clean: bool) -> None:
        """Without ``clean`` the entries stay (running flows need them); with it, every entry
        in the pool goes.  The instance itself is never removed (it is not the daemon's)."""
        if clean:
            current = await self.entries()
            await self._execute(current, {}, set(current))

    # --- internals -----------------------------------------------------------------------------

    async def _execute(
        self, current: EamTable, ensure: Mapping[IPv4Network, IPv6Network], remove: set[IPv4Network]
    ) -> None:
        gone = sorted(p for p in remove if p in current)
        gone += sorted(p for p, x in ensure.items() if p in current and current[p] != x)
        for p in gone:
            x = current[p]
            await self._jool("eamt", "remove", str(x), str(p), what=f"removing {p} <-> {x}")
        for p, x in sorted(ensure.items()):
            if current.get(p) != x:
                await self._jool("eamt", "add", str(x), str(p), what=f"adding {p} <-> {x}")

    def _argv(self, args: Sequence[str]) -> list[str]:
        base = [self.binary, "-i", self.instance, *args]
        return ["ip", "netns", "exec", self.netns, *base] if self.netns else base

    async def _jool(self, *args: str, what: str) -> str:
        argv = self._argv(args)
        try:
            result = await self.runner(argv)
        except FileNotFoundError:
            raise TranslatorError(self._missing(argv[0])) from None
        except TranslatorError as error:  # run_command's "NAME: No such file or directory"
            if "No such file" in str(error):
                raise TranslatorError(self._missing(argv[0])) from None
            raise TranslatorError(f"{what}: {error}") from None
        if result.returncode != 0:
            raise TranslatorError(self._explain(result, what))
        return result.stdout

    def _missing(self, program: str) -> str:
        if program == "ip":
            return "ip is not installed (ip netns needs iproute2; OpenWrt: opkg install ip-full)"
        return f"{program} is not installed (OpenWrt: opkg install jool-tools-netfilter)"

    def _explain(self, result: CommandResult, what: str) -> str:
        said = " ".join(result.stderr.split()) or f"exit status {result.returncode}"
        where = f"network namespace {self.netns}" if self.netns else "this network namespace"
        if result.returncode == _NOT_FOUND or (self.netns and "exec of" in said):
            return self._missing(self.binary)
        if "Cannot open network namespace" in said:
            return f"network namespace {self.netns} does not exist ({said})"
        if "hasn't been modprobed" in said:
            return (
                "Jool's kernel module is not loaded (modprobe jool_siit; OpenWrt: "
                f"kmod-jool-netfilter). {self.binary} said: {said}"
            )
        if "lacks an instance" in said:
            return (
                f"there is no Jool SIIT instance {self.instance!r} in {where}; create it first "
                f"(e.g. jool_siit instance add {self.instance} --netfilter --pool6 <Pref64>, or "
                f"OpenWrt's jool_clat interface). {self.binary} said: {said}"
            )
        return f"{what}: {said}"


def check_entry(p: IPv4Network, x: IPv6Network, pool: IPv4Network) -> None:
    """P inside the pool, X IPv6, both with the same suffix length (RFC 7757); else ValueError."""
    _check_pool(p, pool)
    if not isinstance(x, IPv6Network):
        raise ValueError(f"{x} is not an IPv6 prefix")
    if 32 - p.prefixlen != 128 - x.prefixlen:
        raise ValueError(f"{p} <-> {x}: the suffix lengths differ (RFC 7757 wants them equal)")


def _check_pool(p: IPv4Network, pool: IPv4Network) -> None:
    if not isinstance(p, IPv4Network) or not p.subnet_of(pool):
        raise ValueError(f"{p} is not inside the pool {pool}")


def parse_eamt_csv(text: str, pool: IPv4Network) -> EamTable:
    """``eamt display --csv`` (header or not) -> the entries whose IPv4 prefix is in ``pool``."""
    found: EamTable = {}
    for line in text.splitlines():
        fields = [field.strip() for field in line.split(",")]
        if fields in ([""], ["IPv6 Prefix", "IPv4 Prefix"]):
            continue
        try:
            x, p = IPv6Network(fields[0], strict=False), IPv4Network(fields[1], strict=False)
        except (IndexError, ValueError):
            raise TranslatorError(f"unexpected line in jool_siit eamt display: {line!r}") from None
        if p.subnet_of(pool):
            found[p] = x
    return found
