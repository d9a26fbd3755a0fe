"""Read and write views: one LMDB transaction plus the revisions it works at.

`ReadView` is etcd's storeTxnRead, `WriteView` its storeTxnWrite: every change of a
write view takes the next sub revision of main revision begin_rev + 1, and reads
through the view see those changes (the index databases are updated in place).
"""

from __future__ import annotations

from collections.abc import Iterator

import lmdb

from petcd.api.mvccpb.kv_pb2 import KeyValue

from . import errors, layout, leases, meta
from .env import Databases
from .errors import MvccError
from .history import Change
from .keyindex import (KeyRange, count_current, current_entries, live_entries, record_delete,
                       record_put)


class ReadView:
    """A consistent snapshot: the transaction and the revisions read with it."""

    __slots__ = ("txn", "dbs", "compact_rev", "_current_rev")

    def __init__(self, txn: lmdb.Transaction[bytes], dbs: Databases) -> None:
        self.txn = txn
        self.dbs = dbs
        self._current_rev = meta.current_rev(txn, dbs)
        self.compact_rev = meta.compact_rev(txn, dbs)
        assert self.compact_rev <= self._current_rev

    @property
    def rev(self) -> int:
        """The revision reads at revision 0 see (etcd's curRev)."""
        return self._current_rev

    def resolve_rev(self, requested: int) -> int:
        """etcd's rangeKeys checks: 0 or less is the current revision."""
        if requested > self.rev:
            raise MvccError(errors.FUTURE_REV)
        rev = self.rev if requested <= 0 else requested
        if rev < self.compact_rev:
            raise MvccError(errors.COMPACTED)
        return rev

    def entries(self, kr: KeyRange, rev: int) -> Iterator[tuple[bytes, bytes]]:
        """(key, revision bytes) of keys live at `rev` (already resolved)."""
        return live_entries(self.txn, self.dbs, kr, rev, self.rev)

    def raw_kv(self, rev: bytes) -> bytes:
        raw = self.txn.get(rev, db=self.dbs.history)
        assert raw is not None, f"index points at a missing revision {rev.hex()}"
        return raw

    def collect(self, kr: KeyRange, rev: int, limit: int) -> tuple[list[bytes], int]:
        """Encoded KeyValues of the first `limit` live keys (0: all) and the total."""
        raws: list[bytes] = []
        total = 0
        for _, rev_raw in self.entries(kr, rev):
            if not limit or total < limit:
                raws.append(self.raw_kv(rev_raw))
            total += 1
        return raws, total

    def count(self, kr: KeyRange, rev: int) -> int:
        if rev == self.rev:
            return count_current(self.txn, self.dbs, kr)
        return sum(1 for _ in self.entries(kr, rev))

    def current_kvs(self, kr: KeyRange) -> list[KeyValue]:
        return [KeyValue.FromString(self.raw_kv(r)) for _, r in current_entries(self.txn, self.dbs, kr)]

    def current_kv(self, key: bytes) -> KeyValue | None:
        raw = self.current_raw(key)
        return KeyValue.FromString(raw) if raw is not None else None

    def current_raw(self, key: bytes) -> bytes | None:
        """The encoded KeyValue of `key` if it is live now."""
        for _, rev in current_entries(self.txn, self.dbs, KeyRange(key, None)):
            return self.raw_kv(rev)
        return None


class WriteView(ReadView):
    """etcd's storeTxnWrite: all changes share main revision begin_rev + 1.

    Every change made is also appended to `written` (history.Change, with the value
    it replaced), in sub-revision order: the watchers' events (actors/network/watch).
    A key's lease moves with its live value (etcd's storeTxnWrite.put and delete
    attach and detach it): leases.py's invariants hold after every change.
    """

    __slots__ = ("begin_rev", "changes", "written")

    def __init__(self, txn: lmdb.Transaction[bytes], dbs: Databases,
                 written: list[Change] | None = None) -> None:
        super().__init__(txn, dbs)
        self.begin_rev = self._current_rev
        self.changes = 0  # the next change's sub revision
        self.written: list[Change] = [] if written is None else written

    @property
    def rev(self) -> int:
        # Once something changed, reads see the pending revision as current.
        return self.begin_rev + 1 if self.changes else self.begin_rev

    def put(self, key: bytes, value: bytes, lease: int) -> int:
        """Write key=value; return the revision (etcd's TxnWrite.Put)."""
        if len(key) > layout.MAX_KEY_BYTES:
            raise MvccError(errors.KEY_TOO_LONG)
        main = self.begin_rev + 1
        prev_raw = self.current_raw(key)
        prev = KeyValue.FromString(prev_raw) if prev_raw is not None else None
        kv = KeyValue(
            key=key,
            value=value,
            create_revision=prev.create_revision if prev is not None else main,
            mod_revision=main,
            version=(prev.version if prev is not None else 0) + 1,
            lease=lease,
        )
        raw = kv.SerializeToString()
        record_put(self.txn, self.dbs, key, main, self.changes, raw)
        self._move_lease(key, prev.lease if prev is not None else leases.NO_LEASE, lease)
        self.written.append(Change(main, self.changes, key, raw, prev_raw, False))
        self.changes += 1
        return main

    def _move_lease(self, key: bytes, old: int, new: int) -> None:
        if old == new:
            return  # the same lease, or none before and after (most puts)
        if old != leases.NO_LEASE:
            leases.detach(self.txn, self.dbs, old, key)
        if new != leases.NO_LEASE:
            leases.attach(self.txn, self.dbs, new, key)

    def delete_range(self, kr: KeyRange) -> tuple[int, int]:
        """Tombstone every live key in `kr`; return (deleted, revision)."""
        # Materialise first: deleting moves the cursor's database under it.
        live = list(current_entries(self.txn, self.dbs, kr))
        main = self.begin_rev + 1
        for key, rev in live:
            prev_raw = self.raw_kv(rev)
            tomb = KeyValue(key=key).SerializeToString()
            record_delete(self.txn, self.dbs, key, main, self.changes, tomb)
            self._move_lease(key, KeyValue.FromString(prev_raw).lease, leases.NO_LEASE)
            self.written.append(Change(main, self.changes, key, tomb, prev_raw, True))
            self.changes += 1
        return len(live), self.rev

    def finish(self) -> int:
        """Store the revision this view reached; return it."""
        if self.changes:
            meta.set_current_rev(self.txn, self.dbs, self.begin_rev + 1)
        return self.rev
