"""The apply actor: applies committed entries to the MVCC store, in log order.

    raft    --APPLY [entries]-->             apply   one store batch (one LMDB commit)
    raft    --APPLY_SNAPSHOT [meta]-->       apply   replace the store's data
    network --DEFRAGMENT request_id-->       apply   rewrite the store file compactly
    apply   --APPLIED [index, revision, changes?, leases?]-->  network  at start, after
                                             each batch
    apply   --RESPONSES-->                   network results of this member's requests
    apply   --VISIBLE [index, revision]-->   network at start, after each batch's commit
    apply   --APPLIED [durable index, revision]-->   raft   at start, then when it has
                                             changed: at most every 0.1 s, or when idle
    apply   --READY "apply"-->               supervisor      once the store is open

The loop drains its inbox (bounded wait), merges every APPLY of the drained batch into
one `MvccStore.apply_batch` (one LMDB transaction), then, before committing it, tells
the network actor what changed (APPLIED with the batch's changes: the watchers' events;
and the leases it granted and revoked: the lessor's table) and only then answers the
requests, so a client never learns a revision its member's watchers have not been
given, nor a lease its lessor lacks. An APPLY_SNAPSHOT first applies what came before
it, so order is kept.

When the store syncs: each batch's commit makes one fdatasync (the data pages; the
meta page is not synced: MDB_NOMETASYNC, storage/mvcc/env.py), after the batch was
answered, then VISIBLE says other processes can read it. So the only fsync on a
write's way to its answer is the WAL's, as in etcd (which commits its backend every
100 ms, off the answer's path). Why nothing acknowledged can be lost: the entries are
durable in the WAL before they were committed by Raft, and the store's applied index
commits in the same transaction as the data; if the member dies before a batch's
commit (SIGKILL, tests/faults/test_crashes.py), or an OS crash undoes the last commit,
the restarted member applies those entries again from the WAL. Raft compacts the WAL
only below the durable index (APPLIED to raft: what a later commit's sync covers).
Reads in other processes see a batch only after VISIBLE: the network actor makes
serializable reads wait for VISIBLE to reach what it has answered, and linearizable
ones for their read index, so a client reads its own writes. DEFRAGMENTs of a
drained batch are served by one `MvccStore.defragment` after its entries are applied
(between two store batches); each is answered in RESPONSES, and the network actor's
read-only store switches to the new file at its next read. The applied index is
written in the same LMDB transaction as the data and the member table
(actors/apply/members.py), so a crash at any point followed by a replay of the WAL
applies every entry exactly once.

The loop, signals and exit statuses are the skeleton's (actors/skeleton.py). SIGTERM or
SIGINT: the batch in hand is finished, LMDB closed, exit 0. Anything that would leave
the state machine wrong (a gap in the log, a snapshot file that does not fit, an actor
that stopped reading its inbox, a corrupt store) ends the process with 1: crash-only,
the supervisor stops the member and a restart recovers. A bad failpoint variable: 2.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import Histogram

from petcd.actors import failpoints, slow
from petcd.actors.bus import codec
from petcd.actors.member import MemberContext
from petcd.actors.metrics import DISK_BUCKETS_S
from petcd.actors.protocol import SUPERVISOR, Kind
from petcd.actors.skeleton import (EXIT_BAD_CONFIG, POLL_TIMEOUT_MS, Batch, Runtime, Stop,
                                   run as run_actor, send_or_stop)
from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.storage.mvcc import (Change, LeaseChange, MvccError, MvccStore, StoreCorruptError,
                                history, lease_requests)
from petcd.storage.raftstate import Entry, SnapshotMeta

from . import batch, members, snapshot
from .members import MemberTable

NAME = "apply"
MAX_BATCH_MSGS = 1024
# Raft needs the durable index only to schedule snapshots: telling it after every batch
# would cost a message per write when writes come one at a time.
TELL_RAFT_EVERY_S = 0.1


def run(ctx: MemberContext) -> int:
    """Process entry point (forked by the supervisor, nodes/actor_main.py): exit status."""
    return run_actor(ctx, NAME, ApplyActor.open)


class ApplyActor:
    max_batch_msgs = MAX_BATCH_MSGS
    wake_on = ()

    def __init__(self, runtime: Runtime, store: MvccStore,
                 clock: Callable[[], float] = time.monotonic, commit_sleep_ms: int = 0) -> None:
        self.ctx, self.outbox, self.log = runtime.ctx, runtime.outbox, runtime.log
        self.store = store
        self.clock = clock
        self.applied_index = store.applied_index()
        # What an OS crash cannot undo: raft takes snapshots (and the WAL releases
        # segments) only up to here. A commit is durable once the next one has synced
        # (storage/mvcc MvccStore.sync), so this trails applied_index by one batch.
        store.sync()
        self.durable_index = self.applied_index
        self.told_raft: int | None = None  # the durable index raft last heard
        self.told_raft_at = 0.0
        self.table: MemberTable = members.read_member_table(store)
        self.told_removed = False  # REMOVED went to the supervisor
        self.commit_sleep_s = commit_sleep_ms / 1000  # failpoints.APPLY_COMMIT_SLEEP
        self.received_ns = 0  # when the batch in hand was taken from the inbox
        # The store's revision after the last batch applied (committed or not): what
        # APPLIED and VISIBLE say, known without opening a read transaction for it.
        self.revision = store.current_revision()
        self.commit_seconds = Histogram(
            "etcd_disk_backend_commit_duration_seconds",
            "The latency distributions of commit called by backend.",
            buckets=DISK_BUCKETS_S, registry=runtime.metrics.registry)
        self.commit_started = 0.0

    @classmethod
    def open(cls, runtime: Runtime) -> ApplyActor:
        commit_sleep_ms = failpoints.sleep_ms(failpoints.APPLY_COMMIT_SLEEP, runtime.log,
                                              "between answering and committing")
        try:
            store = open_store(runtime.ctx)
        except StoreCorruptError as err:
            raise Stop("store corrupt, refusing to start", file=err.path,
                       reason=err.reason) from err
        return cls(runtime, store, commit_sleep_ms=commit_sleep_ms)

    # -- start-up ------------------------------------------------------------------

    def start(self) -> None:
        stale = snapshot.remove_applied_db_files(self.ctx.snap_dir, self.applied_index)
        if stale:
            self.log.info("removed applied snapshot db files", files=[p.name for p in stale])
        self.log.info("store opened", applied_index=self.applied_index,
                      revision=self.revision,
                      members=[f"{m.member_id:x}" for m in self.table])
        if len(self.table) and self.table.get(self.ctx.member_id) is None \
                and not self.table.is_removed(self.ctx.member_id):
            raise Stop("refusing to start: this member is not in the cluster's member table",
                       EXIT_BAD_CONFIG, member=f"{self.ctx.member_id:x}",
                       members=[f"{m.member_id:x}" for m in self.table])
        self._send_applied(now=True)  # raft waits for it to start, whatever the clock says
        self._send_visible()
        send_or_stop(self.outbox, SUPERVISOR, Kind.READY, NAME)
        self._tell_if_removed()

    def _tell_if_removed(self) -> None:
        """The member table says this member was removed: the supervisor stops the
        member (etcd exits once it applies its own removal, and at a restart)."""
        if self.table.is_removed(self.ctx.member_id) and not self.told_removed:
            self.told_removed = True
            send_or_stop(self.outbox, SUPERVISOR, Kind.REMOVED, NAME)

    # -- the loop --------------------------------------------------------------------

    def wait_ms(self) -> int:
        return POLL_TIMEOUT_MS

    def handle(self, messages: Batch) -> None:
        """One drained batch: consecutive APPLYs become one store batch. None came:
        raft hears the durable index now."""
        if not messages:
            self._tell_raft(now=True)
            return
        self.received_ns = time.monotonic_ns()  # a traced write's apply_received
        entries: list[Entry] = []
        defragments: list[int] = []
        for kind, payload in messages:
            if kind == Kind.APPLY:
                entries.extend(codec.entries_from_wire(payload))
            elif kind == Kind.APPLY_SNAPSHOT:
                self._apply_entries(entries)
                entries = []
                self._apply_snapshot(codec.snapshot_meta_from_wire(payload))
            elif kind == Kind.DEFRAGMENT:
                defragments.append(int(payload))
            else:
                self.log.warning("unexpected message kind", kind=kind)
        self._apply_entries(entries)
        if defragments:
            self._defragment(defragments)

    def _apply_entries(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        try:
            plan = batch.plan_batch(entries, self.applied_index, self.table,
                                    self.ctx.member_id)
        except batch.LogGapError as err:
            raise Stop("cannot apply: a gap in the log", error=str(err)) from err
        if not plan.store_entries:
            # Every entry was already applied (a replay): nothing new for the network.
            self._send_applied(changes=[], lease_changes=[])
            self._send_visible()
            return
        took_s: list[float] = []
        changes: list[Change] = []
        lease_changes: list[LeaseChange] = []
        previous = self.applied_index

        def answer(results: list[Any], revision: int) -> None:
            # Before the commit and its fdatasync: the entries are in the WAL, and if
            # this process dies before the commit, the restarted member applies them
            # again (the store's applied index did not move). Only the WAL's fsync is
            # on a write's way to its answer.
            self.applied_index = plan.store_entries[-1].index
            self.table = plan.table
            self.revision = revision
            replies = batch.responses(plan, results, self.ctx.cluster_id, self.ctx.member_id)
            self._send_applied(changes=changes, lease_changes=lease_changes,
                               stage_ns=(self.received_ns, time.monotonic_ns()),
                               replies=replies)
            if self.commit_sleep_s:
                time.sleep(self.commit_sleep_s)
            failpoints.crash_here("beforeCommit")
            failpoints.crash_here("compactBeforeCommitScheduledCompact",
                                  lambda: _compacts(results))
            self.commit_started = time.monotonic()  # the store commits when this returns

        results = self.store.apply_batch(plan.store_entries, took_s, self.clock, changes,
                                         lease_changes, before_commit=answer)
        failpoints.crash_here("afterCommit")
        failpoints.crash_here("compactAfterCommitScheduledCompact", lambda: _compacts(results))
        self.commit_seconds.observe(time.monotonic() - self.commit_started)
        self.durable_index = previous  # synced by this batch's commit
        self._send_visible()
        self._warn_of_slow_applies(plan, results, took_s)
        for level, event, fields in plan.notes:
            getattr(self.log, level)(event, **fields)
        self._tell_if_removed()

    def _warn_of_slow_applies(self, plan: batch.Plan, results: Sequence[Any],
                              took_s: Sequence[float]) -> None:
        """etcd's "apply request took too long", for each request of the batch."""
        for entry, result, took in zip(plan.store_entries, results, took_s):
            if entry.request is not None:  # None: not a store request (no-op, member change)
                error = result if isinstance(result, MvccError) else None
                slow.warn_if_slow(self.log, took, "", entry.request,
                                  None if error else result, error)

    def _apply_snapshot(self, meta: SnapshotMeta) -> None:
        path = snapshot.db_file_path(self.ctx.snap_dir, meta.index)
        if meta.index <= self.applied_index:
            # Already applied (a replay, or a crash right after installing it).
            self.log.info("snapshot already applied", index=meta.index,
                          applied_index=self.applied_index)
            path.unlink(missing_ok=True)
            self._send_applied(changes=[], lease_changes=[])
            self._send_visible()
            return
        backend = self.store.backend
        root, generation, options = backend.root, backend.generation, self.store.options
        self.store.close()
        try:
            position = snapshot.install_db_file(root, generation, path, meta.index)
        except snapshot.SnapshotInstallError as err:
            raise Stop("cannot apply snapshot", index=meta.index, error=str(err)) from err
        finally:
            self.store = MvccStore.open(root, quota_bytes=options.quota_bytes,
                                        max_txn_ops=options.max_txn_ops, sync=options.sync,
                                        min_lease_ttl_s=options.min_lease_ttl_s)
        self.applied_index = self.store.applied_index()
        self.revision = self.store.current_revision()
        assert self.applied_index == position.index, (self.applied_index, position)
        self.store.sync()
        self.durable_index = self.applied_index
        self.table = members.read_member_table(self.store)
        # The db may be ahead of the snapshot (copied later); then it may hold later changes.
        if position.index == meta.index and self.table.conf_state() != meta.conf:
            self.log.warning("snapshot member table differs from its conf state",
                             table=sorted(f"{m:x}" for m in self.table.conf_state().members()),
                             conf=sorted(f"{m:x}" for m in meta.conf.members()))
        self.log.info("snapshot applied", index=meta.index, term=meta.term,
                      applied_index=self.applied_index, revision=self.revision)
        self._tell_if_removed()
        self._send_applied(now=True)
        self._send_visible()

    def _defragment(self, request_ids: Sequence[int]) -> None:
        before = self.store.db_size_bytes()
        started = time.monotonic()
        try:
            self.store.defragment(failpoints.crash_here)
        except Exception as err:  # e.g. no disk space for the copy: the old file stays
            self.log.exception("defragment failed")
            send_or_stop(self.outbox, "network", Kind.RESPONSES,
                         [[r, False, ["UNKNOWN", f"petcd: defragment failed: {err}"]]
                          for r in request_ids])
            return
        self.durable_index = self.applied_index  # the copy was fsynced whole
        self.log.info("defragmented", db_size_bytes_before=before,
                      db_size_bytes_after=self.store.db_size_bytes(),
                      took_ms=round((time.monotonic() - started) * 1000))
        send_or_stop(self.outbox, "network", Kind.RESPONSES,
                     [[r, True, b""] for r in request_ids])

    # -- sends -----------------------------------------------------------------------

    def _send_applied(self, *, now: bool = False, changes: list[Change] | None = None,
                      lease_changes: list[LeaseChange] | None = None,
                      stage_ns: tuple[int, int] | None = None,
                      replies: list[Any] | None = None) -> None:
        """changes and lease_changes: every change and every lease granted or revoked
        since the last APPLIED, or both None when the store may have changed without
        them (at start, after installing a snapshot: reread the store). `stage_ns`:
        when the batch was received and answered, for traced writes
        (actors/network/trace.py). `replies`: the batch's answers (RESPONSES rows)."""
        assert (changes is None) == (lease_changes is None), "both lists, or neither"
        wire = None if changes is None else history.changes_to_wire(changes)
        leases = None if lease_changes is None else lease_requests.lease_changes_to_wire(lease_changes)
        received_ns, answered_ns = stage_ns or (None, None)
        send_or_stop(self.outbox, "network", Kind.APPLIED, [
            self.applied_index, self.revision, wire, leases, received_ns, answered_ns,
            replies or None])
        self._tell_raft(now=now, revision=self.revision)

    def _send_visible(self) -> None:
        """VISIBLE: other processes' reads of the store now see every batch applied."""
        send_or_stop(self.outbox, "network", Kind.VISIBLE, [self.applied_index, self.revision])

    def _tell_raft(self, *, now: bool, revision: int | None = None) -> None:
        if self.durable_index == self.told_raft:
            return
        at = self.clock()
        if not now and at - self.told_raft_at < TELL_RAFT_EVERY_S:
            return
        if revision is None:
            revision = self.store.current_revision()
        send_or_stop(self.outbox, "raft", Kind.APPLIED, [self.durable_index, revision])
        self.told_raft, self.told_raft_at = self.durable_index, at

    def close(self) -> None:
        self.store.close()

    def report(self) -> dict[str, object]:
        return {"applied_index": self.applied_index}


def _compacts(results: Sequence[Any]) -> bool:
    """Whether a store batch made a compaction (a refused one answers an MvccError)."""
    return any(isinstance(result, pb.CompactionResponse) for result in results)


def min_lease_ttl_s(heartbeat_interval_ms: int, election_ticks: int) -> int:
    """etcd's minLeaseTTL: (3 x election ticks) / 2 heartbeats (integer division), in
    whole seconds rounded up (etcdserver/server.go): longer than an election, so that
    a lease does not expire while the cluster elects the leader that keeps it."""
    min_ttl_ms = (3 * election_ticks) // 2 * heartbeat_interval_ms
    assert min_ttl_ms > 0, (heartbeat_interval_ms, election_ticks)
    return -(-min_ttl_ms // 1000)


def open_store(ctx: MemberContext) -> MvccStore:
    s = ctx.settings
    ctx.db_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return MvccStore.open(str(ctx.db_dir), quota_bytes=s.quota_backend_bytes,
                          max_txn_ops=s.max_txn_ops,
                          min_lease_ttl_s=min_lease_ttl_s(s.heartbeat_interval_ms,
                                                          s.election_ticks))
