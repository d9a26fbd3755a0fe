"""The `meta` database: store revisions and the Raft position of the last apply.

The Raft fields are written in the same LMDB transaction as the data they describe,
which is what makes apply idempotent across a crash: replaying the WAL skips every
entry whose index is <= consistent_index.
"""

from __future__ import annotations

from dataclasses import dataclass

import lmdb

from . import env, layout
from .env import Databases


@dataclass(frozen=True, slots=True)
class RaftPosition:
    """What the last applied Raft entry was."""

    index: int
    term: int

    def __post_init__(self) -> None:
        assert self.index >= 0 and self.term >= 0, self


def _get_u64(txn: lmdb.Transaction[bytes], dbs: Databases, name: bytes, default: int) -> int:
    raw = txn.get(name, db=dbs.meta)
    return default if raw is None else layout.U64.unpack(raw)[0]


def current_rev(txn: lmdb.Transaction[bytes], dbs: Databases) -> int:
    return _get_u64(txn, dbs, layout.META_CURRENT_REV, layout.INITIAL_REVISION)


def set_current_rev(txn: lmdb.Transaction[bytes], dbs: Databases, rev: int) -> None:
    assert rev > current_rev(txn, dbs), "the store revision only grows"
    txn.put(layout.META_CURRENT_REV, layout.U64.pack(rev), db=dbs.meta)


def compact_rev(txn: lmdb.Transaction[bytes], dbs: Databases) -> int:
    raw = txn.get(layout.META_COMPACT_REV, db=dbs.meta)
    return layout.NO_COMPACTION if raw is None else layout.I64.unpack(raw)[0]


def set_compact_rev(txn: lmdb.Transaction[bytes], dbs: Databases, rev: int) -> None:
    assert compact_rev(txn, dbs) < rev <= current_rev(txn, dbs), rev
    txn.put(layout.META_COMPACT_REV, layout.I64.pack(rev), db=dbs.meta)


def raft_position(txn: lmdb.Transaction[bytes], dbs: Databases) -> RaftPosition:
    return RaftPosition(
        _get_u64(txn, dbs, layout.META_CONSISTENT_INDEX, 0),
        _get_u64(txn, dbs, layout.META_TERM, 0),
    )


def set_raft_position(txn: lmdb.Transaction[bytes], dbs: Databases, pos: RaftPosition) -> None:
    assert pos.index > raft_position(txn, dbs).index, "applied index only grows"
    txn.put(layout.META_CONSISTENT_INDEX, layout.U64.pack(pos.index), db=dbs.meta)
    txn.put(layout.META_TERM, layout.U64.pack(pos.term), db=dbs.meta)


def conf_state(txn: lmdb.Transaction[bytes], dbs: Databases) -> bytes | None:
    return txn.get(layout.META_CONF_STATE, db=dbs.meta)


def set_conf_state(txn: lmdb.Transaction[bytes], dbs: Databases, blob: bytes) -> None:
    txn.put(layout.META_CONF_STATE, blob, db=dbs.meta)


def init_schema(env: lmdb.Environment, txn: lmdb.Transaction[bytes], dbs: Databases) -> None:
    """Stamp a new environment, bring a schema-1 to -3 one up to date, refuse any other.

    The writer's open has already created `leases`, `lease_keys` and the auth_*
    databases (env.open_dbs): empty is right for an older store, where no lease could
    be granted (schemas 1 and 2) and no auth request applied (1 to 3)."""
    found = txn.get(layout.META_SCHEMA, db=dbs.meta)
    if found == layout.SCHEMA_V1:
        # Schema 1 also kept each live key's revision in `keys`; key_revs has it.
        txn.drop(env.open_db(layout.DB_KEYS_V1, txn=txn, create=False), delete=True)
    elif found is not None and not readable_schema(found):
        raise RuntimeError(f"mvcc schema {found!r}, this build reads {layout.SCHEMA_VERSION!r}")
    assert txn.stat(dbs.leases)["entries"] == 0 or found in (layout.SCHEMA_VERSION, layout.SCHEMA_V3), found
    assert txn.stat(dbs.auth_users)["entries"] == 0 or found == layout.SCHEMA_VERSION, found
    txn.put(layout.META_SCHEMA, layout.SCHEMA_VERSION, db=dbs.meta)


def upgrade_generation(root: str, generation: int) -> None:
    """Bring a generation not yet published (a received snapshot's file) to this
    schema: readers switch to it as soon as it is published, and open the databases
    of this schema without creating any."""
    lmdb_env, dbs = env.open_generation(root, generation, readonly=False, map_size_bytes=0,
                                        sync=True)  # 0: the map size the file records
    try:
        with lmdb_env.begin(write=True) as t:
            init_schema(lmdb_env, t, dbs)
    finally:
        lmdb_env.close()


def readable_schema(found: bytes | None) -> bool:
    """A store this build opens (init_schema upgrades schemas 1 to 3 on a write open)."""
    return found in (layout.SCHEMA_VERSION, layout.SCHEMA_V3, layout.SCHEMA_V2, layout.SCHEMA_V1)


# Keys hashed by neither hash(): they differ between members that hold the same data.
LOCAL_META_KEYS = frozenset({layout.META_CONSISTENT_INDEX, layout.META_TERM, layout.META_CONF_STATE})
