"""Safety invariants of Raft, checked from outside the nodes after every event.

- Election safety: at most one leader per term (§5.2); a vote is on the voter's disk
  before it leaves (else a restart could vote again in the same term).
- Log matching: entries with the same index and term hold the same data and follow
  the same history (§5.3).
- Leader completeness: a new leader's log holds every committed entry (§5.4).
- State machine safety: no two members apply different entries at one index, and
  their state machines agree at every index (§5.4.3).
- Durability: a committed entry is never lost across crashes (via leader completeness
  after restarts); commit indexes never go back within a run of a node, applied
  indexes never go back at all; what a core counts as durable (its log's `persisted`
  mark) is on its disk, as the core holds it, after every save.
- Linearizable reads: a read's index is at least that of every write acknowledged
  before the read began (thesis §6.4).
- Membership: a removed member that handed off never campaigns or leads again.
  (That a learner's vote never counts is structural, see quorum.vote_result, and has
  its own scenario test.)
"""

from __future__ import annotations

from dataclasses import dataclass

from petcd.actors.raft.types import Message, MessageType, Ready, Role, Snapshot
from petcd.storage.raftstate import Entry

from .harness import Cluster, Observer, SimNode


LIVENESS_MARKER = b"liveness"


class InvariantViolation(AssertionError):
    pass


@dataclass(slots=True)
class PendingRead:
    node: int
    incarnation: int
    floor: int  # highest index acknowledged to any client when the read began


