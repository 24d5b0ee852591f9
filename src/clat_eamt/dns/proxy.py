"""The resolver seam: one DNS message in, one out (or nothing), whatever the transport.

Every query is forwarded upstream; the answer is released byte for byte as the upstream sent
it, with only the client's ID put back.  An A query additionally (SPEC section 3, draft-ietf-
v6ops-464xlat-optimization):

1. asks AAAA for the same name in parallel, unless the A answer carries AAAA records for the
   name in its Additional section;
2. holds the A answer until the AAAA answer (or its failure) arrives, at most ``hold`` seconds
   after the A answer came (50 ms: the RFC 8305 resolution delay);
3. hands the result to the mapper, which decides and installs the mapping within its own
   deadline; then releases the A answer.

Nothing here can block or break DNS: an upstream failure is SERVFAIL (never NXDOMAIN), an
unreadable query is FORMERR, and any failure of the optimization releases the answer unmapped,
so the connection takes the plain CLAT path.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from clat_eamt.core.model import AaaaStatus, Host, Observation
from clat_eamt.dns import answers
from clat_eamt.dns.answers import AddressAnswer
from clat_eamt.dns.identity import ClientIdentity, identify
from clat_eamt.dns.ratelog import RateLimitedLog
from clat_eamt.dns.upstream import UpstreamError, Upstreams
from clat_eamt.dns.wire import (
    FLAG_AD,
    QTYPE_A,
    QTYPE_AAAA,
    RCODE_FORMERR,
    RCODE_NOTIMP,
    RCODE_SERVFAIL,
    ClientQuery,
    Question,
    WireError,
    bare_error,
    error_reply,
    read_header,
    read_query,
    side_query,
    with_flag,
    with_id,
)

log = logging.getLogger(__name__)
Mapper = Callable[[Observation], Awaitable[None]]
Classifier = Callable[[ClientIdentity], Host | None]


def unknown_class(identity: ClientIdentity) -> Host | None:
    """Until the neighbour tables classify hosts (dataplane issue), a known client is UNKNOWN."""
    key = identity.key
    return Host(key) if key else None


@dataclass(frozen=True)
class ProxySettings:
    enabled: bool = True  # ask AAAA and map; when off, a plain forwarder
    hold: float = 0.050
    require_dnssec: bool = False


class Proxy:
    def __init__(
        self,
        upstreams: Upstreams,
        mapper: Mapper,
        settings: ProxySettings,
        classify: Classifier = unknown_class,
    ) -> None:
        self.upstreams, self.mapper, self.settings = upstreams, mapper, settings
        self.classify = classify
        self.counters: Counter[str] = Counter()
        self.badlog = RateLimitedLog(log, logging.WARNING)

    async def handle(
        self, data: bytes, peer: IPv4Address | IPv6Address | None, tcp: bool
    ) -> bytes | None:
        """The reply to ``data`` (None: send nothing, e.g. for a response or a runt)."""
        self.counters["queries.tcp" if tcp else "queries.udp"] += 1
        try:
            query = read_query(data)
        except WireError as error:
            return self._malformed(data, error)
        if query.header.opcode != 0:
            self.counters["replies.notimp"] += 1
            return error_reply(query, RCODE_NOTIMP)
        try:
            if query.is_a and self.settings.enabled:
                return await self._answer_a(query, identify(query.identity, peer), tcp)
            data = await self.upstreams.exchange(query.upstream, query.question, tcp)
            return with_id(data, query.header.id)
        except UpstreamError as failure:
            self.counters["replies.servfail"] += 1
            self.badlog.note("upstream", "no answer for %s: %s", query.question.name, failure)
            return error_reply(query, RCODE_SERVFAIL)
        except Exception:  # the proxy must outlive any bug in one query's path
            self.counters["replies.servfail"] += 1
            self.counters["errors.internal"] += 1
            log.exception("internal error answering %s", query.question.name)
            return error_reply(query, RCODE_SERVFAIL)

    def _malformed(self, data: bytes, error: WireError) -> bytes | None:
        self.counters["malformed.queries"] += 1
        self.badlog.note("query", "malformed query (%d bytes): %s", len(data), error)
        if error.id is None:
            return None
        self.counters["replies.formerr"] += 1
        return bare_error(error.id, read_header(data).flags, RCODE_FORMERR)

    async def _answer_a(self, query: ClientQuery, identity: ClientIdentity, tcp: bool) -> bytes:
        self.counters["queries.a"] += 1
        if identity.problems:
            problems = "; ".join(identity.problems)
            self.badlog.note("identity", "client identity options: %s", problems)
        upstream = query.upstream
        asked_ad = bool(query.header.flags & FLAG_AD) or (query.opt is not None and query.opt.do)
        if self.settings.require_dnssec and not asked_ad:
            upstream = with_flag(upstream, FLAG_AD)  # RFC 6840 section 5.7: ask for AD
        side = asyncio.create_task(self._ask_aaaa(query.question))
        try:
            data = await self.upstreams.exchange(upstream, query.question, tcp)
            reply = with_id(data, query.header.id)
            if upstream is not query.upstream:  # undo our AD request: the client did not ask
                reply = with_flag(reply, FLAG_AD, on=False)
            observation = await self._observe(query, identity, data, side)
        except WireError as error:  # the answer matched our query but cannot be read
            self.counters["malformed.answers"] += 1
            self.counters["replies.servfail"] += 1
            self.badlog.note("answer", "unreadable A answer for %s: %s", query.question.name, error)
            return error_reply(query, RCODE_SERVFAIL)
        finally:
            side.cancel()
        if observation is not None:
            try:
                await self.mapper(observation)
            except Exception:  # a mapping failure must not cost the client its answer
                self.counters["errors.mapper"] += 1
                log.exception("mapping %s failed; answer released unmapped", observation.name)
        return reply

    async def _observe(
        self,
        query: ClientQuery,
        identity: ClientIdentity,
        data: bytes,
        side: asyncio.Task[AddressAnswer],
    ) -> Observation | None:
        """What DNS said about the name, once the hold is over; None when there is nothing to
        decide (truncated or address-less A answer).  WireError for an unreadable one."""
        if read_header(data).truncated:
            return None  # the client retries over TCP; the decision is made then
        name = query.question.name
        record = answers.parse(data)
        a = answers.read_addresses(record, name, QTYPE_A)
        if not a.addresses:
            return None
        aaaa: AddressAnswer | AaaaStatus | None = answers.additional_aaaa(record, a, name)
        if aaaa is not None:
            self.counters["aaaa.additional"] += 1
        else:
            aaaa = await self._hold(side)
        return answers.observation(name, a, aaaa, self.classify(identity))

    async def _hold(self, side: asyncio.Task[AddressAnswer]) -> AddressAnswer | AaaaStatus:
        done, _ = await asyncio.wait({side}, timeout=self.settings.hold)
        if not done:
            self.counters["aaaa.timeout"] += 1
            return AaaaStatus.TIMEOUT
        try:
            return side.result()
        except Exception:  # a bug on the AAAA side must not cost the A answer
            self.counters["errors.internal"] += 1
            log.exception("AAAA side query failed")
            return AaaaStatus.SERVFAIL

    async def _ask_aaaa(self, question: Question) -> AddressAnswer:
        """The AAAA answer for the name; SERVFAIL status for any failure (teaches nothing)."""
        self.counters["aaaa.asked"] += 1
        asked = Question(question.labels, QTYPE_AAAA, question.qclass)
        query = side_query(0, question, QTYPE_AAAA, self.settings.require_dnssec)
        try:
            data = await self.upstreams.exchange(query, asked)
            if read_header(data).truncated:
                data = await self.upstreams.exchange(query, asked, tcp=True)
            return answers.read_addresses(answers.parse(data), question.name, QTYPE_AAAA)
        except (UpstreamError, WireError) as error:
            self.counters["aaaa.failed"] += 1
            self.badlog.note("aaaa", "AAAA for %s failed: %s", question.name, error)
            return AddressAnswer(AaaaStatus.SERVFAIL)
