"""The vocabulary of the running Raft core: messages, Ready, roles, read states.

The values the disk holds (entries, hard state, membership, snapshot metadata) are in
storage/raftstate.py, below both the core and the WAL. Everything here is an
immutable value: frozen, slotted dataclasses.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from petcd.storage.raftstate import NONE, Entry, HardState, SnapshotMeta


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
      index may wait for the next write: `must_sync`, storage/raftstate.py); messages
      there addressed to this node itself (`dst == id`) are stepped back into the
      core, after `advance`: that is how the core learns what is durable.
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
