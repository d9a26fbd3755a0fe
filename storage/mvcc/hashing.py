"""Hashes that members compare to detect divergence (etcd's Hash and HashKV).

Both depend only on replicated state, so members that applied the same entries
agree. They are CRC-32 (zlib) rather than etcd's CRC-32C: petcd members compare
with each other, never with an etcd member.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from petcd.api.etcdserverpb import rpc_pb2 as pb

from . import errors, layout
from .errors import MvccError
from .meta import LOCAL_META_KEYS
from .view import ReadView


@dataclass(frozen=True, slots=True)
class HashKV:
    """HashKV's answer; hash_revision is the revision the hash covers."""

    hash: int
    compact_revision: int
    hash_revision: int

    def __post_init__(self) -> None:
        assert 0 <= self.hash < 1 << 32

    def to_response(self, header_revision: int) -> pb.HashKVResponse:
        # The v3.5 HashKVResponse has no hash_revision field; callers that need it
        # (corruption checks) use this value directly.
        resp = pb.HashKVResponse(hash=self.hash, compact_revision=self.compact_revision)
        resp.header.revision = header_revision
        return resp


def hash_kv(view: ReadView, revision: int) -> HashKV:
    """CRC of the compact revision and of history up to `revision` (0: current)."""
    compact = view.compact_rev
    if revision > 0 and revision < compact:
        raise MvccError(errors.COMPACTED)
    if revision > view.rev:
        raise MvccError(errors.FUTURE_REV)
    upto = revision if revision > 0 else view.rev
    crc = zlib.crc32(layout.I64.pack(compact))
    cur = view.txn.cursor(db=view.dbs.history)
    for hkey, raw in cur.iternext():
        if layout.U64.unpack_from(hkey)[0] > upto:
            break
        crc = zlib.crc32(raw, zlib.crc32(hkey, crc))
    return HashKV(crc, compact, upto)


def hash_all(view: ReadView) -> int:
    """CRC of every database but the member-local Raft fields (etcd's Hash)."""
    crc = 0
    for name, db in view.dbs.all():
        crc = zlib.crc32(name, crc)
        for key, value in view.txn.cursor(db=db).iternext():
            if db is view.dbs.meta and key in LOCAL_META_KEYS:
                continue
            crc = zlib.crc32(value, zlib.crc32(key, crc))
    return crc
