"""Unpack a package's data tar into a directory, as opkg puts it on a router.

Python's own safe extraction (``TarFile.extractall(filter="data")``) came in 3.11.4, and
Debian 12 has 3.11.2; this is what that filter does, for the members a package has: files,
directories and symlinks, each kept inside the destination (no absolute names, no ``..``, no
link leading out), without set-id bits or group/other write, owned by whoever unpacks.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path


class UnsafeMemberError(ValueError):
    """A member that would land outside the destination, or of a kind a package never has."""


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root + os.sep)


def unpack(tar: tarfile.TarFile, dest: Path) -> None:
    """Every member of ``tar`` under ``dest`` (created if missing)."""
    root = os.path.realpath(dest)
    os.makedirs(root, exist_ok=True)
    dirs: list[tuple[str, int]] = []
    for member in tar.getmembers():
        path = os.path.normpath(os.path.join(root, member.name))
        if os.path.isabs(member.name) or not _inside(root, path):
            raise UnsafeMemberError(f"{member.name}: outside the destination")
        mode = member.mode & 0o755  # what the "data" filter keeps
        if member.isdir():
            os.makedirs(path, exist_ok=True)
            dirs.append((path, mode))
        elif member.isfile():
            source = tar.extractfile(member)
            assert source is not None
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with source, open(path, "wb") as out:
                out.write(source.read())
            os.chmod(path, mode)
        elif member.issym():
            link = os.path.normpath(os.path.join(os.path.dirname(path), member.linkname))
            if os.path.isabs(member.linkname) or not _inside(root, link):
                raise UnsafeMemberError(f"{member.name}: links outside the destination")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.symlink(member.linkname, path)
        else:
            raise UnsafeMemberError(f"{member.name}: not a file, directory or symlink")
    for path, mode in reversed(dirs):  # last, so a read-only directory was still writable
        os.chmod(path, mode)
