"""The Raft values a member keeps on disk: log entries, hard state, membership and
snapshot metadata.

These are what the WAL's records and the snapshot markers hold (storage/wal/format.py,
storage/snap.py), and what the Raft core reads back at start and writes through the
WAL actor, so they live here, below both: storage never imports the actors. What only
the running core exchanges (messages, Ready, roles, read states) stays with it in
actors/raft/types.py. Splitting along what is persisted keeps this module the whole
vocabulary of the disk, with the rule of when a write must reach it (`must_sync`).

Everything here is an immutable value. Entries are the hot path (one per proposal,
carried by every append), so `Entry` is a NamedTuple (about 3x cheaper to build than a
frozen dataclass); the rest are frozen, slotted dataclasses.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import NamedTuple

NONE = 0  # "no node": node ids are positive integers


class EntryType(enum.IntEnum):
    NORMAL = 0
    CONF_CHANGE = 1


class Entry(NamedTuple):
    term: int
    # Shadows tuple.index(), which mypy reports as an incompatible override; the name is
    # Raft's and every caller's, so it stays.
    index: int  # type: ignore[assignment]
    type: int = EntryType.NORMAL
    data: bytes = b""


class ConfChangeType(enum.IntEnum):
    ADD_VOTER = 0  # on a learner: promote it
    REMOVE = 1
    ADD_LEARNER = 2
    UPDATE = 3  # new peer URLs for a member (in the context): the configuration stays


@dataclass(frozen=True, slots=True)
class ConfChange:
    """The data of a CONF_CHANGE entry."""

    type: ConfChangeType
    node_id: int  # > 0
    context: bytes = b""  # opaque to the core (the server puts member info here)

    _HEADER = struct.Struct(">BQ")

    def encode(self) -> bytes:
        return self._HEADER.pack(self.type, self.node_id) + self.context

    @classmethod
    def decode(cls, data: bytes) -> ConfChange:
        kind, node_id = cls._HEADER.unpack_from(data)
        return cls(ConfChangeType(kind), node_id, bytes(data[cls._HEADER.size:]))


@dataclass(frozen=True, slots=True)
class ConfState:
    voters: frozenset[int] = frozenset()
    learners: frozenset[int] = frozenset()  # invariant: disjoint from voters

    def __post_init__(self) -> None:
        assert not (self.voters & self.learners), "a node is a voter or a learner"

    def members(self) -> frozenset[int]:
        return self.voters | self.learners

    def apply(self, cc: ConfChange) -> ConfState:
        voters, learners = set(self.voters), set(self.learners)
        if cc.type == ConfChangeType.ADD_VOTER:
            learners.discard(cc.node_id)
            voters.add(cc.node_id)
        elif cc.type == ConfChangeType.ADD_LEARNER:
            if cc.node_id not in voters:  # demotion is not supported, as in etcd
                learners.add(cc.node_id)
        elif cc.type == ConfChangeType.REMOVE:
            voters.discard(cc.node_id)
            learners.discard(cc.node_id)
        return ConfState(frozenset(voters), frozenset(learners))


@dataclass(frozen=True, slots=True)
class HardState:
    """Term and vote must be durable before any message that depends on them is sent;
    the commit index need not be (see `must_sync`)."""

    term: int = 0
    vote: int = NONE
    commit: int = 0


def must_sync(prev: HardState, hard_state: HardState | None, entries: int) -> bool:
    """Whether a write must be fsynced before what waits on it, as etcd's raft.MustSync.

    New entries, a new term or a new vote must survive a crash. A commit index alone
    may be lost: a restarted member learns it again from the leader, and entries its
    state machine applied count as committed (RaftCore's start). So a commit-only hard
    state rides along with the next fsync instead of costing one per write.
    """
    if entries:
        return True
    return hard_state is not None and (hard_state.term, hard_state.vote) != (prev.term,
                                                                             prev.vote)


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    index: int = 0
    term: int = 0
    conf: ConfState = field(default_factory=ConfState)
