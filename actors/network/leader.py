"""Requests only the leader can answer, forwarded to it by any other member: lease
keep-alives and time-to-live, membership changes (etcd forwards the ones it forwards
over the leader's peer URL; petcd calls the leader's gRPC server, on its published
client URL, with TLS if it is https).

Keep-alives share one stream to the leader (`_Forward`) on petcd's own method
FORWARD_METHOD: each message is a batch, the lease ids (msgpack) of every keep-alive
that came while the previous batch was being written, and the leader answers each
batch, in order, with their TTLs (0: no such lease). One gRPC message per batch
instead of one per keep-alive, each way: what a forwarded keep-alive costs both
members is then mostly what the client's own stream costs. The stream ends when it
breaks or another member leads (checked every RETRY_S by `follow_leader`), and its
waiters ask again, of the next leader (etcd's LeaseRenew loop); no leader yet: they
wait for one. Nothing waits on a stopped leader: a write to it would hang until it
answers again. Every wait ends by the request timeout, then "etcdserver: leader
changed" (Unavailable, which clients retry).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import Any

import grpc
import msgpack
from google.protobuf.message import Message

from petcd.actors.apply import members as member_table
from petcd.actors.member import MemberContext
from petcd.api.etcdserverpb import rpc_pb2 as pb

from . import auth, errors
from .local import LocalStore
from .requests import Tracker

MAX_WAITING = 10_000  # keep-alives waiting for the leader's answers at once
MAX_BATCH = 1000  # keep-alives in one forwarded message
RETRY_S = 0.1  # how often the leader is looked at, and the pause before asking again
FORWARD_SERVICE, FORWARD_NAME = "petcd.internal.Leader", "KeepAlives"
FORWARD_METHOD = f"/{FORWARD_SERVICE}/{FORWARD_NAME}"
# Called on the channel, not through rpc_pb2_grpc's stubs: that generated module
# (every service's stubs, servicers and experimental helpers) was imported for these
# calls alone; 0.6 MiB in an interpreter that has the network actor's other modules.
TIME_TO_LIVE_METHOD = "/etcdserverpb.Lease/LeaseTimeToLive"
_INT64 = range(-(1 << 63), 1 << 63)


def pack_ids(values: list[int]) -> bytes:
    return msgpack.packb(values)


def unpack_ids(data: bytes) -> list[int]:
    """A forwarded batch (lease ids, or their TTLs); ValueError unless it is a list of
    at most MAX_BATCH int64s."""
    try:
        values = msgpack.unpackb(data)
    except Exception as err:  # msgpack raises several kinds for bad bytes
        raise ValueError(f"not msgpack: {err}") from None
    if (not isinstance(values, list) or not 0 < len(values) <= MAX_BATCH
            or not all(type(v) is int and v in _INT64 for v in values)):
        raise ValueError(f"not a batch of 1-{MAX_BATCH} int64s")
    return values


_ASK_ANOTHER = frozenset(e.message for e in (errors.NO_LEADER, errors.LEADER_CHANGED,
                                             errors.NOT_LEADER, errors.STOPPED))


def _moved(err: grpc.aio.AioRpcError) -> bool:
    """The call did not reach a leader (no connection, or it no longer leads): ask
    the next one. Any other error is the leader's answer."""
    details = err.details() or ""
    return details in _ASK_ANOTHER or (err.code() == grpc.StatusCode.UNAVAILABLE
                                       and not details.startswith("etcdserver: "))


class _LeaderMoved(Exception):
    """The stream to the leader ended (it broke, or another member leads): ask again."""


