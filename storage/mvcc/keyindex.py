"""The key index: which revision of which key is live at a revision.

`key_revs` holds it (layout.py): every revision of every key still in history,
newest first. It is walked with LMDB cursors inside the caller's transaction, so a
write transaction sees its own earlier changes and nothing is ever loaded into
memory beyond the keys a request touches.

A put writes the key's revision there and its KeyValue in `history`, nothing else:
etcd's backend is keyed by revision alone (its key index is in memory), so a put
only appends to it. Every database keyed by user key costs a put a copied B-tree
path at a random place; a second one (schema 1's `keys`, the live revision of each
key) cost a put about 40% more store CPU with random 256-byte keys (etcdctl check
perf's), and the first duplicate in `key_revs` says the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import lmdb

from . import layout
from .env import Databases


@dataclass(frozen=True, slots=True)
class KeyRange:
    """etcd's [key, range_end) after mkGteRange.

    end is None for the single key `start`; b"" for every key >= start; otherwise
    the exclusive upper bound (a bound <= start selects nothing, as in etcd).
    """

    start: bytes
    end: bytes | None

    @staticmethod
    def of(key: bytes, range_end: bytes) -> "KeyRange":
        if not range_end:
            return KeyRange(key, None)
        if range_end == b"\x00":
            return KeyRange(key, b"")
        return KeyRange(key, range_end)

    def contains(self, key: bytes) -> bool:
        if self.end is None:
            return key == self.start
        return key >= self.start and (not self.end or key < self.end)

    def past_end(self, key: bytes) -> bool:
        """True for a key after the range, in key order."""
        if self.end is None:
            return key > self.start
        return bool(self.end) and key >= self.end


def _seek_key(start: bytes) -> bytes:
    # LMDB refuses lookups longer than its key limit; no stored key is longer, so
    # seeking to the truncated prefix and skipping keys < start gives the same walk.
    return start[: layout.MAX_KEY_BYTES]


def current_entries(txn: lmdb.Transaction[bytes], dbs: Databases, kr: KeyRange) -> Iterator[tuple[bytes, bytes]]:
    """(key, rev bytes) of keys live now, in key order: those whose newest revision
    (first duplicate) is a put."""
    for key, newest in _current_newest(txn, dbs, kr):
        yield key, _rev_of(newest)


def count_current(txn: lmdb.Transaction[bytes], dbs: Databases, kr: KeyRange) -> int:
    """How many keys `current_entries` would give, without making their revisions."""
    return sum(1 for _ in _current_newest(txn, dbs, kr))


def _current_newest(txn: lmdb.Transaction[bytes], dbs: Databases, kr: KeyRange) -> Iterator[tuple[bytes, bytes]]:
    """(key, newest duplicate) of each live key in the range, in key order."""
    cur = txn.cursor(db=dbs.key_revs)
    if kr.end is None:
        if len(kr.start) <= layout.MAX_KEY_BYTES and cur.set_key(kr.start):
            newest = cur.value()
            if newest[layout.REV_BYTES] == _PUT:
                yield kr.start, newest
        return
    if not cur.set_range(_seek_key(kr.start)):
        return
    past_end = kr.past_end
    # Each step lands on a key's first duplicate: its newest revision.
    for key, newest in cur.iternext_nodup(keys=True, values=True):
        if past_end(key):
            return
        if newest[layout.REV_BYTES] == _PUT and key >= kr.start:
            yield key, newest


def newest_entry(cur: lmdb.Cursor[bytes], key: bytes, at_rev: int) -> bytes | None:
    """The `key_revs` duplicate of `key`'s newest revision <= at_rev, if any."""
    if len(key) > layout.MAX_KEY_BYTES:
        return None
    if cur.set_range_dup(key, layout.newest_at_or_below(at_rev)):
        return cur.value()
    return None


def entries_at(
    txn: lmdb.Transaction[bytes], dbs: Databases, kr: KeyRange, at_rev: int
) -> Iterator[tuple[bytes, bytes]]:
    """(key, rev bytes) of keys live at `at_rev`, in key order, from `key_revs`."""
    cur = txn.cursor(db=dbs.key_revs)
    if kr.end is None:
        entry = newest_entry(cur, kr.start, at_rev)
        if entry is not None and entry[layout.REV_BYTES:] == layout.PUT_FLAG:
            yield kr.start, _rev_of(entry)
        return
    target = layout.newest_at_or_below(at_rev)
    if not cur.set_range(_seek_key(kr.start)):
        return
    while True:
        key = cur.key()
        if kr.past_end(key):
            return
        first = cur.value()  # the key's newest revision overall
        if first >= target:
            entry = first
        elif cur.set_range_dup(key, target):
            entry = cur.value()
        else:
            # No revision <= at_rev: the cursor is unpositioned; step past this key.
            entry = None
            cur.set_key(key)
        if entry is not None and entry[layout.REV_BYTES:] == layout.PUT_FLAG and key >= kr.start:
            yield key, _rev_of(entry)
        if not cur.next_nodup():
            return


def _rev_of(entry: bytes) -> bytes:
    """rev(main, sub) of a `key_revs` duplicate: its first 16 bytes complemented."""
    return entry[:layout.REV_BYTES].translate(_COMPLEMENT)


_COMPLEMENT = bytes(255 - b for b in range(256))  # b -> b ^ 0xFF
_PUT = layout.PUT_FLAG[0]  # the flag byte of a put duplicate, as an int


def live_entries(
    txn: lmdb.Transaction[bytes], dbs: Databases, kr: KeyRange, at_rev: int, current_rev: int
) -> Iterator[tuple[bytes, bytes]]:
    """Keys live at `at_rev`; at the current revision each key's newest is enough."""
    assert 0 < at_rev <= current_rev, (at_rev, current_rev)
    if at_rev == current_rev:
        return current_entries(txn, dbs, kr)
    return entries_at(txn, dbs, kr, at_rev)


def record_put(txn: lmdb.Transaction[bytes], dbs: Databases, key: bytes, main: int, sub: int, kv: bytes) -> None:
    """Index and store a put of `key` at (main, sub); `kv` is the encoded KeyValue."""
    assert 0 < len(key) <= layout.MAX_KEY_BYTES
    txn.put(layout.rev_bytes(main, sub), kv, db=dbs.history)
    txn.put(key, layout.key_rev_entry(main, sub, False), db=dbs.key_revs)


def record_delete(
    txn: lmdb.Transaction[bytes], dbs: Databases, key: bytes, main: int, sub: int, tombstone_kv: bytes
) -> None:
    """Index and store the deletion of live `key` at (main, sub). The caller found
    `key` with `current_entries` in this transaction: looking it up again per key
    would double the reads of a large delete."""
    txn.put(layout.history_key(main, sub, True), tombstone_kv, db=dbs.history)
    txn.put(key, layout.key_rev_entry(main, sub, True), db=dbs.key_revs)
