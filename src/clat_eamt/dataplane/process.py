"""Running the tools the dataplane drives (tayga, jool_siit, nft, ip): argv in, result out.

``Runner`` is the seam: the real one is ``run_command``; tests of backends that cannot run on
these machines (Jool's kernel module) pass one that answers in the tool's documented output
formats.  A tool that cannot be started, or does not finish in time, is a ``TranslatorError``
(the name every dataplane backend's failure goes by in status).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Protocol


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
