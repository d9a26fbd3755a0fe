"""etcd's Cluster service changes: MemberAdd, MemberRemove, MemberUpdate, MemberPromote.

Only the leader decides: another member forwards the call to it (leader.py), as etcd
forwards MemberPromote, because only the leader knows each member's progress (a
learner's readiness) and which members it hears from (the quorum checks). The leader
takes one change at a time (a lock held until the change is applied), checks it
against the member table it has applied (after a read barrier) with etcd's rules and
errors (server.go mayAddMember/mayRemoveMember/mayPromoteMember,
membership.ValidateConfigurationChange), then proposes a ConfChange whose context
carries the request id (actors/apply/members.py). Its own apply actor answers with
the member table after the change, which becomes the response's member list.

    check                               error
    peer URLs malformed or none         etcdserver: given member URLs are invalid
    id unknown or removed               etcdserver: member not found
    peer URL used by another member     etcdserver: Peer URLs already exists
    add: id already a member            etcdserver: member ID already exist
    add learner: --max-learners reached etcdserver: too many learner members in cluster
    promote: a voter                    etcdserver: can only promote a learner member
    promote: match < 90% of the leader  etcdserver: can only promote a learner member
                                          which is in sync with leader
    --strict-reconfig-check (default):
      started members below quorum      etcdserver: re-configuration failed due to not
                                          enough started members
      connected members below quorum    etcdserver: unhealthy cluster

A member is started once it has published its name (etcd's IsStarted); the leader
counts as connected the members it heard from in the last 5 s (raft actor's
ACTIVE_WITHIN_S, etcd's HealthInterval; etcd asks for a connection up for at least
that long, so a member that has just come back counts here sooner).

Removing the leader hands leadership to the most caught-up active voter first, then
asks the new leader: the cluster is never without a leader that knows the change.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from petcd.actors.apply import members as member_table
from petcd.actors.apply.members import MemberTable
from petcd.actors.member import MemberContext, advise_size
from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.config import ids
from petcd.config.errors import BadValue
from petcd.config.urls import parse_url
from petcd.storage.raftstate import ConfChange, ConfChangeType

from . import errors
from .leader import LeaderLink
from .local import LocalStore
from .requests import RaftClient, Tracker

LEARNER_READY_FRACTION = 0.9  # etcd's readyPercentThreshold
METHOD = "/etcdserverpb.Cluster/{}"


class Membership:
    def __init__(self, ctx: MemberContext, tracker: Tracker, raft: RaftClient,
                 store: LocalStore, leader: LeaderLink, log: Any,
                 clock: Callable[[], float] = time.time) -> None:
        self.ctx, self.tracker, self.raft = ctx, tracker, raft
        self.store, self.leader, self.log = store, leader, log
        self.clock = clock  # wall clock: a new member's ID hashes the Unix time, as etcd's
        self.strict = ctx.settings.strict_reconfig_check
        self.max_learners = ctx.settings.max_learners
        self._changing = asyncio.Lock()  # one change at a time

    # -- the four calls -------------------------------------------------------------

    async def add(self, r: pb.MemberAddRequest) -> pb.MemberAddResponse:
        urls = _peer_urls(r.peerURLs)
        if not self._leads():
            return await self._forward("MemberAdd", r, pb.MemberAddResponse)
        async with self._changing:
            table = await self._applied_table()
            self._check_add(table, urls, r.isLearner)
            member_id = ids.member_id(urls, "", int(self.clock()))  # etcd's NewMember
            if table.is_removed(member_id):
                raise errors.copy(errors.MEMBER_NOT_FOUND)
            if table.get(member_id) is not None:
                raise errors.copy(errors.MEMBER_EXIST)
            kind = ConfChangeType.ADD_LEARNER if r.isLearner else ConfChangeType.ADD_VOTER
            after = await self._change(kind, member_id, urls)
        advise_size(len(_voters(after)), self.log)
        return pb.MemberAddResponse(
            member=pb.Member(ID=member_id, peerURLs=list(urls), isLearner=r.isLearner),
            members=_members(after))

    async def remove(self, r: pb.MemberRemoveRequest) -> pb.MemberRemoveResponse:
        if not self._leads():
            return await self._forward("MemberRemove", r, pb.MemberRemoveResponse)
        if r.ID == self.ctx.member_id and await self._hand_over():
            return await self._forward("MemberRemove", r, pb.MemberRemoveResponse)
        async with self._changing:
            table = await self._applied_table()
            self._check_remove(table, r.ID)
            after = await self._change(ConfChangeType.REMOVE, r.ID, ())
        return pb.MemberRemoveResponse(members=_members(after))

    async def update(self, r: pb.MemberUpdateRequest) -> pb.MemberUpdateResponse:
        urls = _peer_urls(r.peerURLs)
        if not self._leads():
            return await self._forward("MemberUpdate", r, pb.MemberUpdateResponse)
        async with self._changing:
            table = await self._applied_table()
            _known(table, r.ID)
            _check_urls_free(table, urls, but=r.ID)
            after = await self._change(ConfChangeType.UPDATE, r.ID, urls)
        return pb.MemberUpdateResponse(members=_members(after))

    async def promote(self, r: pb.MemberPromoteRequest) -> pb.MemberPromoteResponse:
        if not self._leads():
            return await self._forward("MemberPromote", r, pb.MemberPromoteResponse)
        async with self._changing:
            table = await self._applied_table()
            self._check_promote(table, r.ID)
            after = await self._change(ConfChangeType.ADD_VOTER, r.ID, ())
        advise_size(len(_voters(after)), self.log)
        return pb.MemberPromoteResponse(members=_members(after))

    # -- etcd's checks ----------------------------------------------------------------

    def _check_add(self, table: MemberTable, urls: Sequence[str], is_learner: bool) -> None:
        if self.strict and not is_learner:
            if not _ready_to_add_voter(table):
                raise errors.copy(errors.MEMBER_NOT_ENOUGH_STARTED)
            voters = _voters(table)
            # The new member counts as not connected (isConnectedToQuorumAfterAdding...);
            # a one-member cluster may always grow.
            if len(voters) > 1 and len(self._active(voters)) < (len(voters) + 1) // 2 + 1:
                raise errors.copy(errors.UNHEALTHY)
        _check_urls_free(table, urls)
        if is_learner and sum(m.is_learner for m in table) + 1 > self.max_learners:
            raise errors.copy(errors.TOO_MANY_LEARNERS)

    def _check_remove(self, table: MemberTable, member_id: int) -> None:
        member = _known(table, member_id)
        if not self.strict or member.is_learner:
            return
        voters = _voters(table)
        others = [m for m in voters if m.member_id != member_id]
        if _started(others) < len(others) // 2 + 1:
            raise errors.copy(errors.MEMBER_NOT_ENOUGH_STARTED)
        active = self._active(voters)
        if member_id != self.ctx.member_id and member_id not in active:
            return  # a member that is down is not part of the active quorum
        if len(active) - 1 < 1 + (len(voters) - 1) // 2:
            raise errors.copy(errors.UNHEALTHY)

    def _check_promote(self, table: MemberTable, member_id: int) -> None:
        # etcd looks at readiness first; a voter is refused for what it is here, not
        # for a match that a STATUS 100 ms old may show a few entries behind.
        if not _known(table, member_id).is_learner:
            raise errors.copy(errors.MEMBER_NOT_LEARNER)
        status = self.tracker.status
        leader_match = status.match_of(self.ctx.member_id)
        if not leader_match:  # STATUS not yet from a leader's raft
            raise errors.copy(errors.NOT_LEADER)
        if (status.match_of(member_id) or 0) / leader_match < LEARNER_READY_FRACTION:
            raise errors.copy(errors.LEARNER_NOT_READY)
        if self.strict:
            voters = _voters(table)  # the learner counts, as started (IsReadyToPromote...)
            if _started(voters) + 1 < (len(voters) + 1) // 2 + 1:
                raise errors.copy(errors.MEMBER_NOT_ENOUGH_STARTED)

    def _active(self, voters: Sequence[member_table.Member]) -> set[int]:
        heard = self.tracker.status.active()
        return {m.member_id for m in voters if m.member_id in heard}

    # -- carrying a change out --------------------------------------------------------

    def _leads(self) -> bool:
        return self.tracker.status.leader == self.ctx.member_id

    async def _forward(self, name: str, r: Any, response_class: type[Any]) -> Any:
        return await self.leader.call(METHOD.format(name), r, response_class)

    async def _applied_table(self) -> MemberTable:
        """The table with every committed change applied (etcd's waitAppliedIndex)."""
        await self.raft.read_barrier()
        return await self.store.call(member_table.read_member_table)

    async def _change(self, kind: ConfChangeType, member_id: int,
                      urls: Sequence[str]) -> MemberTable:
        request_id = self.raft.ids.next()
        change = ConfChange(kind, member_id, member_table.encode_context("", urls, request_id))
        answer = await self.raft.propose_conf_change(request_id, change.encode())
        if not answer.ok:
            raise answer.error()
        self.log.info("applied a configuration change through raft", change=kind.name,
                      target_member=ids.format_id(member_id), peer_urls=list(urls))
        return member_table.decode(answer.body)

    async def _hand_over(self) -> bool:
        """Before the leader removes itself: move leadership to the active voter with
        the longest log, and wait (bounded) until it leads. False if there is none."""
        progress = [p for p in self.tracker.status.progress
                    if p.active and p.member_id != self.ctx.member_id
                    and p.member_id in self.tracker.status.voters]
        if not progress:
            return False
        target = max(progress, key=lambda p: p.match).member_id
        self.raft.transfer(target)
        try:
            async with asyncio.timeout(self.raft.timeout_s):
                while self.tracker.status.leader != target:
                    await asyncio.sleep(self.ctx.settings.heartbeat_interval_ms / 1000)
        except TimeoutError:
            raise errors.copy(errors.TIMEOUT_LEADER_TRANSFER) from None
        return True


# -- pure helpers ------------------------------------------------------------------------

def _peer_urls(texts: Sequence[str]) -> tuple[str, ...]:
    """etcd's types.NewURLs: every URL valid, at least one; sorted as etcd keeps them."""
    try:
        urls = tuple(sorted(str(parse_url(t)) for t in texts))
    except BadValue:
        raise errors.copy(errors.MEMBER_BAD_URLS) from None
    if not urls:
        raise errors.copy(errors.MEMBER_BAD_URLS)
    return urls


def _known(table: MemberTable, member_id: int) -> member_table.Member:
    member = table.get(member_id)
    if member is None:  # never a member, or removed
        raise errors.copy(errors.MEMBER_NOT_FOUND)
    return member


def _check_urls_free(table: MemberTable, urls: Sequence[str], but: int = 0) -> None:
    taken = {u for m in table if m.member_id != but for u in m.peer_urls}
    if taken.intersection(urls):
        raise errors.copy(errors.PEER_URL_EXIST)


def _voters(table: MemberTable) -> list[member_table.Member]:
    return [m for m in table if not m.is_learner]


def _started(members: Sequence[member_table.Member]) -> int:
    return sum(1 for m in members if m.name)  # etcd's IsStarted: it published its name


def _ready_to_add_voter(table: MemberTable) -> bool:
    """etcd's IsReadyToAddVotingMember."""
    voters = _voters(table)
    members, started = len(voters) + 1, _started(voters)
    if started == 1 and members == 2:
        return True  # growing a one-member cluster (restoring one, say) is allowed
    return started >= members // 2 + 1


def _members(table: MemberTable) -> list[pb.Member]:
    return [m.to_pb() for m in table]
