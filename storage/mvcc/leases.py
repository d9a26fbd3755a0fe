"""The `leases` and `lease_keys` databases: granted leases and the keys under each.

Plain reads and writes inside one LMDB transaction (byte layout in layout.py). The
invariants that tie them to the keys, kept by WriteView on every put and delete
(`attach`, `detach`) and by lessor.py on grant and revoke:

    a live key whose KeyValue names lease L != 0 is in lease_keys under L,
    and L is in leases;
    lease_keys holds nothing else (no dead key, no key of another lease).

So a key is under at most one lease, and every lease a live key names exists.
"""

from __future__ import annotations

from typing import NamedTuple

import lmdb

from . import layout
from .env import Databases

NO_LEASE = 0  # etcd's lease.NoLease: a KeyValue without a lease


class Lease(NamedTuple):
    """One granted lease, as stored. A tuple, (lease_id, ttl_s, remaining_ms), so
    that readers elsewhere (the network's lessor) unpack it without this type."""

    lease_id: int
    ttl_s: int  # as granted: already raised to the minimum TTL
    # The last checkpointed remaining TTL (etcd's remainingTTL); 0: never checkpointed,
    # or cleared by a renewal. A new leader starts the lease with it, or the full TTL.
    remaining_ms: int


def _id_key(lease_id: int) -> bytes:
    assert lease_id != NO_LEASE
    return layout.LEASE_ID.pack(lease_id)


def _decode(raw_id: bytes, raw: bytes) -> Lease:
    ttl_s, remaining_ms = layout.LEASE_VALUE.unpack(raw)
    lease = Lease(layout.LEASE_ID.unpack(raw_id)[0], ttl_s, remaining_ms)
    assert lease.lease_id != NO_LEASE and lease.ttl_s > 0, lease
    return lease


def get(txn: lmdb.Transaction[bytes], dbs: Databases, lease_id: int) -> Lease | None:
    raw_id = _id_key(lease_id)
    raw = txn.get(raw_id, db=dbs.leases)
    return None if raw is None else _decode(raw_id, raw)


def exists(txn: lmdb.Transaction[bytes], dbs: Databases, lease_id: int) -> bool:
    """etcd's lessor.Lookup(id) != nil; NO_LEASE never exists."""
    return lease_id != NO_LEASE and txn.get(_id_key(lease_id), db=dbs.leases) is not None


def all_leases(txn: lmdb.Transaction[bytes], dbs: Databases) -> list[Lease]:
    """Every lease, in the byte order of its ID (positive IDs first)."""
    return [_decode(raw_id, raw) for raw_id, raw in txn.cursor(db=dbs.leases).iternext()]


def put(txn: lmdb.Transaction[bytes], dbs: Databases, lease: Lease) -> None:
    """Store a new lease, or a checkpoint of one."""
    assert lease.ttl_s > 0, lease  # the minimum TTL is at least 1 s
    value = layout.LEASE_VALUE.pack(lease.ttl_s, lease.remaining_ms)
    txn.put(_id_key(lease.lease_id), value, db=dbs.leases)


def delete(txn: lmdb.Transaction[bytes], dbs: Databases, lease_id: int) -> None:
    """Remove a lease whose keys are gone (a revoke deletes them first)."""
    assert not keys(txn, dbs, lease_id), "a lease goes only once its keys are deleted"
    removed = txn.delete(_id_key(lease_id), db=dbs.leases)
    assert removed, f"no lease {lease_id} to remove"


def keys(txn: lmdb.Transaction[bytes], dbs: Databases, lease_id: int) -> list[bytes]:
    """The live keys attached to a lease, in key (byte) order."""
    cur = txn.cursor(db=dbs.lease_keys)
    if not cur.set_key(_id_key(lease_id)):
        return []
    return list(cur.iternext_dup(keys=False, values=True))


def attach(txn: lmdb.Transaction[bytes], dbs: Databases, lease_id: int, key: bytes) -> None:
    """`key` (just written with lease_id) is now under lease_id."""
    # etcd panics when Attach fails: the put's lease was looked up before its write.
    assert exists(txn, dbs, lease_id), f"attach to a lease never granted: {lease_id}"
    added = txn.put(_id_key(lease_id), key, db=dbs.lease_keys, dupdata=False)
    assert added, f"key {key!r} was already under lease {lease_id}"


def detach(txn: lmdb.Transaction[bytes], dbs: Databases, lease_id: int, key: bytes) -> None:
    """`key` (just overwritten or deleted) is no longer under lease_id."""
    removed = txn.delete(_id_key(lease_id), key, db=dbs.lease_keys)
    assert removed, f"key {key!r} was not under lease {lease_id}"
