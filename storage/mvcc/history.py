"""The store's changes, revision by revision: what watchers are sent.

Every write transaction makes one main revision; each change in it (a put or the
deletion of a live key) one sub revision, stored in `history` (layout.py). A `Change`
is one of them as a watcher sees it: the key, the KeyValue as stored (a deletion's is
the tombstone, KeyValue{key}) and the KeyValue the key had just before (etcd's
prev_kv), if it had one.

Changes reach watchers two ways (actors/network/watch): the apply actor records each
change as it writes it (WriteView.written) and sends them with APPLIED, so a watcher
that keeps up never reads the store; a watcher that fell behind reads them back from
`history` here (`read_changes`), where compaction may have removed the oldest.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from petcd.api.mvccpb.kv_pb2 import KeyValue

from . import layout
from .keyindex import newest_entry

if TYPE_CHECKING:  # view.py records Changes: a runtime import would be circular
    from .view import ReadView


@dataclass(frozen=True, slots=True)
class Change:
    """One change at revision (main, sub)."""

    main: int
    sub: int
    key: bytes
    kv: bytes  # the encoded KeyValue as stored in `history`; a tombstone's is KeyValue{key}
    prev_kv: bytes | None  # the encoded KeyValue before this change; None if none or compacted
    tombstone: bool  # a deletion

    def __post_init__(self) -> None:
        assert self.main > 0 and self.sub >= 0 and self.key, self


def changes_to_wire(changes: Iterable[Change]) -> list[list[Any]]:
    """Changes as msgpack-ready arrays [main, sub, key, kv, prev_kv?, tombstone], for
    the APPLIED message (actors/protocol.py)."""
    return [[c.main, c.sub, c.key, c.kv, c.prev_kv, c.tombstone] for c in changes]


def changes_from_wire(obj: Iterable[Any]) -> list[Change]:
    return [Change(main, sub, key, kv, prev_kv, bool(tombstone))
            for main, sub, key, kv, prev_kv, tombstone in obj]


def read_changes(view: ReadView, first_main: int, last_main: int, *, max_changes: int,
                 max_bytes: int, with_prev_kv: bool) -> tuple[list[Change], int]:
    """Changes of revisions first_main..last_main, in revision order, and the last main
    revision they cover completely. Whole revisions only: once `max_changes` changes or
    `max_bytes` of KeyValues are read, the revision in hand is finished and reading
    stops there.

    Revisions below the compaction revision may have lost changes (compaction keeps
    only each key's newest revision at or below it): callers check `view.compact_rev`.
    """
    assert max_changes > 0 and max_bytes > 0 and first_main > 0, (first_main, max_changes)
    changes: list[Change] = []
    size_bytes = 0
    if last_main < first_main:
        return changes, last_main
    cur = view.txn.cursor(db=view.dbs.history)
    if not cur.set_range(layout.rev_bytes(first_main, 0)):
        return changes, last_main
    for hkey, raw in cur.iternext():
        main, sub, tombstone = layout.parse_history_key(hkey)
        if main > last_main:
            break
        full = len(changes) >= max_changes or size_bytes >= max_bytes
        if full and main != changes[-1].main:
            return changes, main - 1
        key = KeyValue.FromString(raw).key
        prev = value_before(view, key, main) if with_prev_kv else None
        changes.append(Change(main, sub, key, raw, prev, tombstone))
        size_bytes += len(raw) + (len(prev) if prev is not None else 0)
    return changes, last_main


def value_before(view: ReadView, key: bytes, main: int) -> bytes | None:
    """The encoded KeyValue `key` had at revision main - 1 (etcd's prev_kv); None if
    it did not exist then, or that revision was compacted away."""
    if main <= 1:
        return None
    entry = newest_entry(view.txn.cursor(db=view.dbs.key_revs), key, main - 1)
    if entry is None or entry[layout.REV_BYTES:] != layout.PUT_FLAG:
        return None
    prev_main, prev_sub, _ = layout.parse_key_rev_entry(entry)
    raw = view.txn.get(layout.rev_bytes(prev_main, prev_sub), db=view.dbs.history)
    return raw
