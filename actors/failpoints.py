"""Test-only failpoints: environment variables, off by default, that make an actor
sleep at one point of its loop, or kill itself at one persistence point, so that a
test can stop or crash the member there (tests/faults/test_failpoints.py).

    PETCD_FAILPOINT_WAL_SLEEP_MS=<ms>           the WAL actor, before every fsync
    PETCD_FAILPOINT_APPLY_COMMIT_SLEEP_MS=<ms>  the apply actor, after answering a
                                                batch, before its store commit
    PETCD_FAILPOINT_CRASH=<point>[:<nth>]       the actor that reaches <point> for the
                                                nth time (default 1) SIGKILLs itself

A crash is abrupt, as a power cut is to the process: SIGKILL, no cleanup, no flush of
anything but the "failpoint reached: crashing" log line written just before. The
supervisor then stops the member's other actors and exits non-zero (crash-only); a
restart without the variable must recover. The variable is read once, by the
supervisor before it forks the actors (`arm_crash`): an unknown point or a bad count
refuses to start (exit 2). Unset, `crash_here` costs one string comparison.

The points, by etcd's gofail names where etcd has the place (server/etcdserver/raft.go,
server/storage/{backend,mvcc,wal}), else named after etcd's:

  WAL actor (actors/wal/writer.py), per SAVE or per fsync:
    raftBeforeSave          a SAVE's records (entries, hard state) not yet written
    walBeforeSync           records written (page cache), the fdatasync not yet made
    walAfterSync            fdatasync done, raft not yet told PERSISTED
    raftAfterSave           PERSISTED handed to ZeroMQ (actors/wal/actor.py): it may
                            or may not reach raft before the process dies
  Snapshot creation, WAL actor (writer.py `_save_snapshot`, and a received snapshot's
  marker in `_save`); the apply actor makes no file for it (the store is the snapshot):
    raftBeforeSaveSnap      the marker <term>-<index>.snap not yet written
    raftBeforeWALSaveSnaphot  marker written, its WAL record not (etcd's spelling)
    raftAfterSaveSnap       marker and WAL record durable, old segments not released
    raftAfterWALRelease     segments released and old markers purged
  Store commit, apply actor (actors/apply/actor.py), per store batch:
    beforeCommit            batch applied and answered, its LMDB commit not made
    afterCommit             committed and synced, VISIBLE not yet sent
  Compaction: one LMDB transaction with the rest of its batch (storage/mvcc/
  compaction.py), so etcd's scheduled-compact record, its per-batch commits and its
  finished mark (compactBefore/AfterCommitBatch, ...SetFinishedCompact) have no
  equivalent; the crash points are the two sides of that batch's commit:
    compactBeforeCommitScheduledCompact  history dropped in the transaction, not committed
    compactAfterCommitScheduledCompact   the compaction committed
  Defragment (storage/mvcc/store.py `defragment`, LMDB's compacting copy is one call):
    defragBeforeCopy        the copy not yet started
    defragBeforeRename      copy written and fsynced, CURRENT not yet switched to it
  Snapshot receive, network actor (actors/network/snapshots.py), no etcd equivalent:
    snapReceiveAfterWrite   a chunk written to <index>.snap.db.<id>.part (per chunk)
    snapReceiveBeforeRaft   the file durable as <index>.snap.db, raft not yet told
  Snapshot install, apply actor (actors/apply/snapshot.py `install_db_file`); etcd's
  raftBefore/AfterApplySnap touch raft's memory only:
    applyBeforeOpenSnapshot  the store closed, the new generation not yet made
    applyBeforePublishSnapshot  new generation written and fsynced, CURRENT not switched
    applyAfterOpenSnapshot   CURRENT switched, old generation and .snap.db not removed
  Not in petcd: raftBeforeLeaderSend/FollowerSend/Advance (the raft actor writes
  nothing), etcd's watch, lease and membership points (no persistence).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import structlog

from petcd.actors.logs import Log
from petcd.actors.skeleton import EXIT_BAD_CONFIG, Stop

WAL_SLEEP = "PETCD_FAILPOINT_WAL_SLEEP_MS"
APPLY_COMMIT_SLEEP = "PETCD_FAILPOINT_APPLY_COMMIT_SLEEP_MS"
CRASH = "PETCD_FAILPOINT_CRASH"

CRASH_POINTS = frozenset({
    "raftBeforeSave", "walBeforeSync", "walAfterSync", "raftAfterSave",
    "raftBeforeSaveSnap", "raftBeforeWALSaveSnaphot", "raftAfterSaveSnap",
    "raftAfterWALRelease",
    "beforeCommit", "afterCommit",
    "compactBeforeCommitScheduledCompact", "compactAfterCommitScheduledCompact",
    "defragBeforeCopy", "defragBeforeRename",
    "snapReceiveAfterWrite", "snapReceiveBeforeRaft",
    "applyBeforeOpenSnapshot", "applyBeforePublishSnapshot", "applyAfterOpenSnapshot",
})

# Set once by arm_crash, before the actors are forked (they inherit it): the point
# to crash at (None: none), the how-manieth time, and how often it was reached.
_armed: str | None = None
_nth = 1
_reached = 0


def sleep_ms(variable: str, log: Log, where: str) -> int:
    """The variable's milliseconds, 0 when unset, with a warning naming `where` the
    actor will sleep when set; the actor refuses to start (Stop, EXIT_BAD_CONFIG)
    unless it is a non-negative integer."""
    text = os.environ.get(variable, "").strip()
    if not text:
        return 0
    try:
        value = int(text)
        if value < 0:
            raise ValueError("must be >= 0")
    except ValueError as err:
        raise Stop("bad failpoint", EXIT_BAD_CONFIG, variable=variable,
                   error=f"{variable}={text}: {err}") from err
    if value:
        log.warning(f"failpoint active: sleeping {where}", variable=variable, sleep_ms=value)
    return value


def parse_crash(text: str) -> tuple[str, int] | None:
    """(point, nth) of a PETCD_FAILPOINT_CRASH value, None for an empty one;
    ValueError naming what is wrong."""
    text = text.strip()
    if not text:
        return None
    point, colon, count = text.partition(":")
    if point not in CRASH_POINTS:
        raise ValueError(f"unknown point {point!r}; the points: {', '.join(sorted(CRASH_POINTS))}")
    if not colon:
        return point, 1
    try:
        nth = int(count)
    except ValueError:
        raise ValueError(f"the count after ':' must be an integer, not {count!r}") from None
    if nth < 1:
        raise ValueError(f"the count after ':' must be >= 1, not {nth}")
    return point, nth


def arm_crash(log: Log) -> None:
    """Read PETCD_FAILPOINT_CRASH once (the supervisor, before it forks the actors);
    Stop with EXIT_BAD_CONFIG if it is set to anything but a point and a count."""
    global _armed, _nth, _reached
    text = os.environ.get(CRASH, "")
    try:
        parsed = parse_crash(text)
    except ValueError as err:
        raise Stop("bad failpoint", EXIT_BAD_CONFIG, variable=CRASH,
                   error=f"{CRASH}={text.strip()}: {err}") from err
    _armed, _nth, _reached = None, 1, 0
    if parsed is not None:
        _armed, _nth = parsed
        log.warning("failpoint active: crashing", variable=CRASH, point=_armed, nth=_nth)


def crash_here(point: str, when: Callable[[], bool] | None = None) -> None:
    """SIGKILL this process if `point` is the armed one, reached for the nth time;
    with `when`, only times it returns True count (asked only if `point` is armed)."""
    if point != _armed or (when is not None and not when()):
        return
    global _reached
    _reached += 1
    if _reached == _nth:
        # structlog's logger writes and flushes the line at once (actors/logs.py).
        structlog.get_logger().critical("failpoint reached: crashing", point=point,
                                        nth=_nth, pid=os.getpid())
        os.kill(os.getpid(), signal.SIGKILL)
