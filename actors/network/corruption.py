"""Corruption checks: this member's KV history against its peers', by HashKV (etcd's
corrupt.go).

- --experimental-initial-corrupt-check: before this member serves clients, it hashes
  its history at its current revision and asks every peer (Maintenance.HashKV on the
  peer's published client URL, where etcd asks on the peer URL) for the hash at that
  revision. A peer that answers with the same compact revision and another hash is a
  mismatch: the member refuses to start ("found data inconsistency with peers", exit
  1, as etcd). A peer that is down, behind (future revision) or compacted past it
  proves nothing either way and is logged.
- --experimental-corrupt-check-time: the leader does the same every period; a
  follower whose hash differs at the same compact revision gets the CORRUPT alarm
  through Raft (etcd's mismatch), after which the store refuses requests on every
  member ("etcdserver: corrupt cluster") until an operator disarms it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import grpc

from petcd.actors.apply import members as member_table
from petcd.actors.member import MemberContext
from petcd.actors.skeleton import EXIT_FAILED, Stop
from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.config.ids import format_id
from petcd.storage.mvcc import MvccStore

from .local import LocalStore
from .requests import Tracker

HASH_KV_METHOD = "/etcdserverpb.Maintenance/HashKV"


@dataclass(frozen=True, slots=True)
class PeerHash:
    member_id: int
    response: pb.HashKVResponse | None  # None: no answer
    error: str  # why there is none


class CorruptionCheck:
    def __init__(self, ctx: MemberContext, tracker: Tracker, store: LocalStore,
                 raise_alarm: Callable[[int], Coroutine[Any, Any, Any]],
                 timeout_s: float, log: Any) -> None:
        self.ctx, self.tracker, self.store, self.log = ctx, tracker, store, log
        self.raise_alarm = raise_alarm  # (member id) -> CORRUPT alarm through Raft
        self.timeout_s = timeout_s
        self.period_s = ctx.settings.corrupt_check_time_s

    async def initial(self) -> None:
        """Raise Stop if a peer's history differs from ours (etcd's CheckInitialHashKV)."""
        if not self.ctx.db_dir.exists():
            return  # a new member: its apply actor has not made the store yet
        mine, peers = await self._hashes()
        if mine is None:
            return
        self.log.info("starting initial corruption check", revision=mine.hash_revision,
                      hash=mine.hash, compact_revision=mine.compact_revision)
        mismatched = [p.member_id for p in peers if self._differs(mine, p)]
        if mismatched:
            raise Stop("initial corruption checking failed", EXIT_FAILED,
                       error=f"{format_id(self.ctx.member_id)} found data inconsistency "
                             "with peers", peers=[format_id(m) for m in mismatched])
        self.log.info("initial corruption checking passed; no corruption",
                      revision=mine.hash_revision)

    async def periodic(self) -> None:
        """The leader's check every --experimental-corrupt-check-time (a loop)."""
        if not self.period_s:
            return
        while True:
            await asyncio.sleep(self.period_s)
            if self.tracker.status.leader != self.ctx.member_id:
                continue
            mine, peers = await self._hashes()
            for p in peers:
                if mine is not None and self._differs(mine, p):
                    self.log.error("found corrupted member; raising the CORRUPT alarm",
                                   corrupted_member=format_id(p.member_id))
                    await self.raise_alarm(p.member_id)

    # -- helpers -------------------------------------------------------------------

    async def _hashes(self) -> tuple[Any, list[PeerHash]]:
        """Our HashKV at our current revision (None for an empty store) and each peer's
        answer for that revision."""
        mine, table = await self.store.call(_hash_and_table)
        if mine.hash_revision <= 1:
            return None, []  # nothing written yet: nothing to compare
        others = [m for m in table if m.member_id != self.ctx.member_id and m.client_urls]
        peers = await asyncio.gather(*(self._peer_hash(m.member_id, m.client_urls[0],
                                                       mine.hash_revision) for m in others))
        return mine, list(peers)

    async def _peer_hash(self, member_id: int, client_url: str, revision: int) -> PeerHash:
        target = client_url.split("://", 1)[-1]
        try:
            async with grpc.aio.insecure_channel(target) as channel:
                call = channel.unary_unary(HASH_KV_METHOD,
                                           request_serializer=pb.HashKVRequest.SerializeToString,
                                           response_deserializer=pb.HashKVResponse.FromString)
                resp = await call(pb.HashKVRequest(revision=revision), timeout=self.timeout_s)
            return PeerHash(member_id, resp, "")
        except grpc.aio.AioRpcError as err:
            self.log.warning("cannot fetch hash from remote peer", remote_peer=format_id(member_id),
                             error=err.details() or err.code().name)
            return PeerHash(member_id, None, err.details() or err.code().name)

    def _differs(self, mine: Any, peer: PeerHash) -> bool:
        resp = peer.response
        if resp is None or resp.hash == mine.hash:
            return False
        if resp.compact_revision != mine.compact_revision:
            self.log.warning("cannot check hash of peer: it has another compact revision",
                             remote_peer=format_id(peer.member_id),
                             remote_compact_revision=resp.compact_revision)
            return False
        self.log.error("hash differs from a peer's", remote_peer=format_id(peer.member_id),
                       local_hash=mine.hash, remote_hash=resp.hash,
                       revision=mine.hash_revision, compact_revision=mine.compact_revision)
        return True


def _hash_and_table(store: MvccStore) -> tuple[Any, member_table.MemberTable]:
    return store.hash_kv(0), member_table.read_member_table(store)