class Checker(Observer):
    def __init__(self) -> None:
        self.leader_of_term: dict[int, int] = {}
        self.entry_data: dict[tuple[int, int], bytes] = {}  # (index, term) -> data
        self.committed: dict[int, int] = {}  # index -> term
        self.max_committed = 0
        self.applied: dict[int, tuple[int, bytes, int]] = {}  # index -> (term, data, chain)
        self.commit_seen: dict[int, int] = {}  # node -> last commit in this run of it
        self.applied_seen: dict[int, int] = {}  # node -> last applied, across runs
        self.leaders_checked: set[tuple[int, int]] = set()
        self.proposals: dict[bytes, tuple[int, int]] = {}  # data -> (node, incarnation)
        self.acked_index = 0  # highest index acknowledged to a client so far
        self.acked = 0
        self.reads: dict[bytes, PendingRead] = {}
        self.reads_checked = 0
        self.marker_applied = False

    def fail(self, what: str) -> None:
        raise InvariantViolation(what)

    # -- observer callbacks -------------------------------------------------------

    def on_ready(self, node: SimNode, rd: Ready) -> None:
        soft = rd.soft_state
        core = node.core
        assert core is not None
        if soft.role == Role.LEADER:
            self._check_leader(node, soft.term)
        if core.handed_off and soft.role != Role.FOLLOWER:
            self.fail(f"node {node.id} was removed and handed off, but is {soft.role.name}")
        for e in rd.entries:
            known = self.entry_data.setdefault((e.index, e.term), e.data)
            if known != e.data:
                self.fail(f"two entries at index {e.index} term {e.term}")
        if rd.hard_state:
            self._check_commit(node, rd.hard_state.commit)

    def on_persisted(self, node: SimNode) -> None:
        """The entry at `persisted` is on the disk with the term the core holds. One
        entry stands for the prefix (§5.3 log matching: the disk only ever holds a
        prefix of some log that had this entry)."""
        log = node.core.log  # type: ignore[union-attr]
        index = log.persisted
        if index <= max(log.offset, node.disk.base()):
            return  # covered by a snapshot
        on_disk = node.disk.entry(index)
        if on_disk is None or on_disk.term != log.term(index):
            found = "nothing" if on_disk is None else f"term {on_disk.term}"
            self.fail(f"node {node.id} counts ({index}, {log.term(index)}) as durable, "
                      f"its disk holds {found} there")

    def on_send(self, node: SimNode, m: Message) -> None:
        if m.type != MessageType.VOTE_RESP or m.reject:
            return
        saved = node.disk.hard_state
        if saved.term < m.term or (saved.term == m.term and saved.vote != m.dst):
            self.fail(f"node {node.id} grants {m.dst} its vote in term {m.term}, its disk "
                      f"holds term {saved.term} vote {saved.vote}")

    def _check_leader(self, node: SimNode, term: int) -> None:
        first = self.leader_of_term.setdefault(term, node.id)
        if first != node.id:
            self.fail(f"two leaders in term {term}: {first} and {node.id}")
        if (node.id, term) in self.leaders_checked:
            return
        self.leaders_checked.add((node.id, term))
        log = node.core.log  # type: ignore[union-attr]
        if log.last_index < self.max_committed:
            self.fail(f"leader {node.id} of term {term} lacks committed entries "
                      f"(last {log.last_index} < committed {self.max_committed})")
        for index, t in self.committed.items():
            if index > log.offset and log.term(index) != t:
                self.fail(f"leader {node.id} of term {term} lost committed entry {index}")

    def _check_commit(self, node: SimNode, commit: int) -> None:
        seen = self.commit_seen.get(node.id, 0)
        if commit < seen:
            self.fail(f"node {node.id} commit went back {seen} -> {commit}")
        self.commit_seen[node.id] = commit
        log = node.core.log  # type: ignore[union-attr]
        for index in range(max(seen, log.offset) + 1, commit + 1):
            t = log.term(index)
            known = self.committed.setdefault(index, t)  # type: ignore[arg-type]
            if known != t:
                self.fail(f"index {index} committed at term {known} and at term {t}")
        self.max_committed = max(self.max_committed, commit)

    def on_apply(self, node: SimNode, entry: Entry) -> None:
        mine = (entry.term, entry.data, node.sm.chain)
        known = self.applied.setdefault(entry.index, mine)
        if known != mine:
            self.fail(f"node {node.id} applied a different entry at {entry.index}")
        if self.committed.get(entry.index, entry.term) != entry.term:
            self.fail(f"node {node.id} applied an uncommitted entry at {entry.index}")
        self._check_applied(node)
        if entry.data == LIVENESS_MARKER:
            self.marker_applied = True
        if self.proposals.get(entry.data) == (node.id, node.incarnation):
            del self.proposals[entry.data]
            self.acked += 1  # the proposer applied it: the client gets its answer now
            self.acked_index = max(self.acked_index, entry.index)

    def on_snapshot_applied(self, node: SimNode, snapshot: Snapshot) -> None:
        known = self.applied.get(node.sm.applied)
        if known is not None and known[2] != node.sm.chain:
            self.fail(f"node {node.id} restored a snapshot that disagrees at {node.sm.applied}")
        self._check_applied(node)

    def _check_applied(self, node: SimNode) -> None:
        seen = self.applied_seen.get(node.id, 0)
        if node.sm.applied < seen:
            self.fail(f"node {node.id} applied index went back {seen} -> {node.sm.applied}")
        self.applied_seen[node.id] = node.sm.applied

    def on_read_state(self, node: SimNode, index: int, context: bytes) -> None:
        read = self.reads.pop(context, None)
        if read is None or (read.node, read.incarnation) != (node.id, node.incarnation):
            return
        if index < read.floor:
            self.fail(f"stale read on node {node.id}: read index {index} < acknowledged "
                      f"write {read.floor}")
        self.reads_checked += 1

    def on_crash(self, node: SimNode) -> None:
        self.commit_seen.pop(node.id, None)  # the hard state may lag what was in memory

    # -- requests -------------------------------------------------------------------

    def proposed(self, node: SimNode, data: bytes) -> None:
        self.proposals[data] = (node.id, node.incarnation)

    def read_started(self, node: SimNode, context: bytes) -> None:
        self.reads[context] = PendingRead(node.id, node.incarnation, self.acked_index)

    # -- whole-cluster checks -------------------------------------------------------

    def check_logs(self, cluster: Cluster) -> None:
        """Log matching over every live node's whole in-memory log."""
        prev_term_of: dict[tuple[int, int], int] = {}
        for node in cluster.live():
            log = node.core.log  # type: ignore[union-attr]
            prev = log.offset_term
            for e in log.entries:
                known = prev_term_of.setdefault((e.index, e.term), prev)
                if known != prev:
                    self.fail(f"log matching: entry ({e.index}, {e.term}) follows term "
                              f"{known} on one node and {prev} on node {node.id}")
                prev = e.term
