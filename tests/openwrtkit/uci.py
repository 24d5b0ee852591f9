"""An emulation of OpenWrt's ``uci`` command line, for the throwaway root file systems of tests.

The real ``uci`` (libuci + cli.c) cannot be installed on Debian.  This emulates the subcommands
the package's scripts and tests use, with the semantics of libuci (openwrt/uci list.c, file.c,
cli.c) where the result is visible:

- ``get`` (a list prints its items separated by spaces; a section prints its type), ``show``,
  ``export``, ``changes``, ``set``, ``add_list``, ``del_list``, ``delete``, ``rename``, ``add``,
  ``commit``; flags ``-q`` (no error message), ``-X`` (real names in show), ``-c DIR``.
- Sections are addressed by name or as ``@type[N]`` (negative N counts from the end).
  Anonymous sections are named like libuci names them while parsing: ``cfg`` + the section's
  position (2 hex digits) + 4 hex digits of a djb hash of its type (so the first
  ``config dnsmasq`` of /etc/config/dhcp is ``cfg01411c``, as on every router).
- Changes are kept apart until ``commit`` (libuci's delta files in /tmp/.uci): ``get`` sees
  them, the file does not change.  Here the deltas are JSON lines in the save directory.
- ``set`` of an existing option replaces it at its place (also a list by a plain option),
  ``add_list`` onto a plain option makes a list at its place, ``delete`` and ``del_list``
  remove in place; new options go to the end of their section.
- ``commit`` writes what ``uci_export`` writes: for each section a blank line, then
  ``config TYPE 'NAME'`` (no name for anonymous sections), then tab-indented
  ``option NAME 'VALUE'`` / ``list NAME 'VALUE'`` lines; a blank line at the end; a ``'`` in
  a value written as ``'\\''``.  Comments are dropped, as libuci drops them.

Run as ``python uci.py --savedir DIR [-c CONFDIR] [-q] COMMAND ...`` (the root's ``/sbin/uci``
launcher passes the directories).
"""

from __future__ import annotations

import json
import os
import re
import sys

Value = str | list[str]


class Section:
    # A plain class, not a dataclass: every `uci` call is a process start, and importing
    # dataclasses (inspect, ast, ...) cost a third of it; the hook and rootfs tests make hundreds.
    __slots__ = ("anonymous", "name", "options", "type")

    def __init__(self, type: str, name: str, anonymous: bool) -> None:
        self.type, self.name, self.anonymous = type, name, anonymous
        self.options: dict[str, Value] = {}  # dicts keep insertion order


class UciError(Exception):
    pass


def djbhash(text: str, value: int = 5381) -> int:
    for char in text.encode():
        value = (value * 33 + char) & 0xFFFFFFFF
    return value & 0x7FFFFFFF


def words(line: str) -> list[str]:
    """Split one line as libuci's parser does: '...' literal, "..." and bare words with
    backslash escapes, adjacent pieces joined, # starts a comment between words."""
    out: list[str] = []
    i, n = 0, len(line)
    while i < n:
        if line[i] in " \t":
            i += 1
            continue
        if line[i] == "#":
            break
        word = []
        while i < n and line[i] not in " \t":
            char = line[i]
            if char == "'":
                end = line.index("'", i + 1)
                word.append(line[i + 1 : end])
                i = end + 1
            elif char == '"':
                i += 1
                while line[i] != '"':
                    if line[i] == "\\" and i + 1 < n:
                        i += 1
                    word.append(line[i])
                    i += 1
                i += 1
            elif char == "\\" and i + 1 < n:
                word.append(line[i + 1])
                i += 2
            else:
                word.append(char)
                i += 1
        out.append("".join(word))
    return out


def parse(text: str) -> list[Section]:
    sections: list[Section] = []
    for number, line in enumerate(text.splitlines(), 1):
        parts = words(line)
        if not parts or parts[0] == "package":
            continue
        if parts[0] == "config":
            kind = parts[1]
            if len(parts) > 2 and parts[2]:
                sections.append(Section(kind, parts[2], anonymous=False))
            else:
                name = f"cfg{len(sections) + 1:02x}{djbhash(kind) % 65536:04x}"
                sections.append(Section(kind, name, anonymous=True))
        elif parts[0] in ("option", "list") and sections and len(parts) >= 2:
            value = parts[2] if len(parts) > 2 else ""
            options = sections[-1].options
            if parts[0] == "option":
                options[parts[1]] = value
            else:
                old = options.get(parts[1])
                options[parts[1]] = [*(old if isinstance(old, list) else []), value]
        else:
            raise UciError(f"parse error at line {number}")
    return sections


def quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def export(sections: list[Section]) -> str:
    out = []
    for s in sections:
        out.append(f"\nconfig {s.type}" + ("" if s.anonymous else f" {quote(s.name)}") + "\n")
        for name, value in s.options.items():
            if isinstance(value, list):
                out += [f"\tlist {name} {quote(item)}\n" for item in value]
            else:
                out.append(f"\toption {name} {quote(value)}\n")
    return "".join(out) + "\n"


def replace_at(options: dict[str, Value], name: str, value: Value) -> None:
    """Put ``value`` at ``name``'s place (libuci allocates the new option after the old one
    and frees the old); a new option goes to the end."""
    if name not in options:
        options[name] = value
        return
    items = [(k, value if k == name else v) for k, v in options.items()]
    options.clear()
    options.update(items)


class Package:
    # os.path, not pathlib: a process start each call (see Section).
    def __init__(self, confdir: str, savedir: str, name: str) -> None:
        self.name, self.path = name, os.path.join(confdir, name)
        self.delta_path = os.path.join(savedir, name)
        try:
            with open(self.path) as f:
                self.sections = parse(f.read())
        except FileNotFoundError:
            raise UciError("Entry not found") from None
        for delta in self.read_deltas():
            self.apply(delta)

    def read_deltas(self) -> list[list[str]]:
        try:
            with open(self.delta_path) as f:
                return [json.loads(line) for line in f.read().splitlines()]
        except FileNotFoundError:
            return []

    def section(self, ref: str) -> Section:
        match = re.fullmatch(r"@([^\[\]]+)\[(-?\d+)\]", ref)
        if match:
            of_type = [s for s in self.sections if s.type == match[1]]
            try:
                return of_type[int(match[2])]
            except IndexError:
                raise UciError("Entry not found") from None
        for s in self.sections:
            if s.name == ref:
                return s
        raise UciError("Entry not found")

    def ref(self, s: Section, real_names: bool) -> str:
        if not s.anonymous or real_names:
            return s.name
        same = [x for x in self.sections if x.type == s.type]
        return f"@{s.type}[{same.index(s)}]"

    def apply(self, delta: list[str]) -> None:
        """One change; deltas use real section names (as libuci's delta files do)."""
        cmd, sec, opt, value = delta
        if cmd == "add":
            name = sec
            self.sections.append(Section(value, name, anonymous=True))
            return
        if cmd == "set" and not opt:
            try:
                self.section(sec).type = value
            except UciError:
                self.sections.append(Section(value, sec, anonymous=False))
            return
        s = self.section(sec)
        old = s.options.get(opt)
        if cmd == "set":
            replace_at(s.options, opt, value)
        elif cmd == "add_list":
            if old is None:
                s.options[opt] = [value]
            else:
                replace_at(s.options, opt, [*(old if isinstance(old, list) else [old]), value])
        elif cmd == "del_list":
            if isinstance(old, list):
                replace_at(s.options, opt, [item for item in old if item != value])
        elif cmd == "delete" and opt:
            s.options.pop(opt, None)
        elif cmd == "delete":
            self.sections.remove(s)
        elif cmd == "rename" and opt:
            items = [(value if k == opt else k, v) for k, v in s.options.items()]
            s.options.clear()
            s.options.update(items)
        elif cmd == "rename":
            s.name, s.anonymous = value, False

    def change(self, cmd: str, sec: str, opt: str, value: str) -> None:
        delta = [cmd, self.section(sec).name if cmd != "add" else sec, opt, value]
        self.apply(delta)
        os.makedirs(os.path.dirname(self.delta_path), exist_ok=True)
        with open(self.delta_path, "a") as f:
            f.write(json.dumps(delta) + "\n")

    def commit(self) -> None:
        if not os.path.exists(self.delta_path):
            return
        tmp = os.path.join(os.path.dirname(self.path), f".{self.name}.uci-new")
        with open(tmp, "w") as f:
            f.write(export(self.sections))
        os.replace(tmp, self.path)
        os.unlink(self.delta_path)


