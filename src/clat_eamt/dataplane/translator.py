"""The interface of an EAM translator (Jool).

An EAM translator holds entries P <-> X (RFC 7757): P a pool prefix of the router, X the real
IPv6 prefix, of equal suffix length.  Only Jool in netfilter mode is driven that way (the IPv6
leg of a mapping cannot be an nft element there, ``kernel``); the daemon owns exactly the
entries whose IPv4 side lies in its pool and never touches entries outside it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from ipaddress import IPv4Network, IPv6Network
from typing import Protocol

from clat_eamt.dataplane.process import TranslatorError

__all__ = ["EamTable", "Translator", "TranslatorError"]

EamTable = dict[IPv4Network, IPv6Network]  # P -> X


class Translator(Protocol):
    name: str

    async def start(self) -> None:
        """Make the translator run (or find it running); TranslatorError if it cannot."""

    async def entries(self) -> EamTable:
        """The EAM entries it holds now inside the daemon's pool (for reconciliation)."""

    async def apply(
        self, ensure: Mapping[IPv4Network, IPv6Network], remove: Iterable[IPv4Network]
    ) -> None:
        """Add or change ``ensure`` entries and delete ``remove`` ones, as one batch."""

    async def stop(self, clean: bool) -> None:
        """Stop driving it; with ``clean`` also remove every entry the daemon put there."""

    def problem(self) -> str | None:
        """Why it cannot translate now (its process died), None when it looks fine.  Cheap and
        without I/O beyond /proc: the daemon asks every tick and restarts it when it says so."""
