"""Who asked: the client identity dnsmasq attaches to the queries it forwards; pure.

dnsmasq forwards every LAN query from its own socket, so the proxy learns the client only from
EDNS options dnsmasq adds (SPEC section 7 has what dnsmasq 2.90 sends):

- 65001: the MAC as 6 raw bytes (``--add-mac``, UCI ``addmac 1``);
- 65073: the MAC as text ``aa:bb:cc:dd:ee:ff`` or as base64 (``--add-mac=text|base64``);
- 8, client subnet (RFC 7871 section 6): with ``--add-subnet=32,128`` the client's full address.

A subnet shorter than a full address (``--add-subnet`` alone sends 0/0) names no client.  Options
that cannot be read are reported in ``problems`` and otherwise ignored: a bad option must not
cost the client its answer.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from clat_eamt.core.names import escape
from clat_eamt.dns.wire import OPTION_ECS, OPTION_MAC_BINARY, OPTION_MAC_TEXT

IPAddress = IPv4Address | IPv6Address
_TEXT_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_FAMILIES: dict[int, type[IPv4Address] | type[IPv6Address]] = {1: IPv4Address, 2: IPv6Address}


@dataclass(frozen=True)
class ClientIdentity:
    mac: str | None = None  # lower-case aa:bb:cc:dd:ee:ff
    address: IPAddress | None = None
    problems: tuple[str, ...] = ()

    @property
    def key(self) -> str | None:
        """A stable identity for per-host limits: the MAC when known, else the address."""
        if self.mac:
            return self.mac
        return str(self.address) if self.address is not None else None


def _mac_text(raw: bytes) -> str:
    return ":".join(f"{byte:02x}" for byte in raw)


def _binary_mac(data: bytes) -> str:
    if len(data) != 6:
        raise ValueError(f"option 65001 holds {len(data)} bytes, a MAC has 6")
    return _mac_text(data)


def _text_mac(data: bytes) -> str:
    text = data.decode("ascii", "replace").strip().lower()
    if _TEXT_MAC.match(text):
        return text
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) == 6:
        return _mac_text(raw)
    shown = escape(data[:40])  # wire bytes in a log line: escaped as names are (core.names)
    raise ValueError(f"option 65073 '{shown}' is neither a text nor a base64 MAC")


_READERS = {OPTION_MAC_BINARY: _binary_mac, OPTION_MAC_TEXT: _text_mac}


def _subnet_address(data: bytes) -> IPAddress | None:
    if len(data) < 4:
        raise ValueError("client subnet option shorter than 4 bytes")
    family, source_length, _scope = struct.unpack_from("!HBB", data)
    kind = _FAMILIES.get(family)
    if kind is None:
        raise ValueError(f"client subnet family {family} is neither IPv4 (1) nor IPv6 (2)")
    width = 32 if kind is IPv4Address else 128
    address = data[4:]
    if source_length > width or len(address) != (source_length + 7) // 8:
        raise ValueError(f"client subnet /{source_length} with {len(address)} address bytes")
    if source_length != width:
        return None  # a subnet, not one client
    return kind(address)


_MEMO_SIZE = 256  # clients of a home; the memo starts over when a flood of others fills it
_MEMO_OPTIONS = 64  # bytes of option values remembered per client (dnsmasq's take 6-20)
_memo: dict[tuple[tuple[tuple[int, bytes], ...], IPAddress | None], ClientIdentity] = {}


def identify(options: Iterable[tuple[int, bytes]], peer: IPAddress | None = None) -> ClientIdentity:
    """The client behind a query, from its identity options.  ``peer`` is the query's source
    address: a loopback peer is dnsmasq itself and tells nothing, any other peer is the client
    (a LAN host that asked the proxy directly).  Pure, so remembered for the few options a
    home's clients send (every query of a client carries the same)."""
    key = (tuple(options), peer)
    if sum(len(value) for _, value in key[0]) > _MEMO_OPTIONS:  # not dnsmasq's: not kept
        return _identify(key[0], peer)
    try:
        found = _memo.get(key)
    except TypeError:  # option values not bytes (a caller's bytearray): nothing to remember
        return _identify(key[0], peer)
    if found is None:
        if len(_memo) >= _MEMO_SIZE:
            _memo.clear()
        found = _memo[key] = _identify(key[0], peer)
    return found


def _identify(options: Iterable[tuple[int, bytes]], peer: IPAddress | None) -> ClientIdentity:
    mac: str | None = None
    address: IPAddress | None = None
    problems: list[str] = []
    for code, data in options:
        try:
            if code in _READERS:
                mac = mac or _READERS[code](data)
            elif code == OPTION_ECS:
                address = address or _subnet_address(data)
        except ValueError as error:
            problems.append(str(error))
    if address is None and peer is not None and not peer.is_loopback:
        address = peer
    return ClientIdentity(mac, address, tuple(problems))
