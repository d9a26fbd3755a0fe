"""What the actors of one member say to each other: every kind, its sender, its payload.

Every frame between actors is a bus envelope `[kind, payload]` (actors/bus/envelope),
sent to the receiving actor's inbox (actors/bus: one PULL socket per actor, PUSH to
send). Payloads are msgpack-friendly values; Raft values use actors/bus/codec's
`*_to_wire` / `*_from_wire`. Kinds are grouped by the inbox that receives them.

Ordering rules (DESIGN.md): the raft actor never touches the disk; entries and hard
state are durable (WAL actor) before any message that depends on them leaves; only
committed, durable entries are applied, in log order; apply is idempotent (the applied
index lives in the same LMDB transaction as the data).

    network --PROPOSE/PROPOSE_CONF_CHANGE/READ_INDEX/PEER/PEERS/TRANSFER/SNAPSHOT_STATUS--> raft
    network --DEFRAGMENT-->                                       apply
    raft    --SAVE/SAVE_SNAPSHOT-->                               wal
    wal     --STATE (at start), PERSISTED-->                      raft
    raft    --APPLY/APPLY_SNAPSHOT-->                             apply
    apply   --APPLIED (at start, after every batch: changes, leases)-->  network
    apply   --VISIBLE (at start, after every batch's commit)-->  network
    apply   --APPLIED (at start, then at most every 0.1 s or idle)--> raft
    apply   --RESPONSES (defragment's answers)-->                 network
    raft    --SEND_SNAPSHOT/PEER_FRAMES/READ_STATES/DROPPED/STATUS--> network
    every actor --READY (once, at start), to-->                   supervisor
    apply   --REMOVED (this member left the member table)-->      supervisor

Raft messages between members do not pass through here: the raft actor sends and
receives them on the peer transport itself (actors/raft/peers.py). Only snapshot
streams, which read and write the store, are the network actor's.
"""

from __future__ import annotations

import enum

ACTORS = ("raft", "wal", "apply", "network")
SUPERVISOR = "supervisor"


