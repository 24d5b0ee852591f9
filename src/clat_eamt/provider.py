"""The operator's table, the shell part: fetch it with the router's own fetcher and check its
signature with the router's own verifier, both as child processes, so the daemon loads no TLS
and no crypto module (``core.provider`` reads the table; ``runtime.provider`` decides).

- Fetcher: OpenWrt's ``uclient-fetch`` (openwrt/uclient, uclient-fetch.c), wget-compatible:
  ``-q -T SECONDS -O - [--ca-certificate=FILE] URL`` writes the body to stdout; certificates
  are checked unless ``--no-check-certificate`` (never given here); ``--ca-certificate``
  replaces the router's store (/etc/ssl/certs/*.crt) with that file.  Exit 0 done, 4
  connection failed or timed out, 5 the server's certificate is not trusted, 8 an HTTP error.
  At most ``MAX_TABLE_BYTES`` are read: a larger answer kills the fetch.
- Verifier: OpenWrt's ``usign`` (openwrt/usign, main.c ``verify``):
  ``usign -V -q -m TABLE -x SIG -p KEY`` exits 0 when SIG is an Ed25519 signature of TABLE by
  KEY (each file: an "untrusted comment:" line, then one base64 line), 1 otherwise; it reads
  the key given and does not compare the signature's key number with it, so the key number is
  compared here first (a table signed with another key is named so).  signify's format; why
  not verify Ed25519 in Python: no crypto code of our own, and the same check opkg trusts.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import os
from collections.abc import Sequence

from clat_eamt.core.provider import (
    MAX_TABLE_BYTES,
    ProviderTable,
    TableError,
    key_number,
    parse_steps,
)

FETCHER, VERIFIER = "uclient-fetch", "usign"
FETCH_TIMEOUT = 30  # seconds for one request (uclient-fetch -T), and a bit more in all
SIG_BYTES = 2 + 8 + 64  # 'Ed', the key number, the Ed25519 signature (usign main.c struct sig)
COMMENT = "untrusted comment: "
# uclient-fetch's exit statuses (uclient-fetch.c: handle_uclient_error, header_done_cb)
FETCH_EXIT = {
    4: "connection failed or timed out",
    5: "the server's certificate is not trusted (or names another host)",
    8: "the server answered with an HTTP error",
}


class ProviderError(Exception):
    """Why a table cannot be read or trusted (status shows it; nothing is changed)."""


async def fetch(url: str, ca: str = "", limit: int = MAX_TABLE_BYTES) -> bytes:
    """The body at ``url``, or ProviderError naming why not."""
    args = [FETCHER, "-q", "-T", str(FETCH_TIMEOUT), "-O", "-"]
    args += [f"--ca-certificate={ca}"] if ca else []
    return await _run([*args, url], url, limit)


async def _spawn(args: Sequence[str], stdout: int) -> asyncio.subprocess.Process:
    """A child process of the router's own tools (stderr piped), or ProviderError."""
    try:
        return await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.DEVNULL, stdout=stdout,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
    except OSError as error:
        raise ProviderError(f"cannot run {args[0]}: {error.strerror or error}") from None


