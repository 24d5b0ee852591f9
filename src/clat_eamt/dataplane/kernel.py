"""The real dataplane: the daemon's nftables table on a CLAT, and the flow oracle.

Every batch of the engine's operations is folded into its net effect (``core.dataplane``) and
becomes one nftables transaction holding both legs (SPEC section 5, dataplane v2): the IPv4 leg
D -> P and the IPv6 leg T(P) -> X.  The CLAT is never changed per mapping; where it comes from
is a ``ClatSource``:

- ``ExternalClat`` (translator external / auto): the router's own CLAT (OpenWrt's 464xlat on
  nat46, clatd, Jool in its namespace, a tayga of its own package), found by ``clat.find_clat``.
- ``TaygaClat`` (translator tayga): a tayga the daemon runs with one fixed configuration.
- ``JoolEamClat`` (translator jool): Jool SIIT in netfilter mode.  Jool translates inside the
  prerouting hook and sends what it made out directly, so its IPv6 never passes an ``ip6`` nat
  chain (Jool issue 398: it bypasses conntrack NAT): the IPv6 leg is then Jool's EAM entry
  P <-> X, stateless, changed live with ``jool_siit eamt`` (``jool.JoolSiit``).  The IPv4 leg
  is still the nft element, removed before and added after Jool's entries change.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Network
from typing import Any, Protocol

from clat_eamt.core.dataplane import DataplaneState, Note, net_effect
from clat_eamt.core.model import DataplaneOp, FlowCensus, LiveFlows
from clat_eamt.core.translation import PoolTranslation
from clat_eamt.core.unguarded import UnguardedLegs
from clat_eamt.dataplane.clat import ClatNotFoundError, device_kind, device_up, find_clat
from clat_eamt.dataplane.guard import Guard
from clat_eamt.dataplane.jool import JoolSiit
from clat_eamt.dataplane.nft import COMMENT_MAX, NftTable, Steering
from clat_eamt.dataplane.process import TranslatorError
from clat_eamt.dataplane.tayga import Tayga

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClatLeg:
    """What steering needs of a running CLAT."""

    device: str | None  # the IPv6 leg acts on packets from it (None: no nft IPv6 leg)
    translation: PoolTranslation | None  # T(P), with ``device``
    nat44: tuple[str, IPv4Address] | None = None  # (tun, clat_ipv4) for a tayga of ours
    facts: dict[str, Any] = field(default_factory=dict)  # for status


class ClatSource(Protocol):
    kind: str

    async def start(self) -> ClatLeg: ...

    def problem(self) -> str | None: ...

    async def stop(self, clean: bool) -> None: ...


class ExternalClat:
    """A CLAT someone else runs; clat-eamt only reads it (device, Pref64)."""

    def __init__(
        self, kind: str, device: str | None, pref64: Callable[[], IPv6Network | None]
    ) -> None:
        self.kind, self.configured, self.pref64 = kind, device, pref64
        self.device: str | None = None

    async def start(self) -> ClatLeg:
        clat = await find_clat(self.configured)
        prefix = clat.pref64 or self.pref64()
        if prefix is None:
            raise ClatNotFoundError(
                f"CLAT {clat.device} found ({clat.found_by}), but not its Pref64: set pref64, "
                "or wait for its discovery from DNS (RFC 7050)"
            )
        self.device = clat.device
        facts = {
            "device": clat.device,
            "found_by": clat.found_by,
            "kind": clat.kind,
            "pref64": str(prefix),
            "pref64_from": "the CLAT" if clat.pref64 else "clat-eamt's pref64",
        }
        return ClatLeg(clat.device, PoolTranslation(prefix), facts=facts)

    def problem(self) -> str | None:
        if self.device is None:
            return None
        if device_kind(self.device) is None:
            return f"CLAT device {self.device} is gone"
        return None if device_up(self.device) else f"CLAT device {self.device} is down"

    async def stop(self, clean: bool) -> None:
        return None  # never ours to change


class TaygaClat:
    kind = "tayga"

    def __init__(self, tayga: Tayga) -> None:
        self.tayga = tayga

    async def start(self) -> ClatLeg:
        await self.tayga.start()
        s = self.tayga.settings
        facts = {
            "device": s.tun,
            "found_by": "config",
            "kind": "tun (tayga run by clat-eamt)",
            "pref64": str(s.prefix),
            "pool_map": str(s.translation.of(s.pool)[0]),
        }
        return ClatLeg(s.tun, s.translation, (s.tun, s.clat_ipv4), facts)

    def problem(self) -> str | None:
        return self.tayga.problem()

    async def stop(self, clean: bool) -> None:
        await self.tayga.stop(clean)


class JoolEamClat:
    kind = "jool"

    def __init__(self, jool: JoolSiit) -> None:
        self.jool = jool

    async def start(self) -> ClatLeg:
        await self.jool.start()
        facts = {"instance": self.jool.instance, "netns": self.jool.netns, "kind": "jool eamt"}
        return ClatLeg(None, None, facts=facts)

    def problem(self) -> str | None:
        return self.jool.problem()

    async def stop(self, clean: bool) -> None:
        await self.jool.stop(clean)


class KernelDataplane:
    def __init__(
        self,
        nft: NftTable,
        clat: ClatSource,
        oracle: Any,
        only_ipv4_only_hosts: bool,
        pool: IPv4Network,
        *,
        handover: str | None = None,
        guard: Guard | None = None,
    ) -> None:
        """``handover``: where a stop leaves the IPv4 legs it removed, with their notes, for
        the next start to adopt (``service clat-eamt restart`` keeps Valid mappings Valid)."""
        self.nft, self.clat, self.oracle, self.pool = nft, clat, oracle, pool
        self.handover, self.guard = handover, guard
        self.braked = False  # the safety net's brake, kept across a restart of the dataplane
        self.suspended: set[IPv4Network] = set()  # and its suspended destinations
        self.unguarded = UnguardedLegs()  # and the blocks whose IPv6 leg it leaves alone
        # whether a block's IPv6 leg is left alone (``core.unguarded.exempt`` on the table)
        self.exempt: Callable[[IPv4Network], bool] = lambda block: False
        self.only_ipv4_only_hosts = only_ipv4_only_hosts
        self.name = f"nftables on {clat.kind}"
        self.leg: ClatLeg | None = None
        self.describe: Callable[[IPv4Network], Note | None] = lambda ipv4: None

    @property
    def eam(self) -> JoolSiit | None:
        return self.clat.jool if isinstance(self.clat, JoolEamClat) else None

    def facts(self) -> dict[str, Any]:
        return {"nft": self.nft.nft.via, "clat": self.leg.facts if self.leg else None}

    async def start(self) -> DataplaneState:
        """Find or start the CLAT, then create or adopt the table (its rules before any
        element); the state the kernel holds now, for the daemon to reconcile against."""
        self.leg = None
        leg = await self.clat.start()
        t = leg.translation
        unsteered = (t.covering(self.pool),) if t is not None else ()
        # Jool in netfilter mode sends what it translates out past the later hooks (Jool
        # issue 398): whether a steered flow's reply ever reaches conntrack there is unknown
        # (Jool cannot run on the development machines), and a rescue that never saw a reply
        # would cut every working flow.  No guard, so no mark and no rescue with Jool EAM.
        guard = self.guard if self.eam is None else None
        steering = Steering(
            self.only_ipv4_only_hosts, leg.device, leg.nat44, unsteered, guard=guard
        )
        await self.nft.ensure(steering)
        if self.braked:
            await self.nft.set_brake(True)
        await self.nft.set_suspended(self.suspended, ())
        if t is not None and self.unguarded.held:  # emptied by the rewrite: put back
            await self.nft.apply({}, (), {}, (), unguard=_keys(t, self.unguarded.held))
        if self.eam is not None:
            legs6 = await self.eam.entries()
        else:
            assert t is not None
            legs6 = {}
            for key, x in self.nft.dnat6.items():
                p = t.back(key)  # per-address elements come back as /32s
                if p is not None:
                    legs6[p] = x
        self.leg = leg
        handed = {
            d: (p, note)
            for d, (p, note) in self._take_handover().items()
            if d not in self.nft.dnat4 and p in legs6  # only where the IPv6 leg is still there
        }
        if handed:  # back in the kernel as they were; the reconciling diff judges them next
            await self.nft.apply(handed, (), {}, ())
        return DataplaneState(dict(self.nft.dnat4), legs6, dict(self.nft.notes))

    def _take_handover(self) -> dict[IPv4Network, tuple[IPv4Network, Note]]:
        """What the last stop handed over (read once: the file goes)."""
        if self.handover is None or not os.path.exists(self.handover):
            return {}
        found: dict[IPv4Network, tuple[IPv4Network, Note]] = {}
        try:
            with open(self.handover) as file:
                legs = json.load(file)
            for d, p, text in legs:
                note = Note.parse(text)
                if note is not None:
                    found[IPv4Network(d)] = (IPv4Network(p), note)
        except (OSError, ValueError, TypeError) as error:
            log.warning("ignoring %s: %s", self.handover, error)
        with contextlib.suppress(OSError):
            os.unlink(self.handover)
        return found

    def _give_handover(self) -> None:
        if self.handover is None:
            return
        legs = [
            [str(d), str(p), self.nft.notes[d].text(COMMENT_MAX)]
            for d, p in self.nft.dnat4.items()
            if d in self.nft.notes
        ]
        try:
            os.makedirs(os.path.dirname(self.handover) or ".", exist_ok=True)
            with open(self.handover, "w") as file:
                json.dump(legs, file)
        except OSError as error:
            log.warning("cannot keep the mappings for the next start: %s", error)

    async def apply(self, ops: Sequence[DataplaneOp]) -> None:
        if self.leg is None:
            raise TranslatorError(f"{self.name} is not running (see the start error)")
        effect = net_effect(ops)
        add4 = {d: (p, self.describe(d)) for d, p in effect.dnat_set.items()}
        if self.eam is not None:  # Jool's stateless entries: never one without its IPv4 leg
            await self.nft.apply({}, effect.dnat_remove, {}, ())
            await self.eam.apply(effect.translator_set, effect.translator_remove)
            await self.nft.apply(add4, (), {}, ())
            return
        t = self.leg.translation
        assert t is not None
        add6: dict[IPv6Network, IPv6Network] = {}
        for p, x in effect.translator_set.items():
            add6.update(leg6(t, p, x))
        del6 = _keys(t, effect.translator_remove)
        held = set(self.unguarded.held)
        change = self.unguarded.update(effect.translator_set, effect.translator_remove, self.exempt)
        try:
            await self.nft.apply(
                add4, effect.dnat_remove, add6, del6,
                unguard=_keys(t, change.add), guard=_keys(t, change.remove),
            )  # fmt: skip
        except Exception:
            self.unguarded.held = held  # the transaction changed nothing
            raise

    async def live_flows(self) -> LiveFlows | None:
        return None if self.oracle is None else await self.oracle.live()

    async def flow_census(self) -> FlowCensus | None:
        return None if self.oracle is None else await self.oracle.census()

    def problem(self) -> str | None:
        return self.clat.problem() if self.leg is not None else None

    async def set_hosts(self, dual_stack: set[IPv4Address], ipv4_only: set[IPv4Address]) -> None:
        if self.leg is not None:
            await self.nft.set_hosts(dual_stack, ipv4_only)

    async def set_brake(self, engaged: bool) -> None:
        """The safety net's brake (``dataplane.guard``): no new flow steered while engaged."""
        self.braked = engaged
        if self.leg is not None:
            await self.nft.set_brake(engaged)

    async def set_suspended(
        self, add: Iterable[IPv4Network], remove: Iterable[IPv4Network]
    ) -> None:
        """Destinations not steered, their target broken (``core.suspend``): as a diff."""
        add, remove = list(add), list(remove)
        self.suspended.difference_update(remove)
        self.suspended.update(add)
        if self.leg is not None:
            await self.nft.set_suspended(add, remove)

    async def stop(self, clean: bool) -> None:
        """SPEC 5: on stop the IPv4 legs go (no new flow is steered without the daemon to
        expire them), handed over with their notes to the next start; running flows keep both
        legs (conntrack); ``clean`` removes all."""
        if self.leg is None:
            return
        if clean:
            await self.nft.remove()
        else:
            self._give_handover()
            await self.nft.apply({}, list(self.nft.dnat4), {}, ())
        await self.clat.stop(clean)
        self.leg = None


def _keys(t: PoolTranslation, blocks: Iterable[IPv4Network]) -> list[IPv6Network]:
    """T(P) of each block: the dnat6 keys of its IPv6 leg."""
    return [key for p in blocks for key in t.of(p)]


def leg6(
    t: PoolTranslation, pool: IPv4Network, ipv6: IPv6Network
) -> dict[IPv6Network, IPv6Network]:
    """The dnat6 elements of P -> X: one prefix pair, or one pair per address where T(P) is not
    one prefix (``PoolTranslation.of``)."""
    keys = t.of(pool)
    if len(keys) == 1:
        return {keys[0]: ipv6}
    first = int(ipv6.network_address)
    return {k: IPv6Network((first + i, 128)) for i, k in enumerate(keys)}
