"""DNS names as the core compares them, and the allow/deny lists of names.

Names are compared in presentation form, lower-cased (DNS is case-insensitive, RFC 4343), without
the trailing dot.  List entries match the name itself and every name below it, on label
boundaries: ``example.com`` matches ``cdn.example.com`` but not ``badexample.com``.

A name read from the wire may hold any byte in its labels (RFC 2181 section 11): a newline, an
ESC, a dot.  It becomes text once, by ``presentation`` (RFC 1035 section 5.1: ``\\DDD`` for a byte
that is not printable ASCII, ``\\.`` and ``\\`` for a dot and a backslash inside a label), and
every log line, status, ubus event and LuCI page shows that text: one escaping for every string
from the wire (``escape``), so a LAN client cannot forge a log line (issue 26).  ``labels``
reads the text back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_LABEL = re.compile(r"^(?!-)[a-z0-9_*-]{1,63}(?<!-)$")
# Bytes shown as themselves: printable ASCII but the dot and the backslash (RFC 1035 5.1).
_PLAIN = bytes(b for b in range(0x21, 0x7F) if b not in b".\\")
_SHOWN = [
    chr(b) if b in _PLAIN else "\\" + chr(b) if b in b".\\" else f"\\{b:03d}" for b in range(256)
]
_TOKEN = re.compile(r"\\(\d{3}|.)|(\.)|([^\\.]+)", re.DOTALL)  # an escape, a dot, plain text


def escape(raw: bytes) -> str:
    """A label, or any other string from the wire, as one line of printable text (module
    doc).  Plain labels, nearly all, are only decoded."""
    if not raw.translate(None, _PLAIN):
        return raw.decode("ascii")
    return "".join([_SHOWN[b] for b in raw])


def presentation(labels: Iterable[bytes]) -> str:
    """A name's labels in presentation form without the final dot ('' for the root)."""
    return ".".join([escape(label) for label in labels])


def labels(name: str) -> tuple[bytes, ...]:
    """The labels of a name in presentation form (``presentation`` read back); a trailing dot
    is allowed.  Characters beyond Latin-1, which ``presentation`` never makes, become '?'."""
    out: list[bytes] = []
    current = bytearray()
    for escaped, dot, plain in _TOKEN.findall(name):
        if dot:
            out.append(bytes(current))
            current.clear()
        elif plain:
            current += plain.encode("latin-1", "replace")
        elif len(escaped) == 3 and escaped.isdigit() and int(escaped) < 256:
            current.append(int(escaped))
        else:
            current += escaped.encode("latin-1", "replace")
    out.append(bytes(current))
    return tuple(label for label in out if label)


def normalize(name: str) -> str:
    """Lower-case presentation form without the trailing dot ('' for the root)."""
    return name.strip().rstrip(".").lower()


def name_problem(name: str) -> str | None:
    """None if ``name`` is a syntactically usable DNS name for a list, else why not."""
    norm = normalize(name)
    if not norm:
        return "empty name"
    if len(norm) > 253:
        return f"{name!r} is longer than 253 characters"
    for label in norm.split("."):
        if not _LABEL.match(label):
            return f"{name!r} has an invalid label {label!r} (letters, digits, '-' and '_' only)"
    return None


def is_subdomain(name: str, suffix: str) -> bool:
    """True when ``name`` equals ``suffix`` or lies below it (label boundary)."""
    name, suffix = normalize(name), normalize(suffix)
    return name == suffix or name.endswith("." + suffix)


@dataclass(frozen=True)
class NameFilter:
    """Deny wins over allow; a non-empty allow list admits only names below its entries."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    @classmethod
    def of(cls, allow: Iterable[str] = (), deny: Iterable[str] = ()) -> NameFilter:
        return cls(tuple(normalize(n) for n in allow), tuple(normalize(n) for n in deny))

    def denied_by(self, name: str) -> str | None:
        """The deny entry that matches ``name``, if any."""
        return next((d for d in self.deny if is_subdomain(name, d)), None)

    def admits(self, name: str) -> bool:
        return not self.allow or any(is_subdomain(name, a) for a in self.allow)
