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

Keys, history, revisions, compaction and leases stay: the restored cluster serves the
snapshot's data at its revision.
"""

from __future__ import annotations

import os

from . import env, layout, meta
from .snapfile import store_size_bytes

FIRST_GENERATION = 1
OLD_CLUSTER_META_KEYS = (layout.META_CONSISTENT_INDEX, layout.META_TERM,
                         layout.META_CONF_STATE)


def install(snapshot_path: str, db_dir: str) -> None:
    """Write the store at `db_dir` (which must not exist) from a checked snapshot."""
    assert not os.path.exists(db_dir), db_dir
    size_bytes = store_size_bytes(snapshot_path)
    gen_dir = env.gen_dir(db_dir, FIRST_GENERATION)
    os.makedirs(gen_dir, mode=0o700)
    _copy_prefix(snapshot_path, env.data_file(db_dir, FIRST_GENERATION), size_bytes)
    _forget_old_cluster(db_dir)
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


def _forget_old_cluster(db_dir: str) -> None:
    lmdb_env, dbs = env.open_generation(db_dir, FIRST_GENERATION, readonly=False,
                                        map_size_bytes=0, sync=True)  # 0: the file's
    try:
        with lmdb_env.begin(write=True) as txn:
            meta.init_schema(lmdb_env, txn, dbs)
            for key in OLD_CLUSTER_META_KEYS:
                txn.delete(key, db=dbs.meta)
            txn.drop(dbs.alarm, delete=False)
        with lmdb_env.begin() as txn:
            assert meta.raft_position(txn, dbs) == meta.RaftPosition(0, 0)
            assert meta.conf_state(txn, dbs) is None
    finally:
        lmdb_env.close()
