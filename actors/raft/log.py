"""The Raft log as one member sees it: entries in memory, what is durable, what is applied.

All entries after the compaction point live in one list; three marks split it:

    offset   persisted   persisting          last_index
    |--------|-----------|--------------------|
     durable   handed to   not yet handed to
               the WAL     the WAL (the unstable tail)

`committed` and `applied` move independently of those marks. Committed entries are
durable on a quorum, so they are handed out to apply even before our own copy is
durable (a leader applies without waiting for its own fsync, as etcd does); after a
crash the state machine may be ahead of the local log, and the caller restores with
applied clamped to the log (apply is idempotent).

An incoming snapshot replaces the whole log; it goes through the same two steps
(handed to the WAL, then durable) before it is handed out to apply.
"""

from __future__ import annotations

from petcd.storage.raftstate import Entry, SnapshotMeta

from .types import PersistedState, Snapshot


class RaftLog:
    def __init__(self, state: PersistedState) -> None:
        snap = state.snapshot
        self.offset = snap.meta.index if snap else 0  # index of the entry before entries[0]
        self.offset_term = snap.meta.term if snap else 0
        self.entries: list[Entry] = list(state.entries)
        self.snapshot: Snapshot | None = snap  # the latest snapshot, sent to lagging peers
        last = self.last_index
        self.persisted = last  # everything read back from disk is durable
        self.persisting = last
        # A snapshot only ever covers committed entries, even when the hard state
        # carrying that commit index had not reached the disk yet.
        self.committed = max(self.offset, min(state.hard_state.commit, last))
        self.applied = self.offset
        self.unstable_snapshot: Snapshot | None = None  # received, not yet handed to the WAL
        self.persisting_snapshot: Snapshot | None = None  # handed to the WAL, not yet durable
        self.snapshot_to_apply: Snapshot | None = None  # durable, not yet handed out to apply
        self.check()

    def check(self) -> None:
        """applied <= committed <= last_index; offset <= persisted <= persisting <= last_index."""
        last = self.last_index
        assert self.applied <= self.committed <= last, (self.applied, self.committed, last)
        assert self.offset <= self.persisted <= self.persisting <= last, (
            self.offset, self.persisted, self.persisting, last)

    @property
    def first_index(self) -> int:
        return self.offset + 1

    @property
    def last_index(self) -> int:
        return self.offset + len(self.entries)

    @property
    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else self.offset_term

    def term(self, index: int) -> int | None:
        """The term of the entry at `index`, or None if it is compacted away or absent."""
        if index == self.offset:
            return self.offset_term
        if self.offset < index <= self.offset + len(self.entries):
            return self.entries[index - self.offset - 1].term
        return None

    def match_term(self, index: int, term: int) -> bool:
        return self.term(index) == term

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Raft §5.4.1: is a candidate's log at least as up to date as ours?"""
        mine = self.last_term
        return last_term > mine or (last_term == mine and last_index >= self.last_index)

    def slice(self, lo: int, max_count: int, max_bytes: int) -> tuple[Entry, ...]:
        """Entries from `lo` on: at most max_count, and max_bytes of data (at least one)."""
        assert lo > self.offset, "slice of compacted entries"
        start = lo - self.offset - 1
        chunk = self.entries[start:start + max_count]
        size = 0
        for n, entry in enumerate(chunk):
            size += len(entry.data)
            if size > max_bytes and n > 0:
                return tuple(chunk[:n])
        return tuple(chunk)

    def find_conflict_by_term(self, index: int, term: int) -> int:
        """The largest index <= `index` whose term is <= `term` (for rejection hints);
        below the compaction point the term is unknown, so that index may match too."""
        while index >= self.offset:
            t = self.term(index)
            if t is not None and t <= term:
                return index
            index -= 1
        return index

    def append(self, entries: list[Entry] | tuple[Entry, ...]) -> None:
        """Leader: entries directly follow the last one."""
        assert not entries or entries[0].index == self.last_index + 1
        self.entries.extend(entries)

    def maybe_append(self, prev_index: int, prev_term: int, commit: int,
                     entries: tuple[Entry, ...]) -> int | None:
        """Follower: accept entries after (prev_index, prev_term) if our log matches there.

        Returns the index of the last entry the message vouches for, or None on mismatch.
        """
        if not self.match_term(prev_index, prev_term):
            return None
        last_new = prev_index + len(entries)
        for n, entry in enumerate(entries):
            if self.term(entry.index) != entry.term:
                self._truncate_and_append(entries[n:])
                break
        self.commit_to(min(commit, last_new))
        return last_new

    def _truncate_and_append(self, entries: tuple[Entry, ...]) -> None:
        first = entries[0].index
        assert first > self.committed, f"conflict at {first} <= committed {self.committed}"
        del self.entries[first - self.offset - 1:]
        self.persisted = min(self.persisted, first - 1)
        self.persisting = min(self.persisting, first - 1)
        self.entries.extend(entries)

    def commit_to(self, index: int) -> None:
        if index > self.committed:
            # etcd raft's commitTo panic, word for word: the leader knows this member
            # had the entry (it counted it for the commit), so its WAL lost what it synced.
            assert index <= self.last_index, (
                f"tocommit({index}) is out of range [lastIndex({self.last_index})]. "
                "Was the raft log corrupted, truncated, or lost?")
            self.committed = index

    def restore(self, snapshot: Snapshot) -> None:
        """Follower: replace the log with a snapshot from the leader."""
        meta = snapshot.meta
        assert meta.index > self.committed
        self.offset, self.offset_term = meta.index, meta.term
        self.entries = []
        self.committed = self.persisted = self.persisting = meta.index
        self.snapshot = snapshot
        self.unstable_snapshot = snapshot
        self.persisting_snapshot = self.snapshot_to_apply = None

    def compact(self, index: int, snapshot_meta: SnapshotMeta, data: bytes, keep: int) -> bool:
        """Record a snapshot at `index` and drop entries up to `index - keep`; False (and
        nothing changes) if we already hold a snapshot at or beyond `index`."""
        if self.snapshot is not None and index <= self.snapshot.meta.index or index < self.offset:
            return False
        assert index <= self.applied and index <= self.persisted, "snapshot of unapplied state"
        self.snapshot = Snapshot(snapshot_meta, data)
        drop_to = max(self.offset, index - keep)
        term = self.term(drop_to)
        assert term is not None
        del self.entries[:drop_to - self.offset]
        self.offset, self.offset_term = drop_to, term
        return True

    # -- handing out and acknowledging ---------------------------------------------

    def unpersisted_entries(self) -> tuple[Entry, ...]:
        return tuple(self.entries[self.persisting - self.offset:])

    def apply_limit(self) -> int:
        """Entries up to here may be handed out to apply: committed (durable on a
        quorum), and no snapshot on its way to the state machine first."""
        if self.unstable_snapshot or self.persisting_snapshot or self.snapshot_to_apply:
            return self.applied
        return self.committed

    def committed_to_apply(self, max_count: int) -> tuple[Entry, ...]:
        hi = min(self.apply_limit(), self.applied + max_count)
        return tuple(self.entries[self.applied - self.offset:hi - self.offset])

    def unacknowledged(self) -> bool:
        """Something handed to the WAL is not yet known to be durable."""
        return self.persisted < self.persisting or self.persisting_snapshot is not None

    def stable_to(self, index: int, term: int) -> None:
        """The WAL made everything up to (index, term) durable."""
        snap = self.persisting_snapshot
        if snap and index >= snap.meta.index and self.term(index) == term:
            self.persisting_snapshot, self.snapshot_to_apply = None, snap
        if index > self.persisted and self.term(index) == term:
            self.persisted = min(index, self.persisting)
