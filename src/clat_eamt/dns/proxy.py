"""The resolver seam: one DNS message in, one out (or nothing), whatever the transport.

Every query is forwarded upstream; the answer is released byte for byte as the upstream sent
it, with only the client's ID put back.  An A query additionally (SPEC section 3, draft-ietf-
v6ops-464xlat-optimization):

1. asks AAAA for the same name in parallel, unless the proxy holds an AAAA answer for the
   name it asked before and whose TTL has not ended (``dns.remembered``: as any cache), or the
   A answer carries AAAA records for the name in its Additional section;
2. holds the A answer until the AAAA answer (or its failure) arrives, at most ``hold`` seconds
   after the A answer came (50 ms: the RFC 8305 resolution delay);
3. hands the result to the mapper, which decides and installs the mapping within its own
   deadline; then releases the A answer;
4. with the TTLs of its A records lowered to the remaining Valid life of the mapping its
   addresses have (the mapper says it), all records of the RRset equal (RFC 2181 section 5.2):
   neither dnsmasq's cache nor a device then holds an address longer than its mapping lives.
   An answer whose addresses map to nothing is released untouched.
5. with ``ipv6_only`` on, an answer with no A (or placeholders only) for a name whose AAAA is
   real is answered with the A record the mapper gives (``dns.synthesize``: never for a query
   with CD set, never with AD; any failure releases the upstream's answer as it came).

The AAAA beside the A is the client's own query with the type changed, so when the client asks
AAAA for the name too (a dual-stack client does, at once) both become one upstream exchange.

Nothing here can block or break DNS: an upstream failure is SERVFAIL (never NXDOMAIN), an
unreadable query is FORMERR, and any failure of the optimization releases the answer unmapped,
so the connection takes the plain CLAT path.  An answer the optimization does not read (more
records than ``records.MAX_RECORDS``, a CNAME chain longer than 16 or looping: ``Unusable``)
goes to the client as it came, unmapped; its records are never read, kept or logged, so a
4,000-record answer costs what a one-record answer does (issue 26).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from clat_eamt.core.counters import Count
from clat_eamt.core.ipv6only import SyntheticA
from clat_eamt.core.model import AaaaStatus, Host, Observation
from clat_eamt.core.names import labels
from clat_eamt.dns import answers
from clat_eamt.dns.answers import AddressAnswer
from clat_eamt.dns.identity import ClientIdentity, identify
from clat_eamt.dns.records import Unusable, clamp_ttls
from clat_eamt.dns.remembered import RememberedAaaa, name_key
from clat_eamt.dns.repeated import RepeatedAnswers
from clat_eamt.dns.synthesize import synthesized_reply, wants_synthesis
from clat_eamt.dns.upstream import UpstreamError, Upstreams
from clat_eamt.dns.wire import (
    CLASS_IN,
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
    retyped,
    side_query,
    with_flag,
    with_id,
)
from clat_eamt.logs import RateLimitedLog

log = logging.getLogger(__name__)
# Decides on an observation and installs what it needs; returns the seconds the mapping of the
# answer's addresses stays Valid (the A records' TTL ceiling), None when they map to nothing,
# or for an IPv6-only name the A record to answer with (``SyntheticA``).
Mapper = Callable[[Observation], Awaitable[float | SyntheticA | None]]
Classifier = Callable[[ClientIdentity], Host | None]


def unknown_class(identity: ClientIdentity) -> Host | None:
    """A client the neighbour tables do not know (yet) is UNKNOWN: do not optimize (SPEC 3)."""
    key = identity.key
    return Host(key) if key else None


async def _within(future: asyncio.Future[bytes], until: float) -> bool:
    """Wait for ``future`` until the loop time ``until``; True if it is done by then.  The
    future is left alone (others may wait for it too); cheaper than ``asyncio.wait``."""
    if future.done():
        return True
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()

    def wake(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    future.add_done_callback(wake)
    timer = loop.call_at(until, wake)
    try:
        await waiter
    finally:
        timer.cancel()
        future.remove_done_callback(wake)
    return future.done()


@dataclass(frozen=True)
class ProxySettings:
    enabled: bool = True  # ask AAAA and map; when off, a plain forwarder
    hold: float = 0.050
    require_dnssec: bool = False
    ipv6_only: bool = False  # answer IPv6-only names' A queries (``dns.synthesize``)
    placeholders: frozenset[IPv4Address] = frozenset()  # A records that count as none


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
        self.counters: Counter[str] = upstreams.counters  # one set: "upstream.*" are its own
        self.clock = upstreams.clock  # one time source, the daemon's (tests give a fake one)
        self.badlog = RateLimitedLog(log, logging.WARNING)
        self.remembered = RememberedAaaa()
        self.repeated = RepeatedAnswers()

    async def handle(
        self,
        data: bytes,
        peer: IPv4Address | IPv6Address | None,
        tcp: bool,
        hold: float | None = None,
    ) -> bytes | None:
        """The reply to ``data`` (None: send nothing, e.g. for a response or a runt)."""
        self.counters[Count.QUERIES_TCP if tcp else Count.QUERIES_UDP] += 1
        data = bytes(data)  # a no-op for what sockets give; tests may pass a bytearray
        try:
            query = read_query(data)
        except WireError as error:
            return self._malformed(data, error)
        if query.header.opcode != 0:
            self.counters[Count.REPLIES_NOTIMP] += 1
            return error_reply(query, RCODE_NOTIMP)
        try:
            if query.is_a and self.settings.enabled:
                identity = identify(query.identity, peer)
                return await self._answer_a(query, identity, tcp, hold)
            data = await self.upstreams.exchange(query.upstream, query.question, tcp)
            return with_id(data, query.header.id)
        except UpstreamError as failure:
            self.counters[Count.REPLIES_SERVFAIL] += 1
            self.badlog.note("upstream", "no answer for %s: %s", query.question.name, failure)
            return error_reply(query, RCODE_SERVFAIL)
        except Exception:  # the proxy must outlive any bug in one query's path
            self.counters[Count.REPLIES_SERVFAIL] += 1
            self.counters[Count.ERRORS_INTERNAL] += 1
            log.exception("internal error answering %s", query.question.name)
            return error_reply(query, RCODE_SERVFAIL)

    def _malformed(self, data: bytes, error: WireError) -> bytes | None:
        self.counters[Count.MALFORMED_QUERIES] += 1
        self.badlog.note("query", "malformed query (%d bytes): %s", len(data), error)
        if error.id is None:
            return None
        self.counters[Count.REPLIES_FORMERR] += 1
        return bare_error(error.id, read_header(data).flags, RCODE_FORMERR)

    async def _answer_a(
        self, query: ClientQuery, identity: ClientIdentity, tcp: bool, hold: float | None = None
    ) -> bytes:
        counters = self.counters
        counters[Count.QUERIES_A] += 1
        if identity.problems:
            problems = "; ".join(identity.problems)
            self.badlog.note("identity", "client identity options: %s", problems)
        upstream = query.upstream
        asked_ad = bool(query.header.flags & FLAG_AD) or (query.opt is not None and query.opt.do)
        if self.settings.require_dnssec and not asked_ad:
            upstream = with_flag(upstream, FLAG_AD)  # RFC 6840 section 5.7: ask for AD
        # The AAAA beside it: the one kept from before while its TTL lasts (one DNSSEC
        # requires only if it was validated), else asked now.  That runs on its own (and is
        # shared with whoever asks the same): the answer may be released without it, and
        # nobody cancels what others may wait for.
        key = name_key(query.question.labels)
        side: asyncio.Future[bytes] | AddressAnswer | None
        side = self.remembered.recall(key, self.clock())
        if side is not None and (side.authenticated or not self.settings.require_dnssec):
            counters[Count.AAAA_REMEMBERED] += 1
        else:
            counters[Count.AAAA_ASKED] += 1
            aaaa_query = retyped(query, upstream, QTYPE_AAAA)
            side = self.upstreams.start(aaaa_query, query.question._replace(qtype=QTYPE_AAAA))
        data = await self.upstreams.exchange(upstream, query.question, tcp)
        try:
            rrset, observation = await self._observe(query, key, identity, data, side, hold)
        except WireError as error:  # the answer matched our query but cannot be read
            counters[Count.MALFORMED_ANSWERS] += 1
            counters[Count.REPLIES_SERVFAIL] += 1
            self.badlog.note("answer", "unreadable A answer for %s: %s", query.question.name, error)
            return error_reply(query, RCODE_SERVFAIL)
        except Unusable:  # more than the optimization reads: out as it came, unmapped
            counters[Count.ANSWERS_UNUSABLE] += 1
            rrset, observation = (), None
        life: float | SyntheticA | None = None
        if observation is not None:
            try:
                life = await self.mapper(observation)
            except Exception:  # a mapping failure must not cost the client its answer
                counters[Count.ERRORS_MAPPER] += 1
                log.exception("mapping %s failed; answer released unmapped", observation.name)
        if isinstance(life, SyntheticA):
            try:
                return synthesized_reply(query, (life.address,), life.ttl)
            except Exception:  # the upstream's answer rather than none
                counters[Count.ERRORS_INTERNAL] += 1
                log.exception("A answer for %s not made; upstream's released", query.question.name)
                life = None
        reply = with_id(data, query.header.id)
        if upstream is not query.upstream:  # undo our AD request: the client did not ask
            reply = with_flag(reply, FLAG_AD, on=False)
        if life is not None:
            clamped = clamp_ttls(reply, rrset, int(max(0.0, life)))
            if clamped is not reply:
                counters[Count.TTL_CLAMPED] += 1
            reply = clamped
        return reply

    async def _observe(  # noqa: PLR0917 - one A answer's state
        self,
        query: ClientQuery,
        key: bytes,
        identity: ClientIdentity,
        data: bytes,
        side: asyncio.Future[bytes] | AddressAnswer,
        hold: float | None = None,
    ) -> tuple[tuple[int, ...], Observation | None]:
        """Where the TTLs of the answer's A RRset are (the answer read once: ``dns.repeated``),
        and what DNS said about the name once the hold is over; no observation when there is
        nothing to decide (truncated or address-less A answer).  WireError for an unreadable
        one."""
        if data[2] & 0x02:  # TC (the header was read when the answer was matched)
            return (), None  # the client retries over TCP; the decision is made then
        name = query.question.name
        rrset, a, additional = self.repeated.read(key, data, query.question.labels)
        if not self._decides(query, a):
            return rrset, None
        aaaa: AddressAnswer | AaaaStatus | None = additional
        if aaaa is not None:
            self.counters[Count.AAAA_ADDITIONAL] += 1
        elif isinstance(side, AddressAnswer):  # kept from before (``dns.remembered``)
            aaaa = side
        else:
            hold = self.settings.hold if hold is None else hold
            aaaa = await self._hold(query, side, asyncio.get_running_loop().time() + hold)
        return rrset, answers.observation(name, a, aaaa, self.classify(identity))

    def _decides(self, query: ClientQuery, a: AddressAnswer) -> bool:
        """Is there anything to decide on this A answer: addresses, or (``ipv6_only``) none or
        placeholders only where an A may be made; a placeholder answer to a query with CD
        set goes out untouched and unmapped (``dns.synthesize``)."""
        settings = self.settings
        if not settings.ipv6_only:
            return bool(a.addresses)
        made = wants_synthesis(query, a, settings.placeholders)
        if a.addresses and all(x in settings.placeholders for x in a.addresses):
            return made
        return bool(a.addresses) or made

    async def _hold(
        self, query: ClientQuery, side: asyncio.Future[bytes], until: float
    ) -> AddressAnswer | AaaaStatus:
        """The AAAA answer if it comes before ``until`` (a truncated one is asked again over
        TCP within the same time), TIMEOUT if not; SERVFAIL status for any failure."""
        question = query.question
        if not side.done() and not await _within(side, until):
            self.counters[Count.AAAA_TIMEOUT] += 1
            return AaaaStatus.TIMEOUT
        try:
            data = side.result()
            if data[2] & 0x02:  # truncated: the same question over TCP
                asked = question._replace(qtype=QTYPE_AAAA)
                side = self.upstreams.start(retyped(query, query.upstream, QTYPE_AAAA), asked, True)
                if not await _within(side, until):
                    self.counters[Count.AAAA_TIMEOUT] += 1
                    return AaaaStatus.TIMEOUT
                data = side.result()
            answer = answers.parse(data)
            read = answers.read_addresses(answer, question.labels, QTYPE_AAAA)
            self.remembered.remember(
                name_key(question.labels), read, answers.keep_for(answer, read), self.clock()
            )
            return read
        except Unusable:  # too large to read: it teaches nothing, as a failure
            self.counters[Count.ANSWERS_UNUSABLE] += 1
            return AddressAnswer(AaaaStatus.SERVFAIL)
        except (UpstreamError, WireError) as error:
            self.counters[Count.AAAA_FAILED] += 1
            self.badlog.note("aaaa", "AAAA for %s failed: %s", question.name, error)
            return AddressAnswer(AaaaStatus.SERVFAIL)
        except Exception:  # a bug on the AAAA side must not cost the A answer
            self.counters[Count.ERRORS_INTERNAL] += 1
            log.exception("AAAA side query failed")
            return AaaaStatus.SERVFAIL

    async def refresh(self, name: str) -> bool:
        """Ask A (and so AAAA) for ``name`` as a client would, through the whole path: the
        refresh ahead of a used mapping's end (``core.refresh``).  True if it was answered."""
        self.counters[Count.REFRESH_ASKED] += 1
        question = Question(labels(name), QTYPE_A, CLASS_IN)  # the name as shown: escaped
        query = side_query(0, question, QTYPE_A, self.settings.require_dnssec)
        # Nobody waits for this answer, and at a mapping's end the resolver's copy of the AAAA
        # has expired too, so it asks the authoritative servers: wait for it as long as for any
        # upstream answer rather than the 50 ms a client's answer is held.
        reply = await self.handle(query, None, False, hold=self.upstreams.timeout)
        return reply is not None and read_header(reply).rcode == 0
