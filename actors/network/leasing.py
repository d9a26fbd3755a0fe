"""Leases on this member: keep-alives, time-to-live, expiry and checkpoints (etcd's
EtcdServer lease methods around its lessor).

    keep-alive      the leader renews in memory (lessor.py), after confirming it still
                    leads (a read index: etcd's ensureLeadership, issue 15247), once for
                    the keep-alives a stream has queued; any other member forwards
                    them to the leader, in batches (leader.py), and passes the answers
                    back
    time-to-live    the leader's deadline; others forward; keys from the local store
    expiry          every 0.5 s the primary lessor's expired leases, at most
                    REVOKE_RATE_PER_S a second, are revoked through Raft, each after
                    leadership is confirmed: a deposed or cut-off leader revokes nothing
    checkpoints     the remaining TTL of leases that outlive --experimental-lease-
                    checkpoint-interval, and of every lease before a leadership
                    transfer, is proposed (LeaseCheckpoint, batched), so that elections
                    and restarts do not renew leases forever (etcd issue 9888)

Grants and revokes from clients are plain proposals (server.py). The lessor follows
the applied table: APPLIED carries each batch's grants and revokes, and the whole table
is read from the store at start and after a snapshot. A leader checkpoints every lease
before it hands leadership over (MoveLeader).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from petcd.actors.member import MemberContext
from petcd.actors.raft.types import Role
from petcd.api.etcdserverpb import raft_internal_pb2 as rpb
from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.storage.mvcc.lease_requests import LeaseChangeKind, lease_changes_from_wire

from . import errors
from .errors import EtcdError
from .leader import LeaderLink
from .lessor import Lessor
from .local import LocalStore
from .requests import RaftClient, Tracker

REVOKE_RATE_PER_S = 1000  # etcd's leaseRevokeRate
CHECK_EVERY_S = 0.5  # etcd's lessor loop
FOLLOW_EVERY_S = 0.05  # a new leader's lessor is promoted within this of STATUS saying so
EXPIRED_RETRY_S = 3.0  # etcd's defaultExpiredleaseRetryInterval
MAX_CHECKPOINT_BATCH = 1000  # etcd's maxLeaseCheckpointBatchSize
MAX_REVOKES_IN_FLIGHT = 64
MAX_LEASE_ID = (1 << 63) - 1

Propose = Callable[[rpb.InternalRaftRequest], Awaitable[bytes]]


class Leasing:
    def __init__(self, ctx: MemberContext, tracker: Tracker, raft: RaftClient,
                 store: LocalStore, propose: Propose, log: Any,
                 clock: Callable[[], float] = time.monotonic) -> None:
        s = ctx.settings
        self.ctx = ctx
        self.tracker = tracker
        self.raft = raft
        self.store = store
        self._propose = propose
        self.log = log
        self.lessor = Lessor(s.lease_checkpoint_interval_s, clock)
        self.extend_s = s.election_timeout_ms / 1000  # what a new leader adds
        self.leader = LeaderLink(ctx, store, tracker, raft.timeout_s, log)
        self._table_known = asyncio.Event()  # the lessor holds the applied table
        self._reread = asyncio.Event()  # the table must be read from the store again
        self._promoted = asyncio.Event()  # the lessor is primary, deadlines set
        self._background: set[asyncio.Task[None]] = set()  # checkpoint resets in flight

    # -- what the apply actor says --------------------------------------------------

    def on_applied(self, payload: Any) -> None:
        """APPLIED [index, revision, changes, leases]: each lease granted, revoked or
        checkpointed; None when the table must be read from the store again."""
        wired = payload[3] if len(payload) > 3 else None
        if wired is None:
            self._reread.set()
            return
        for change in lease_changes_from_wire(wired):
            if change.kind == LeaseChangeKind.GRANTED:
                self.lessor.granted(change.lease_id, change.value)
            elif change.kind == LeaseChangeKind.REVOKED:
                self.lessor.revoked(change.lease_id)
            else:
                self.lessor.checkpointed(change.lease_id, change.value)

    # -- requests ------------------------------------------------------------------

    def new_lease_id(self) -> int:
        """etcd's: a request id with the sign bit cleared, never 0."""
        lease_id = 0
        while lease_id == 0:
            lease_id = self.raft.ids.next() & MAX_LEASE_ID
        return lease_id

    async def keep_alives(self, lease_ids: list[int]) -> list[int]:
        """The TTL each lease was renewed for, in order; 0 for one that does not exist
        (or expired). One leadership check for the lot; another member forwards them."""
        if not await self._lead():
            return await self.leader.keep_alives(lease_ids)
        return await self._renew(lease_ids)

    async def keep_alives_as_leader(self, lease_ids: list[int]) -> list[int]:
        """Keep-alives another member forwarded: only the leader answers them (a member
        that no longer leads must not pass them on again, perhaps back to the sender)."""
        if not await self._lead():
            raise errors.copy(errors.LEADER_CHANGED)
        return await self._renew(lease_ids)

    async def _renew(self, lease_ids: list[int]) -> list[int]:
        renewed = [self.lessor.renew(lease_id) for lease_id in lease_ids]
        if None in renewed:
            await self.raft.read_barrier()  # a grant committed but not applied yet?
            renewed = [r if r is not None or not self.lessor.primary else self.lessor.renew(i)
                       for i, r in zip(lease_ids, renewed)]
        cleared = [(i, 0) for i, r in zip(lease_ids, renewed) if r is not None
                   and r.clear_checkpoint]
        if cleared:
            # etcd's Renew: the checkpointed remaining TTL no longer holds.
            task = asyncio.get_running_loop().create_task(self._checkpoint(cleared))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return [0 if r is None else r.ttl_s for r in renewed]

    async def time_to_live(self, r: pb.LeaseTimeToLiveRequest) -> pb.LeaseTimeToLiveResponse:
        if not await self._lead():
            return await self.leader.time_to_live(r)
        left = self.lessor.time_left_s(r.ID)
        if left is None:
            await self.raft.read_barrier()
            left = self.lessor.time_left_s(r.ID) if self.lessor.primary else None
        resp = pb.LeaseTimeToLiveResponse(ID=r.ID, TTL=-1)
        if left is not None:
            resp.grantedTTL, resp.TTL = left
            if r.keys:
                resp.keys.extend(await self.store.call(lambda s: s.lease_keys(r.ID)))
        return resp

    async def _lead(self) -> bool:
        """True if this member leads and its lessor is primary (etcd's isLeader and
        ensureLeadership); False if another member leads. Raises if none does."""
        st = self.tracker.status
        if not st.has_leader:
            raise errors.copy(errors.NO_LEADER)
        if st.leader != self.ctx.member_id:
            return False
        await self.raft.read_barrier()  # still the leader, with a quorum behind it
        if not self._promoted.is_set():
            try:
                async with asyncio.timeout(self.raft.timeout_s):
                    await self._promoted.wait()
            except TimeoutError:
                raise errors.copy(errors.TIMEOUT) from None
        return True

    # -- loops ---------------------------------------------------------------------

    def start(self) -> list[asyncio.Task[None]]:
        return [asyncio.create_task(self._table_loop(), name="lease table"),
                asyncio.create_task(self._primary_loop(), name="lessor"),
                asyncio.create_task(self.leader.follow_leader(), name="leader link")]

    async def _table_loop(self) -> None:
        """Reads the lease table whenever the store changed without telling (start,
        snapshot) or this member is to become primary."""
        await self.tracker.applied_known.wait()
        self._reread.set()
        while True:
            await self._reread.wait()
            self._reread.clear()
            table = await self.store.call(lambda s: s.leases())
            self.lessor.reset(table)
            self._table_known.set()

    async def _primary_loop(self) -> None:
        await self._table_known.wait()
        next_check = 0.0
        while True:
            await self._follow_leadership()
            now = time.monotonic()
            if self.lessor.primary and now >= next_check:
                next_check = now + CHECK_EVERY_S
                await self._revoke_expired()
                due = self.lessor.due_checkpoints(MAX_CHECKPOINT_BATCH)
                if due:
                    await self._checkpoint(due)
            await asyncio.sleep(FOLLOW_EVERY_S)

    async def _follow_leadership(self) -> None:
        st = self.tracker.status
        leads = st.role == Role.LEADER and st.leader == self.ctx.member_id
        if leads and not self.lessor.primary:
            self.lessor.promote(self.extend_s)
            self._promoted.set()
            self.log.info("lessor promoted", leases=len(self.lessor.leases),
                          extend_s=self.extend_s, term=st.term)
        elif not leads and self.lessor.primary:
            self.lessor.demote()
            self._promoted.clear()
            self.log.info("lessor demoted", leases=len(self.lessor.leases), term=st.term)

    async def _revoke_expired(self) -> None:
        expired = self.lessor.expired(int(REVOKE_RATE_PER_S * CHECK_EVERY_S))
        if not expired:
            return
        try:
            await self.raft.read_barrier()  # a deposed or cut-off leader stops here
        except EtcdError as err:
            self.log.warning("cannot confirm leadership; expired leases not revoked",
                             leases=len(expired), error=err.message)
            self.lessor.postpone(expired, EXPIRED_RETRY_S)
            return
        if self.tracker.status.leader != self.ctx.member_id:
            return
        limit = asyncio.Semaphore(MAX_REVOKES_IN_FLIGHT)
        await asyncio.gather(*(self._revoke(lease_id, limit) for lease_id in expired))

    async def _revoke(self, lease_id: int, limit: asyncio.Semaphore) -> None:
        async with limit:
            try:
                await self._propose(rpb.InternalRaftRequest(
                    lease_revoke=pb.LeaseRevokeRequest(ID=lease_id)))
            except EtcdError as err:
                if err.message != errors.LEASE_NOT_FOUND.message:
                    self.log.warning("failed to revoke an expired lease; retrying",
                                     lease_id=f"{lease_id:016x}", error=err.message)
                    self.lessor.postpone([lease_id], EXPIRED_RETRY_S)

    async def checkpoint_all(self) -> None:
        """Before this leader hands leadership over: every lease's remaining TTL, so the
        next leader goes on from there (a transfer is an election too)."""
        if self.lessor.primary:
            due = self.lessor.all_checkpoints()
            for start in range(0, len(due), MAX_CHECKPOINT_BATCH):
                await self._checkpoint(due[start:start + MAX_CHECKPOINT_BATCH])

    async def _checkpoint(self, checkpoints: list[tuple[int, int]]) -> None:
        """Propose (id, remaining ms) checkpoints (petcd's are milliseconds)."""
        request = pb.LeaseCheckpointRequest(checkpoints=[
            pb.LeaseCheckpoint(ID=lease_id, remaining_TTL=remaining_ms)
            for lease_id, remaining_ms in checkpoints])
        try:
            await self._propose(rpb.InternalRaftRequest(lease_checkpoint=request))
        except EtcdError as err:
            self.log.warning("lease checkpoint failed", leases=len(checkpoints),
                             error=err.message)