class Kind(str, enum.Enum):
    # -- to raft ---------------------------------------------------------------------
    # network -> raft: client writes, in arrival order.
    #   payload: [[request_id: int, data: bytes], ...]; data is an InternalRaftRequest
    #   (api/etcdserverpb/raft_internal.proto) whose header.ID == request_id. An item
    #   with a third element (True) is traced: the raft actor reports its stage times
    #   (TRACE).
    PROPOSE = "propose"
    # network -> raft: a membership change a client asked for (MemberAdd...).
    #   payload: [request_id: int, ConfChange.encode()]; its context carries the
    #   request id (actors/apply/members.py), so the apply actor answers it in APPLIED
    #   as it answers PROPOSE items. Refused (one change at a time, no leader...):
    #   DROPPED.
    PROPOSE_CONF_CHANGE = "propose_conf_change"
    # network -> raft: linearizable read requests (one awaited at a time per member:
    #   actors/network/requests.py). payload: [context: bytes, ...]
    READ_INDEX = "read_index"
    # network -> raft: a SNAP message whose snapshot (the store) has arrived and is
    #   durable (actors/network/snapshots.py). payload: messages_to_wire(...)
    PEER = "peer"
    # network -> raft: the peer URLs of the member table, after it changed.
    #   payload: [[[member_id: int, [peer_url: str, ...]], ...], [removed_id: int, ...]]
    PEERS = "peers"
    # network -> raft: move leadership (etcd MoveLeader). payload: target member id
    TRANSFER = "transfer"
    # network -> raft: a snapshot stream to a peer finished. payload: [peer_id, ok: bool]
    SNAPSHOT_STATUS = "snapshot_status"
    # wal -> raft, once at start: what the disk holds.
    #   payload: [persisted_state_to_wire(...), metadata: bytes]
    STATE = "state"
    # wal -> raft: every SAVE up to and including this sequence number is durable.
    #   payload: seq: int
    PERSISTED = "persisted"
    # apply -> raft and network: the state machine applied everything up to here.
    #   payload: [applied_index: int, revision: int] to raft; to the network
    #   [applied_index, revision, changes, leases, received_ns, answered_ns, replies],
    #   at start and after every batch (the two times, monotonic ns or nil, when its
    #   batch was taken and answered: network/trace.py; replies, nil or the batch's
    #   answers to this member's proposals as in RESPONSES: one message per batch
    #   where there were two, the answers after the watchers' and leases' news),
    #   changes being history.changes_to_wire of
    #   every change the batch made (the watchers' events), leases
    #   lease_requests.lease_changes_to_wire of every lease it granted, revoked or
    #   checkpointed, in apply order: [[kind, lease_id, value], ...], value the TTL
    #   granted (s), 0, or the remaining TTL checkpointed (ms) (the lessor's table
    #   and the age of its checkpoints). Both are nil when the store changed
    #   without them (at start, after a snapshot was installed): reread the store
    #   (MvccStore.leases()). To raft, applied_index is the durable one (what an OS
    #   crash cannot undo, which snapshots may cover; it trails the network's by one
    #   batch, storage/mvcc sync), sent at start, then when it moved: at most every
    #   0.1 s, or when the apply actor is idle (raft only schedules snapshots with it).
    APPLIED = "applied"

    # -- to wal ----------------------------------------------------------------------
    # raft -> wal: make these durable, in order, then answer PERSISTED with seq.
    #   payload: [seq: int, hard_state_to_wire | None, entries_to_wire,
    #             snapshot_meta_to_wire | None]
    #   An empty SAVE (nothing to write) is legal: it only orders PERSISTED. A hard
    #   state that differs from the last one saved only in its commit index is not
    #   sent on its own: the next SAVE carries it (a restart relearns the commit).
    #   What waits for which seq is decided in actors/raft/pipeline.py.
    SAVE = "save"
    # raft -> wal: the state machine is durable up to this snapshot: write the snapshot
    #   marker (member/snap/<term>-<index>.snap and the WAL record), then release WAL
    #   segments below it and purge old markers (--max-wals, --max-snapshots).
    #   payload: snapshot_meta_to_wire(...)
    SAVE_SNAPSHOT = "save_snapshot"

    # -- to apply --------------------------------------------------------------------
    # raft -> apply: committed entries, in log order. payload: entries_to_wire(...)
    APPLY = "apply"
    # raft -> apply: replace the state machine with a received snapshot (already
    #   durable). payload: snapshot_meta_to_wire(...); the db file is at
    #   member/snap/<index:016x>.snap.db, written there by the network actor.
    APPLY_SNAPSHOT = "apply_snapshot"
    # network -> apply: defragment this member's store between batches, then answer
    #   RESPONSES [[request_id, ok, b"" | [code, message]]]. payload: request_id: int
    DEFRAGMENT = "defragment"

    # -- to network ------------------------------------------------------------------
    # raft -> network: SNAP messages to send with a stream of the store.
    #   payload: messages_to_wire(...)
    SEND_SNAPSHOT = "send_snapshot"
    # raft -> network: snapshot-stream frames that arrived on the peer ROUTER.
    #   payload: [[src_member_id: int, kind: str, payload], ...]
    PEER_FRAMES = "peer_frames"
    # raft -> network: read points for READ_INDEX contexts.
    #   payload: [read_state_to_wire(...), ...]
    READ_STATES = "read_states"
    # raft -> network: proposals or reads the core refused (no leader, transfer...).
    #   payload: [[request_id_or_context: int | bytes, reason: str], ...]
    DROPPED = "dropped"
    # raft -> network: the member's Raft status, on every change and every 100 ms.
    #   payload: [role: int, term: int, leader: int, commit: int, last_index: int,
    #             applied: int, voters: [int], learners: [int], progress]
    #   progress, on the leader only ([] elsewhere): [[member_id, match, active: bool],
    #   ...] for every member (etcd's raft Status.Progress: MemberPromote's readiness
    #   and the strict reconfiguration checks read it).
    STATUS = "status"
    # apply -> network: the store's commit made every batch applied so far visible
    #   to other processes' reads. payload: [applied_index: int, revision: int]
    #   A batch is answered (APPLIED) before its commit's fdatasync: reads
    #   that must see what was answered wait for VISIBLE to reach it.
    VISIBLE = "visible"
    # raft -> network: the raft actor's stage times of traced proposals (PROPOSE items
    #   with a third element), sent once each is committed (actors/network/trace.py).
    #   payload: [[request_id, [[stage: str, monotonic_ns: int], ...]], ...]
    TRACE = "trace"
    # apply -> network: results of this member's requests the apply actor answers
    #   outside a batch (DEFRAGMENT); a batch's go in its APPLIED.
    #   payload: [[request_id, ok: bool, body: bytes | [code: str, message: str]], ...]
    #   body is the serialized etcd response (PutResponse, RangeResponse, ...) when ok,
    #   else the etcd error (code name as in storage/mvcc/errors, message).
    RESPONSES = "responses"
    # raft, wal, apply -> network, every second: the actor's Prometheus samples, for
    #   /metrics (actors/metrics.py). payload: [actor name, families_to_wire(...)].
    #   Sent without waiting: the next one replaces a lost one.
    METRICS = "metrics"

    # -- to supervisor -----------------------------------------------------------------
    # any actor -> supervisor, once its sockets are bound and its state loaded.
    #   payload: actor name
    READY = "ready"
    # apply -> supervisor, once: the member table it applied says this member was
    #   removed from the cluster (at start, or as it applies the change). The member
    #   stops, exit status 0, as etcd's does. payload: actor name
    REMOVED = "removed"


def request_id_owner(request_id: int) -> int:
    """The low 16 bits of the member id that issued a request id (etcd's idutil)."""
    return request_id >> 48


def member_id_prefix(member_id: int) -> int:
    return member_id & 0xFFFF
