"""One LeaseKeepAlive stream of petcd-bench: its leases renewed on clientv3's schedule,
or as fast as the stream goes, every answer timed.

A stream is one bidirectional etcdserverpb.Lease/LeaseKeepAlive call carrying the
keep-alives of many leases, as clientv3 multiplexes all of a client's leases on one.
The sender renews each lease when it is due (bench_lease_plan.next_keepalive_s) or,
once `flat_out` is set, keeps MAX_INFLIGHT_PER_STREAM keep-alives in flight over the
leases in turn; the reader matches each answer to the oldest unanswered keep-alive of
its lease (answers of one lease come in the order asked), so the latency is right
whatever order the member answers different leases in. An answer with TTL <= 0 says
the lease is gone: it is counted lost and never renewed again.

Every wait is bounded: the sender looks at its flags at least every TICK_S, and
`finish` waits at most DRAIN_TIMEOUT_S for the answers owed.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from array import array
from collections import deque
from dataclasses import dataclass, field

import grpc

from ..api.etcdserverpb import rpc_pb2 as pb
from ..api.etcdserverpb import rpc_pb2_grpc as pb_grpc
from .bench_lease_plan import MAX_INFLIGHT_PER_STREAM, next_keepalive_s
from .bench_worker import ERRORS_KEPT

TICK_S = 0.5  # the longest the sender goes without looking at its flags
DRAIN_TIMEOUT_S = 30.0  # for the answers owed once the stream is half-closed


@dataclass(slots=True)
class KeepAliveTally:
    """What the streams of one worker saw, in time.monotonic() seconds."""
    sent_s: array = field(default_factory=lambda: array("d"))  # every keep-alive sent
    answered_s: array = field(default_factory=lambda: array("d"))  # every answer's arrival
    latencies_s: array = field(default_factory=lambda: array("d"))  # sent -> answered, same order
    lost: set[int] = field(default_factory=set)  # lease IDs answered with TTL <= 0
    errors: list[str] = field(default_factory=list)  # the first ERRORS_KEPT
    error_count: int = 0

    def error(self, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < ERRORS_KEPT:
            self.errors.append(message)


class KeepAliveStream:
    def __init__(self, channel: grpc.aio.Channel, number: int, tally: KeepAliveTally) -> None:
        self.number, self.tally = number, tally
        self.flat_out = False  # set once: from then on, as fast as the stream goes
        self._call = pb_grpc.LeaseStub(channel).LeaseKeepAlive()
        self._due: list[tuple[float, int]] = []  # heap of (due_s, lease ID)
        self._alive: dict[int, None] = {}  # leases still renewed, in the order granted
        self._turn = 0  # flat out: index of the next lease in _alive to renew
        self._unanswered: dict[int, deque[tuple[float, bool]]] = {}  # ID -> (sent_s, flat out)
        self._slots = asyncio.Semaphore(MAX_INFLIGHT_PER_STREAM)
        self._wake = asyncio.Event()
        self._stopping = self._refresh_all = False
        self._reader = asyncio.ensure_future(self._read())
        self._sender = asyncio.ensure_future(self._send())

    def add(self, lease_id: int, granted_s: float, ttl_s: int) -> None:
        """Renew lease_id from now on, first TTL/3 after its grant was answered."""
        assert lease_id not in self._alive, f"lease {lease_id:x} added twice"
        self._alive[lease_id] = None
        self._schedule(next_keepalive_s(granted_s, ttl_s), lease_id)

    def go_flat_out(self) -> None:
        self.flat_out = True
        self._wake.set()

    async def finish(self, refresh_all: bool) -> None:
        """Stop renewing (with refresh_all, renew every live lease once more first),
        half-close the stream and wait for the answers owed, bounded."""
        self._stopping, self._refresh_all = True, refresh_all
        self._wake.set()
        done, _ = await asyncio.wait([self._sender, self._reader], timeout=DRAIN_TIMEOUT_S)
        if len(done) < 2:
            owed = sum(len(q) for q in self._unanswered.values())
            self.tally.error(f"keep-alive stream {self.number}: {owed} answers still owed "
                             f"after {DRAIN_TIMEOUT_S:.0f} s")
        self._sender.cancel()
        self._reader.cancel()
        self._call.cancel()

    def _schedule(self, due_s: float, lease_id: int) -> None:
        heapq.heappush(self._due, (due_s, lease_id))
        if self._due[0][1] == lease_id:  # earlier than what the sender sleeps until
            self._wake.set()

    async def _write(self, lease_id: int, flat: bool) -> None:
        sent_s = time.monotonic()
        self._unanswered.setdefault(lease_id, deque()).append((sent_s, flat))
        self.tally.sent_s.append(sent_s)
        await self._call.write(pb.LeaseKeepAliveRequest(ID=lease_id))

    async def _send(self) -> None:
        try:
            while not self._stopping:
                await (self._send_flat_out() if self.flat_out else self._send_due())
            if self._refresh_all:
                for lease_id in list(self._alive):
                    await self._write(lease_id, False)
            await self._call.done_writing()
        except grpc.aio.AioRpcError as err:
            self.tally.error(f"keep-alive stream {self.number}: {err.code().name}: "
                             f"{err.details()}")
        except asyncio.InvalidStateError:  # a write after the member ended the stream
            self.tally.error(f"keep-alive stream {self.number}: ended by the member")

    async def _send_due(self) -> None:
        now = time.monotonic()
        while self._due and self._due[0][0] <= now:
            _, lease_id = heapq.heappop(self._due)
            if lease_id in self._alive:
                await self._write(lease_id, False)
        wait_s = min(TICK_S, self._due[0][0] - now) if self._due else TICK_S
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), max(0.0, wait_s))
        except TimeoutError:
            pass

    async def _send_flat_out(self) -> None:
        try:
            await asyncio.wait_for(self._slots.acquire(), TICK_S)
        except TimeoutError:  # every slot in flight: look at the flags again
            return
        if not self._alive:
            self._slots.release()
            await asyncio.sleep(TICK_S)
            return
        leases = list(self._alive)  # cheap next to a gRPC write; lost leases drop out
        self._turn = (self._turn + 1) % len(leases)
        await self._write(leases[self._turn], True)

    async def _read(self) -> None:
        try:
            while (resp := await self._call.read()) is not grpc.aio.EOF:
                self._answered(resp, time.monotonic())
        except grpc.aio.AioRpcError as err:
            if not (self._stopping and err.code() == grpc.StatusCode.CANCELLED):
                self.tally.error(f"keep-alive stream {self.number}: {err.code().name}: "
                                 f"{err.details()}")
            return
        if not self._stopping:
            self.tally.error(f"keep-alive stream {self.number}: ended by the member")

    def _answered(self, resp: pb.LeaseKeepAliveResponse, answered_s: float) -> None:
        pending = self._unanswered.get(resp.ID)
        if not pending:
            self.tally.error(f"keep-alive stream {self.number}: an answer for lease "
                             f"{resp.ID:x}, which it did not renew")
            return
        sent_s, flat = pending.popleft()
        self.tally.answered_s.append(answered_s)
        self.tally.latencies_s.append(answered_s - sent_s)
        if flat:
            self._slots.release()
        if resp.TTL <= 0:
            self.tally.lost.add(resp.ID)
            self._alive.pop(resp.ID, None)
        elif not flat and not self._stopping:
            self._schedule(next_keepalive_s(answered_s, resp.TTL), resp.ID)