class _Forward:
    """One stream of keep-alive batches to one leader."""

    def __init__(self, channel: grpc.aio.Channel, log: Any) -> None:
        method = channel.stream_stream(FORWARD_METHOD, request_serializer=pack_ids,
                                       response_deserializer=unpack_ids)
        self.call = method()
        self.log = log
        self.queued: list[tuple[int, asyncio.Future[int]]] = []  # not written yet
        self.sent: deque[list[asyncio.Future[int]]] = deque()  # batches, oldest first
        self.pending = 0  # keep-alives queued or sent, not answered
        self.ended = False
        self._queued_some = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._write()), loop.create_task(self._read())]

    def ask(self, lease_id: int) -> asyncio.Future[int]:
        answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if self.ended:
            answer.set_exception(_LeaderMoved())
            return answer
        self.queued.append((lease_id, answer))
        self.pending += 1
        self._queued_some.set()
        return answer

    async def _write(self) -> None:
        try:
            while True:
                await self._queued_some.wait()
                self._queued_some.clear()
                while self.queued:
                    batch, self.queued = self.queued[:MAX_BATCH], self.queued[MAX_BATCH:]
                    self.sent.append([answer for _, answer in batch])
                    await self.call.write([lease_id for lease_id, _ in batch])
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            self.end()

    async def _read(self) -> None:
        try:
            async for ttls in self.call:
                answers = self.sent.popleft()  # the leader answers each batch, in order
                if len(ttls) != len(answers):
                    self.log.warning("the leader answered a keep-alive batch with the "
                                     "wrong count", asked=len(answers), answered=len(ttls))
                    break
                self.pending -= len(answers)
                for answer, ttl in zip(answers, ttls):
                    if not answer.done():  # a waiter that gave up
                        answer.set_result(ttl)
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
        unanswered = [answer for _, answer in self.queued]
        unanswered += [answer for batch in self.sent for answer in batch]
        self.queued, self.sent, self.pending = [], deque(), 0
        for answer in unanswered:
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

    async def keep_alives(self, lease_ids: list[int]) -> list[int]:
        """The leader's answers, in order; those the stream lost are asked again of
        the next leader."""
        if self._forward is not None and self._forward.pending >= MAX_WAITING:
            raise errors.copy(errors.TOO_MANY_REQUESTS)
        ttls: dict[int, int] = {}  # position in lease_ids -> TTL
        todo = list(range(len(lease_ids)))
        try:
            async with asyncio.timeout(self.timeout_s):
                while True:
                    forward = await self._forward_stream()
                    outcomes = await asyncio.gather(
                        *(forward.ask(lease_ids[n]) for n in todo), return_exceptions=True)
                    ttls.update((n, ttl) for n, ttl in zip(todo, outcomes)
                                if not isinstance(ttl, _LeaderMoved))
                    todo = [n for n, ttl in zip(todo, outcomes) if isinstance(ttl, _LeaderMoved)]
                    if not todo:
                        return [ttls[n] for n in range(len(lease_ids))]
                    await asyncio.sleep(RETRY_S)
        except TimeoutError:
            raise errors.copy(errors.LEADER_CHANGED) from None

    async def time_to_live(self, r: pb.LeaseTimeToLiveRequest) -> pb.LeaseTimeToLiveResponse:
        """The leader's answer, asked again of a new leader as keep-alives are."""
        resp: pb.LeaseTimeToLiveResponse = await self.call(
            TIME_TO_LIVE_METHOD, r, pb.LeaseTimeToLiveResponse)
        return resp

    async def call(self, method: str, request: Message, response_class: type[Message]) -> Any:
        """The leader's answer to a unary call ("/etcdserverpb.Cluster/MemberAdd"...),
        its header cleared for the caller to fill. Asked again of the next leader when
        the call did not reach a leader (`_moved`); the leader's other errors are the
        caller's (as EtcdError).

        A call under way is waited for even when another member starts to lead: the
        change it asked for may be on its way (a leader that removes itself hands over
        first and passes the call on), and asking the new leader as well would make
        the change twice, the second answered "member not found"."""
        try:
            async with asyncio.timeout(self.timeout_s):
                while True:
                    channel = await self._leader_channel()
                    # The asker's token goes along: the leader checks it too.
                    token = auth.current_token.get()
                    metadata = ((auth.TOKEN_METADATA_KEYS[0], token),) if token else None
                    try:
                        resp = await channel.unary_unary(
                            method, request_serializer=type(request).SerializeToString,
                            response_deserializer=response_class.FromString)(
                                request, metadata=metadata)
                        break
                    except grpc.aio.AioRpcError as err:
                        if not _moved(err):
                            raise errors.EtcdError(errors.Code(err.code().value[0]),
                                                   err.details() or "") from None
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
        """A channel to the current leader, once there is one and its client URL is
        known (a member publishes right after it starts; a leader stopped before it
        did is passed over as soon as another leads). The caller's timeout bounds it."""
        while True:
            if self.tracker.status.has_leader:  # etcd's waitLeader
                async with self._dialing:
                    channel = await self._channel_to(self.tracker.status.leader)
                if channel is not None:
                    return channel
            await asyncio.sleep(RETRY_S)

    async def _channel_to(self, leader: int) -> grpc.aio.Channel | None:
        if leader == self._leader and self._channel is not None:
            return self._channel
        url = await self._client_url(leader)
        if url is None:
            return None
        try:
            channel = await self._open_channel(url)
        except (OSError, ValueError) as err:  # unreadable files; an auto TLS peer down
            self.log.warning("cannot reach the leader's client URL", url=url, error=str(err))
            return None
        if self._forward is not None:
            self._forward.end()
        if self._channel is not None:
            # Not awaited: closing a channel to a stopped member can take until it
            # answers again, and the keep-alives waiting here must go on at once.
            closing = asyncio.get_running_loop().create_task(self._channel.close())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        self._channel, self._leader = channel, leader
        return self._channel

    async def _client_url(self, leader: int) -> str | None:
        """The leader's first client URL; None until it has published."""
        member = (await self.store.call(member_table.read_member_table)).get(leader)
        if member is None or not member.client_urls:
            return None
        return str(member.client_urls[0])

    async def _open_channel(self, url: str) -> grpc.aio.Channel:
        """A channel to a client URL; over TLS for https, showing this member's client
        certificate (--cert-file) and trusting --trusted-ca-file's CA. A member with
        --auto-tls trusts the certificate the leader shows (etcd's auto TLS skips
        verification as well)."""
        scheme, _, target = url.partition("://")
        if scheme != "https":
            return grpc.aio.insecure_channel(target)
        s = self.ctx.settings
        roots = s.trusted_ca_file.read_bytes() if s.trusted_ca_file else None
        if roots is None and s.auto_tls:
            host, _, port = target.rpartition(":")
            roots = (await asyncio.to_thread(
                ssl.get_server_certificate, (host.strip("[]"), int(port)),
                timeout=self.timeout_s)).encode()
        key = s.key_file.read_bytes() if s.key_file and s.cert_file else None
        cert = s.cert_file.read_bytes() if s.key_file and s.cert_file else None
        return grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(roots, key, cert))
