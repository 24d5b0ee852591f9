"""DNS names as the core compares them, and the allow/deny lists of names.

Names are compared in presentation form, lower-cased (DNS is case-insensitive, RFC 4343), without
the trailing dot.  List entries match the name itself and every name below it, on label
boundaries: ``example.com`` matches ``cdn.example.com`` but not ``badexample.com``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_LABEL = re.compile(r"^(?!-)[a-z0-9_*-]{1,63}(?<!-)$")


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
