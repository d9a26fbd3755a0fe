"""The WAL writer process of a member: makes raft's entries and hard state durable.

    run(ctx):
        bind the "wal" inbox
        open the WAL (creating it, with a new cluster's bootstrap log, on first start)
        -> raft: STATE [persisted_state, metadata];  -> supervisor: READY "wal"
        loop until SIGTERM/SIGINT:
            batch = inbox.drain(up to MAX_BATCH_MSGS, waiting at most POLL_TIMEOUT_MS)
            append every SAVE, write every SAVE_SNAPSHOT, one fsync (writer.py)
            -> raft: PERSISTED <highest seq of the batch>
            fsyncs of the batch above 1 s in all: "slow fdatasync" warning (etcd's)

Exit status: 0 after a signal (the batch in hand is finished and synced first);
1 when the WAL cannot be read or written (corruption, with the file and offset in
the log; a failed fsync; a stuck peer actor); 2 when the data dir belongs to another
member or cluster, or the failpoint variable is not an integer.

Failpoint: PETCD_FAILPOINT_WAL_SLEEP_MS=<ms> sleeps before every fsync of the loop,
to show that a slow disk delays acknowledgements but never an election.

The supervisor forks this and calls `run` (nodes/actor_main.py); tests start `main`
as a multiprocessing target, whose process exit status is run's return value.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from types import FrameType
from typing import Any, NoReturn

import structlog

from petcd.actors import failpoints
from petcd.actors.bus.codec import persisted_state_to_wire
from petcd.actors.bus.sockets import Inbox, Outbox, process_context, term_process_context
from petcd.actors.member import MemberContext
from petcd.actors.protocol import SUPERVISOR, Kind
from petcd.actors import logs
from petcd.storage.raftstate import SnapshotMeta
from petcd.storage.snap import SnapStore
from petcd.storage.wal import DEFAULT_SEGMENT_SIZE_BYTES, WalCorruptError, WalError

from .startup import EXIT_STORAGE, Opened, StartupError, open_wal
from .writer import BatchResult, ProtocolError, WalWriter

ACTOR = "wal"
FAILPOINT_SLEEP_ENV = failpoints.WAL_SLEEP
WARN_SYNC_MS = 1000  # etcd's warnSyncDuration: above it, "slow fdatasync" is logged
MAX_BATCH_MSGS = 4096
POLL_TIMEOUT_MS = 100  # how soon a signal is noticed when the inbox is idle
SEND_TIMEOUT_MS = 1000  # a peer actor not draining its inbox this long is stuck
EXIT_OK = 0
EXIT_BAD_CONFIG = 2  # the failpoint variable is not a non-negative integer

Log = structlog.typing.FilteringBoundLogger  # what nodes.logs.configure returns


class BusStuckError(Exception):
    """Another actor of the member stopped reading its inbox."""


@dataclass(slots=True)
class _Stop:
    signal_name: str | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.signal_name = signal.Signals(signum).name


@dataclass(slots=True)
class _Totals:
    batches: int = 0
    saves: int = 0
    entries: int = 0
    fsyncs: int = 0

    def add(self, result: BatchResult) -> None:
        self.batches += 1
        self.saves += result.saves
        self.entries += result.entries
        self.fsyncs += result.fsyncs


def main(ctx: MemberContext, **options: Any) -> NoReturn:
    """A process target: exits with `run`'s status."""
    raise SystemExit(run(ctx, **options))


def run(ctx: MemberContext, *, segment_size_bytes: int = DEFAULT_SEGMENT_SIZE_BYTES) -> int:
    """The WAL actor's process body; returns the process exit status."""
    settings = ctx.settings
    log = logs.configure(settings.log_level, settings.log_format, ctx.name, ctx.member_id,
                         ACTOR)
    stop = _Stop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    try:
        fsync_delay_ms = failpoints.sleep_ms(FAILPOINT_SLEEP_ENV)
    except ValueError as err:
        log.error("bad failpoint", variable=FAILPOINT_SLEEP_ENV, error=str(err))
        return EXIT_BAD_CONFIG
    if fsync_delay_ms:
        log.warning("failpoint active: sleeping before every fsync",
                    variable=FAILPOINT_SLEEP_ENV, sleep_ms=fsync_delay_ms)
    process_context()  # created here, in this process (never inherited)
    try:
        with Inbox.for_actor(ctx.run_dir, ACTOR) as inbox, Outbox(ctx.run_dir) as outbox:
            return _serve(ctx, log, stop, inbox, outbox, segment_size_bytes, fsync_delay_ms)
    except Exception:
        log.exception("wal actor failed")
        return EXIT_STORAGE
    finally:
        term_process_context()


