"""Requests only the leader can answer, forwarded to it by any other member: lease
keep-alives and time-to-live (etcd forwards them over the leader's peer URL; petcd
calls the leader's own client API, gRPC on its published client URL).

Keep-alives share one LeaseKeepAlive stream to the leader, opened on first use and
again after it breaks or the leader changes; each answer names its lease, and goes to
the oldest waiter for that lease. A keep-alive whose leader goes away while it waits
is asked again of the next leader (etcd's LeaseRenew loop); no leader yet: it waits
for one. Every wait ends by the request timeout, then "etcdserver: leader changed"
(Unavailable, which clients retry).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import grpc

from petcd.actors.apply import members as member_table
from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.api.etcdserverpb import rpc_pb2_grpc as rpc
from petcd.nodes.member import MemberContext

from . import errors
from .local import LocalStore
from .requests import Tracker

MAX_WAITING = 10_000  # keep-alives waiting for the leader's answers at once
RETRY_S = 0.1  # how often a waiting keep-alive looks for a new leader


class _LeaderMoved(Exception):
    """The stream to the leader broke or the leader changed: ask again."""
PUBLISH_POLL_S = 0.1


class LeaderLink:
    def __init__(self, ctx: MemberContext, store: LocalStore, tracker: Tracker,
                 timeout_s: float, log: Any) -> None:
        self.ctx = ctx
        self.store = store
        self.tracker = tracker
        self.timeout_s = timeout_s
        self.log = log
        self._leader = 0  # the member the channel goes to
        self._channel: grpc.aio.Channel | None = None
        self._stream: Any = None  # the shared LeaseKeepAlive call
        self._waiting: dict[int, deque[asyncio.Future[int]]] = {}  # lease id -> waiters
        self._waiters = 0
        self._reader: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()  # channels to old leaders

    async def keep_alive(self, lease_id: int) -> int:
        """The leader's answer; asked again of the new leader if leadership moves while
        waiting (etcd's LeaseRenew loop), within the request timeout."""
        if self._waiters >= MAX_WAITING:
            raise errors.copy(errors.TOO_MANY_REQUESTS)
        try:
            async with asyncio.timeout(self.timeout_s):
                while True:
                    leader = self.tracker.status.leader
                    try:
                        return await self._keep_alive_once(lease_id, leader)
                    except _LeaderMoved:
                        await asyncio.sleep(RETRY_S)
        except TimeoutError:
            self._drop_stream()
            raise errors.copy(errors.LEADER_CHANGED) from None

    async def _keep_alive_once(self, lease_id: int, leader: int) -> int:
        stream = await self._keep_alive_stream()
        answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(lease_id, deque()).append(answer)
        self._waiters += 1
        # Not awaited alone: a write to a stopped leader waits until it answers again,
        # and a keep-alive must move on as soon as another member leads.
        write = asyncio.ensure_future(stream.write(pb.LeaseKeepAliveRequest(ID=lease_id)))
        write.add_done_callback(self._on_written)
        while not answer.done():
            await asyncio.wait([answer], timeout=RETRY_S)
            if self.tracker.status.leader != leader:
                self._drop_stream()
        return answer.result()

    def _on_written(self, write: asyncio.Future[None]) -> None:
        if write.cancelled() or write.exception() is not None:
            self._drop_stream()

    async def time_to_live(self, r: pb.LeaseTimeToLiveRequest) -> pb.LeaseTimeToLiveResponse:
        """The leader's answer, asked again of a new leader as keep-alives are."""
        try:
            async with asyncio.timeout(self.timeout_s):
                while True:
                    leader = self.tracker.status.leader
                    channel = await self._leader_channel()
                    call = asyncio.ensure_future(rpc.LeaseStub(channel).LeaseTimeToLive(r))
                    while not call.done() and self.tracker.status.leader == leader:
                        await asyncio.wait([call], timeout=RETRY_S)
                    if call.done() and call.exception() is None:
                        resp: pb.LeaseTimeToLiveResponse = call.result()
                        break
                    call.cancel()
                    await asyncio.sleep(RETRY_S)
        except TimeoutError:
            raise errors.copy(errors.LEADER_CHANGED) from None
        resp.ClearField("header")  # the caller fills this member's header
        return resp

    async def _leader_channel(self) -> grpc.aio.Channel:
        while not self.tracker.status.has_leader:  # etcd's waitLeader
            await asyncio.sleep(RETRY_S)
        leader = self.tracker.status.leader
        if leader == self._leader and self._channel is not None:
            return self._channel
        self._drop_stream()
        if self._channel is not None:
            # Not awaited: closing a channel to a stopped member can take until it
            # answers again, and the keep-alives waiting here must go on at once.
            closing = asyncio.get_running_loop().create_task(self._channel.close())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
            self._channel = None
        target = await self._client_address(leader)
        self._channel, self._leader = grpc.aio.insecure_channel(target), leader
        return self._channel

    async def _client_address(self, leader: int) -> str:
        """host:port of the leader's first client URL, once it has published them (a
        member publishes right after it starts; the caller's timeout bounds the wait)."""
        while True:
            member = (await self.store.call(member_table.read_member_table)).get(leader)
            if member is not None and member.client_urls:
                return member.client_urls[0].split("://", 1)[-1]
            await asyncio.sleep(PUBLISH_POLL_S)

    async def _keep_alive_stream(self) -> Any:
        channel = await self._leader_channel()
        if self._stream is None:
            self._stream = rpc.LeaseStub(channel).LeaseKeepAlive()
            self._reader = asyncio.get_running_loop().create_task(self._read(self._stream))
        return self._stream

    async def _read(self, stream: Any) -> None:
        try:
            async for resp in stream:
                waiters = self._waiting.get(resp.ID)
                if waiters:
                    answer = waiters.popleft()
                    self._waiters -= 1
                    if not waiters:
                        del self._waiting[resp.ID]
                    if not answer.done():
                        answer.set_result(resp.TTL)
        except grpc.aio.AioRpcError as err:
            self.log.info("keep-alive stream to the leader ended", error=err.details())
        if stream is self._stream:
            self._drop_stream()

    def _drop_stream(self) -> None:
        """Forget the stream; its waiters ask again (_LeaderMoved)."""
        if self._stream is not None:
            self._stream.cancel()
            self._stream = None
        waiting, self._waiting, self._waiters = self._waiting, {}, 0
        for answers in waiting.values():
            for answer in answers:
                if not answer.done():
                    answer.set_exception(_LeaderMoved())
                    answer.exception()
