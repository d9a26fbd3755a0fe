"""etcd's v3lock and v3election services, as etcd builds them: its concurrency recipes
(clientv3/concurrency mutex.go, election.go, key.go) run inside the member on its own
KV, Txn and Watch (server.py and the watch hub), not on anything of their own.

    Lock(name, lease)     the key `name/<lease hex>` is put with the lease unless it
                          exists; the holder is the key on the prefix created first.
                          A waiter waits, by watching, until every key created before
                          its own is deleted, then checks that its own key still exists
                          (its lease may have expired meanwhile: etcd issue 11456) and
                          answers with it. The key's create revision is the fencing
                          token: a holder guards its writes with a Txn comparing it.
    Unlock(key)           deletes the key
    Campaign(name, lease, value)   the same queue; once first, the leader
    Proclaim(leader, value)        a new value, only if the leader key is unchanged
    Leader(name)                   the first-created key of the election
    Observe(name)                  each leader, and each value it proclaims, in order
    Resign(leader)                 deletes the leader key if it is unchanged

A call whose client gives up (cancels) removes the key it put while waiting, as etcd's
Mutex.Lock and Election.Campaign do. A lease of 0 gets a lease of DEFAULT_SESSION_TTL_S
granted and never kept alive (etcd's NewSession, orphaned at once).

etcd's servers run the recipes on an in-process clientv3, whose toErr turns each of
etcd's own errors ("etcdserver: ...") into a plain Go error, which gRPC answers with
code Unknown: a Lock on an expired lease is Unknown (HTTP 500), not NotFound, in etcd
3.4.23 as checked by tests/compat/test_lease_lock_election_gateway.py. The unary calls
here answer the same way (`_as_client_errors`).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from google.protobuf.message import Message
from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.api.mvccpb.kv_pb2 import Event, KeyValue
from petcd.api.v3electionpb import v3election_pb2 as epb
from petcd.api.v3lockpb import v3lock_pb2 as lpb

from .errors import Code, EtcdError

if TYPE_CHECKING:
    from .server import Server

DEFAULT_SESSION_TTL_S = 60  # etcd's concurrency defaultSessionTTL
LOST_WATCHER = "lost watcher waiting for delete"  # etcd's concurrency waitDelete
SESSION_EXPIRED = "mutex: session is expired"
NOT_LEADER = "election: not leader"
NO_LEADER = "election: no leader"
MISSING_LEADER_KEY = '"leader" field must be provided'
ETCD_ERROR_PREFIX = "etcdserver: "  # every message of etcd's rpctypes errors


def _unknown(message: str) -> EtcdError:
    # The recipes' plain Go errors reach clients as grpc-go's Unknown.
    return EtcdError(Code.UNKNOWN, message)


def _as_client_errors(call: Callable[[Coordination, Any], Awaitable[Message]]
                      ) -> Callable[[Coordination, Any], Awaitable[Message]]:
    """The call, with etcd's errors answered as etcd's in-process client passes them
    on (see the module's comment)."""
    @functools.wraps(call)
    async def as_client(self: Coordination, request: Any) -> Message:
        try:
            return await call(self, request)
        except EtcdError as err:
            if not err.message.startswith(ETCD_ERROR_PREFIX):
                raise
            raise _unknown(err.message) from None
    return as_client


def prefix_end(prefix: bytes) -> bytes:
    """clientv3.GetPrefixRangeEnd."""
    end = bytearray(prefix)
    for i in reversed(range(len(end))):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[:i + 1])
    return b"\x00"


def session_key(name: bytes, lease_id: int) -> bytes:
    return name + b"/" + format(lease_id, "x").encode()


@dataclass(frozen=True, slots=True)
class Queued:
    """A session's key in a lock's or election's queue."""

    rev: int  # its create revision: its place in the queue, and the fencing token
    header: pb.ResponseHeader  # of the Txn that queued it
    value: bytes | None  # the value it already had, None if the Txn created it
    owner_rev: int  # the create revision of the first key on the prefix, 0 if none


