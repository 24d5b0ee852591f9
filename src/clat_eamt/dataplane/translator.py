"""Running the tools the dataplane drives, and the interface of an EAM translator (Jool).

An EAM translator holds entries P <-> X (RFC 7757): P a pool prefix of the router, X the real
IPv6 prefix, of equal suffix length.  Only Jool in netfilter mode is driven that way (the IPv6
leg of a mapping cannot be an nft element there, ``kernel``); the daemon owns exactly the
entries whose IPv4 side lies in its pool and never touches entries outside it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network
from typing import Protocol

EamTable = dict[IPv4Network, IPv6Network]  # P -> X


class TranslatorError(Exception):
    """The translator refused or failed; the message says what it said."""


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str
    stderr: str


class Runner(Protocol):
    """Runs argv (with ``input`` on its stdin) and returns its result.  The real one is
    ``run_command``; tests of backends that cannot run on these machines (Jool's kernel module)
    pass one that answers in the tool's documented output formats."""

    def __call__(
        self, argv: Sequence[str], input: str | None = None
    ) -> Awaitable[CommandResult]: ...


async def run_command(
    argv: Sequence[str], input: str | None = None, timeout: float = 10.0
) -> CommandResult:
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as error:
        raise TranslatorError(f"{argv[0]}: {error.strerror or error}") from None
    data = input.encode() if input is not None else None
    try:
        out, err = await asyncio.wait_for(process.communicate(data), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise TranslatorError(f"{argv[0]}: no result in {timeout:.0f} s") from None
    return CommandResult(
        process.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")
    )


class Translator(Protocol):
    name: str

    async def start(self) -> None:
        """Make the translator run (or find it running); TranslatorError if it cannot."""

    async def entries(self) -> EamTable:
        """The EAM entries it holds now inside the daemon's pool (for reconciliation)."""

    async def apply(
        self, ensure: Mapping[IPv4Network, IPv6Network], remove: Iterable[IPv4Network]
    ) -> None:
        """Add or change ``ensure`` entries and delete ``remove`` ones, as one batch."""

    async def stop(self, clean: bool) -> None:
        """Stop driving it; with ``clean`` also remove every entry the daemon put there."""

    def problem(self) -> str | None:
        """Why it cannot translate now (its process died), None when it looks fine.  Cheap and
        without I/O beyond /proc: the daemon asks every tick and restarts it when it says so."""
