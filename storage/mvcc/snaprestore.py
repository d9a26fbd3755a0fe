"""The store of a member of a new cluster, made from a snapshot file (etcd's
`snapshot restore` of its bolt file: etcdutl/snapshot/v3_snapshot.go saveDB).

    <db_dir>/CURRENT              "gen-000001"
    <db_dir>/gen-000001/data.mdb  the snapshot's LMDB file, trailer cut off

and then, in one write transaction, what belonged to the old cluster goes:

    meta consistent_index, term   the old log's position. The new member's WAL starts
                                  at index 1 (its founding conf changes); with them
                                  left, apply would skip the new log's first entries.
    meta conf_state               the old member table (actors/apply/members.py); the
                                  new one is built by applying the founding entries,
                                  as etcd deletes its members buckets and adds the new.
    alarm                         alarms name members of the old cluster.
    auth_tokens                   simple tokens the old cluster gave (etcd keeps them
                                  in memory only); users, roles and the flag stay.

Keys, history, revisions, compaction and leases stay: the restored cluster serves the
snapshot's data at its revision. With a revision bump (etcdutl's --bump-revision N,
always with --mark-compacted) the same transaction also moves the store on:

    meta current_rev              snapshot's revision + N: the restored cluster's next
                                  write gets a revision above any the old cluster may
                                  have served after the snapshot, so a client never
                                  sees revisions go back.
    compaction at current_rev     what etcd's scheduled compaction at the bumped
                                  revision does on its first start, done here: each
                                  live key keeps its newest revision, older history and
                                  tombstones go, compact_rev = current_rev. A watcher
                                  resuming from a revision of the old cluster gets
                                  "required revision has been compacted" instead of
                                  history that may differ from what it saw.
"""

from __future__ import annotations

import os

import lmdb

from . import compaction, env, layout, meta
from .env import Databases
from .snapfile import store_size_bytes

FIRST_GENERATION = 1
OLD_CLUSTER_META_KEYS = (layout.META_CONSISTENT_INDEX, layout.META_TERM,
                         layout.META_CONF_STATE)


class RevisionBumpError(Exception):
    """The bump would take the revision past etcd's int64 revisions."""


def install(snapshot_path: str, db_dir: str, *, revision_bump: int = 0,
            map_size_bytes: int = 0) -> None:
    """Write the store at `db_dir` (which must not exist) from a checked snapshot;
    a `revision_bump` > 0 moves the revision on and compacts there (see above).
    `map_size_bytes` is the LMDB map of these writes; 0 keeps the one the file records."""
    assert not os.path.exists(db_dir), db_dir
    assert revision_bump >= 0 and map_size_bytes >= 0, (revision_bump, map_size_bytes)
    size_bytes = store_size_bytes(snapshot_path)
    gen_dir = env.gen_dir(db_dir, FIRST_GENERATION)
    os.makedirs(gen_dir, mode=0o700)
    _copy_prefix(snapshot_path, env.data_file(db_dir, FIRST_GENERATION), size_bytes)
    _rewrite(db_dir, revision_bump, map_size_bytes)
    env.publish_generation(db_dir, FIRST_GENERATION)


def _copy_prefix(source: str, target: str, size_bytes: int) -> None:
    with open(source, "rb") as src, open(target, "xb") as dst:
        left = size_bytes
        while left > 0:
            block = src.read(min(left, 1 << 20))
            assert block, f"{source} shrank while copied"
            dst.write(block)
            left -= len(block)
        dst.flush()
        os.fsync(dst.fileno())


def _rewrite(db_dir: str, revision_bump: int, map_size_bytes: int) -> None:
    """One write transaction: a crash leaves the snapshot's store or the restored one."""
    lmdb_env, dbs = env.open_generation(db_dir, FIRST_GENERATION, readonly=False,
                                        map_size_bytes=map_size_bytes, sync=True)
    try:
        with lmdb_env.begin(write=True) as txn:
            meta.init_schema(lmdb_env, txn, dbs)
            _forget_old_cluster(txn, dbs)
            if revision_bump:
                _bump_and_compact(txn, dbs, revision_bump)
        with lmdb_env.begin() as txn:
            assert meta.raft_position(txn, dbs) == meta.RaftPosition(0, 0)
            assert meta.conf_state(txn, dbs) is None
    finally:
        lmdb_env.close()


def _forget_old_cluster(txn: lmdb.Transaction[bytes], dbs: Databases) -> None:
    for key in OLD_CLUSTER_META_KEYS:
        txn.delete(key, db=dbs.meta)
    txn.drop(dbs.alarm, delete=False)
    txn.drop(dbs.auth_tokens, delete=False)


def _bump_and_compact(txn: lmdb.Transaction[bytes], dbs: Databases, amount: int) -> None:
    """etcd's modifyLatestRevision; its scheduled compaction is done here, not at start."""
    latest = meta.current_rev(txn, dbs)
    if latest + amount > layout.MAX_REVISION:
        raise RevisionBumpError(f"revision {latest} bumped by {amount} exceeds the "
                                f"largest revision {layout.MAX_REVISION}")
    meta.set_current_rev(txn, dbs, latest + amount)
    compaction.compact(txn, dbs, latest + amount)
    assert meta.compact_rev(txn, dbs) == meta.current_rev(txn, dbs) == latest + amount
