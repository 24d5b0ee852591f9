"""apk v3 packages (the ADB format of apk-tools 3, OpenWrt 25.12's package manager): the format's
layout and a writer for openwrt/apk.py, small and of this project (adb_reader.py reads them).

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
SPECIAL, INT, INT32, INT64 = 0x0, 0x1, 0x2, 0x3
BLOB8, BLOB16, BLOB32, ARRAY, OBJECT = 0x8, 0x9, 0xA, 0xD, 0xE
NULL = 0
VALUE_MASK = 0x0FFFFFFF
# blocks (adb.h ADB_BLOCK_*)
BLOCK_ADB, BLOCK_SIG, BLOCK_DATA, BLOCK_EXT = 0, 1, 2, 3
ALIGN = 8
MAGIC = b"ADB."
SCHEMA_PACKAGE = b"pckg"  # apk_adb.h ADB_SCHEMA_PACKAGE, little-endian
IDENTITY_LEN = 20  # app_mkpkg.c: the package's unique id is a SHA-1 sized prefix of a sha256


def _names(words: str) -> tuple[str, ...]:
    return tuple(words.split())


# field numbers, from 1 (apk_adb.h ADBI_*), in each schema's order
PKG_FIELDS = ("info", "paths", "scripts", "triggers", "replaces-priority")
INFO_FIELDS = _names(
    "name version hashes description arch license origin maintainer url repo-commit build-time"
    " installed-size file-size provider-priority depends provides replaces install-if recommends"
    " layer tags"
)
INFO_INTS = {"build-time", "installed-size", "file-size", "provider-priority", "layer"}
INFO_DEPS = {"depends", "provides", "replaces", "install-if", "recommends"}
INFO_BYTES = {"hashes", "repo-commit"}
SCRIPTS = _names(
    "trigger pre-install post-install pre-deinstall post-deinstall pre-upgrade post-upgrade"
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
