"""The WAL writer process of a member: makes raft's entries and hard state durable.

    open (before serving): the "wal" inbox is bound (actors/skeleton.py); open the WAL,
        creating it, with a new cluster's bootstrap log, on first start (startup.py)
    start: -> raft: STATE [persisted_state, metadata];  -> supervisor: READY "wal"
    handle(batch), until SIGTERM/SIGINT:
        append every SAVE, write every SAVE_SNAPSHOT, one fsync (writer.py)
        -> raft: PERSISTED <highest seq of the batch>
        fsyncs of the batch above 1 s in all: "slow fdatasync" warning (etcd's)

Exit status (actors/skeleton.py): 0 after a signal (the batch in hand is finished and
synced first); 1 when the WAL cannot be read or written (corruption, with the file and
offset in the log; a failed fsync; a stuck peer actor); 2 when the data dir belongs to
another member or cluster, or the failpoint variable is not an integer.

Failpoint: PETCD_FAILPOINT_WAL_SLEEP_MS=<ms> sleeps before every fsync of the loop,
to show that a slow disk delays acknowledgements but never an election.
"""

from __future__ import annotations

from functools import partial

from prometheus_client import Histogram

from petcd.actors import failpoints
from petcd.actors.bus.codec import persisted_state_to_wire
from petcd.actors.logs import Log
from petcd.actors.member import MemberContext
from petcd.actors.metrics import DISK_BUCKETS_S
from petcd.actors.protocol import SUPERVISOR, Kind
from petcd.actors.skeleton import (POLL_TIMEOUT_MS, Batch, Runtime, Stop,
                                   run as run_actor, send_or_stop)
from petcd.storage.raftstate import SnapshotMeta
from petcd.storage.snap import SnapStore
from petcd.storage.wal import DEFAULT_SEGMENT_SIZE_BYTES, WalCorruptError, WalError

from .startup import Opened, open_wal
from .writer import BatchResult, WalWriter

NAME = "wal"
WARN_SYNC_MS = 1000  # etcd's warnSyncDuration: above it, "slow fdatasync" is logged
MAX_BATCH_MSGS = 4096


def run(ctx: MemberContext, *, segment_size_bytes: int = DEFAULT_SEGMENT_SIZE_BYTES) -> int:
    """The WAL actor's process body; returns the process exit status."""
    return run_actor(ctx, NAME, partial(WalActor.open, segment_size_bytes=segment_size_bytes))


class WalActor:
    max_batch_msgs = MAX_BATCH_MSGS
    wake_on = ()

    def __init__(self, runtime: Runtime, opened: Opened, fsync_delay_ms: int) -> None:
        self.ctx, self.log, self.outbox = runtime.ctx, runtime.log, runtime.outbox
        self.opened = opened
        settings = self.ctx.settings
        self.writer = WalWriter(opened.wal, SnapStore(self.ctx.snap_dir),
                                opened.state.hard_state,
                                max_wals=settings.max_wals or None,
                                max_snapshots=settings.max_snapshots or None,
                                fsync_delay_ms=fsync_delay_ms, on_snapshot=self._on_snapshot)
        self.batches = self.saves = self.entries = self.fsyncs = 0
        self.fsync_seconds = Histogram(
            "etcd_disk_wal_fsync_duration_seconds",
            "The latency distributions of fsync called by WAL.",
            buckets=DISK_BUCKETS_S, registry=runtime.metrics.registry)

    @classmethod
    def open(cls, runtime: Runtime, *, segment_size_bytes: int) -> WalActor:
        fsync_delay_ms = failpoints.sleep_ms(failpoints.WAL_SLEEP, runtime.log,
                                             "before every fsync")
        return cls(runtime, _open(runtime.ctx, runtime.log, segment_size_bytes), fsync_delay_ms)

    def start(self) -> None:
        send_or_stop(self.outbox, "raft", Kind.STATE,
                     [persisted_state_to_wire(self.opened.state), self.opened.metadata])
        send_or_stop(self.outbox, SUPERVISOR, Kind.READY, NAME)

    def wait_ms(self) -> int:
        return POLL_TIMEOUT_MS

    def handle(self, batch: Batch) -> None:
        # A failed write or fsync raises: crash-only, the disk state is unknown; the
        # member restarts and recovers from what the WAL holds.
        if not batch:
            return
        result = self.writer.handle(batch)
        self._count(result)
        if result.persisted_seq is not None:
            send_or_stop(self.outbox, "raft", Kind.PERSISTED, result.persisted_seq)
            failpoints.crash_here("raftAfterSave")
        if result.fsync_ms > WARN_SYNC_MS:
            self.log.warning("slow fdatasync", took_ms=round(result.fsync_ms, 1),
                             expected_duration_ms=WARN_SYNC_MS, fsyncs=result.fsyncs)
        self.log.debug("batch persisted", messages=len(batch), saves=result.saves,
                       entries=result.entries, snapshots=result.snapshots,
                       seq=result.persisted_seq, fsyncs=result.fsyncs,
                       fsync_ms=round(result.fsync_ms, 3))

    def close(self) -> None:
        self.opened.wal.close()

    def report(self) -> dict[str, object]:
        return {"batches": self.batches, "saves": self.saves, "entries": self.entries,
                "fsyncs": self.fsyncs}

    def _count(self, result: BatchResult) -> None:
        self.batches += 1
        self.saves += result.saves
        self.entries += result.entries
        self.fsyncs += result.fsyncs
        for _ in range(result.fsyncs):  # a batch's fsyncs are timed together
            self.fsync_seconds.observe(result.fsync_ms / 1000 / result.fsyncs)

    def _on_snapshot(self, meta: SnapshotMeta, released: int, purged: int) -> None:
        self.log.info("snapshot saved", index=meta.index, term=meta.term,
                      released_segments=released, purged_snapshots=purged,
                      segments=len(self.opened.wal.segment_paths))


def _open(ctx: MemberContext, log: Log, segment_size_bytes: int) -> Opened:
    """The opened WAL, or Stop saying why it cannot be opened."""
    try:
        opened = open_wal(ctx, segment_size_bytes)
    except WalCorruptError as err:
        raise Stop("wal corrupt, refusing to start", file=str(err.path),
                   offset=err.offset_bytes, reason=err.reason, error=str(err)) from err
    except (WalError, OSError) as err:
        raise Stop("cannot open wal", error=str(err), wal_dir=str(ctx.wal_dir)) from err
    _log_opened(ctx, log, opened)
    return opened


def _log_opened(ctx: MemberContext, log: Log, opened: Opened) -> None:
    repair = opened.repair
    if repair is not None:
        log.warning("wal torn tail repaired", file=str(repair.path),
                    offset=repair.offset_bytes, dropped_bytes=repair.dropped_bytes,
                    reason=repair.reason)
    state, wal = opened.state, opened.wal
    snapshot_index = state.snapshot.meta.index if state.snapshot else 0
    log.info("wal opened", wal_dir=str(ctx.wal_dir), created=opened.created,
             cluster_state=ctx.settings.initial_cluster_state,
             segments=len(wal.segment_paths), entries=len(state.entries),
             snapshot_index=snapshot_index, last_index=wal.last_index,
             term=state.hard_state.term, vote=state.hard_state.vote,
             commit=state.hard_state.commit, repaired_tail=repair is not None)
