"""What the network actor knows of its member's Raft state and state machine.

The raft actor sends STATUS on every change and every 100 ms; the apply actor sends
APPLIED at start and after every batch. Both are cached here: response headers,
/health and Maintenance.Status read them without asking anyone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from petcd.actors.raft.types import Role
from petcd.storage.raftstate import NONE


@dataclass(frozen=True, slots=True)
class PeerProgress:
    """What the leader's Raft knows of one member (etcd's raft Progress, in part)."""

    member_id: int
    match: int  # the highest log index known to be on that member
    active: bool  # heard from within the raft actor's ACTIVE_WITHIN_S


@dataclass(frozen=True, slots=True)
class RaftStatus:
    """One STATUS payload (actors/protocol.py)."""

    role: Role = Role.FOLLOWER
    term: int = 0
    leader: int = NONE  # NONE: this member knows no leader
    commit: int = 0
    last_index: int = 0
    applied: int = 0  # what the apply actor has made durable, as raft last heard
    voters: frozenset[int] = frozenset()
    learners: frozenset[int] = frozenset()
    progress: tuple[PeerProgress, ...] = ()  # on the leader only: every member's

    def __post_init__(self) -> None:
        assert self.term >= 0 and self.commit >= 0 and self.last_index >= 0, self

    @classmethod
    def from_wire(cls, payload: Any) -> RaftStatus:
        role, term, leader, commit, last_index, applied, voters, learners, progress = payload
        return cls(Role(role), int(term), int(leader), int(commit), int(last_index),
                   int(applied), frozenset(voters), frozenset(learners),
                   tuple(PeerProgress(int(m), int(match), bool(active))
                         for m, match, active in progress))

    def match_of(self, member_id: int) -> int | None:
        """The leader's match index for a member; None if unknown (not the leader)."""
        return next((p.match for p in self.progress if p.member_id == member_id), None)

    def active(self) -> frozenset[int]:
        """Members the leader heard from lately (itself included)."""
        return frozenset(p.member_id for p in self.progress if p.active)

    @property
    def has_leader(self) -> bool:
        return self.leader != NONE


@dataclass(frozen=True, slots=True)
class Applied:
    """Where the state machine is, from APPLIED (applied and answered up to `index`)
    or VISIBLE (committed: other processes read it up to `index`)."""

    index: int = 0
    revision: int = 0

    @classmethod
    def from_wire(cls, payload: Any) -> Applied:
        index, revision = payload[:2]  # the network's APPLIED also carries the changes
        return cls(int(index), int(revision))
