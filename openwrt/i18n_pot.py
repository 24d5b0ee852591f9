"""The i18n template of luci-app-clat-eamt (luci-app/po/templates/clat-eamt.pot), as LuCI's
build/i18n-scan.pl writes it: the strings of every ``_('...')`` call in the JavaScript under
luci-app/htdocs and the ``title`` and ``description`` of the menu.d and acl.d JSON files, one
entry per string sorted by msgid (``msguniq -s``), each with its ``#: file:line`` references
sorted by file and line, whitespace collapsed, wrapped at 79 columns as gettext wraps.

i18n-scan.pl needs xgettext and msguniq; this scanner needs neither, so that `make docs` and the
currency test run anywhere.  It reads JavaScript as tokens (comments, strings, template and
regular expression literals are skipped whole), so a ``_(`` inside a string is not a call.

    python openwrt/i18n_pot.py           print the template
    python openwrt/i18n_pot.py --write   write it (`make docs` does)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
APP = "luci-app"
POT = "luci-app/po/templates/clat-eamt.pot"
HEADER = 'msgid ""\nmsgstr "Content-Type: text/plain; charset=UTF-8"\n'
WIDTH = 79  # gettext's default page width

# After these tokens a '/' starts a regular expression literal, not a division.
_REGEX_AFTER = set("(,=:[!&|?{};+-*%<>~^") | {"", "return", "typeof", "case", "do", "else", "in"}
_JS_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}


class ScanError(ValueError):
    """A source file the scanner cannot read as JavaScript (an unterminated literal)."""


@dataclass(frozen=True)
class Token:
    kind: str  # "string", "name", "punct"
    text: str  # the value of a string, else the source text
    line: int


def _js_unescape(body: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        char = body[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt == "u" and body[i + 2] == "{":
            end = body.index("}", i)
            out.append(chr(int(body[i + 3 : end], 16)))
            i = end + 1
        elif nxt in "ux":
            size = 4 if nxt == "u" else 2
            out.append(chr(int(body[i + 2 : i + 2 + size], 16)))
            i += 2 + size
        elif nxt == "\n":  # a line continuation
            i += 2
        else:
            out.append(_JS_ESCAPES.get(nxt, nxt))
            i += 2
    return "".join(out)


def _literal_end(source: str, i: int, name: str, line: int) -> int:
    """The index of the quote or slash that closes the literal opened at ``source[i]``."""
    quote, j, size = source[i], i + 1, len(source)
    in_class = False  # a '/' inside [...] does not end a regular expression
    while j < size and (source[j] != quote or in_class):
        if source[j] == "\\":
            j += 1
        elif quote == "/" and source[j] in "[]":
            in_class = source[j] == "["
        elif source[j] == "\n" and quote in "'\"/":
            break
        j += 1
    if j >= size or source[j] != quote:
        raise ScanError(f"{name}:{line}: unterminated {quote} literal")
    return j


def tokens(source: str, name: str = "<js>") -> list[Token]:
    """The string, name and punctuation tokens of ``source``, with their lines."""
    found: list[Token] = []
    i, line, size = 0, 1, len(source)
    word = re.compile(r"[\w$]+")
    while i < size:
        char = source[i]
        previous = "" if not found else ")" if found[-1].kind == "string" else found[-1].text
        if char.isspace():
            line += char == "\n"
            i += 1
        elif source.startswith("//", i):
            i = source.find("\n", i) if "\n" in source[i:] else size
        elif source.startswith("/*", i):
            end = source.find("*/", i + 2)
            if end < 0:
                raise ScanError(f"{name}:{line}: unterminated comment")
            line += source.count("\n", i, end)
            i = end + 2
        elif char in "'\"`" or (char == "/" and previous in _REGEX_AFTER):
            j = _literal_end(source, i, name, line)
            if char in "'\"":
                found.append(Token("string", _js_unescape(source[i + 1 : j]), line))
            else:  # template and regular expression literals hold no msgid
                found.append(Token("punct", ")", line))
            line += source.count("\n", i, j)
            i = j + 1
            while char == "/" and i < size and source[i].isalpha():  # a regex's flags
                i += 1
        elif char.isalnum() or char in "_$":
            match = word.match(source, i)
            assert match is not None
            found.append(Token("name", match.group(), line))
            i = match.end()
        else:
            found.append(Token("punct", char, line))
            i += 1
    return found


def _literal(toks: list[Token], k: int) -> tuple[str, int] | None:
    """A string literal, or literals joined with '+', at ``toks[k]``: its value and the index
    after it."""
    if k >= len(toks) or toks[k].kind != "string":
        return None
    value = toks[k].text
    k += 1
    while k + 1 < len(toks) and toks[k].text == "+" and toks[k + 1].kind == "string":
        value += toks[k + 1].text
        k += 2
    return value, k


def js_messages(source: str, name: str = "<js>") -> list[tuple[str, str | None, int]]:
    """(msgid, msgctxt, line) of each ``_('msgid'[, 'context'])`` call in ``source``."""
    toks = tokens(source, name)
    found: list[tuple[str, str | None, int]] = []
    for k, tok in enumerate(toks):
        if tok.text != "_" or tok.kind != "name" or k + 1 >= len(toks) or toks[k + 1].text != "(":
            continue
        if k and toks[k - 1].text == ".":
            continue  # a method of some object, not LuCI's _()
        msgid = _literal(toks, k + 2)
        if msgid is None:
            continue  # _(variable): nothing to extract
        context = None
        after = msgid[1]
        if after < len(toks) and toks[after].text == ",":
            ctx = _literal(toks, after + 1)
            context = ctx[0] if ctx else None
        found.append((msgid[0], context, toks[k + 2].line))
    return found


def json_messages(source: str) -> list[tuple[str, str | None, int]]:
    """The "title" and "description" strings of a menu.d or acl.d file, with their lines."""
    found: list[tuple[str, str | None, int]] = []
    pattern = re.compile(r'"(?:title|description)"\s*:\s*("(?:[^"\\]|\\.)*")', re.S)
    for match in pattern.finditer(source):
        value = json.loads(match.group(1))
        found.append((value, None, source.count("\n", 0, match.start(1)) + 1))
    return found


def po_escape(text: str) -> str:
    """As i18n-scan.pl leaves a msgid: PO escapes, then \\n and \\t as spaces, runs of spaces
    as one, one leading and one trailing space dropped."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\n", " ").replace("\t", " ").replace("\r", "\\r")
    escaped = re.sub(" {2,}", " ", escaped)
    escaped = escaped.removeprefix(" ")
    return escaped.removesuffix(" ")


