"""nftables commands in process, through libnftables (the library the `nft` binary is built on).

A mapping is two elements in one transaction; spawning `nft` for it costs about 4 ms here and a
process start on a router, the library call about 0.1 ms (SPEC 7, v2 facts).  OpenWrt's
`nftables` package installs libnftables.  Where the library is missing the `nft` binary is used
instead, and ``Nft.via`` says which one runs (status shows it).

A libnftables context talks to the kernel over the netlink socket it opens when it is made, and a
socket belongs to the network namespace it was made in: ``Nft(netns=...)`` makes the context in a
short-lived thread that entered that namespace (as ``netns.socket_in`` does), so a test can drive
a namespace of its own while the daemon itself simply runs where its router is.
"""

from __future__ import annotations

import ctypes
import threading

from clat_eamt.dataplane.netns import run_in
from clat_eamt.dataplane.process import run_command

_OUTPUT_JSON = 1 << 4  # NFT_CTX_OUTPUT_JSON in libnftables' <nftables/libnftables.h>


class NftError(Exception):
    """nft refused a batch; the message carries nft's own words."""


class _Library:
    """One libnftables context with buffered output and errors."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        for name in ("nft_ctx_buffer_output", "nft_ctx_buffer_error"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]
        for name in ("nft_ctx_get_output_buffer", "nft_ctx_get_error_buffer"):
            getattr(lib, name).restype = ctypes.c_char_p
            getattr(lib, name).argtypes = [ctypes.c_void_p]
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        self.lib = lib
        self.ctx = lib.nft_ctx_new(0)
        if not self.ctx:
            raise NftError("nft: libnftables could not make a context")
        lib.nft_ctx_buffer_output(self.ctx)
        lib.nft_ctx_buffer_error(self.ctx)
        self.lock = threading.Lock()  # a context is not for two threads at once

    def run(self, text: str, json: bool) -> str:
        with self.lock:
            self.lib.nft_ctx_output_set_flags(self.ctx, _OUTPUT_JSON if json else 0)
            status = self.lib.nft_run_cmd_from_buffer(self.ctx, text.encode())
            out = (self.lib.nft_ctx_get_output_buffer(self.ctx) or b"").decode(errors="replace")
            err = (self.lib.nft_ctx_get_error_buffer(self.ctx) or b"").decode(errors="replace")
        if status != 0:
            raise NftError(f"nft: {err.strip() or out.strip() or 'failed'}")
        return out

    def close(self) -> None:
        with self.lock:
            if self.ctx:
                self.lib.nft_ctx_free(self.ctx)
                self.ctx = None


def _load_library() -> ctypes.CDLL | None:
    """libnftables by its soname (what OpenWrt's and Debian's packages install), else where
    ``find_library`` looks: imported only then, since it loads shutil and with it bz2 and lzma
    (0.6 MB of the daemon's memory, issue 14) to search with ldconfig and gcc."""
    try:
        return ctypes.CDLL("libnftables.so.1")
    except OSError:
        pass
    from ctypes.util import find_library  # noqa: PLC0415

    name = find_library("nftables")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


class Nft:
    """Runs nft command text (a batch is atomic: all of it or nothing, nft's own rule)."""

    def __init__(
        self, netns: str | None = None, binary: str = "nft", use_library: bool = True
    ) -> None:
        lib = _load_library() if use_library else None
        self._lib = run_in(netns, lambda: _Library(lib)) if lib is not None else None
        self._argv = ["ip", "netns", "exec", netns, binary] if netns else [binary]
        self.via = "libnftables" if self._lib is not None else f"{binary} binary"

    async def run(self, text: str, json: bool = False) -> str:
        """nft's output for ``text`` (a script of commands, one per line)."""
        if not text:
            return ""
        if self._lib is not None:
            return self._lib.run(text, json)  # ~0.1 ms: no reason to leave the loop
        if json:  # nft 1.0.6 prints no JSON for commands read with -f: one command as words
            argv, stdin = [*self._argv, "-j", *text.split()], None
        else:
            argv, stdin = [*self._argv, "-f", "-"], text
        try:
            result = await run_command(argv, stdin)
        except Exception as error:  # the binary missing, or stuck
            raise NftError(f"nft: {error}") from None
        if result.returncode != 0:
            raise NftError(f"nft: {(result.stderr or result.stdout).strip()}")
        return result.stdout

    def close(self) -> None:
        if self._lib is not None:
            self._lib.close()