def split_ref(ref: str) -> tuple[str, str, str, str | None]:
    """pkg.sec.opt=value -> parts; missing parts are ''."""
    value = None
    if "=" in ref:
        ref, value = ref.split("=", 1)
    parts = ref.split(".", 2)
    parts += [""] * (3 - len(parts))
    return parts[0], parts[1], parts[2], value


def value_text(value: Value, quoted: bool) -> str:
    if isinstance(value, str):
        return quote(value) if quoted else value
    return " ".join(quote(v) if quoted or re.search(r"\s", v) else v for v in value)


def run(args: list[str], confdir: str, savedir: str, real_names: bool) -> str:
    cmd, rest = args[0], args[1:]
    if cmd == "add":
        pkg = Package(confdir, savedir, rest[0])
        name = f"cfg{len(pkg.sections) + 1:02x}{djbhash(rest[1]) % 65536:04x}"
        pkg.change("add", name, "", rest[1])
        return name + "\n"
    pkg_name, sec, opt, value = split_ref(rest[0]) if rest else ("", "", "", None)
    pkg = Package(confdir, savedir, pkg_name)
    if cmd == "commit":
        pkg.commit()
        return ""
    if cmd == "export":
        return f"package {pkg.name}\n" + export(pkg.sections)
    if cmd == "changes":
        lines = []
        for c, s, o, v in pkg.read_deltas():
            lines.append(f"{c} {pkg.name}.{s}{'.' + o if o else ''} {quote(v) if v else ''}")
        return "".join(line.rstrip() + "\n" for line in lines)
    if cmd == "get":
        s = pkg.section(sec)
        if not opt:
            return s.type + "\n"
        if opt not in s.options:
            raise UciError("Entry not found")
        return value_text(s.options[opt], quoted=False) + "\n"
    if cmd == "show":
        shown = [pkg.section(sec)] if sec else pkg.sections
        out = []
        for s in shown:
            ref = pkg.ref(s, real_names)
            if opt:
                if opt not in s.options:
                    raise UciError("Entry not found")
                return f"{pkg.name}.{ref}.{opt}={value_text(s.options[opt], True)}\n"
            out.append(f"{pkg.name}.{ref}={s.type}\n")
            out += [f"{pkg.name}.{ref}.{k}={value_text(v, True)}\n" for k, v in s.options.items()]
        return "".join(out)
    if cmd in ("set", "add_list", "del_list", "rename") and value is None:
        raise UciError("Invalid argument")
    if cmd == "set" and opt and value == "":
        cmd = "delete"  # libuci: setting an empty value deletes
    if cmd == "delete" and opt and opt not in pkg.section(sec).options:
        raise UciError("Entry not found")
    if cmd in ("set", "add_list", "del_list", "delete", "rename"):
        if cmd == "set" and not opt:
            pkg.change("set", sec, "", value or "")
            return ""
        pkg.section(sec)  # must exist
        pkg.change(cmd, sec, opt, value or "")
        return ""
    raise UciError(f"unknown command {cmd}")


def main(argv: list[str]) -> int:
    quiet, real_names = False, False
    confdir, savedir = "/etc/config", "/tmp/.uci"
    while argv and argv[0].startswith("-"):
        flag = argv.pop(0)
        if flag == "-q":
            quiet = True
        elif flag == "-X":
            real_names = True
        elif flag == "-c":
            confdir = argv.pop(0)
        elif flag == "--savedir":
            savedir = argv.pop(0)
        else:
            print(f"uci (emulated): unsupported flag {flag}", file=sys.stderr)
            return 1
    if not argv:
        print("uci (emulated): no command", file=sys.stderr)
        return 1
    try:
        sys.stdout.write(run(argv, confdir, savedir, real_names))
    except (UciError, OSError, IndexError) as error:
        if not quiet:
            print(f"uci: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
