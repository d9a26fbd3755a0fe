"""The server side of the client API, as etcd's EtcdServer and v3rpc servers answer:
requests in, etcd responses out (protobuf), or an EtcdError. Transport-free: the gRPC
services (rpc.py) and the JSON gateway (gateway.py) both call it.

- Writes (Put, DeleteRange, Txn, Compact): checked as v3rpc checks them, wrapped in an
  InternalRaftRequest with a fresh header.ID, refused if larger than
  --max-request-bytes ("etcdserver: request is too large"), proposed, and answered
  with the apply actor's response.
- Quota (etcd's quotaKVServer): a Put or Txn that adds data (quota.request_cost) and
  would take this member's db file to --quota-backend-bytes is not proposed: this
  member proposes Alarm(ACTIVATE, NOSPACE, itself), so every member refuses writes
  from then on, and the write fails with "etcdserver: mvcc: database space exceeded".
  A write the apply actor answers with that error (applied while over quota, etcd's
  quotaApplierV3) raises the alarm too if it is not raised yet. etcd raises it from
  every member whose apply saw the quota exceeded; here the proposer does.
- Range: linearizable by default (ReadIndex, then wait until applied, then read the
  local store); serializable reads the local store at once.
- Headers: cluster_id, member_id, raft_term (last STATUS) and revision (from the
  response, else the last APPLIED revision), as etcd's header filler; the Cluster
  service leaves the revision out, as etcd does.
- Maintenance: Hash and HashKV read this member's store (etcd answers them per
  member); Alarm is proposed through Raft (every member applies it, GET included, as
  etcd's raftRequestOnce); Defragment asks this member's apply actor (DEFRAGMENT), the
  only writer of the store, and waits for its answer.

- Leases: LeaseGrant (an ID chosen here when the client gives none, the quota checked
  as for a Put) and LeaseRevoke are proposals; keep-alives and time-to-live are the
  leader's lessor's (leasing.py), forwarded by other members; LeaseLeases reads the
  local store, as etcd reads its local lessor.

Not yet (noted for the next rounds): a read-only Txn is proposed like any Txn (etcd
serves it locally after a read barrier).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

from petcd.actors.apply import members as member_table
from petcd.actors.member import MemberContext
from petcd.actors.protocol import Kind
from petcd.actors.slow import READ_ONLY_RANGE, warn_if_slow
from petcd.api.etcdserverpb import raft_internal_pb2 as rpb
from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.api.membershippb import membership_pb2
from petcd.storage.mvcc import MvccError, MvccStore, checks, env, quota
from petcd.storage.mvcc.auth import ROOT_USER
from petcd.storage.mvcc.errors import NO_SPACE

from . import backup, errors
from .auth import Auth
from .errors import EtcdError
from .local import LocalStore
from .requests import RaftClient, Tracker
from .coordination import Coordination
from .leasing import Leasing
from .metrics import MemberMetrics
from .membership import Membership
from .watch import WatchHub

SERVER_VERSION = "3.5.0"  # the etcd API petcd speaks
CLUSTER_VERSION = "3.5.0"
GRPC_OVERHEAD_BYTES = 512 * 1024  # etcd's grpcOverheadBytes on top of max request size
MIN_DEFRAGMENT_TIMEOUT_S = 60.0  # etcd sets none; a large store takes a while to copy

R = TypeVar("R", pb.PutResponse, pb.DeleteRangeResponse, pb.TxnResponse,
            pb.CompactionResponse, pb.AlarmResponse, pb.LeaseGrantResponse,
            pb.LeaseRevokeResponse)
T = TypeVar("T")
M = TypeVar("M", pb.MemberAddResponse, pb.MemberRemoveResponse, pb.MemberUpdateResponse,
            pb.MemberPromoteResponse)
Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])
DB_SIZE_TTL_S = 0.1  # etcd's backend batch interval: how stale its Size() may be
_NO_SPACE = errors.from_mvcc(MvccError(NO_SPACE))  # a template: raise copies


def _timed_read(method: Handler) -> Handler:
    """A range that logs etcd's warning when it answers too late (actors/slow.py): etcd
    times a read whole, its ReadIndex wait included. Writes are timed where they are
    applied (the apply actor)."""
    @functools.wraps(method)
    async def timed(self: Server, request: Any) -> Any:
        started = time.monotonic()
        try:
            resp = await method(self, request)
        except EtcdError as err:
            warn_if_slow(self.log, time.monotonic() - started, READ_ONLY_RANGE, request,
                         None, err)
            raise
        warn_if_slow(self.log, time.monotonic() - started, READ_ONLY_RANGE, request,
                     resp, None)
        return resp
    return timed  # type: ignore[return-value]


class Server:
    def __init__(self, ctx: MemberContext, tracker: Tracker, raft: RaftClient,
                 store: LocalStore, log: Any,
                 to_apply: Callable[[str, Any], bool] | None = None) -> None:
        self.ctx = ctx
        self.log = log
        self._to_apply = to_apply  # (kind, payload) -> False if the apply inbox is full
        self.tracker = tracker
        self.raft = raft
        self.store = store
        self.max_request_bytes = ctx.settings.max_request_bytes
        self.max_txn_ops = ctx.settings.max_txn_ops
        self.quota_bytes = ctx.settings.quota_backend_bytes
        self._db_size = (0, -DB_SIZE_TTL_S)  # (bytes, monotonic time read)
        s = ctx.settings
        self.watches = WatchHub(
            store, self._header_bytes,
            # etcd fragments at its MaxRequestBytesWithOverhead
            max_fragment_bytes=s.max_request_bytes + GRPC_OVERHEAD_BYTES,
            progress_interval_s=s.watch_progress_notify_interval_s,
            election_timeout_s=s.election_timeout_ms / 1000,
            has_leader=lambda: tracker.status.has_leader, log=log)
        self.leasing = Leasing(ctx, tracker, raft, store, self._propose_as_member, log)
        self.coordination = Coordination(self)  # v3lock and v3election
        self.membership = Membership(ctx, tracker, raft, store, self.leasing.leader, log)
        self.auth = Auth(self, s.bcrypt_cost, s.auth_token_ttl_s, s.auth_token)
        self.metrics = MemberMetrics(tracker, ctx.member_id, SERVER_VERSION, self.quota_bytes,
                                     s.metrics_extensive)
        self.metrics.watch_counts = lambda: (
            len(self.watches.streams),
            sum(len(stream.watchers) for stream in self.watches.streams))

    # -- KV -------------------------------------------------------------------------

    @_timed_read
    async def range(self, r: pb.RangeRequest) -> pb.RangeResponse:
        _checked(checks.check_range, r)
        self._check_read_size(r)
        if r.serializable:
            await self._store_ready()
        else:
            await self.raft.read_barrier()
        asker = await self.auth.identify()  # checked by the store in the read's transaction
        # One key is a short read (a range scans the key index for its count).
        resp = await self._local(lambda s: s.range(r, asker), short=not r.range_end)
        self._fill(resp.header)
        return resp

    async def put(self, r: pb.PutRequest) -> pb.PutResponse:
        _checked(checks.check_put, r)
        await self._check_quota(r)
        return await self._propose(rpb.InternalRaftRequest(put=r), pb.PutResponse)

    async def delete_range(self, r: pb.DeleteRangeRequest) -> pb.DeleteRangeResponse:
        _checked(checks.check_delete, r)
        return await self._propose(rpb.InternalRaftRequest(delete_range=r),
                                   pb.DeleteRangeResponse)

    async def txn(self, r: pb.TxnRequest) -> pb.TxnResponse:
        _checked(lambda t: checks.check_txn(t, self.max_txn_ops), r)
        await self._check_quota(r)
        return await self._propose(rpb.InternalRaftRequest(txn=r), pb.TxnResponse)

    async def compact(self, r: pb.CompactionRequest) -> pb.CompactionResponse:
        await self.auth.require_admin()  # etcd 3.6's kvServer.Compact (3.4 checked none)
        return await self.compact_as_member(r)

    async def compact_as_member(self, r: pb.CompactionRequest) -> pb.CompactionResponse:
        """Compact, asked by no client: --auto-compaction's too, which needs no user."""
        return await self._propose(rpb.InternalRaftRequest(compaction=r),
                                   pb.CompactionResponse)

    # -- Lease ------------------------------------------------------------------------

    async def lease_grant(self, r: pb.LeaseGrantRequest) -> pb.LeaseGrantResponse:
        await self.auth.require_user()  # etcd's requireAuthInfo: any user, but a user
        await self._check_quota(r)
        grant = pb.LeaseGrantRequest(TTL=r.TTL, ID=r.ID or self.leasing.new_lease_id())
        resp: pb.LeaseGrantResponse = await self._propose(
            rpb.InternalRaftRequest(lease_grant=grant), pb.LeaseGrantResponse)
        self.metrics.leases_granted.inc()
        return resp

    async def lease_revoke(self, r: pb.LeaseRevokeRequest) -> pb.LeaseRevokeResponse:
        resp: pb.LeaseRevokeResponse = await self._propose(
            rpb.InternalRaftRequest(lease_revoke=r), pb.LeaseRevokeResponse)
        self.metrics.leases_revoked.inc()
        return resp

    async def lease_keep_alive(self, r: pb.LeaseKeepAliveRequest) -> pb.LeaseKeepAliveResponse:
        """One keep-alive of a LeaseKeepAlive stream: an unknown lease gets TTL 0."""
        [resp] = await self.lease_keep_alives([r.ID])
        return resp

    async def lease_keep_alives(self, lease_ids: list[int]) -> list[pb.LeaseKeepAliveResponse]:
        """Keep-alives a stream has queued, answered together (one leadership check)."""
        await self.auth.check_lease_keys(lease_ids, write=True)
        ttls = await self.leasing.keep_alives(lease_ids)
        self.metrics.leases_renewed.inc(sum(1 for ttl in ttls if ttl > 0))
        header = pb.ResponseHeader()
        self._fill(header)
        return [pb.LeaseKeepAliveResponse(header=header, ID=lease_id, TTL=ttl)
                for lease_id, ttl in zip(lease_ids, ttls)]

    async def lease_time_to_live(self, r: pb.LeaseTimeToLiveRequest
                                 ) -> pb.LeaseTimeToLiveResponse:
        if r.keys:  # etcd checks the keys' read permission only when they are asked for
            await self.auth.check_lease_keys([r.ID], write=False)
        else:
            await self.auth.require_user()
        resp = await self.leasing.time_to_live(r)
        self._fill(resp.header)
        return resp

    async def lease_leases(self, r: pb.LeaseLeasesRequest) -> pb.LeaseLeasesResponse:
        await self._store_ready()
        resp = pb.LeaseLeasesResponse()
        resp.leases.extend(pb.LeaseStatus(ID=lease_id) for lease_id, _, _ in
                           await self._local(lambda s: s.leases()))
        await self.auth.check_lease_keys([status.ID for status in resp.leases], write=False)
        self._fill(resp.header)
        return resp

    async def _propose(self, request: rpb.InternalRaftRequest, response: type[R]) -> R:
        try:
            resp = response.FromString(await self._propose_raw(request))
        except EtcdError as err:
            if err == _NO_SPACE:
                await self._on_no_space_applied()
            raise
        self._fill(resp.header)
        return resp

    async def _check_quota(self, r: pb.PutRequest | pb.TxnRequest | pb.LeaseGrantRequest
                           ) -> None:
        """etcd's quotaAlarmer.check (v3rpc/quota.go): a write that would take this
        member's backend to --quota-backend-bytes raises NOSPACE for this member
        through Raft (so every member refuses writes) and fails before it is proposed."""
        cost = quota.request_cost(r)
        if cost == 0:
            return
        await self._store_ready()
        if quota.fits(self._db_size_bytes(), self.quota_bytes, cost):
            return
        await self._activate_no_space()
        raise errors.copy(_NO_SPACE)

    def _db_size_bytes(self) -> int:
        """The store file's size, re-read at most every DB_SIZE_TTL_S: etcd's quota
        check reads a size its backend refreshes at each commit (every 100 ms)."""
        size, read_at = self._db_size
        now = time.monotonic()
        if now - read_at >= DB_SIZE_TTL_S:
            size = env.data_file_size_bytes(self.store.path)
            self._db_size = (size, now)
        return size

    async def _on_no_space_applied(self) -> None:
        """etcd's applyEntryNormal: a write answered NOSPACE at apply raises the alarm
        unless it is already raised (the refusal came from the alarm itself)."""
        if not await self._local(lambda s: s.alarms(pb.NOSPACE)):
            await self._activate_no_space()

    async def _activate_no_space(self) -> None:
        alarm = pb.AlarmRequest(action=pb.AlarmRequest.ACTIVATE, alarm=pb.NOSPACE,
                                memberID=self.ctx.member_id)
        try:
            await self._propose_raw(rpb.InternalRaftRequest(alarm=alarm))
        except EtcdError:
            pass  # as etcd: the write fails with NOSPACE whether or not this got through

    async def _propose_as_member(self, request: rpb.InternalRaftRequest) -> bytes:
        """A proposal of the member's own (expired leases, checkpoints): made as root,
        as etcd's lessor revokes with authStore.WithRoot."""
        request.header.username = ROOT_USER
        _, request.header.auth_revision = await self._local(lambda s: s.auth_status(),
                                                            short=True)
        return await self._propose_raw(request)

    async def _propose_raw(self, request: rpb.InternalRaftRequest) -> bytes:
        if not request.header.username:
            # Who asks (auth.py): the apply checks the user's rights, on every member alike.
            request.header.username, request.header.auth_revision = await self.auth.identify()
        request_id = self.raft.ids.next()
        request.header.ID = request_id
        data = request.SerializeToString()
        if len(data) > self.max_request_bytes:
            raise errors.copy(errors.REQUEST_TOO_LARGE)
        try:
            answer = await self.raft.propose(request_id, data)
        except EtcdError:
            self.metrics.proposals_failed.inc()  # no leader, a timeout, too many requests
            raise
        if not answer.ok:
            raise answer.error()
        return answer.body

    async def publish(self, name: str, client_urls: Sequence[str]) -> None:
        """etcd's publishV3: this member's name and client URLs into the member table
        (ClusterMemberAttrSetRequest through Raft, so every member learns them)."""
        attrs = membership_pb2.Attributes(name=name, client_urls=list(client_urls))
        await self._propose_raw(rpb.InternalRaftRequest(
            cluster_member_attr_set=membership_pb2.ClusterMemberAttrSetRequest(
                member_ID=self.ctx.member_id, member_attributes=attrs)))

    def _check_read_size(self, r: pb.RangeRequest) -> None:
        # etcd's gRPC server refuses a message over max-request-bytes + 512 KiB before
        # any handler runs; petcd answers that with etcd's size error too.
        if r.ByteSize() > self.max_request_bytes + GRPC_OVERHEAD_BYTES:
            raise errors.copy(errors.REQUEST_TOO_LARGE)

    # -- Maintenance and Cluster -------------------------------------------------------

    async def status(self, r: pb.StatusRequest) -> pb.StatusResponse:
        await self.auth.require_user()
        await self._store_ready()
        sizes = await self._local(_store_sizes)
        db_size, in_use, revision, alarms = sizes
        st = self.tracker.status
        # STATUS is up to 100 ms older than APPLIED: never report applied > committed.
        applied = max(self.tracker.applied.index, st.applied)
        resp = pb.StatusResponse(
            version=SERVER_VERSION, dbSize=db_size, dbSizeInUse=in_use, leader=st.leader,
            raftIndex=max(st.commit, applied), raftTerm=st.term, raftAppliedIndex=applied,
            isLearner=self.ctx.member_id in st.learners)
        resp.errors.extend(_alarm_text(a) for a in alarms)
        if not st.has_leader:
            resp.errors.append(errors.NO_LEADER.message)
        resp.header.revision = revision
        self._fill(resp.header)
        return resp

    async def move_leader(self, r: pb.MoveLeaderRequest) -> pb.MoveLeaderResponse:
        """etcd's Maintenance.MoveLeader: only the leader hands over, only to a voting
        member, and answers once this member sees the target lead (polled every
        heartbeat, as etcd does), or fails after the request timeout. The response is
        empty, as etcd's (v3rpc/maintenance.go fills no header)."""
        await self.auth.require_admin()
        me, target = self.ctx.member_id, r.targetID
        st = self.tracker.status
        if st.leader != me:
            raise errors.copy(errors.NOT_LEADER)
        if target not in st.voters:  # unknown, or a learner
            raise errors.copy(errors.BAD_LEADER_TRANSFEREE)
        if target != me:
            await self.leasing.checkpoint_all()
            self.raft.transfer(target)
        poll_s = self.ctx.settings.heartbeat_interval_ms / 1000
        try:
            async with asyncio.timeout(self.raft.timeout_s):
                while self.tracker.status.leader != target:
                    if self.tracker.stopped is not None:
                        raise errors.copy(self.tracker.stopped)
                    await asyncio.sleep(poll_s)
        except TimeoutError:
            raise errors.copy(errors.TIMEOUT_LEADER_TRANSFER) from None
        return pb.MoveLeaderResponse()

    async def hash(self, r: pb.HashRequest) -> pb.HashResponse:
        """etcd's Maintenance.Hash: this member's whole store, answered locally."""
        await self.auth.require_admin()
        await self._store_ready()
        h, revision = await self._local(lambda s: (s.hash(), s.current_revision()))
        resp = pb.HashResponse(hash=h)
        resp.header.revision = revision
        self._fill(resp.header)
        return resp

    async def hash_kv(self, r: pb.HashKVRequest) -> pb.HashKVResponse:
        """etcd's Maintenance.HashKV: the KV history up to `revision` (0: current) on
        this member; the header revision is the current one, as etcd's HashByRev."""
        await self.auth.require_admin()
        await self._store_ready()
        hkv, revision = await self._local(
            lambda s: (s.hash_kv(r.revision), s.current_revision()))
        resp = hkv.to_response(max(revision, hkv.hash_revision))
        self._fill(resp.header)
        return resp

    async def alarm(self, r: pb.AlarmRequest) -> pb.AlarmResponse:
        """etcd's Maintenance.Alarm: every action goes through Raft; listing needs a
        user, a change root (with auth enabled)."""
        if r.action == pb.AlarmRequest.GET:
            await self.auth.require_user()
        else:
            await self.auth.require_admin()
        return await self._propose(rpb.InternalRaftRequest(alarm=r), pb.AlarmResponse)

    async def defragment(self, r: pb.DefragmentRequest) -> pb.DefragmentResponse:
        """etcd's Maintenance.Defragment of this member's store, by the apply actor
        between two batches. The response is empty, as etcd's (no header)."""
        await self.auth.require_admin()
        await self._store_ready()
        if self._to_apply is None:
            raise EtcdError(errors.Code.UNIMPLEMENTED, "method Defragment not implemented")
        request_id = self.raft.ids.next()
        fut = self.tracker.add_proposal(request_id)
        try:
            if not self._to_apply(Kind.DEFRAGMENT.value, request_id):
                raise errors.copy(errors.TOO_MANY_REQUESTS)
            async with asyncio.timeout(max(self.raft.timeout_s, MIN_DEFRAGMENT_TIMEOUT_S)):
                answer = await fut
        except TimeoutError:
            raise errors.copy(errors.TIMEOUT) from None
        finally:
            self.tracker.forget_proposal(request_id)
        if not answer.ok:
            raise answer.error()
        return pb.DefragmentResponse()

    async def snapshot(self, r: pb.SnapshotRequest) -> AsyncIterator[pb.SnapshotResponse]:
        """etcd's Maintenance.Snapshot of this member's store (backup.py); the first
        message carries the header."""
        await self.auth.require_admin()
        await self._store_ready()
        first = True
        try:
            async for response in backup.stream(self.ctx.db_dir, self.ctx.snap_dir):
                if first:
                    self._fill(response.header)
                    first = False
                yield response
        except backup.BackupError as err:
            raise EtcdError(errors.Code.UNKNOWN, f"etcdserver: snapshot failed: {err}") from None

    async def member_list(self, r: pb.MemberListRequest) -> pb.MemberListResponse:
        await self.auth.require_user()
        if r.linearizable:
            await self.raft.read_barrier()
        else:
            await self._store_ready()
        table = await self._local(member_table.read_member_table)
        resp = pb.MemberListResponse()
        if len(table):
            resp.members.extend(m.to_pb() for m in table)
        else:
            resp.members.extend(self._initial_members())
        self._fill(resp.header, with_revision=False)
        return resp

    async def member_add(self, r: pb.MemberAddRequest) -> pb.MemberAddResponse:
        await self.auth.require_admin()  # etcd's checkMembershipOperationPermission
        return self._member_header(await self.membership.add(r))

    async def member_remove(self, r: pb.MemberRemoveRequest) -> pb.MemberRemoveResponse:
        await self.auth.require_admin()
        return self._member_header(await self.membership.remove(r))

    async def member_update(self, r: pb.MemberUpdateRequest) -> pb.MemberUpdateResponse:
        await self.auth.require_admin()
        return self._member_header(await self.membership.update(r))

    async def member_promote(self, r: pb.MemberPromoteRequest) -> pb.MemberPromoteResponse:
        await self.auth.require_admin()
        return self._member_header(await self.membership.promote(r))

    def _member_header(self, resp: M) -> M:
        self._fill(resp.header, with_revision=False)  # etcd's ClusterServer.header()
        return resp

    def _initial_members(self) -> list[pb.Member]:
        """--initial-cluster, until the apply actor has stored a member table."""
        me = self.ctx.member_id
        learners = self.tracker.status.learners
        clients = [str(u) for u in self.ctx.settings.advertise_client_urls]
        return [pb.Member(ID=p.member_id, name=p.name, peerURLs=list(p.peer_urls),
                          clientURLs=clients if p.member_id == me else [],
                          isLearner=p.member_id in learners)
                for p in sorted(self.ctx.initial_peers, key=lambda p: p.member_id)]

    async def health(self, excluded_alarms: set[str], serializable: bool) -> str:
        """etcd's checkV3Health: "" if healthy, else the reason."""
        if self.tracker.applied_known.is_set():
            for alarm in await self._local(lambda s: s.alarms()):
                name = pb.AlarmType.Name(alarm.alarm)
                if name in excluded_alarms:
                    continue
                return {"NOSPACE": "ALARM NOSPACE", "CORRUPT": "ALARM CORRUPT"}.get(
                    name, "ALARM UNKNOWN")
        if not serializable and not self.tracker.status.has_leader:
            return "RAFT NO LEADER"
        try:
            await self.read_check(serializable)
        except EtcdError as err:
            return f"RANGE ERROR:{err.message}"
        return ""

    async def read_check(self, serializable: bool) -> None:
        """What etcd's health checks read, as root: a range with keys_only and limit
        1, here a read barrier (unless serializable) and a local read."""
        if serializable:
            await self._store_ready()
        else:
            await self.raft.read_barrier()
        await self._local(lambda s: s.current_revision())

    async def refresh_metrics(self) -> None:
        """What /metrics reads from the store: its sizes each scrape, its key count
        (a walk of the index) at most every KEYS_COUNT_EVERY_S."""
        if not self.tracker.applied_known.is_set():
            return  # not open yet: those gauges are left out
        count = self.metrics.keys_due()
        db, in_use, keys = await self._local(lambda s: (
            s.db_size_bytes(), s.db_size_in_use_bytes(), _count_keys(s) if count else None))
        self.metrics.set_store(db, in_use, keys)

    # -- helpers -------------------------------------------------------------------

    async def _store_ready(self) -> None:
        """The apply actor has opened (created) the store and said so, and the store
        shows every write this member has answered: a client reads its own writes
        here, even with a serializable read (a batch is answered before its commit)."""
        tracker = self.tracker
        if tracker.applied_known.is_set() and tracker.applied.index >= tracker.answered.index:
            return
        try:
            async with asyncio.timeout(self.raft.timeout_s):
                await tracker.applied_known.wait()
                await tracker.wait_applied(tracker.answered.index)
        except TimeoutError:
            raise errors.copy(errors.TIMEOUT) from None

    async def _local(self, fn: Callable[[MvccStore], T], *, short: bool = False) -> T:
        try:
            return await self.store.call(fn, short=short)
        except MvccError as err:
            raise errors.from_mvcc(err) from None

    def _header_bytes(self, revision: int) -> bytes:
        """An encoded ResponseHeader at `revision` (watch responses are built as bytes)."""
        return pb.ResponseHeader(cluster_id=self.ctx.cluster_id, member_id=self.ctx.member_id,
                                 revision=revision,
                                 raft_term=self.tracker.status.term).SerializeToString()

    def _fill(self, header: pb.ResponseHeader, with_revision: bool = True) -> None:
        header.cluster_id = self.ctx.cluster_id
        header.member_id = self.ctx.member_id
        header.raft_term = self.tracker.status.term
        if with_revision and header.revision == 0:
            header.revision = self.tracker.applied.revision


def _checked(check: Callable[[T], None], request: T) -> None:
    try:
        check(request)
    except MvccError as err:
        raise errors.from_mvcc(err) from None


def _count_keys(store: MvccStore) -> int:
    every = pb.RangeRequest(key=b"\x00", range_end=b"\x00", count_only=True)
    return int(store.range(every).count)


def _store_sizes(store: MvccStore) -> tuple[int, int, int, list[pb.AlarmMember]]:
    return (store.db_size_bytes(), store.db_size_in_use_bytes(), store.current_revision(),
            store.alarms())


def _alarm_text(alarm: pb.AlarmMember) -> str:
    """AlarmMember.String() as etcd's gogo protobuf prints it in Status errors."""
    return f"memberID:{alarm.memberID} alarm:{pb.AlarmType.Name(alarm.alarm)} "
