"""The vocabulary of the Raft core: log entries, persistent state, messages, Ready.

Everything here is an immutable value. Entries and messages are the hot path (one
entry per proposal, one message per peer per batch), so `Entry` is a NamedTuple
(about 3x cheaper to build than a frozen dataclass); the rest are frozen, slotted
dataclasses.
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


@dataclass(frozen=True, slots=True)
class ConfChange:
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
        else:
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


@dataclass(frozen=True, slots=True)
class Snapshot:
    meta: SnapshotMeta
    data: bytes = b""  # the state machine at >= meta.index; opaque to the core


@dataclass(frozen=True, slots=True)
class PersistedState:
    """What a member reads back from disk at start-up to restore its core."""

    hard_state: HardState = field(default_factory=HardState)
    snapshot: Snapshot | None = None
    entries: tuple[Entry, ...] = ()  # contiguous, starting right after the snapshot

    def __post_init__(self) -> None:
        first = (self.snapshot.meta.index if self.snapshot else 0) + 1
        for offset, entry in enumerate(self.entries):
            assert entry.index == first + offset, "persisted entries are contiguous"


class MessageType(enum.IntEnum):
    APP = 1
    APP_RESP = 2
    VOTE = 3
    VOTE_RESP = 4
    PRE_VOTE = 5
    PRE_VOTE_RESP = 6
    HEARTBEAT = 7
    HEARTBEAT_RESP = 8
    SNAP = 9
    PROP = 10  # proposals forwarded from a follower to the leader
    READ_INDEX = 11  # read requests forwarded from a follower to the leader
    READ_INDEX_RESP = 12
    TRANSFER_LEADER = 13  # forwarded from a follower to the leader
    TIMEOUT_NOW = 14
    STORAGE_ACK = 15  # local: "everything up to (index, log_term) is durable", issued in `term`


@dataclass(frozen=True, slots=True)
class Message:
    type: MessageType
    src: int
    dst: int
    term: int = 0  # 0 for requests forwarded as-is (PROP, READ_INDEX, TRANSFER_LEADER)
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    reject: bool = False
    reject_hint: int = 0
    context: bytes = b""
    snapshot: Snapshot | None = None
    target: int = NONE  # TRANSFER_LEADER: the node to hand leadership to
    # APP: an empty append that only moves the commit index, sent to a follower the
    # leader already knows has everything up to `index`: a success would tell the
    # leader nothing, so the follower does not answer one (its heartbeat responses
    # still report its commit). Saves a message each way per write on each follower.
    commit_only: bool = False


class Role(enum.IntEnum):
    FOLLOWER = 0
    PRE_CANDIDATE = 1
    CANDIDATE = 2
    LEADER = 3


@dataclass(frozen=True, slots=True)
class SoftState:
    role: Role = Role.FOLLOWER
    leader: int = NONE
    term: int = 0


@dataclass(frozen=True, slots=True)
class ReadState:
    """A linearizable read may be served once the state machine has applied `index`."""

    index: int
    context: bytes


@dataclass(frozen=True, slots=True)
class Ready:
    """One batch of work for the caller; hand it back with `RaftCore.advance`.

    Ordering rules the caller must follow (actors/raft/pipeline.py carries them out,
    for the raft actor and the simulator alike):
    - `send_now` may leave at once (a leader's appends go out before its own fsync).
    - `hard_state`, `entries` (which may overwrite a conflicting tail from
      `entries[0].index` on) and `snapshot` must be durable, in Ready order, before any
      message of `after_persist` is sent (a hard state that changes only the commit
      index may wait for the next write: `must_sync`); messages there addressed to this
      node itself (`dst == id`) are stepped back into the core, after `advance`: that
      is how the core learns what is durable.
    - `snapshot_to_apply` (already durable here) replaces the state machine, then
      `committed` is applied in order: entries durable on a quorum, perhaps not yet
      here (so a restarted member clamps its state machine's index to its log).
    """

    soft_state: SoftState
    hard_state: HardState | None = None
    entries: tuple[Entry, ...] = ()
    snapshot: Snapshot | None = None
    send_now: tuple[Message, ...] = ()
    after_persist: tuple[Message, ...] = ()
    snapshot_to_apply: Snapshot | None = None
    committed: tuple[Entry, ...] = ()
    read_states: tuple[ReadState, ...] = ()


class ProposalDropped(Exception):
    """A proposal, read or transfer that the core refused; the reason is the message."""
