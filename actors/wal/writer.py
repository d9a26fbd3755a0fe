"""The WAL actor's work on one batch of its inbox, without sockets: group commit.

    batch = [SAVE 7, SAVE 8, SAVE_SNAPSHOT, SAVE 9]
        SAVE 7, 8     -> wal.append(...) each, no fsync yet
        SAVE_SNAPSHOT -> marker file (fsynced), WAL record, wal.sync(), release, purge
        SAVE 9        -> wal.append(...)
        end of batch  -> one wal.sync() for everything still unsynced
    result.persisted_seq == 9: raft hears one PERSISTED 9 for the four messages

Ordering (protocol.py): PERSISTED n is sent only after every SAVE up to n is fsynced.
An empty SAVE writes nothing but still moves the acknowledged seq, so raft can use it
to wait for the SAVEs before it. A SAVE of only a new commit index is written but
not fsynced (`must_sync`): the next fsync carries it, and a crash before that loses
nothing raft needs.

Snapshot markers follow etcd's storage.SaveSnap: the marker file in member/snap is
saved before the WAL record that names it. A crash in between leaves a marker the
WAL does not know, which start-up ignores (`load_latest(among=...)`); the other order
could leave a WAL record without its marker, and a member that cannot restart.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from petcd.actors.bus.codec import (
    entries_from_wire,
    hard_state_from_wire,
    snapshot_meta_from_wire,
)
from petcd.actors.failpoints import crash_here
from petcd.actors.protocol import Kind
from petcd.storage.raftstate import HardState, SnapshotMeta, must_sync
from petcd.storage.snap import SnapStore
from petcd.storage.wal import Wal

_SAVE, _SAVE_SNAPSHOT = Kind.SAVE.value, Kind.SAVE_SNAPSHOT.value


class ProtocolError(Exception):
    """A message the WAL actor must not receive: a bug in its sender."""


@dataclass(frozen=True, slots=True)
class BatchResult:
    persisted_seq: int | None  # the highest SAVE seq in the batch, now durable
    saves: int
    entries: int
    snapshots: int  # SAVE_SNAPSHOTs handled
    fsyncs: int
    fsync_ms: float  # time spent in fsync, the failpoint's sleep (a slow disk) included


@dataclass(slots=True)
class _Tally:
    seq: int | None = None
    saves: int = 0
    entries: int = 0
    snapshots: int = 0
    fsyncs: int = 0
    fsync_ms: float = 0.0


class WalWriter:
    """Appends SAVEs, writes snapshots, group-commits, says what became durable.

    `max_wals` / `max_snapshots`: files to keep, None for unlimited (the settings'
    0). `fsync_delay_ms`: the PETCD_FAILPOINT_WAL_SLEEP_MS failpoint, slept before
    every fsync. `on_snapshot` is told what a SAVE_SNAPSHOT released and purged.
    """

    def __init__(self, wal: Wal, snaps: SnapStore, hard_state: HardState, *,
                 max_wals: int | None, max_snapshots: int | None, fsync_delay_ms: int = 0,
                 sleep: Callable[[float], None] = time.sleep,
                 on_snapshot: Callable[[SnapshotMeta, int, int], None] | None = None) -> None:
        assert max_wals is None or max_wals >= 1, "None means unlimited"
        assert max_snapshots is None or max_snapshots >= 1, "None means unlimited"
        assert fsync_delay_ms >= 0
        self._wal = wal
        self._snaps = snaps
        self._hard_state = hard_state  # the last one written to the WAL
        self._max_wals = max_wals
        self._max_snapshots = max_snapshots
        self._fsync_delay_s = fsync_delay_ms / 1000
        self._sleep = sleep
        self._on_snapshot = on_snapshot
        self._last_seq = 0  # invariant: SAVE seqs strictly increase
        self._unsynced = False  # something that must_sync appended since the last fsync

    def handle(self, batch: Sequence[tuple[str, Any]]) -> BatchResult:
        """Write the batch in order and make all of it durable before returning."""
        tally = _Tally()
        for kind, payload in batch:
            if kind == _SAVE:
                self._save(payload, tally)
            elif kind == _SAVE_SNAPSHOT:
                self._save_snapshot(snapshot_meta_from_wire(payload), tally)
            else:
                raise ProtocolError(f"wal actor got a {kind!r} message")
        self._sync(tally)
        return BatchResult(tally.seq, tally.saves, tally.entries, tally.snapshots,
                           tally.fsyncs, tally.fsync_ms)

    def _save(self, payload: Any, tally: _Tally) -> None:
        try:
            seq, hs_wire, entries_wire, meta_wire = payload
        except (TypeError, ValueError):
            raise ProtocolError(f"malformed SAVE payload: {payload!r:.80}") from None
        if type(seq) is not int or seq <= self._last_seq:
            raise ProtocolError(f"SAVE seq {seq!r} does not follow {self._last_seq}")
        self._last_seq = tally.seq = seq
        tally.saves += 1
        hard_state = None if hs_wire is None else hard_state_from_wire(hs_wire)
        entries = entries_from_wire(entries_wire)
        meta = None if meta_wire is None else snapshot_meta_from_wire(meta_wire)
        if meta is not None:
            # A snapshot received from the leader: its marker first, as for our own.
            self._save_marker(meta)
        if hard_state is None and not entries and meta is None:
            return  # an empty SAVE only orders PERSISTED
        crash_here("raftBeforeSave")
        self._wal.append(hard_state, entries, meta)
        if meta is not None or must_sync(self._hard_state, hard_state, len(entries)):
            self._unsynced = True
        tally.entries += len(entries)
        if hard_state is not None:
            self._hard_state = hard_state

    def _save_marker(self, meta: SnapshotMeta) -> None:
        crash_here("raftBeforeSaveSnap")
        self._snaps.save(meta)
        crash_here("raftBeforeWALSaveSnaphot")

    def _save_snapshot(self, meta: SnapshotMeta, tally: _Tally) -> None:
        self._save_marker(meta)
        hard_state = None
        if meta.index > self._hard_state.commit:
            # A marker above the durable commit index is not trusted at start-up
            # (read_valid_snapshots); the snapshot holds only committed entries, so
            # recording commit >= its index keeps the marker usable.
            hard_state = HardState(self._hard_state.term, self._hard_state.vote, meta.index)
            self._hard_state = hard_state
        self._wal.append(hard_state, (), meta)
        self._unsynced = True
        self._sync(tally)  # the WAL knows the snapshot before anything is released
        crash_here("raftAfterSaveSnap")
        released = self._wal.release_to(meta.index, self._max_wals)
        purged = self._snaps.purge(self._max_snapshots) if self._max_snapshots else ()
        crash_here("raftAfterWALRelease")
        tally.snapshots += 1
        if self._on_snapshot is not None:
            self._on_snapshot(meta, len(released), len(purged))

    def _sync(self, tally: _Tally) -> None:
        if not self._unsynced:
            return
        started = time.perf_counter()
        if self._fsync_delay_s:
            self._sleep(self._fsync_delay_s)
        crash_here("walBeforeSync")
        self._wal.sync()
        crash_here("walAfterSync")
        tally.fsync_ms += (time.perf_counter() - started) * 1000
        tally.fsyncs += 1
        self._unsynced = False