class Coordination:
    def __init__(self, server: Server) -> None:
        self.server = server

    # -- v3lock --------------------------------------------------------------------

    @_as_client_errors
    async def lock(self, r: lpb.LockRequest) -> lpb.LockResponse:
        lease_id = await self._session(r.lease)
        prefix, key = r.name + b"/", session_key(r.name, lease_id)
        queued = await self._enqueue(prefix, key, b"", lease_id)
        header = queued.header
        if queued.owner_rev not in (0, queued.rev):  # etcd's Mutex.Lock: not first
            try:
                await self._wait_deletes(prefix, queued.rev - 1)
                mine = await self.server.range(pb.RangeRequest(key=key))
            except BaseException:
                await self._delete(key)  # give up the place in the queue
                raise
            if not mine.kvs:  # the lease expired while waiting
                raise _unknown(SESSION_EXPIRED)
            header = mine.header
        resp = lpb.LockResponse(key=key)
        resp.header.CopyFrom(header)
        return resp

    @_as_client_errors
    async def unlock(self, r: lpb.UnlockRequest) -> lpb.UnlockResponse:
        deleted = await self.server.delete_range(pb.DeleteRangeRequest(key=r.key))
        resp = lpb.UnlockResponse()
        resp.header.CopyFrom(deleted.header)
        return resp

    async def _session(self, lease_id: int) -> int:
        if lease_id != 0:
            return lease_id
        granted = await self.server.lease_grant(pb.LeaseGrantRequest(TTL=DEFAULT_SESSION_TTL_S))
        return granted.ID

    async def _enqueue(self, prefix: bytes, key: bytes, value: bytes, lease_id: int
                       ) -> Queued:
        """Put `key` unless it exists (this session queued before), and read who is
        first, in one Txn (etcd's tryAcquire)."""
        first = pb.RequestOp(request_range=self._first_request(prefix))
        txn = pb.TxnRequest(
            compare=[pb.Compare(key=key, target=pb.Compare.CREATE, result=pb.Compare.EQUAL,
                                create_revision=0)],
            success=[pb.RequestOp(request_put=pb.PutRequest(key=key, value=value,
                                                            lease=lease_id)), first],
            failure=[pb.RequestOp(request_range=pb.RangeRequest(key=key)), first])
        resp = await self.server.txn(txn)
        owners = resp.responses[1].response_range.kvs
        owner_rev = owners[0].create_revision if owners else 0
        if resp.succeeded:
            return Queued(resp.header.revision, resp.header, None, owner_rev)
        mine = resp.responses[0].response_range.kvs[0]
        return Queued(mine.create_revision, resp.header, mine.value, owner_rev)

    async def _wait_deletes(self, prefix: bytes, max_create_rev: int) -> None:
        """Until no key on `prefix` created at or before `max_create_rev` is left."""
        while True:
            last = await self.server.range(pb.RangeRequest(
                key=prefix, range_end=prefix_end(prefix), sort_target=pb.RangeRequest.CREATE,
                sort_order=pb.RangeRequest.DESCEND, limit=1,
                max_create_revision=max_create_rev))
            if not last.kvs:
                return
            await self._wait_delete(last.kvs[0].key, last.header.revision)

    async def _wait_delete(self, key: bytes, rev: int) -> None:
        async with self._watch(key, b"", rev) as responses:
            async for resp in responses:
                if any(e.type == Event.DELETE for e in resp.events):
                    return
        raise _unknown(LOST_WATCHER)

    async def _delete(self, key: bytes) -> None:
        with contextlib.suppress(EtcdError):
            await self.server.delete_range(pb.DeleteRangeRequest(key=key))

    @contextlib.asynccontextmanager
    async def _watch(self, key: bytes, range_end: bytes, start_rev: int
                     ) -> AsyncIterator[AsyncIterator[pb.WatchResponse]]:
        """A watch of this member's hub, as a client's; ends if it is canceled."""
        hub = self.server.watches
        stream = hub.open_stream(require_leader=False)
        try:
            await stream.handle(pb.WatchRequest(create_request=pb.WatchCreateRequest(
                key=key, range_end=range_end, start_revision=start_rev)))
            yield _responses(stream.responses())
        finally:
            hub.close_stream(stream)

    # -- v3election ------------------------------------------------------------------

    @_as_client_errors
    async def campaign(self, r: epb.CampaignRequest) -> epb.CampaignResponse:
        lease_id = await self._session(r.lease)
        prefix = r.name + b"/"
        queued = await self._enqueue(prefix, session_key(r.name, lease_id), r.value, lease_id)
        leader = epb.LeaderKey(name=r.name, key=session_key(r.name, lease_id),
                               rev=queued.rev, lease=lease_id)
        try:
            if queued.value is not None and queued.value != r.value:
                await self._proclaim(leader, r.value)
            await self._wait_deletes(prefix, queued.rev - 1)
        except BaseException:
            await self._resign(leader)  # etcd's Campaign cleans up when the client gives up
            raise
        return epb.CampaignResponse(header=queued.header, leader=leader)

    @_as_client_errors
    async def proclaim(self, r: epb.ProclaimRequest) -> epb.ProclaimResponse:
        if not r.HasField("leader"):
            raise _unknown(MISSING_LEADER_KEY)
        return epb.ProclaimResponse(header=(await self._proclaim(r.leader, r.value)).header)

    async def _proclaim(self, leader: epb.LeaderKey, value: bytes) -> pb.TxnResponse:
        resp = await self.server.txn(pb.TxnRequest(
            compare=[_unchanged(leader)],
            success=[pb.RequestOp(request_put=pb.PutRequest(key=leader.key, value=value,
                                                            lease=leader.lease))]))
        if not resp.succeeded:
            raise _unknown(NOT_LEADER)
        return resp

    @_as_client_errors
    async def resign(self, r: epb.ResignRequest) -> epb.ResignResponse:
        if not r.HasField("leader"):
            raise _unknown(MISSING_LEADER_KEY)
        return epb.ResignResponse(header=(await self._resign(r.leader)).header)

    async def _resign(self, leader: epb.LeaderKey) -> pb.TxnResponse:
        return await self.server.txn(pb.TxnRequest(
            compare=[_unchanged(leader)],
            success=[pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=leader.key))]))

    @_as_client_errors
    async def leader(self, r: epb.LeaderRequest) -> epb.LeaderResponse:
        first = await self._first(r.name + b"/")
        if not first.kvs:
            raise _unknown(NO_LEADER)
        return epb.LeaderResponse(header=first.header, kv=first.kvs[0])

    async def _first(self, prefix: bytes) -> pb.RangeResponse:
        return await self.server.range(self._first_request(prefix))

    @staticmethod
    def _first_request(prefix: bytes) -> pb.RangeRequest:
        """clientv3.WithFirstCreate on a prefix."""
        return pb.RangeRequest(key=prefix, range_end=prefix_end(prefix),
                               sort_target=pb.RangeRequest.CREATE,
                               sort_order=pb.RangeRequest.ASCEND, limit=1)

    async def observe(self, r: epb.LeaderRequest) -> AsyncIterator[epb.LeaderResponse]:
        """etcd's Election.observe: the leader (waiting for one if none), each value it
        proclaims, and, once it is deleted, the next leader."""
        prefix = r.name + b"/"
        while True:
            first = await self._first(prefix)
            if first.kvs:
                header, kv = first.header, first.kvs[0]
            else:
                header, kv = await self._next_put(prefix, first.header.revision)
            yield epb.LeaderResponse(header=header, kv=kv)
            async with self._watch(kv.key, b"", header.revision + 1) as responses:
                async for resp in responses:
                    for event in resp.events:
                        if event.type == Event.DELETE:
                            break
                        yield epb.LeaderResponse(header=resp.header, kv=event.kv)
                    else:
                        continue
                    break
                else:
                    return  # the watch was canceled (compacted): etcd's channel closes

    async def _next_put(self, prefix: bytes, rev: int) -> tuple[pb.ResponseHeader, KeyValue]:
        async with self._watch(prefix, prefix_end(prefix), rev) as responses:
            async for resp in responses:
                for event in resp.events:
                    if event.type == Event.PUT:
                        header = pb.ResponseHeader()
                        header.CopyFrom(resp.header)
                        header.revision = event.kv.mod_revision
                        return header, event.kv
        raise _unknown(LOST_WATCHER)


def _unchanged(leader: epb.LeaderKey) -> pb.Compare:
    return pb.Compare(key=leader.key, target=pb.Compare.CREATE, result=pb.Compare.EQUAL,
                      create_revision=leader.rev)


async def _responses(raw: AsyncIterator[bytes]) -> AsyncIterator[pb.WatchResponse]:
    """The watch's responses, parsed; ends at a cancel (e.g. compaction)."""
    async for data in raw:
        resp = pb.WatchResponse.FromString(data)
        if resp.canceled:
            return
        if not resp.created:
            yield resp
