"""tests/openwrtkit/ipk.py: a package's data unpacked as tarfile's "data" filter would (which
Debian 12's Python 3.11.2 lacks): kept inside the destination, modes without set-id bits."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from tests.openwrtkit.ipk import UnsafeMemberError, unpack


def archive(*members: tuple[str, bytes, int, bytes | str]) -> tarfile.TarFile:
    """(name, kind, mode, body or link target) each; kind is tarfile's type byte."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, kind, mode, body in members:
            info = tarfile.TarInfo(name)
            info.type, info.mode = kind, mode
            if kind == tarfile.SYMTYPE:
                assert isinstance(body, str)
                info.linkname = body
                tar.addfile(info)
            elif kind == tarfile.REGTYPE:
                assert isinstance(body, bytes)
                info.size = len(body)
                tar.addfile(info, io.BytesIO(body))
            else:
                tar.addfile(info)
    raw.seek(0)
    return tarfile.open(fileobj=raw, mode="r")


def test_files_directories_and_links_with_their_modes(tmp_path: Path) -> None:
    tar = archive(
        ("./", tarfile.DIRTYPE, 0o755, b""),
        ("./usr/bin/", tarfile.DIRTYPE, 0o775, b""),
        ("./usr/bin/tool", tarfile.REGTYPE, 0o4777, b"#!/bin/sh\n"),
        ("./usr/bin/alias", tarfile.SYMTYPE, 0o777, "tool"),
        ("./etc/config/x", tarfile.REGTYPE, 0o644, b"config x\n"),
    )
    unpack(tar, tmp_path / "root")
    root = tmp_path / "root"
    assert (root / "usr/bin/tool").read_bytes() == b"#!/bin/sh\n"
    assert (root / "usr/bin/tool").stat().st_mode & 0o7777 == 0o755  # no setuid, no o+w
    assert (root / "usr/bin").stat().st_mode & 0o7777 == 0o755
    assert os.readlink(root / "usr/bin/alias") == "tool"
    assert (root / "etc/config/x").stat().st_mode & 0o7777 == 0o644


@pytest.mark.parametrize(
    "member",
    [
        ("../escape", tarfile.REGTYPE, 0o644, b"x"),
        ("./a/../../escape", tarfile.REGTYPE, 0o644, b"x"),
        ("/etc/passwd", tarfile.REGTYPE, 0o644, b"x"),
        ("./link", tarfile.SYMTYPE, 0o777, "/etc/passwd"),
        ("./link", tarfile.SYMTYPE, 0o777, "../../outside"),
        ("./dev", tarfile.CHRTYPE, 0o644, b""),
    ],
)
def test_refuses_what_leaves_the_destination(
    tmp_path: Path, member: tuple[str, bytes, int, bytes | str]
) -> None:
    with pytest.raises(UnsafeMemberError):
        unpack(archive(member), tmp_path / "root")
    assert not (tmp_path / "escape").exists()
    assert not (tmp_path / "root" / "link").exists()