async def _run(args: Sequence[str], url: str, limit: int) -> bytes:
    process = await _spawn(args, asyncio.subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    try:
        async with asyncio.timeout(FETCH_TIMEOUT + 5):
            chunks, size = [], 0
            while chunk := await process.stdout.read(65536):
                size += len(chunk)
                if size > limit:  # bounded: a table is read into memory
                    raise ProviderError(f"{url}: more than {limit} bytes; the table is not read")
                chunks.append(chunk)
            body = b"".join(chunks)
            said = (await process.stderr.read(2000)).decode(errors="replace").strip()
            status = await process.wait()
    except TimeoutError:
        raise ProviderError(f"{url}: no answer in {FETCH_TIMEOUT} s") from None
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    if status != 0:
        why = FETCH_EXIT.get(status, f"{args[0]} exited with {status}")
        raise ProviderError(f"{url}: {why}" + (f" ({said.splitlines()[-1]})" if said else ""))
    return body


def signature_of(text: str) -> bytes:
    """The signature in a .sig file's text (its comment line and base64 line, or the base64
    line alone), or ProviderError."""
    lines = [line.strip() for line in text.strip().splitlines()]
    if len(lines) == 2 and lines[0].startswith(COMMENT):
        lines = lines[1:]
    try:
        raw = base64.b64decode(lines[0], validate=True) if len(lines) == 1 else b""
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != SIG_BYTES or raw[:2] != b"Ed":
        raise ProviderError("the signature is not a usign signature (a .sig file's base64 line)")
    return raw


async def verify(data: bytes, signature: str, key: str) -> None:
    """Return when ``signature`` (a .sig file's text) is ``key``'s signature of ``data``, else
    ProviderError naming why (usign's verdict, or another key's number)."""
    raw = signature_of(signature)
    signed_by, wanted = raw[2:10].hex(), key_number(key)
    if signed_by != wanted:
        raise ProviderError(f"signed with key {signed_by}, not provider_key's {wanted}")
    sig_line = base64.b64encode(raw).decode()
    # tempfile would load shutil, bz2 and lzma into the daemon (test_cli): a directory of our own
    where = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"clat-eamt-{os.urandom(6).hex()}")
    os.mkdir(where, 0o700)
    files = {"table": data, "table.sig": f"{COMMENT}clat-eamt\n{sig_line}\n".encode(),
             "key.pub": f"{COMMENT}provider_key\n{key}\n".encode()}  # fmt: skip
    paths = [os.path.join(where, name) for name in files]
    try:
        for path, content in zip(paths, files.values(), strict=True):
            with open(path, "xb") as file:
                file.write(content)
        said, status = await _verdict([VERIFIER, "-V", "-q", "-m", paths[0], "-x", paths[1],
                                       "-p", paths[2]])  # fmt: skip
    finally:
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        os.rmdir(where)
    if status != 0:
        words = said.decode(errors="replace").strip()
        raise ProviderError("signature: verification failed" + (f" ({words})" if words else ""))


async def _verdict(args: list[str]) -> tuple[bytes, int]:
    """The verifier's words and exit status, or ProviderError when it cannot run."""
    process = await _spawn(args, asyncio.subprocess.DEVNULL)
    try:
        async with asyncio.timeout(FETCH_TIMEOUT):
            _, said = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise ProviderError(f"{args[0]} gave no verdict in {FETCH_TIMEOUT} s") from None
    return said, 1 if process.returncode is None else process.returncode


async def read_table(
    data: bytes, signature: str | None, key: str, max_entries: int
) -> ProviderTable:
    """A table as it came (fetched or pushed), checked against ``signature`` when ``key`` is
    set and read a slice of lines at a time (``parse_steps``: DNS goes on meanwhile; in a
    thread it waited for the GIL); ProviderError naming why it cannot be taken."""
    if key:
        if not signature:
            raise ProviderError("no signature, and provider_key is set: only signed tables")
        await verify(data, signature, key)
    steps = parse_steps(data, max_entries)
    try:
        while True:
            next(steps)
            await asyncio.sleep(0)  # DNS answers go between two slices of lines
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    except TableError as error:
        raise ProviderError(str(error)) from None


async def fetch_table(url: str, key: str, ca: str, max_entries: int) -> ProviderTable:
    """The table at ``url`` (its signature at ``url`` + ".sig" when ``key`` is set), read."""
    data = await fetch(url, ca)
    signature = None
    if key:
        try:
            signature = (await fetch(url + ".sig", ca, limit=4096)).decode(errors="replace")
        except ProviderError as error:
            raise ProviderError(f"no signature: {error}") from None
    return await read_table(data, signature, key, max_entries)
