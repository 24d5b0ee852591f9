"""The applier's contract: ordered batches, a deadline per answer, failures counted and never
raised.  The dataplanes here are stand-ins with scripted timing (the real nftables + translator
backends arrive with the dataplane issue and run against this same interface)."""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Network, IPv6Network

from clat_eamt.apply import Applier, DisabledDataplane
from clat_eamt.core.dataplane import DataplaneState
from clat_eamt.core.model import (
    EnsureDnat,
    EnsureTranslator,
    LiveFlows,
    RemoveDnat,
    RemoveTranslator,
)
from tests.unit.standins import ScriptedDataplane

D, P, X = (
    IPv4Network("192.0.2.10/32"),
    IPv4Network("198.51.100.129/32"),
    IPv6Network("2001:db8:1::10/128"),
)
ADD = (EnsureTranslator(P, X), EnsureDnat(D, P))


FAILURE = "nft: Operation not permitted"


def test_fast_batch_is_done_within_the_deadline():
    async def scenario():
        applier = Applier(ScriptedDataplane(), 1.0)
        return await applier.apply(ADD), await applier.apply(()), applier.dataplane.applied

    done, idle, applied = asyncio.run(scenario())
    assert (done, idle, applied) == ("done", "none", [ADD])


def test_slow_batch_is_late_for_the_answer_but_still_lands():
    async def scenario():
        dataplane = ScriptedDataplane(delay=0.3)
        applier = Applier(dataplane, 0.01)
        result = await applier.apply(ADD)
        waiting = await applier.apply(())  # an answer for the same name also gives up in time
        await applier.drain()
        return result, waiting, dataplane.applied, applier.counters

    result, waiting, applied, counters = asyncio.run(scenario())
    assert result == "late" and waiting == "late"
    assert applied == [ADD] and counters["dataplane.batches_done"] == 1


def test_failure_is_counted_and_reported_not_raised():
    async def scenario():
        applier = Applier(ScriptedDataplane(fail=FAILURE), 1.0)
        return await applier.apply(ADD), applier.counters, applier.last_error

    result, counters, error = asyncio.run(scenario())
    assert result == "failed" and counters["dataplane.batches_failed"] == 1
    assert error is not None and "Operation not permitted" in error


def test_a_burst_becomes_one_batch_in_order():
    async def scenario():
        dataplane = ScriptedDataplane(delay=0.05)
        applier = Applier(dataplane, 1.0)
        remove = (RemoveDnat(D), RemoveTranslator(P, X))
        first = asyncio.create_task(applier.apply(ADD))
        await asyncio.sleep(0.01)  # the first batch is now being applied
        results = await asyncio.gather(first, applier.apply(remove), applier.apply(ADD))
        return dataplane.applied, remove, results

    applied, remove, results = asyncio.run(scenario())
    assert applied == [ADD, remove + ADD]  # what queued meanwhile went as one batch, in order
    assert results == ["done", "done", "done"]


def test_disabled_dataplane_accepts_every_batch_and_holds_nothing():
    """Nothing is installed, so every start reports an empty state (reconciliation then lists
    the whole table as what would be installed) and no flow can be live.  No copy of the table
    is kept (issue 15: it cost about 160 bytes per mapping)."""

    async def scenario():
        dataplane = DisabledDataplane()
        await dataplane.apply(ADD)
        after_add = await dataplane.start()
        await dataplane.apply([RemoveDnat(D)])
        return after_add, await dataplane.start(), await dataplane.live_flows()

    after_add, state, live = asyncio.run(scenario())
    assert after_add == state == DataplaneState()
    assert set(vars(DisabledDataplane())) == {"describe"}  # no per-mapping record
    assert live == LiveFlows()  # nothing can flow through a dataplane that is not there
