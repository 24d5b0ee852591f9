"""A reader of apk v3 packages (openwrt/adb.py writes them; its docstring names where the format
is written down), for the tests: every value read with its bounds checked, and every rule apk's
extraction applies to a package (src/extract_v3.c) checked, plus the identity mkpkg writes.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from adb import (
    ACL_FIELDS,
    ALIGN,
    ARRAY,
    BLOB8,
    BLOB16,
    BLOB32,
    BLOCK_ADB,
    BLOCK_DATA,
    BLOCK_EXT,
    BLOCK_SIG,
    DEP_FIELDS,
    DIR_FIELDS,
    FILE_FIELDS,
    INFO_BYTES,
    INFO_DEPS,
    INFO_FIELDS,
    INFO_INTS,
    INT,
    INT32,
    INT64,
    MAGIC,
    NULL,
    OBJECT,
    PKG_FIELDS,
    S_IFLNK,
    SCHEMA_PACKAGE,
    SCRIPTS,
    VALUE_MASK,
    FormatError,
    Member,
)


@dataclass(frozen=True)
class Package:
    info: dict[str, str | int | bytes | list[str]]
    scripts: dict[str, str]
    members: dict[str, Member]  # by path, in the package's order


class _View:
    """Values of one ADB block, each read with its bounds checked."""

    def __init__(self, buf: bytes) -> None:
        self.buf = buf

    def _at(self, offset: int, size: int) -> bytes:
        if offset + size > len(self.buf):
            raise FormatError(f"value at {offset} runs past the ADB block")
        return self.buf[offset : offset + size]

    def blob(self, v: int) -> bytes:
        kind, offset = v >> 28, v & VALUE_MASK
        if v == NULL:
            return b""
        width = {BLOB8: 1, BLOB16: 2, BLOB32: 4}.get(kind)
        if width is None:
            raise FormatError(f"value {v:#x} is not a blob")
        size = int.from_bytes(self._at(offset, width), "little")
        return self._at(offset + width, size)

    def integer(self, v: int) -> int:
        kind, value = v >> 28, v & VALUE_MASK
        if v == NULL or kind == INT:
            return value
        if kind in (INT32, INT64):
            return int.from_bytes(self._at(value, 4 if kind == INT32 else 8), "little")
        raise FormatError(f"value {v:#x} is not an integer")

    def vector(self, v: int) -> list[int]:
        """Slots 1.. of an array or object (a NULL one is empty).  Either tag for either, as
        adb_r_obj reads them: mkpkg writes its arrays through adb_w_obj, tagged as objects."""
        if v == NULL:
            return []
        if v >> 28 not in (ARRAY, OBJECT):
            raise FormatError(f"value {v:#x} is neither an array nor an object")
        offset = v & VALUE_MASK
        count = struct.unpack("<I", self._at(offset, 4))[0]
        if count == 0:
            raise FormatError(f"vector at {offset} without slots")
        return list(struct.unpack(f"<{count}I", self._at(offset, 4 * count)))[1:]

    def obj(self, v: int, fields: Sequence[str]) -> dict[str, int]:
        slots = self.vector(v)
        if len(slots) > len(fields):
            raise FormatError(f"object with {len(slots)} slots, its schema has {len(fields)}")
        return {name: s for name, s in zip(fields, slots, strict=False) if s != NULL}

    def text(self, v: int) -> str:
        return self.blob(v).decode()

    def deps(self, v: int) -> list[str]:
        out = []
        for item in self.vector(v):
            dep = self.obj(item, DEP_FIELDS)
            if "match" in dep:
                raise FormatError("dependencies with a version match are not read here")
            version = self.text(dep.get("version", NULL))
            out.append(self.text(dep.get("name", NULL)) + (f"={version}" if version else ""))
        return out

    def acl(self, v: int) -> tuple[int, str, str]:
        acl = self.obj(v, ACL_FIELDS)
        if "xattrs" in acl:
            raise FormatError("extended attributes are not read here")
        user, group = self.text(acl.get("user", NULL)), self.text(acl.get("group", NULL))
        return self.integer(acl.get("mode", NULL)), user, group


def _blocks(stream: bytes) -> list[tuple[int, bytes]]:
    out, pos = [], 8
    while pos < len(stream):
        if pos + 4 > len(stream):
            raise FormatError("a block header runs past the end")
        tag = struct.unpack_from("<I", stream, pos)[0]
        kind, raw = tag >> 30, tag & 0x3FFFFFFF
        if kind == BLOCK_EXT:
            raise FormatError("extended blocks are not read here")
        if raw < 4 or pos + raw + (-raw % ALIGN) > len(stream):
            raise FormatError(f"block at {pos} of length {raw} does not fit")
        out.append((kind, stream[pos + 4 : pos + raw]))
        pos += raw + (-raw % ALIGN)
    return out


def decompress(apk: bytes) -> bytes:
    if apk[:4] == MAGIC:
        return apk
    if apk[:4] != b"ADBd":
        raise FormatError(f"not an apk v3 package: starts with {apk[:4]!r}")
    inflate = zlib.decompressobj(-15)
    stream = inflate.decompress(apk[4:]) + inflate.flush()
    if not inflate.eof or inflate.unused_data:
        raise FormatError("the deflate stream is cut short or followed by other data")
    return stream


def _read_info(view: _View, v: int) -> dict[str, str | int | bytes | list[str]]:
    info: dict[str, str | int | bytes | list[str]] = {}
    for name, slot in view.obj(v, INFO_FIELDS).items():
        if name in INFO_INTS:
            info[name] = view.integer(slot)
        elif name in INFO_DEPS:
            info[name] = view.deps(slot)
        elif name in INFO_BYTES:
            info[name] = view.blob(slot)
        elif name == "tags":
            info[name] = [view.text(t) for t in view.vector(slot)]
        else:
            info[name] = view.text(slot)
    return info


_Expected = tuple[int, int, str, int, bytes]  # path and file index, path, size, sha256


def _read_paths(view: _View, v: int) -> tuple[dict[str, Member], list[_Expected]]:
    """The members, and the non-empty files whose DATA blocks must follow, in order."""
    members: dict[str, Member] = {}
    expected: list[_Expected] = []
    for di, dv in enumerate(view.vector(v), start=1):
        d = view.obj(dv, DIR_FIELDS)
        dirname = view.text(d.get("name", NULL))
        mode, user, group = view.acl(d.get("acl", NULL))
        members[dirname] = Member(dirname, "dir", mode, user=user, group=group)
        for fi, fv in enumerate(view.vector(d.get("files", NULL)), start=1):
            f = view.obj(fv, FILE_FIELDS)
            path = f"{dirname}/{view.text(f.get('name', NULL))}".lstrip("/")
            mode, user, group = view.acl(f.get("acl", NULL))
            size, mtime = view.integer(f.get("size", NULL)), view.integer(f.get("mtime", NULL))
            target = view.blob(f.get("target", NULL))
            if target:
                if struct.unpack_from("<H", target)[0] != S_IFLNK:
                    raise FormatError(f"{path}: only symlinks are read as targets here")
                members[path] = Member(path, "symlink", mode, target[2:], mtime, user, group)
                continue
            digest = view.blob(f.get("hash", NULL))
            if len(digest) != 32:
                raise FormatError(f"{path}: a file needs its sha256")
            members[path] = Member(path, "file", mode, b"", mtime, user, group)
            if size:
                expected.append((di, fi, path, size, digest))
            elif digest != hashlib.sha256(b"").digest():
                raise FormatError(f"{path}: empty, but its hash is not the empty one")
    return members, expected


def _read_data(members: dict[str, Member], expected: list[_Expected], datas: list[bytes]) -> None:
    """Each DATA block for the next non-empty file, of its size and sha256 (extract_v3.c)."""
    if len(datas) != len(expected):
        raise FormatError(f"{len(datas)} data blocks for {len(expected)} non-empty files")
    for payload, (di, fi, path, size, digest) in zip(datas, expected, strict=True):
        if struct.unpack_from("<II", payload) != (di, fi) or len(payload) - 8 != size:
            raise FormatError(f"{path}: data block out of order or of the wrong size")
        body = payload[8:]
        if hashlib.sha256(body).digest() != digest:
            raise FormatError(f"{path}: content does not match its sha256")
        m = members[path]
        members[path] = Member(path, "file", m.mode, body, m.mtime, m.user, m.group)


def _check_identity(view: _View, info_value: int, identity: bytes) -> None:
    """mkpkg's identity: the sha256 of the ADB block with zeros in its place, cut short."""
    start = view.vector(info_value)[INFO_FIELDS.index("hashes")] & VALUE_MASK
    zeroed = bytearray(view.buf)
    zeroed[start + 1 : start + 1 + len(identity)] = bytes(len(identity))
    if hashlib.sha256(zeroed).digest()[: len(identity)] != identity:
        raise FormatError("the package identity is not the sha256 of its ADB block")


