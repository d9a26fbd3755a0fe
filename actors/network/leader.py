"""Requests only the leader can answer, forwarded to it by any other member: lease
keep-alives and time-to-live (etcd forwards them over the leader's peer URL; petcd
calls the leader's own client API, gRPC on its published client URL).

Keep-alives share one LeaseKeepAlive stream to the leader (`_Forward`): one task
writes the queued requests in order, one reads the answers, and each answer, naming
its lease, goes to the oldest waiter for that lease. The stream ends when it breaks or
another member leads (checked every RETRY_S by `follow_leader`), and its waiters ask
again, of the next leader (etcd's LeaseRenew loop); no leader yet: they wait for one.
Nothing waits on a stopped leader: a write to it would hang until it answers again.
Every wait ends by the request timeout, then "etcdserver: leader changed"
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
RETRY_S = 0.1  # how often the leader is looked at, and the pause before asking again


class _LeaderMoved(Exception):
    """The stream to the leader ended (it broke, or another member leads): ask again."""


class _Forward:
    """One LeaseKeepAlive stream to one leader."""

    def __init__(self, channel: grpc.aio.Channel, log: Any) -> None:
        self.call = rpc.LeaseStub(channel).LeaseKeepAlive()
        self.log = log
        self.outbox: asyncio.Queue[int] = asyncio.Queue()
        self.waiting: dict[int, deque[asyncio.Future[int]]] = {}  # lease id -> waiters
        self.pending = 0
        self.ended = False
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._write()), loop.create_task(self._read())]

    def ask(self, lease_id: int) -> asyncio.Future[int]:
        answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if self.ended:
            answer.set_exception(_LeaderMoved())
            return answer
        self.waiting.setdefault(lease_id, deque()).append(answer)
        self.pending += 1
        self.outbox.put_nowait(lease_id)
        return answer

    async def _write(self) -> None:
        try:
            while True:
                lease_id = await self.outbox.get()
                await self.call.write(pb.LeaseKeepAliveRequest(ID=lease_id))
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            self.end()

    async def _read(self) -> None:
        try:
            async for resp in self.call:
                waiters = self.waiting.get(resp.ID)
                if not waiters:
                    continue
                answer = waiters.popleft()
                self.pending -= 1
                if not waiters:
                    del self.waiting[resp.ID]
                if not answer.done():
                    answer.set_result(resp.TTL)
        except grpc.aio.AioRpcError as err:
            self.log.info("keep-alive stream to the leader ended", error=err.details())
        self.end()

    def end(self) -> None:
        """Drop the stream; every waiter asks again."""
        if self.ended:
            return
        self.ended = True
        self.call.cancel()
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        waiting, self.waiting, self.pending = self.waiting, {}, 0
        for answers in waiting.values():
            for answer in answers:
                if not answer.done():
                    answer.set_exception(_LeaderMoved())
                    answer.exception()


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
        self._forward: _Forward | None = None
        self._closing: set[asyncio.Task[None]] = set()  # channels to old leaders
        self._dialing = asyncio.Lock()  # one channel to one leader at a time

    async def follow_leader(self) -> None:
        """End the stream to a member that no longer leads (a loop of the actor)."""
        while True:
            await asyncio.sleep(RETRY_S)
            if self._forward is not None and self.tracker.status.leader != self._leader:
                self._forward.end()

    async def keep_alive(self, lease_id: int) -> int:
        """The leader's answer, asked again of the next leader if the stream ends."""
        if self._forward is not None and self._forward.pending >= MAX_WAITING:
            raise errors.copy(errors.TOO_MANY_REQUESTS)
        try:
            async with asyncio.timeout(self.timeout_s):
                while True:
                    forward = await self._forward_stream()
                    try:
                        return await forward.ask(lease_id)
                    except _LeaderMoved:
                        await asyncio.sleep(RETRY_S)
        except TimeoutError:
            raise errors.copy(errors.LEADER_CHANGED) from None

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

    async def _forward_stream(self) -> _Forward:
        channel = await self._leader_channel()
        if self._forward is None or self._forward.ended:
            self._forward = _Forward(channel, self.log)
        return self._forward

    async def _leader_channel(self) -> grpc.aio.Channel:
        while not self.tracker.status.has_leader:  # etcd's waitLeader
            await asyncio.sleep(RETRY_S)
        async with self._dialing:
            return await self._channel_to(self.tracker.status.leader)

    async def _channel_to(self, leader: int) -> grpc.aio.Channel:
        if leader == self._leader and self._channel is not None:
            return self._channel
        if self._forward is not None:
            self._forward.end()
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
            await asyncio.sleep(RETRY_S)
