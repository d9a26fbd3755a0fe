"""Client requests in flight between the network actor and the raft and apply actors.

A write is proposed (PROPOSE [[request_id, data]]) and answered by the apply actor
(in its batch's APPLIED) once committed and applied, or refused by the raft core
(DROPPED). A linearizable read asks raft for a read index (READ_INDEX [context]), gets
it back (READ_STATES) or a refusal (DROPPED), then waits until the state machine has
applied that index (APPLIED) and reads locally.

Request ids follow etcd's idutil.Generator, so they are unique across members and
across restarts of one member:

    id = member_id_prefix(member) << 48 | suffix
    suffix = (unix_ms mod 2^40) << 8 at start, then +1 per request (mod 2^48)

Linearizable reads are batched as etcd's linearizableReadLoop batches them: one read
index is asked at a time, and every read that arrives meanwhile shares the next one
(an index asked before a read began cannot serve it). A read index unanswered after
READ_INDEX_RETRY_S no longer holds the next one back. Its context is the 8 big-endian
bytes of a request id, as etcd's.

Bounds: at most `max_pending` proposals and as many read contexts wait at once (more
is "etcdserver: too many requests"); etcd's own limit on the gap between committed and
applied entries (5000) refuses new writes the same way; every wait ends by the
request timeout (etcd's ReqTimeout: 5 s + 2 x election timeout).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from petcd.actors.protocol import Kind, member_id_prefix

from . import errors, trace
from .errors import EtcdError
from .status import Applied, RaftStatus

SUFFIX_BITS = 48
TIMESTAMP_BITS = 40
COUNTER_BITS = 8
MAX_APPLY_GAP = 5000  # etcd's maxGapBetweenApplyAndCommitIndex
READ_INDEX_RETRY_S = 0.5  # etcd's readIndexRetryTime
DEFAULT_MAX_PENDING = 10_000


def request_timeout_s(election_timeout_ms: int) -> float:
    """etcd's ServerConfig.ReqTimeout."""
    return 5.0 + 2 * election_timeout_ms / 1000


class RequestIds:
    """etcd's idutil.Generator."""

    def __init__(self, member_id: int, now_ms: int | None = None) -> None:
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        self._prefix = member_id_prefix(member_id) << SUFFIX_BITS
        self._suffix = (now_ms & ((1 << TIMESTAMP_BITS) - 1)) << COUNTER_BITS

    def next(self) -> int:
        self._suffix = (self._suffix + 1) & ((1 << SUFFIX_BITS) - 1)
        return self._prefix | self._suffix


@dataclass(frozen=True, slots=True)
class Answer:
    """The apply actor's RESPONSES entry for one proposal."""

    ok: bool
    body: bytes = b""  # the serialized etcd response when ok
    error_code: str = ""  # else the gRPC code name and etcd's message
    error_message: str = ""

    def error(self) -> EtcdError:
        assert not self.ok
        return errors.from_code_name(self.error_code, self.error_message)