def read_package(apk: bytes) -> Package:
    """The package, with every rule apk's extraction applies to it checked (DATA blocks in path
    and file order, each with its file's size and sha256), and the identity mkpkg writes."""
    stream = decompress(apk)
    if stream[:4] != MAGIC or stream[4:8] != SCHEMA_PACKAGE:
        raise FormatError(f"not a package ADB: {stream[:8]!r}")
    blocks = _blocks(stream)
    kinds = [k for k, _ in blocks]
    if not kinds or kinds[0] != BLOCK_ADB or BLOCK_ADB in kinds[1:]:
        raise FormatError("an ADB file starts with its one ADB block")
    if kinds[1:] != sorted(kinds[1:]) or not set(kinds[1:]) <= {BLOCK_SIG, BLOCK_DATA}:
        raise FormatError("after the ADB block: signatures, then data")
    buf = blocks[0][1]
    if len(buf) < 8 or buf[0] != 0:
        raise FormatError("ADB block header: compat version must be 0")
    view = _View(buf)
    root = view.obj(struct.unpack_from("<I", buf, 4)[0], PKG_FIELDS)
    info = _read_info(view, root.get("info", NULL))
    scripts = {k: view.text(v) for k, v in view.obj(root.get("scripts", NULL), SCRIPTS).items()}
    members, expected = _read_paths(view, root.get("paths", NULL))
    _read_data(members, expected, [payload for kind, payload in blocks if kind == BLOCK_DATA])
    identity = info.get("hashes", b"")
    if isinstance(identity, bytes) and identity:
        _check_identity(view, root["info"], identity)
    return Package(info, scripts, members)
