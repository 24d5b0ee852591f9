"""OpenWrt UCI file syntax: what ``uci import`` accepts, parsed from text (no I/O here).

A file is a sequence of lines, each one statement or blank or a comment::

    package clat-eamt            # optional, ignored
    config TYPE ['NAME']         # starts a section; without NAME it is anonymous
    option NAME 'VALUE'          # a single value
    list NAME 'VALUE'            # one more item of a list

Words are split on blanks as in a shell: single quotes are literal, double quotes take a backslash
as "the next character literally", an unquoted backslash does the same, and adjacent pieces join
into one word (``'it'\\''s'`` is ``it's``).  An unquoted ``#`` ends the line.  Like libuci, a
second ``option`` replaces the first, a ``list`` after an ``option`` of the same name turns it
into a list, and an ``option`` after a ``list`` replaces the whole list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = re.compile(r"^[A-Za-z0-9_]+$")  # section and option names (libuci: uci_validate_name)
_TYPE = re.compile(r"^[A-Za-z0-9_-]+$")  # section types and package names may carry '-'
_BLANKS = " \t"


class UciSyntaxError(ValueError):
    """A line that is not UCI syntax; parsing stops there, as ``uci import`` does."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


@dataclass(frozen=True)
class UciValue:
    text: str
    line: int


@dataclass(frozen=True)
class UciOption:
    """One option of a section after libuci's merge rules; ``is_list`` when the final
    statement that shaped it was ``list``."""

    name: str
    values: tuple[UciValue, ...]
    is_list: bool

    @property
    def line(self) -> int:
        return self.values[0].line


@dataclass(frozen=True)
class UciSection:
    type: str
    name: str | None
    line: int
    options: tuple[UciOption, ...]

    def get(self, name: str) -> UciOption | None:
        return next((o for o in self.options if o.name == name), None)


def quote(value: str) -> str:
    """``value`` as one UCI word: single-quoted, embedded quotes written as ``'\\''``."""
    return "'" + value.replace("'", "'\\''") + "'"


def statement(keyword: str, name: str, value: str) -> str:
    """One ``option``/``list`` line (without indentation)."""
    return f"{keyword} {name} {quote(value)}"


def split_words(line: str, lineno: int) -> list[str]:
    """The words of one line, quotes removed and escapes resolved; [] for blank or comment."""
    words: list[str] = []
    word: str | None = None  # None while between words; '' is a real (empty quoted) word
    i = 0
    while i < len(line):
        char = line[i]
        if char in _BLANKS:
            if word is not None:
                words.append(word)
                word = None
            i += 1
            continue
        if char == "#":  # libuci ends the line at any unquoted '#', even inside a word
            break
        if word is None:
            word = ""
        if char == "'":
            end = line.find("'", i + 1)
            if end < 0:
                raise UciSyntaxError(lineno, "unterminated single quote")
            word += line[i + 1 : end]
            i = end + 1
        elif char == '"':
            piece, i = _double_quoted(line, i + 1, lineno)
            word += piece
        elif char == "\\":
            if i + 1 >= len(line):
                raise UciSyntaxError(lineno, "backslash at end of line (continuation unsupported)")
            word += line[i + 1]
            i += 2
        else:
            word += char
            i += 1
    if word is not None:
        words.append(word)
    return words


def _double_quoted(line: str, start: int, lineno: int) -> tuple[str, int]:
    """The text of a double-quoted piece starting after its quote, and the index after it."""
    piece = ""
    i = start
    while i < len(line):
        char = line[i]
        if char == '"':
            return piece, i + 1
        if char == "\\":
            if i + 1 >= len(line):
                break
            char = line[i + 1]  # libuci takes the escaped character literally ("\n" is "n")
            i += 1
        piece += char
        i += 1
    raise UciSyntaxError(lineno, "unterminated double quote")


class _SectionBuilder:
    def __init__(self, type_: str, name: str | None, line: int) -> None:
        self.type, self.name, self.line = type_, name, line
        self.options: dict[str, UciOption] = {}  # insertion order = order of first appearance

    def set(self, name: str, value: UciValue) -> None:
        self.options[name] = UciOption(name, (value,), is_list=False)

    def add(self, name: str, value: UciValue) -> None:
        old = self.options.get(name)
        values = (old.values if old else ()) + (value,)
        self.options[name] = UciOption(name, values, is_list=True)

    def build(self) -> UciSection:
        return UciSection(self.type, self.name, self.line, tuple(self.options.values()))


def parse_uci(text: str) -> tuple[UciSection, ...]:
    """All sections of a UCI file, in file order.  Raises UciSyntaxError with the line."""
    sections: list[_SectionBuilder] = []
    for lineno, raw in enumerate(text.split("\n"), start=1):
        words = split_words(raw.removesuffix("\r"), lineno)
        if not words:
            continue
        keyword, args = words[0], words[1:]
        if keyword == "package":
            _expect_args(keyword, args, 1, 1, lineno)
            _expect_name(args[0], _TYPE, "package name", lineno)
        elif keyword == "config":
            _expect_args(keyword, args, 1, 2, lineno)
            _expect_name(args[0], _TYPE, "section type", lineno)
            name = args[1] if len(args) == 2 else None
            if name is not None:
                _expect_name(name, _NAME, "section name", lineno)
            sections.append(_SectionBuilder(args[0], name, lineno))
        elif keyword in ("option", "list"):
            _expect_args(keyword, args, 2, 2, lineno)
            _expect_name(args[0], _NAME, "option name", lineno)
            if not sections:
                raise UciSyntaxError(lineno, f"'{keyword}' before the first 'config' line")
            value = UciValue(args[1], lineno)
            if keyword == "option":
                sections[-1].set(args[0], value)
            else:
                sections[-1].add(args[0], value)
        else:
            raise UciSyntaxError(
                lineno, f"unknown keyword {keyword!r} (expected package, config, option or list)"
            )
    return tuple(s.build() for s in sections)


def _expect_args(keyword: str, args: list[str], least: int, most: int, lineno: int) -> None:
    if not least <= len(args) <= most:
        usage = {
            "package": "package NAME",
            "config": "config TYPE ['NAME']",
            "option": "option NAME 'VALUE'",
            "list": "list NAME 'VALUE'",
        }[keyword]
        raise UciSyntaxError(
            lineno, f"'{keyword}' takes {_count(least, most)}, got {len(args)} (usage: {usage})"
        )


def _count(least: int, most: int) -> str:
    words = {1: "one word", 2: "two words"}
    return words[least] if least == most else f"{least} or {most} words"


def _expect_name(word: str, pattern: re.Pattern[str], what: str, lineno: int) -> None:
    if not pattern.match(word):
        allowed = "letters, digits and '_'" + (" and '-'" if pattern is _TYPE else "")
        raise UciSyntaxError(lineno, f"invalid {what} {word!r} ({allowed} only)")
