"""The real dataplane: the daemon's nftables table + a translator backend + the flow oracle.

One batch of the engine's operations is folded into its net effect (``core.dataplane``) and
applied in the safe order of SPEC section 5: translator entries first (a DNAT element must
never point at a pool address the translator does not know), then the DNAT elements in one
atomic nft batch, then the translator entries nobody uses any more.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from ipaddress import IPv4Address
from typing import Protocol

from clat_eamt.core.dataplane import DataplaneState, net_effect, staged
from clat_eamt.core.model import DataplaneOp, FlowCensus, LiveFlows
from clat_eamt.dataplane.nft import NftTable
from clat_eamt.dataplane.translator import Translator, TranslatorError

log = logging.getLogger(__name__)


class FlowSource(Protocol):
    """What the kernel dataplane needs of the flow oracle (``dataplane.conntrack``)."""

    async def live(self) -> LiveFlows | None: ...

    async def census(self) -> FlowCensus | None: ...


class KernelDataplane:
    def __init__(
        self,
        nft: NftTable,
        translator: Translator,
        oracle: FlowSource | None,
        only_ipv4_only_hosts: bool,
    ) -> None:
        self.nft, self.translator, self.oracle = nft, translator, oracle
        self.only_ipv4_only_hosts = only_ipv4_only_hosts
        self.name = f"nftables + {translator.name}"
        self.started = False

    @property
    def capabilities(self) -> frozenset[str]:
        return self.translator.capabilities

    async def start(self) -> DataplaneState:
        """Create or adopt the nft table, start or adopt the translator; the state they hold
        now (the daemon reconciles its table against it)."""
        await self.nft.ensure(self.only_ipv4_only_hosts)
        await self.translator.start()
        self.started = True
        return DataplaneState(dict(self.nft.current), await self.translator.entries())

    async def apply(self, ops: Sequence[DataplaneOp]) -> None:
        if not self.started:
            raise TranslatorError(f"{self.name} is not running (see the start error)")
        effect = net_effect(ops)
        held = await self.translator.entries() if effect.translator_remove else {}
        for stage in staged(effect, held):
            if stage.translator_set:
                await self.translator.apply(stage.translator_set, ())
            if stage.dnat_set or stage.dnat_remove:
                await self.nft.apply(stage.dnat_set, stage.dnat_remove)
            if stage.translator_remove:
                await self.translator.apply({}, stage.translator_remove)

    async def live_flows(self) -> LiveFlows | None:
        if self.oracle is None:
            return None
        return await self.oracle.live()

    def problem(self) -> str | None:
        return self.translator.problem() if self.started else None

    async def flow_census(self) -> FlowCensus | None:
        return None if self.oracle is None else await self.oracle.census()

    async def set_hosts(self, dual_stack: set[IPv4Address], ipv4_only: set[IPv4Address]) -> None:
        if self.started:
            await self.nft.set_hosts(dual_stack, ipv4_only)

    async def stop(self, clean: bool) -> None:
        """SPEC 5 / the dataplane issue: on stop the DNAT elements go (no new flow is steered
        any more) but P <-> X stays for the flows still using it; ``clean`` removes all."""
        if not self.started:
            return
        if clean:
            await self.nft.remove()
        else:
            await self.nft.apply({}, list(self.nft.current))
        await self.translator.stop(clean)
        self.started = False
