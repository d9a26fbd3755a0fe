"""A snapshot file as `snapshot save` writes it: what `petcdutl snapshot` reads.

    [ LMDB data file (a compacted copy of one generation's data.mdb) ][ SHA-256, 32 bytes ]

The trailer is the SHA-256 of every byte before it (actors/network/backup.py), as
etcd appends one to its bolt file. A file without it (a data.mdb copied out of a
data dir) is still a store: `status` reads either, as etcd's does (it never checks
the hash); restore checks it unless told not to (verify_trailer).

Status, petcd's counterpart of etcd's (etcdutl/snapshot/v3_snapshot.go Status):
    hash        storage/mvcc/hashing.hash_all: CRC-32 (zlib) over each named database's
                name, then its keys and values in key order, without the member-local
                Raft fields of `meta`. etcd's is a CRC-32C over its bolt buckets, so
                the two never compare; this one equals the Maintenance.Hash of the
                member the snapshot came from at the snapshot's moment.
    revision    the store's current revision (meta current_rev), what a read of the
                restored store answers with.
    total keys  the keys live at that revision, as etcd 3.6 counts them (etcd 3.4
                counted every record of every bolt bucket, history included).
    total size  the LMDB file's size, the trailer not counted (etcd: the bolt size).

HashKV (`petcdutl hashkv FILE`) is storage/mvcc/hashing.hash_kv over the file's
store: the member's Maintenance.HashKV at the snapshot's moment.

Whether a file has a trailer is etcd's rule too (has_trailer): its size is 32 bytes
past a multiple of 512, which a store made of whole pages never is.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import lmdb

from . import env, hashing, layout, meta
from .hashing import HashKV, hash_all
from .keyindex import KeyRange, count_current
from .view import ReadView

TRAILER_BYTES = hashlib.sha256().digest_size


class SnapshotFileError(Exception):
    """The file is not a readable snapshot; the message says why, in etcd's words
    where etcd has them."""


@dataclass(frozen=True, slots=True)
class SnapshotStatus:
    hash: int
    revision: int
    total_keys: int
    total_size_bytes: int

    def __post_init__(self) -> None:
        assert 0 <= self.hash < 1 << 32, self.hash
        assert self.revision >= layout.INITIAL_REVISION, self.revision
        assert 0 <= self.total_keys and 0 < self.total_size_bytes


def has_trailer(size_bytes: int) -> bool:
    """etcd's hasChecksum: a store is whole pages (multiples of 512 bytes), so a
    file 32 bytes past such a multiple carries a SHA-256."""
    return size_bytes % 512 == TRAILER_BYTES


def store_size_bytes(path: str) -> int:
    """The LMDB file's size: the whole file, less its trailer if it has one."""
    size_bytes = os.path.getsize(path)
    return size_bytes - TRAILER_BYTES if has_trailer(size_bytes) else size_bytes


def _go_bytes(raw: bytes) -> str:
    return "[" + " ".join(str(b) for b in raw) + "]"  # Go's %v of a []byte


def verify_trailer(path: str) -> None:
    """Refuse a file whose trailer is missing or wrong, in etcd restore's words."""
    size_bytes = os.path.getsize(path)
    if not has_trailer(size_bytes):
        raise SnapshotFileError("snapshot missing hash but --skip-hash-check=false")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        left = size_bytes - TRAILER_BYTES
        while left > 0:
            block = f.read(min(left, 1 << 20))
            assert block, f"{path} shrank while read"
            digest.update(block)
            left -= len(block)
        expected = f.read(TRAILER_BYTES)
    if digest.digest() != expected:
        raise SnapshotFileError(f"expected sha256 {_go_bytes(expected)}, "
                                f"got {_go_bytes(digest.digest())}")


def open_readonly(path: str) -> tuple[lmdb.Environment, env.Databases]:
    """The file's LMDB environment, read-only and without a lock file (nothing else
    writes it); refused before any page is mapped if the file is shorter than the
    pages LMDB's meta page says it holds (a truncated copy would fault on read)."""
    try:
        lmdb_env = lmdb.open(path, subdir=False, readonly=True, lock=False,
                             max_dbs=layout.MAX_DBS, readahead=False)
    except lmdb.Error as exc:
        raise SnapshotFileError(f"{path}: not an LMDB store ({exc})") from None
    try:
        env.check_size(lmdb_env, path)
        return lmdb_env, env.open_dbs(lmdb_env, readonly=True)
    except env.StoreCorruptError as exc:
        lmdb_env.close()
        raise SnapshotFileError(f"file size too small: {exc}") from None
    except lmdb.Error as exc:
        lmdb_env.close()
        raise SnapshotFileError(f"{path}: not a petcd store ({exc})") from None
    except BaseException:
        lmdb_env.close()
        raise


def status(path: str) -> SnapshotStatus:
    """Hash, revision, live keys and size of the store in a snapshot file."""
    size_bytes = store_size_bytes(path)
    lmdb_env, dbs = open_readonly(path)
    try:
        with lmdb_env.begin() as txn:
            view = _view(path, txn, dbs)
            return SnapshotStatus(hash=hash_all(view), revision=view.rev,
                                  total_keys=count_current(txn, dbs, KeyRange(b"", b"")),
                                  total_size_bytes=size_bytes)
    finally:
        lmdb_env.close()


def hash_kv(path: str, revision: int) -> HashKV:
    """`petcdutl hashkv` of a snapshot file (or of a data.mdb copied out of a data
    dir): what Maintenance.HashKV answered on the member at the snapshot's moment.
    Raises MvccError for a revision compacted or not yet reached."""
    lmdb_env, dbs = open_readonly(path)
    try:
        with lmdb_env.begin() as txn:
            return hashing.hash_kv(_view(path, txn, dbs), revision)
    finally:
        lmdb_env.close()


def _view(path: str, txn: lmdb.Transaction[bytes], dbs: env.Databases) -> ReadView:
    if not meta.readable_schema(txn.get(layout.META_SCHEMA, db=dbs.meta)):
        raise SnapshotFileError(f"{path}: not a petcd store of a schema this build reads")
    return ReadView(txn, dbs)
