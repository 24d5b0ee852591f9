"""apk v3 packages (the ADB format of apk-tools 3, OpenWrt 25.12's package manager): a writer
for openwrt/apk.py and a reader for the tests, both small and of this project.

Where the format is written down (apk-tools 3.0.x, read, not copied):
- doc/apk-v3.5.scd: values are 32-bit little-endian tags (4 bits of type, 28 of value or of
  offset into the ADB block), arrays and objects are slot vectors whose slot 0 is their length;
  a file is one ADB block, optional SIG blocks, then DATA blocks.
- src/adb.h: the type codes, block tags (2 bits of type, 30 of length including the tag, each
  block padded to 8 bytes), the file header "ADB." + schema, the ADB block's own header
  (compat version 0, version 0, root value).
- src/adb.c: how values are laid out (adb_w_blob: 1, 2 or 4 length bytes aligned to their size;
  adb_w_int: direct below 2**28, else 4 or 8 bytes aligned to 4; __adb_w_obj: trailing NULL
  slots dropped, an object of slot 0 alone is NULL); adb_c_block, adb_c_block_data.
- src/apk_adb.h, src/apk_adb.c: the package schema, its field numbers and kinds, and which
  arrays are kept sorted (paths, files, dependencies: adb_wa_sort, by name as bytes).
- src/app_mkpkg.c: what `apk mkpkg` writes (every directory of the tree with its ACL, files with
  their sha256, mtime SOURCE_DATE_EPOCH, installed-size the sum of file sizes, the package's
  identity the first 20 bytes of the sha256 of the ADB block written with zeros there, one DATA
  block per non-empty regular file headed by its path and file index).
- src/extract_v3.c: what `apk add` checks of DATA blocks (in path/file order, size, sha256).
- src/adb_comp.c, src/io_gunzip.c: "ADBd" then the rest as raw deflate (mkpkg's default).
No signature is written: OpenWrt's locally built packages install with --allow-untrusted.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# value types (adb.h ADB_TYPE_*, the high 4 bits of a value)
SPECIAL, INT, INT32, INT64, BLOB8, BLOB16, BLOB32, ARRAY, OBJECT = (
    0x0,
    0x1,
    0x2,
    0x3,
    0x8,
    0x9,
    0xA,
    0xD,
    0xE,
)
NULL = 0
VALUE_MASK = 0x0FFFFFFF
# blocks (adb.h ADB_BLOCK_*)
BLOCK_ADB, BLOCK_SIG, BLOCK_DATA, BLOCK_EXT = 0, 1, 2, 3
ALIGN = 8
MAGIC = b"ADB."
SCHEMA_PACKAGE = b"pckg"  # apk_adb.h ADB_SCHEMA_PACKAGE, little-endian
IDENTITY_LEN = 20  # app_mkpkg.c: the package's unique id is a SHA-1 sized prefix of a sha256

# field numbers, from 1 (apk_adb.h ADBI_*), in each schema's order
PKG_FIELDS = ("info", "paths", "scripts", "triggers", "replaces-priority")
INFO_FIELDS = (
    "name",
    "version",
    "hashes",
    "description",
    "arch",
    "license",
    "origin",
    "maintainer",
    "url",
    "repo-commit",
    "build-time",
    "installed-size",
    "file-size",
    "provider-priority",
    "depends",
    "provides",
    "replaces",
    "install-if",
    "recommends",
    "layer",
    "tags",
)
INFO_INTS = {"build-time", "installed-size", "file-size", "provider-priority", "layer"}
INFO_DEPS = {"depends", "provides", "replaces", "install-if", "recommends"}
INFO_BYTES = {"hashes", "repo-commit"}
SCRIPTS = (
    "trigger",
    "pre-install",
    "post-install",
    "pre-deinstall",
    "post-deinstall",
    "pre-upgrade",
    "post-upgrade",
)
ACL_FIELDS = ("mode", "user", "group", "xattrs")
FILE_FIELDS = ("name", "acl", "size", "mtime", "hash", "target")
DIR_FIELDS = ("name", "acl", "files")
DEP_FIELDS = ("name", "version", "match")
S_IFLNK = 0o120000

Info = Mapping[str, "str | int | bytes | list[str]"]


class FormatError(Exception):
    pass


@dataclass(frozen=True)
class Member:
    """A directory, regular file or symlink of a package; path relative, "" the root."""

    path: str
    kind: str  # "dir", "file" or "symlink"
    mode: int  # permission bits
    data: bytes = b""  # a file's content, a symlink's target
    mtime: int = 0
    user: str = "root"
    group: str = "root"


@dataclass(frozen=True)
class Package:
    info: dict[str, str | int | bytes | list[str]]
    scripts: dict[str, str]
    members: dict[str, Member]  # by path, in the package's order


def _val(kind: int, value: int) -> int:
    if value > VALUE_MASK:
        raise FormatError("the ADB block is larger than 256 MiB")
    return kind << 28 | value


def _slots(fields: Sequence[str], values: Mapping[str, int]) -> list[int]:
    unknown = set(values) - set(fields)
    if unknown:
        raise FormatError(f"no such fields: {sorted(unknown)}")
    return [0, *(values.get(name, NULL) for name in fields)]


# -- writer ------------------------------------------------------------------------------------


class _Adb:
    """The ADB block being written: its 8-byte header, then the values as they are added."""

    def __init__(self) -> None:
        self.buf = bytearray(8)

    def put(self, data: bytes, align: int) -> int:
        self.buf += bytes(-len(self.buf) % align)
        offset = len(self.buf)
        self.buf += data
        return offset

    def blob(self, data: bytes) -> int:
        size = len(data)
        if size == 0:
            return NULL
        if size <= 0xFF:
            return _val(BLOB8, self.put(struct.pack("<B", size) + data, 1))
        if size <= 0xFFFF:
            return _val(BLOB16, self.put(struct.pack("<H", size) + data, 2))
        return _val(BLOB32, self.put(struct.pack("<I", size) + data, 4))

    def integer(self, number: int) -> int:
        if number < 0x10000000:
            return _val(INT, number)
        if number < 1 << 32:
            return _val(INT32, self.put(struct.pack("<I", number), 4))
        return _val(INT64, self.put(struct.pack("<Q", number), 4))

    def vector(self, kind: int, slots: list[int]) -> int:
        while len(slots) > 1 and slots[-1] == NULL:
            slots.pop()
        if len(slots) == 1:
            return NULL
        slots[0] = len(slots)
        return _val(kind, self.put(struct.pack(f"<{len(slots)}I", *slots), 4))

    def obj(self, fields: Sequence[str], values: Mapping[str, int]) -> int:
        return self.vector(OBJECT, _slots(fields, values))

    def array(self, items: list[int]) -> int:
        return self.vector(ARRAY, [0, *items])

    def acl(self, m: Member) -> int:
        values = {"mode": self.integer(m.mode), "user": self.blob(m.user.encode())}
        return self.obj(ACL_FIELDS, {**values, "group": self.blob(m.group.encode())})

    def deps(self, items: list[str]) -> int:
        """Sorted by name and without repeats (schema_dependency_array: adb_wa_sort_unique);
        "name" or "name=version" only."""
        objs = []
        for item in sorted(set(items), key=str.encode):
            name, _, version = item.partition("=")
            values = {"name": self.blob(name.encode()), "version": self.blob(version.encode())}
            objs.append(self.obj(DEP_FIELDS, values))
        return self.array(objs)


def _block(kind: int, payload: bytes) -> bytes:
    if len(payload) > 0x3FFFFFFF - 4:
        raise FormatError("a block of 1 GiB or more needs the extended header")
    head = struct.pack("<I", kind << 30 | (4 + len(payload)))
    return head + payload + bytes(-(4 + len(payload)) % ALIGN)


def _layout(members: Sequence[Member]) -> list[tuple[Member, list[Member]]]:
    """Each directory with its files and symlinks, both sorted by name as bytes (adb_wa_sort on
    schema_dir_array and schema_file_array); every directory, the root first (mkpkg's default
    --compat keeps even empty ones)."""
    dirs = {m.path: m for m in members if m.kind == "dir"}
    if "" not in dirs:
        raise FormatError("the package has no root directory")
    files: dict[str, list[Member]] = {path: [] for path in dirs}
    for m in members:
        if m.kind in ("file", "symlink"):
            parent = m.path.rpartition("/")[0]
            if parent not in files:
                raise FormatError(f"{m.path}: its directory is not in the package")
            files[parent].append(m)
        elif m.kind != "dir":
            raise FormatError(f"{m.path}: cannot package a {m.kind}")
    order = sorted(dirs, key=str.encode)
    return [(dirs[d], sorted(files[d], key=lambda f: f.path.encode())) for d in order]


def write_package(info: Info, scripts: Mapping[str, str], members: Sequence[Member]) -> bytes:
    """The .apk: info's fields by their schema names (installed-size and the identity are
    computed here), scripts by their apk names."""
    adb = _Adb()
    paths: list[int] = []
    data: list[bytes] = []
    installed = 0
    for dir_index, (d, entries) in enumerate(_layout(members), start=1):
        objs = []
        for file_index, f in enumerate(entries, start=1):
            base = f.path.rpartition("/")[2].encode()
            values = {"name": adb.blob(base), "acl": adb.acl(f), "mtime": adb.integer(f.mtime)}
            if f.kind == "symlink":
                target = struct.pack("<H", S_IFLNK) + f.data
                values |= {"size": adb.integer(len(f.data)), "target": adb.blob(target)}
            else:
                values |= {"size": adb.integer(len(f.data))}
                values |= {"hash": adb.blob(hashlib.sha256(f.data).digest())}
                installed += len(f.data)
                if f.data:
                    data.append(struct.pack("<II", dir_index, file_index) + f.data)
            objs.append(adb.obj(FILE_FIELDS, values))
        values = {"name": adb.blob(d.path.encode()), "acl": adb.acl(d), "files": adb.array(objs)}
        paths.append(adb.obj(DIR_FIELDS, values))
    if any(scripts.values()):
        installed = max(installed, 1)
    fields: dict[str, int] = {}
    for name, value in info.items():
        if name in ("installed-size", "hashes"):
            raise FormatError(f"{name} is computed, not given")
        if name in INFO_DEPS and isinstance(value, list):
            fields[name] = adb.deps(value)
        elif name in INFO_INTS and isinstance(value, int):
            fields[name] = adb.integer(value)
        elif isinstance(value, str) and name in INFO_FIELDS and name not in INFO_INTS:
            fields[name] = adb.blob(value.encode())
        else:
            raise FormatError(f"info field {name}: {value!r} is not of its kind")
    fields["installed-size"] = adb.integer(installed)
    # written on its own, never shared, so that it can be filled in below
    identity = adb.put(bytes([IDENTITY_LEN]) + bytes(IDENTITY_LEN), 1)
    fields["hashes"] = _val(BLOB8, identity)
    script_values = {k: adb.blob(v.encode()) for k, v in scripts.items()}
    root = {"info": adb.obj(INFO_FIELDS, fields), "paths": adb.array(paths)}
    root["scripts"] = adb.obj(SCRIPTS, script_values)
    adb.buf[4:8] = struct.pack("<I", adb.obj(PKG_FIELDS, root))
    digest = hashlib.sha256(adb.buf).digest()[:IDENTITY_LEN]
    adb.buf[identity + 1 : identity + 1 + IDENTITY_LEN] = digest
    stream = MAGIC + SCHEMA_PACKAGE + _block(BLOCK_ADB, bytes(adb.buf))
    stream += b"".join(_block(BLOCK_DATA, d) for d in data)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    return b"ADBd" + deflate.compress(stream) + deflate.flush()


# -- reader ------------------------------------------------------------------------------------


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