class Tracker:
    """Everything heard from the raft and apply actors, and who waits for what.

    Fed by the inbox loop (`on_*`); read and awaited by the gateway. Futures belong to
    the running event loop: create the Tracker inside it.
    """

    def __init__(self, max_pending: int = DEFAULT_MAX_PENDING,
                 clock: Callable[[], float] = time.monotonic) -> None:
        assert max_pending > 0, "every queue is bounded"
        self.max_pending = max_pending
        self.clock = clock
        self.status = RaftStatus()
        # What the store shows this process (VISIBLE); what has been answered from it
        # (APPLIED) may be one batch ahead, until that batch's commit.
        self.applied = Applied()
        self.answered = Applied()
        self.applied_known = asyncio.Event()  # set by the first VISIBLE
        self.traces = trace.Traces()  # writes a client asked to trace (trace.py)
        self.proposals: dict[int, asyncio.Future[Answer]] = {}
        self.reads: dict[bytes, tuple[float, asyncio.Future[int]]] = {}  # ctx -> (expiry, fut)
        self._applied_waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self.stopped: EtcdError | None = None

    # -- registering waits -----------------------------------------------------------

    def add_proposal(self, request_id: int) -> asyncio.Future[Answer]:
        self._check_open()
        if len(self.proposals) >= self.max_pending:
            raise errors.copy(errors.TOO_MANY_REQUESTS)
        if self.status.commit > self.applied.index + MAX_APPLY_GAP:
            raise errors.copy(errors.TOO_MANY_REQUESTS)
        assert request_id not in self.proposals, "request ids are unique"
        fut: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self.proposals[request_id] = fut
        return fut

    def forget_proposal(self, request_id: int) -> None:
        self.proposals.pop(request_id, None)

    def add_read(self, context: bytes, expiry: float) -> asyncio.Future[int]:
        self._check_open()
        if len(self.reads) >= self.max_pending:
            self._expire_reads()
            if len(self.reads) >= self.max_pending:
                raise errors.copy(errors.TOO_MANY_REQUESTS)
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.reads[context] = (expiry, fut)
        return fut

    def _expire_reads(self) -> None:
        # A shared read's waiters time out one by one; the last one cannot know it is
        # last, so expired contexts are dropped here instead.
        now = self.clock()
        for context in [c for c, (expiry, _) in self.reads.items() if expiry <= now]:
            _, fut = self.reads.pop(context)
            _settle(fut, error=errors.copy(errors.TIMEOUT))

    def wait_applied(self, index: int) -> asyncio.Future[None]:
        """Done once the store shows `index` (VISIBLE)."""
        self._check_open()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.applied.index >= index:
            fut.set_result(None)
            return fut
        if len(self._applied_waiters) >= self.max_pending:
            # Waiters that timed out were cancelled but stay queued until APPLIED moves.
            self._applied_waiters = [w for w in self._applied_waiters if not w[2].done()]
            heapq.heapify(self._applied_waiters)
            if len(self._applied_waiters) >= self.max_pending:
                raise errors.copy(errors.TOO_MANY_REQUESTS)
        heapq.heappush(self._applied_waiters, (index, next(self._seq), fut))
        return fut

    def _check_open(self) -> None:
        if self.stopped is not None:
            raise errors.copy(self.stopped)

    # -- what the other actors said -------------------------------------------------

    def on_status(self, payload: Any) -> None:
        self.status = RaftStatus.from_wire(payload)

    def on_applied(self, payload: Any) -> None:
        applied = Applied.from_wire(payload)
        if applied.index >= self.answered.index:
            self.answered = applied
        self.traces.on_applied(payload)

    def on_visible(self, payload: Any) -> None:
        visible = Applied.from_wire(payload)
        if visible.index >= self.applied.index:
            self.applied = visible
        self.applied_known.set()
        waiters = self._applied_waiters
        while waiters and waiters[0][0] <= self.applied.index:
            _settle(heapq.heappop(waiters)[2], result=None)

    def on_responses(self, payload: Any) -> None:
        for request_id, ok, body in payload:
            fut = self.proposals.pop(request_id, None)
            if fut is None:
                continue  # timed out already, or another member's request
            self.traces.responded(request_id)
            if ok:
                _settle(fut, result=Answer(True, bytes(body)))
            else:
                code_name, message = body
                _settle(fut, result=Answer(False, b"", str(code_name), str(message)))

    def on_read_states(self, payload: Any) -> None:
        for index, context in payload:
            entry = self.reads.pop(bytes(context), None)
            if entry is not None:
                _settle(entry[1], result=int(index))

    def on_dropped(self, payload: Any) -> None:
        for key, reason in payload:
            if isinstance(key, int):
                fut: asyncio.Future[Any] | None = self.proposals.pop(key, None)
            else:
                entry = self.reads.pop(bytes(key), None)
                fut = entry[1] if entry else None
            if fut is not None:
                _settle(fut, error=errors.from_dropped(str(reason)))

    def fail_proposals(self, request_ids: list[int], err: EtcdError) -> None:
        for request_id in request_ids:
            fut = self.proposals.pop(request_id, None)
            if fut is not None:
                _settle(fut, error=errors.copy(err))

    def fail_reads(self, contexts: list[bytes], err: EtcdError) -> None:
        for context in contexts:
            entry = self.reads.pop(context, None)
            if entry is not None:
                _settle(entry[1], error=errors.copy(err))

    def stop(self) -> None:
        """Shutting down: every wait ends now with "etcdserver: server stopped"."""
        self.stopped = errors.STOPPED
        self.fail_proposals(list(self.proposals), errors.STOPPED)
        self.fail_reads(list(self.reads), errors.STOPPED)
        for _, _, fut in self._applied_waiters:
            _settle(fut, error=errors.copy(errors.STOPPED))
        self._applied_waiters.clear()


def _settle(fut: asyncio.Future[Any], *, result: Any = None,
            error: BaseException | None = None) -> None:
    if fut.done():
        return
    if error is not None:
        fut.set_exception(error)
        fut.exception()  # mark retrieved: nobody may be waiting any more
    else:
        fut.set_result(result)


