"""Compaction: drop the history no read at or above the compact revision can see.

For every key, the newest revision at or below the compact revision is kept (it is
what a read at that revision returns) unless it is a tombstone, and everything
older goes, from `history` and from `key_revs`. Keys whose state at the compact
revision is a tombstone vanish entirely unless they were written again later.

Only keys changed since the previous compaction can have anything to drop (older
keys hold exactly one kept revision), so the work is proportional to the changes,
not to the number of keys. It runs inside the apply transaction: a crash leaves
either the whole compaction or none of it.
"""

from __future__ import annotations

import lmdb

from petcd.api.mvccpb.kv_pb2 import KeyValue

from . import errors, layout, meta
from .env import Databases
from .errors import MvccError


def check_compact(txn: lmdb.Transaction[bytes], dbs: Databases, rev: int) -> None:
    """etcd's updateCompactRev checks, in its order."""
    if rev <= meta.compact_rev(txn, dbs):
        raise MvccError(errors.COMPACTED)
    if rev > meta.current_rev(txn, dbs):
        raise MvccError(errors.FUTURE_REV)


def _changed_keys(txn: lmdb.Transaction[bytes], dbs: Databases, after_rev: int, upto_rev: int) -> list[bytes]:
    """Keys with a revision in (after_rev, upto_rev], each once, in first-change order."""
    seen: dict[bytes, None] = {}
    cur = txn.cursor(db=dbs.history)
    if not cur.set_range(layout.rev_bytes(max(after_rev + 1, 0), 0)):
        return []
    for hkey, raw in cur.iternext():
        main, _, _ = layout.parse_history_key(hkey)
        if main > upto_rev:
            break
        seen[KeyValue.FromString(raw).key] = None
    return list(seen)


def _compact_key(txn: lmdb.Transaction[bytes], dbs: Databases, key: bytes, rev: int) -> int:
    """Drop what `rev` makes unreachable for `key`; return how many revisions went."""
    cur = txn.cursor(db=dbs.key_revs)
    if not cur.set_range_dup(key, layout.newest_at_or_below(rev)):
        return 0
    # Newest first: the cursor is on the revision a read at `rev` sees. Keep it
    # unless it is a tombstone; every later duplicate is older.
    if cur.value()[16:] == layout.PUT_FLAG and not cur.next_dup():
        return 0
    dropped = 0
    while True:
        found = txn.delete(layout.key_rev_entry_history_key(cur.value()), db=dbs.history)
        assert found, "key_revs points at a revision missing from history"
        dropped += 1
        cur.delete()  # moves to the next duplicate, or to the next key
        if cur.key() != key:
            return dropped


def compact(txn: lmdb.Transaction[bytes], dbs: Databases, rev: int) -> int:
    """Compact to `rev` (checked); return the number of revisions removed."""
    check_compact(txn, dbs, rev)
    previous = meta.compact_rev(txn, dbs)
    dropped = sum(_compact_key(txn, dbs, key, rev) for key in _changed_keys(txn, dbs, previous, rev))
    meta.set_compact_rev(txn, dbs, rev)
    return dropped