def _serve(ctx: MemberContext, log: Log, stop: _Stop, inbox: Inbox, outbox: Outbox,
           segment_size_bytes: int, fsync_delay_ms: int) -> int:
    opened = _open(ctx, log, segment_size_bytes)
    if isinstance(opened, int):
        return opened
    with opened.wal as wal:
        _send(outbox, "raft", Kind.STATE,
              [persisted_state_to_wire(opened.state), opened.metadata])
        _send(outbox, SUPERVISOR, Kind.READY, ACTOR)

        def on_snapshot(meta: SnapshotMeta, released: int, purged: int) -> None:
            log.info("snapshot saved", index=meta.index, term=meta.term,
                     released_segments=released, purged_snapshots=purged,
                     segments=len(wal.segment_paths))

        settings = ctx.settings
        writer = WalWriter(wal, SnapStore(ctx.snap_dir), opened.state.hard_state,
                           max_wals=settings.max_wals or None,
                           max_snapshots=settings.max_snapshots or None,
                           fsync_delay_ms=fsync_delay_ms, on_snapshot=on_snapshot)
        totals = _Totals()
        try:
            _loop(log, stop, inbox, outbox, writer, totals)
        except (WalError, OSError, ProtocolError, ValueError, BusStuckError):
            # Crash-only: after a failed write or fsync the disk state is unknown; the
            # member restarts and recovers from what the WAL holds.
            log.exception("wal write failed", batches=totals.batches, saves=totals.saves)
            return EXIT_STORAGE
    log.info("wal actor stopped", signal=stop.signal_name, batches=totals.batches,
             saves=totals.saves, entries=totals.entries, fsyncs=totals.fsyncs)
    return EXIT_OK


def _loop(log: Log, stop: _Stop, inbox: Inbox, outbox: Outbox, writer: WalWriter,
          totals: _Totals) -> None:
    # A signal only sets `stop`: the batch in hand is written, synced and acknowledged
    # before the loop looks at it again.
    while stop.signal_name is None:
        batch = inbox.drain(max_items=MAX_BATCH_MSGS, timeout_ms=POLL_TIMEOUT_MS)
        if not batch:
            continue
        result = writer.handle(batch)
        totals.add(result)
        if result.persisted_seq is not None:
            _send(outbox, "raft", Kind.PERSISTED, result.persisted_seq)
        if result.fsync_ms > WARN_SYNC_MS:
            log.warning("slow fdatasync", took_ms=round(result.fsync_ms, 1),
                        expected_duration_ms=WARN_SYNC_MS, fsyncs=result.fsyncs)
        log.debug("batch persisted", messages=len(batch), saves=result.saves,
                  entries=result.entries, snapshots=result.snapshots,
                  seq=result.persisted_seq, fsyncs=result.fsyncs,
                  fsync_ms=round(result.fsync_ms, 3))


def _open(ctx: MemberContext, log: Log, segment_size_bytes: int) -> Opened | int:
    """The opened WAL, or the exit status after logging why it cannot be opened."""
    try:
        opened = open_wal(ctx, segment_size_bytes)
    except StartupError as err:
        log.error("refusing to start", error=str(err), wal_dir=str(ctx.wal_dir))
        return err.status
    except WalCorruptError as err:
        log.error("wal corrupt, refusing to start", file=str(err.path),
                  offset=err.offset_bytes, reason=err.reason, error=str(err))
        return EXIT_STORAGE
    except (WalError, OSError) as err:
        log.error("cannot open wal", error=str(err), wal_dir=str(ctx.wal_dir))
        return EXIT_STORAGE
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


def _send(outbox: Outbox, actor: str, kind: Kind, payload: Any) -> None:
    if not outbox.send(actor, kind.value, payload, timeout_ms=SEND_TIMEOUT_MS):
        raise BusStuckError(f"{actor} did not take a {kind.value} message within "
                            f"{SEND_TIMEOUT_MS} ms")