# Characters no line may start with, even after spaces (UAX #14 rule LB13 and the closing
# brackets), and the opening ones that stay with a quote before them (LB15).
_NO_BREAK_BEFORE = frozenset("!?)]};,.:/")
_OPENING = frozenset("([{")


def _breaks(text: str) -> list[int]:
    """Where gettext may end a line of ``text`` (a PO-escaped string): the opportunities of
    its line breaking (gnulib's, after Unicode's UAX #14) as far as ASCII text goes.  After a
    run of spaces, unless a closing character follows or an opening one follows a quote; after
    a '-' or '/' not followed by a digit, a hyphen or a closing character; after a '.', ',',
    ':' or ';' followed by a letter."""
    points = []
    for i, char in enumerate(text[:-1]):
        nxt = text[i + 1]
        if nxt == "\\" and i + 2 < len(text):
            nxt = text[i + 2]  # an escape sequence: what it stands for
        if nxt == " ":
            continue  # the spaces stay at the end of the line they follow
        if char == " ":
            quoted = text[:i].rstrip(" ")[-1:] in ("'", '"')
            if nxt not in _NO_BREAK_BEFORE and not (nxt in _OPENING and quoted):
                points.append(i + 1)
        elif (char in "-/" and not nxt.isdigit() and nxt not in _NO_BREAK_BEFORE | {"-"}) or (
            char in ".,:;" and nxt.isascii() and nxt.isalpha()
        ):
            points.append(i + 1)
    return points


def po_field(keyword: str, text: str) -> list[str]:
    """``keyword "text"``, wrapped as gettext does when it does not fit in WIDTH columns."""
    line = f'{keyword} "{text}"'
    if len(line) <= WIDTH:
        return [line]
    lines = [f'{keyword} ""']
    start = 0
    points = [*_breaks(text), len(text)]
    while start < len(text):
        fitting = [p for p in points if p > start and p - start + 2 <= WIDTH]
        end = fitting[-1] if fitting else next(p for p in points if p > start)
        lines.append(f'"{text[start:end]}"')
        start = end
    return lines


def scan(repo: Path = REPO) -> dict[tuple[str, str | None], list[tuple[str, int]]]:
    """msgid (PO-escaped) and msgctxt -> the places it occurs, from every source file."""
    app = repo / APP
    files = sorted(app.glob("htdocs/**/*.js"))
    files += sorted(app.glob("root/usr/share/luci/menu.d/*.json"))
    files += sorted(app.glob("root/usr/share/rpcd/acl.d/*.json"))
    entries: dict[tuple[str, str | None], list[tuple[str, int]]] = {}
    for path in files:
        rel = path.relative_to(repo).as_posix()
        source = path.read_text(encoding="utf-8")
        found = js_messages(source, rel) if path.suffix == ".js" else json_messages(source)
        for msgid, context, line in found:
            escaped = po_escape(msgid)
            if escaped:  # i18n-scan.pl drops empty msgids
                key = (escaped, None if context is None else po_escape(context))
                entries.setdefault(key, []).append((rel, line))
    return entries


def _sort_key(key: tuple[str, str | None]) -> tuple[bytes, bytes]:
    # msguniq -s compares the msgids, unescaped, as bytes (the C locale), then the contexts
    def raw(text: str | None) -> bytes:
        return re.sub(r"\\(.)", r"\1", text or "").encode()

    return raw(key[0]), raw(key[1])


def render(entries: dict[tuple[str, str | None], list[tuple[str, int]]]) -> str:
    out = [HEADER]
    for key in sorted(entries, key=_sort_key):
        msgid, context = key
        lines = [f"#: {file}:{line}" for file, line in sorted(set(entries[key]))]
        if context is not None:
            lines += po_field("msgctxt", context)
        lines += [*po_field("msgid", msgid), 'msgstr ""']
        out.append("\n".join(lines) + "\n")
    return "\n".join(out)


def pot(repo: Path = REPO) -> str:
    """The template for the sources as they are now."""
    return render(scan(repo))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help=f"write {POT}")
    args = parser.parse_args(argv)
    try:
        text = pot()
    except ScanError as error:
        print(f"i18n_pot: {error}", file=sys.stderr)
        return 1
    if args.write:
        target = REPO / POT
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        print(f"wrote {POT}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