class RaftClient:
    """Sends proposals and read requests to the raft actor, one message per kind per
    event-loop turn, and awaits their answers through the Tracker."""

    def __init__(self, tracker: Tracker, send: Callable[[str, Any], bool],
                 ids: RequestIds, timeout_s: float) -> None:
        self.tracker = tracker
        self._send = send  # (kind, payload) -> False if the raft inbox is full
        self.ids = ids
        self.timeout_s = timeout_s
        self._proposals: list[list[Any]] = []
        self._read: tuple[bytes, asyncio.Future[int]] | None = None  # not asked yet
        self._asked: tuple[asyncio.Future[int], float] | None = None  # (answer, asked at)
        self._retry: asyncio.TimerHandle | None = None  # asks again when overdue
        self._flush_scheduled = False

    async def propose(self, request_id: int, data: bytes) -> Answer:
        """Propose one InternalRaftRequest (already carrying `request_id`) and wait
        for its answer; EtcdError on refusal or timeout."""
        fut = self.tracker.add_proposal(request_id)
        traced = trace.current.get()
        if traced is None:
            self._proposals.append([request_id, data])
        else:  # a third element asks the raft actor for its stage times (TRACE)
            self._proposals.append([request_id, data, True])
            self.tracker.traces.proposed(request_id, traced)
        self._schedule_flush()
        try:
            return await self._answer(request_id, fut)
        finally:
            if traced is not None:
                self.tracker.traces.forget(request_id)

    async def propose_conf_change(self, request_id: int, data: bytes) -> Answer:
        """Propose one membership change (ConfChange bytes whose context carries
        `request_id`) and wait, as `propose` does, for the member table after it."""
        fut = self.tracker.add_proposal(request_id)
        if not self._send(Kind.PROPOSE_CONF_CHANGE.value, [request_id, data]):
            self.tracker.forget_proposal(request_id)
            raise errors.copy(errors.TOO_MANY_REQUESTS)
        return await self._answer(request_id, fut)

    async def _answer(self, request_id: int, fut: asyncio.Future[Answer]) -> Answer:
        try:
            async with asyncio.timeout(self.timeout_s):
                return await fut
        except TimeoutError:
            raise errors.copy(errors.TIMEOUT) from None
        finally:
            self.tracker.forget_proposal(request_id)

    async def read_barrier(self) -> int:
        """etcd's linearizableReadNotify: returns once this member has applied
        everything committed when the call began; the index read at."""
        try:
            async with asyncio.timeout(self.timeout_s):
                index = await asyncio.shield(self._read_index_future())
                await self.tracker.wait_applied(index)
                return index
        except TimeoutError:
            raise errors.copy(errors.TIMEOUT) from None

    def _read_index_future(self) -> asyncio.Future[int]:
        if self._read is None:
            context = self.ids.next().to_bytes(8, "big")
            expiry = self.tracker.clock() + self.timeout_s
            self._read = (context, self.tracker.add_read(context, expiry))
            self._schedule_flush()
        return self._read[1]

    def transfer(self, target: int) -> None:
        """Ask raft to hand leadership to `target` (etcd's TransferLeadership); the
        caller watches STATUS for the outcome."""
        if not self._send(Kind.TRANSFER.value, target):
            raise errors.copy(errors.TOO_MANY_REQUESTS)

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        proposals, self._proposals = self._proposals, []
        if proposals:
            self.tracker.traces.sent([p[0] for p in proposals if len(p) > 2])
        if proposals and not self._send(Kind.PROPOSE.value, proposals):
            self.tracker.fail_proposals([p[0] for p in proposals], errors.TOO_MANY_REQUESTS)
        if self._read is not None and self._may_ask():
            (context, fut), self._read = self._read, None
            if not self._send(Kind.READ_INDEX.value, [context]):
                self.tracker.fail_reads([context], errors.TOO_MANY_REQUESTS)
                return
            self._asked = (fut, self.tracker.clock())
            fut.add_done_callback(lambda _: self._schedule_flush())

    def _may_ask(self) -> bool:
        """No read index is awaited (or the one awaited is overdue)."""
        if self._asked is None or self._asked[0].done():
            return True
        wait_s = self._asked[1] + READ_INDEX_RETRY_S - self.tracker.clock()
        if wait_s <= 0:
            return True
        if self._retry is None:
            self._retry = asyncio.get_running_loop().call_later(wait_s, self._retry_now)
        return False

    def _retry_now(self) -> None:
        self._retry = None
        self._schedule_flush()
