"""MvccStore: the etcd v3 key-value state machine on LMDB.

One process (the apply actor) opens it writable and calls `apply` / `apply_batch`
for every committed Raft entry, in log order. Any number of other processes open
it read-only and call `range`, `hash_kv`, `alarms` ... Requests and responses are
etcd's protobuf messages, so gRPC and the JSON gateway share this implementation;
refused requests raise (or, in a batch, return) `MvccError` with etcd's message.

Durability: every `apply_batch` commits one LMDB transaction with one fdatasync of
its data pages (MDB_NOMETASYNC: the meta page is written, not synced, so an OS crash
may undo the last commit but never corrupts the file; the next commit's sync, or
`sync()`, makes it durable). The applied index commits with the data, so replaying
the WAL after any crash applies each entry once. The writer may answer a batch from
`before_commit`, ahead of its commit: the WAL, not the store, is the durable record.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import lmdb

from petcd.api.authpb import auth_pb2
from petcd.api.etcdserverpb import raft_internal_pb2 as rpb
from petcd.api.etcdserverpb import rpc_pb2 as pb

from . import (alarms, auth, auth_requests, checks, compaction, env, errors, hashing,
               lease_requests, leases, meta, ops, permissions, quota, txn)
from .errors import MvccError
from .history import Change
from .leases import Lease
from .lease_requests import LeaseChange
from .meta import RaftPosition
from .ranges import range_kvs
from .view import ReadView, WriteView

Request = (
    rpb.InternalRaftRequest
    | pb.RangeRequest
    | pb.PutRequest
    | pb.DeleteRangeRequest
    | pb.TxnRequest
    | pb.CompactionRequest
    | pb.AlarmRequest
    | pb.LeaseGrantRequest
    | pb.LeaseRevokeRequest
    | pb.LeaseCheckpointRequest
)
Response = (
    pb.RangeResponse
    | pb.PutResponse
    | pb.DeleteRangeResponse
    | pb.TxnResponse
    | pb.CompactionResponse
    | pb.AlarmResponse
    | pb.LeaseGrantResponse
    | pb.LeaseRevokeResponse
    | pb.LeaseCheckpointResponse
)
# The InternalRaftRequest fields this store applies (and auth_requests.FIELDS, applied
# with the entry's header and index); others (membership) belong to other parts of the
# apply actor and only advance the index.
_HANDLED_FIELDS = ("range", "put", "delete_range", "txn", "compaction", "alarm",
                   "lease_grant", "lease_revoke", "lease_checkpoint")
# Requests whose keys a user needs permission for while auth is enabled (their
# proposer's header names the user; the member's own revokes name root).
_CHECKED_REQUESTS = (pb.RangeRequest, pb.PutRequest, pb.DeleteRangeRequest, pb.TxnRequest,
                     pb.LeaseRevokeRequest)
_READER_CHECK_EVERY_BATCHES = 256
_STAT_RETRIES = 3  # a reader racing defragments: each retry reopens the newest generation


@dataclass(frozen=True, slots=True)
class StoreOptions:
    quota_bytes: int = quota.DEFAULT_QUOTA_BYTES
    max_txn_ops: int = checks.DEFAULT_MAX_TXN_OPS
    # fdatasync on every commit. Off only where losing the file on an OS crash is
    # fine (tests, benchmarks that rebuild it).
    sync: bool = True
    # A lease granted a shorter TTL gets this one (etcd's minLeaseTTL): the member
    # passes about 1.5 x its election timeout (actors/apply/actor.py min_lease_ttl_s).
    min_lease_ttl_s: int = lease_requests.DEFAULT_MIN_LEASE_TTL_S

    def __post_init__(self) -> None:
        assert self.quota_bytes > 0 and self.max_txn_ops > 0, self
        assert 0 < self.min_lease_ttl_s <= lease_requests.MAX_LEASE_TTL_S, self


@dataclass(frozen=True, slots=True)
class ApplyEntry:
    """A committed Raft entry for the store; request None is a no-op entry."""

    index: int
    term: int
    request: Request | None
    conf_state: bytes | None = None

    def __post_init__(self) -> None:
        assert self.index > 0 and self.term >= 0, self


ApplyResult = Response | MvccError | None


class MvccStore:
    """Open with `MvccStore.open`; close with `close()` or a `with` block."""

    def __init__(self, backend: env.Backend, options: StoreOptions) -> None:
        self._backend: env.Backend | None = backend
        self.options = options
        self._batches = 0
        self._alarms: frozenset[int] = frozenset()  # raised alarm types, within a batch
        self._auth_enabled = False  # within a batch
        if not backend.readonly:
            backend.env.reader_check()

    @classmethod
    def open(
        cls,
        path: str,
        *,
        readonly: bool = False,
        quota_bytes: int = quota.DEFAULT_QUOTA_BYTES,
        max_txn_ops: int = checks.DEFAULT_MAX_TXN_OPS,
        sync: bool = True,
        min_lease_ttl_s: int = lease_requests.DEFAULT_MIN_LEASE_TTL_S,
    ) -> "MvccStore":
        options = StoreOptions(quota_bytes, max_txn_ops, sync, min_lease_ttl_s)
        backend = cls._open_backend(path, readonly, options)
        if not readonly:
            with backend.env.begin(write=True) as t:
                meta.init_schema(backend.env, t, backend.dbs)
        return cls(backend, options)

    @staticmethod
    def _open_backend(path: str, readonly: bool, options: StoreOptions) -> env.Backend:
        return env.open_backend(
            path, readonly=readonly, map_size_bytes=quota.map_size_bytes(options.quota_bytes), sync=options.sync
        )

    def sync(self) -> None:
        """Make every committed transaction durable. A commit's own fdatasync leaves
        its meta page unsynced (MDB_NOMETASYNC, see env.py), so an OS crash may undo
        the last commit; the next commit's fdatasync, or this, makes it durable."""
        self.backend.env.sync(True)

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def __enter__(self) -> "MvccStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def backend(self) -> env.Backend:
        assert self._backend is not None, "store is closed"
        return self._backend

    @property
    def readonly(self) -> bool:
        return self.backend.readonly

    # ---- reads: any process -------------------------------------------------------

    def _fresh_backend(self) -> env.Backend:
        """Reopen when a defragment published a new generation (readers only)."""
        backend = self.backend
        if backend.readonly and backend.stale():
            backend.close()
            self._backend = None
            self._backend = self._open_backend(backend.root, True, self.options)
        return self.backend

    @contextlib.contextmanager
    def read_txn(self) -> Iterator[ReadView]:
        """A consistent read view; every read method uses one."""
        for attempt in (1, 2):
            backend = self._fresh_backend()
            try:
                t = backend.env.begin(write=False)
                break
            except lmdb.MapResizedError:
                # The writer reopened with a larger map: adopt it by reopening.
                assert attempt == 1, "map resized twice in a row"
                backend.close()
                self._backend = self._open_backend(backend.root, backend.readonly, self.options)
        try:
            yield ReadView(t, backend.dbs)
        finally:
            t.abort()

    def range(self, r: pb.RangeRequest, asker: tuple[str, int] | None = None
              ) -> pb.RangeResponse:
        """etcd's Range (serializable: this member's state). With `asker` (user name,
        auth revision of the client's token; "", 0 without one), refused unless auth
        is disabled or the user may read the range (permissions.py), in the same
        read transaction."""
        checks.check_range(r)
        with self.read_txn() as view:
            if asker is not None and auth.enabled(view.txn, view.dbs):
                permissions.check_request(view.txn, view.dbs, asker[0], asker[1], r)
            return range_kvs(view, r)

    def check_read(self, asker: tuple[str, int], key: bytes, range_end: bytes) -> None:
        """Raise MvccError unless auth is disabled or `asker` (user name, auth
        revision) may read [key, range_end): a watch's range, say."""
        with self.read_txn() as view:
            if auth.enabled(view.txn, view.dbs):
                permissions.check_request(view.txn, view.dbs, asker[0], asker[1],
                                          pb.RangeRequest(key=key, range_end=range_end))

    def check_lease_keys(self, asker: tuple[str, int], lease_ids: list[int],
                         write: bool) -> None:
        """Raise MvccError unless auth is disabled or `asker` may write (keep-alive)
        or read (time-to-live, lease list) every key attached to the leases."""
        with self.read_txn() as view:
            if auth.enabled(view.txn, view.dbs):
                permissions.Checker(view.txn, view.dbs, *asker).check_lease_keys(
                    lease_ids, write)

    def current_revision(self) -> int:
        with self.read_txn() as view:
            return view.rev

    def compact_revision(self) -> int:
        """The last compaction revision; -1 before any, as in etcd."""
        with self.read_txn() as view:
            return view.compact_rev

    def raft_position(self) -> RaftPosition:
        """Index and term of the last applied Raft entry (etcd's consistent index)."""
        with self.read_txn() as view:
            return meta.raft_position(view.txn, view.dbs)

    def applied_index(self) -> int:
        return self.raft_position().index

    def conf_state(self) -> bytes | None:
        with self.read_txn() as view:
            return meta.conf_state(view.txn, view.dbs)

    def alarms(self, alarm: int = pb.NONE) -> list[pb.AlarmMember]:
        with self.read_txn() as view:
            return alarms.list_alarms(view.txn, view.dbs, alarm)

    def hash_kv(self, revision: int = 0) -> hashing.HashKV:
        with self.read_txn() as view:
            return hashing.hash_kv(view, revision)

    def hash(self) -> int:
        with self.read_txn() as view:
            return hashing.hash_all(view)

    def lease(self, lease_id: int) -> tuple[int, int] | None:
        """(TTL granted, remaining TTL of the last checkpoint, 0 if none) of a granted
        lease; None if unknown or revoked."""
        if lease_id == leases.NO_LEASE:
            return None
        with self.read_txn() as view:
            found = leases.get(view.txn, view.dbs, lease_id)
        return None if found is None else (found.ttl_s, found.remaining_ms)

    def lease_keys(self, lease_id: int) -> list[bytes]:
        """The live keys attached to a lease, sorted; [] if it has none or is unknown."""
        if lease_id == leases.NO_LEASE:
            return []
        with self.read_txn() as view:
            return leases.keys(view.txn, view.dbs, lease_id)

    def leases(self) -> list[Lease]:
        """Every granted lease, (lease_id, ttl_s, remaining_ms) each, in ID byte
        order (LeaseLeases; what a new leader's lessor starts from)."""
        with self.read_txn() as view:
            return leases.all_leases(view.txn, view.dbs)

    # ---- auth: what the network actor checks before proposing ------------------------

    def auth_status(self) -> tuple[bool, int]:
        """(enabled, auth revision)."""
        with self.read_txn() as view:
            return auth.enabled(view.txn, view.dbs), auth.revision(view.txn, view.dbs)

    def auth_user(self, name: str) -> auth_pb2.User | None:
        with self.read_txn() as view:
            return auth.get_user(view.txn, view.dbs, name)

    def token_user(self, token: str) -> tuple[bool, str | None, int]:
        """(auth enabled, the user a simple token was assigned to or None, auth
        revision), read together."""
        with self.read_txn() as view:
            return (auth.enabled(view.txn, view.dbs), auth.token_user(view.txn, view.dbs, token),
                    auth.revision(view.txn, view.dbs))

    def user_permissions(self, name: str) -> list[auth_pb2.Permission]:
        """Every key permission of a user's roles (root: all keys); [] if unknown."""
        with self.read_txn() as view:
            return auth.permissions(view.txn, view.dbs, name)

    # ---- sizes and quota ----------------------------------------------------------

    def db_size_bytes(self) -> int:
        """Size of the database file (etcd's dbSize)."""
        for _ in range(_STAT_RETRIES):
            try:
                return os.stat(self._fresh_backend().data_file).st_size
            except FileNotFoundError:
                # A reader between a defragment's publish of the new generation and
                # its removal of the old one: CURRENT has moved, so reopen and retry.
                if not self.backend.readonly:
                    raise
        raise FileNotFoundError(f"{self.backend.root}: no live generation to stat")

    def db_size_in_use_bytes(self) -> int:
        """Bytes of pages holding data, excluding free pages (etcd's dbSizeInUse)."""
        backend = self._fresh_backend()
        with self.read_txn() as view:
            stats = [view.txn.stat(db) for _, db in backend.dbs.all()]
        main = backend.env.stat()
        pages = 2 + sum(s["branch_pages"] + s["leaf_pages"] + s["overflow_pages"] for s in [main, *stats])
        return pages * main["psize"]

    def fits_quota(self, cost_bytes: int) -> bool:
        """Whether a request adding `cost_bytes` (quota.request_cost) stays under quota."""
        return quota.fits(self.db_size_bytes(), self.options.quota_bytes, cost_bytes)

    def over_quota(self) -> bool:
        return self.db_size_bytes() >= self.options.quota_bytes

    # ---- writes: the apply actor only --------------------------------------------

    def apply(self, index: int, term: int, request: Request | None, conf_state: bytes | None = None) -> Response | None:
        """Apply one committed entry; raise its MvccError (the index is recorded anyway;
        NO_SPACE for a write that did not fit the quota: applied all the same).

        Returns None for an entry already applied (index <= applied index) and for
        requests this store does not handle.
        """
        [result] = self.apply_batch([ApplyEntry(index, term, request, conf_state)])
        if isinstance(result, MvccError):
            raise result
        return result

    def apply_batch(self, entries: Sequence[ApplyEntry],
                    took_s: list[float] | None = None,
                    clock: Callable[[], float] = time.monotonic,
                    changes: list[Change] | None = None,
                    lease_changes: list[LeaseChange] | None = None,
                    before_commit: Callable[[list[ApplyResult], int], None] | None = None,
                    ) -> list[ApplyResult]:
        """Apply entries in one LMDB transaction (one fdatasync); results in order.

        If `took_s` is given, it gets how long each entry's apply took, in order
        (etcd warns of a write whose apply was slow). If `changes` is given, it gets
        every change the batch made, in revision order (what watchers are sent),
        before any compaction in the batch could remove one from `history`. If
        `lease_changes` is given, it gets every lease granted or revoked, in apply
        order (what the leader's lessor must learn). `before_commit` is called with
        the results and the store's revision once every entry is applied, before the
        transaction commits and syncs: what it sends does not wait for the
        fdatasync. Other processes see the batch only once this returns; if the
        process dies in between, the batch is lost from the store (and applied again
        from the WAL at restart)."""
        assert not self.readonly, "read-only store"
        backend = self.backend
        self._batches += 1
        if self._batches % _READER_CHECK_EVERY_BATCHES == 0:
            # Free the reader slots of crashed reader processes: a stale slot pins
            # old pages, and the file would grow without bound.
            backend.env.reader_check()
        results: list[ApplyResult] = []
        # etcd's backend size only moves when a batch commits; so does LMDB's file.
        db_size_bytes = self.db_size_bytes()
        with backend.env.begin(write=True) as parent:
            applied = meta.raft_position(parent, backend.dbs).index
            # Read once per batch, not per write: only an AlarmRequest changes them.
            self._alarms = alarms.active_kinds(parent, backend.dbs)
            # Likewise: only an AuthEnable or AuthDisable changes it (_apply_auth).
            self._auth_enabled = auth.enabled(parent, backend.dbs)
            last: ApplyEntry | None = None
            for entry in entries:
                started = clock()
                if entry.index <= applied:
                    results.append(None)  # replayed after a crash: already in the data
                else:
                    results.append(self._apply_one(parent, entry, db_size_bytes, changes,
                                                   lease_changes))
                    if entry.conf_state is not None:
                        meta.set_conf_state(parent, backend.dbs, entry.conf_state)
                    applied, last = entry.index, entry
                if took_s is not None:
                    took_s.append(clock() - started)
            if last is not None:
                # Once per batch: the batch commits as one transaction, so the applied
                # index that commits with it is its last entry's.
                meta.set_raft_position(parent, backend.dbs, RaftPosition(last.index, last.term))
            if before_commit is not None:
                before_commit(results, meta.current_rev(parent, backend.dbs))
        return results

    def _apply_one(self, parent: lmdb.Transaction[bytes], entry: ApplyEntry, db_size_bytes: int,
                   changes: list[Change] | None,
                   lease_changes: list[LeaseChange] | None) -> ApplyResult:
        # A child transaction per entry: a refused request leaves no trace, while
        # the applied index (written in the parent) still moves past it.
        if auth_requests.field_of(entry.request) is not None:
            return self._apply_auth(parent, entry)
        request = _unwrap(entry.request)
        cost_bytes = quota.request_cost(request)
        fits = quota.fits(db_size_bytes, self.options.quota_bytes, cost_bytes)
        child = self.backend.env.begin(write=True, parent=parent)
        written: list[Change] = []
        leases_written: list[LeaseChange] = []
        try:
            if self._auth_enabled and isinstance(request, _CHECKED_REQUESTS):
                # A bare request (tests) names no user: refused as etcd refuses one.
                header = (entry.request.header if isinstance(entry.request, rpb.InternalRaftRequest)
                          else rpb.RequestHeader())
                permissions.check_request(child, self.backend.dbs, header.username,
                                          header.auth_revision, request)
            result = self._dispatch(child, request, cost_bytes, written, leases_written)
        except MvccError as err:
            child.abort()
            return err
        except lmdb.MapFullError:
            child.abort()
            return MvccError(errors.NO_SPACE)
        except BaseException:
            child.abort()
            raise
        child.commit()
        if changes is not None:
            changes.extend(written)
        if lease_changes is not None:
            lease_changes.extend(leases_written)
        if not fits:
            # etcd's quotaApplierV3: a write that did not fit is applied all the same
            # (every member keeps the same data, whatever its file size), but its
            # proposer is told the space is exceeded, and raises the NOSPACE alarm.
            return MvccError(errors.NO_SPACE)
        return result

    def _apply_auth(self, parent: lmdb.Transaction[bytes], entry: ApplyEntry) -> ApplyResult:
        """An auth request: no alarm refuses it (etcd's capped and corrupt appliers
        let them through), and it costs no quota."""
        assert isinstance(entry.request, rpb.InternalRaftRequest), entry
        child = self.backend.env.begin(write=True, parent=parent)
        try:
            result: Response = auth_requests.apply(child, self.backend.dbs, entry.request,
                                                   entry.index)
        except MvccError as err:
            child.abort()
            return err
        except BaseException:
            child.abort()
            raise
        child.commit()
        self._auth_enabled = auth.enabled(parent, self.backend.dbs)
        result.header.revision = meta.current_rev(parent, self.backend.dbs)
        return result

    def _dispatch(self, t: lmdb.Transaction[bytes], request: Request | None, cost_bytes: int,
                  written: list[Change], leases_written: list[LeaseChange]) -> Response | None:
        if request is None:
            return None
        dbs = self.backend.dbs
        if isinstance(request, pb.AlarmRequest):
            resp = alarms.apply_alarm(t, dbs, request)
            self._alarms = alarms.active_kinds(t, dbs)
            resp.header.revision = meta.current_rev(t, dbs)
            return resp
        if isinstance(request, pb.LeaseCheckpointRequest):
            # etcd's corrupt applier lets checkpoints through; they cost nothing.
            return lease_requests.checkpoint(ReadView(t, dbs), request, leases_written)
        self._check_alarms(cost_bytes)
        if isinstance(request, (pb.LeaseGrantRequest, pb.LeaseRevokeRequest)):
            return self._apply_lease(t, request, written, leases_written)
        return self._apply_kv(t, request, written)

    def _apply_lease(self, t: lmdb.Transaction[bytes],
                     request: pb.LeaseGrantRequest | pb.LeaseRevokeRequest,
                     written: list[Change], leases_written: list[LeaseChange]) -> Response:
        view = WriteView(t, self.backend.dbs, written)
        result: Response
        if isinstance(request, pb.LeaseGrantRequest):
            result = lease_requests.grant(view, request, self.options.min_lease_ttl_s, leases_written)
        else:
            result = lease_requests.revoke(view, request, leases_written)
        view.finish()
        return result

    def _check_alarms(self, cost_bytes: int) -> None:
        """etcd's corrupt and capped appliers, installed while those alarms are on."""
        if pb.CORRUPT in self._alarms:
            raise MvccError(errors.CORRUPT)
        if cost_bytes > 0 and pb.NOSPACE in self._alarms:
            raise MvccError(errors.NO_SPACE)

    def _apply_kv(self, t: lmdb.Transaction[bytes], request: Request,
                  written: list[Change]) -> Response:
        dbs = self.backend.dbs
        if isinstance(request, pb.RangeRequest):
            checks.check_range(request)
            return range_kvs(ReadView(t, dbs), request)
        if isinstance(request, pb.CompactionRequest):
            compaction.compact(t, dbs, request.revision)
            resp = pb.CompactionResponse()
            resp.header.revision = meta.current_rev(t, dbs)
            return resp
        view = WriteView(t, dbs, written)
        result: Response
        if isinstance(request, pb.PutRequest):
            checks.check_put(request)
            result = ops.put(view, request)
        elif isinstance(request, pb.DeleteRangeRequest):
            checks.check_delete(request)
            result = ops.delete_range(view, request)
        elif isinstance(request, pb.TxnRequest):
            checks.check_txn(request, self.options.max_txn_ops)
            result = txn.txn(view, request)
        else:
            raise TypeError(f"not a request this store applies: {type(request).__name__}")
        view.finish()
        return result

    def defragment(self, crash_here: Callable[[str], None] | None = None) -> None:
        """Rewrite the file compactly; readers elsewhere switch at their next read.

        `crash_here` is told each step's failpoint name before the step (test-only
        failpoints: actors/failpoints.py; the store itself has no process logic)."""
        assert not self.readonly, "only the writer defragments"
        at = crash_here or _no_failpoint
        old = self.backend
        at("defragBeforeCopy")
        generation = env.copy_compact(old)
        at("defragBeforeRename")
        env.publish_generation(old.root, generation)
        old.close()
        self._backend = None
        self._backend = self._open_backend(old.root, False, self.options)
        assert self._backend.generation == generation
        env.remove_generation(old.root, old.generation)


def _no_failpoint(point: str) -> None:
    pass


def _unwrap(request: Request | None) -> Request | None:
    """The request of an InternalRaftRequest this store applies; None if none."""
    if isinstance(request, rpb.InternalRaftRequest):
        for field, value in request.ListFields():  # set fields only, in number order
            if field.name in _HANDLED_FIELDS:
                handled: Request = value  # ListFields() is untyped; each handled field is a Request
                return handled
        return None
    return request
