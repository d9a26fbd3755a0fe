"""On-disk layout of the MVCC backend: one LMDB environment, ten named databases.

Directory (the `path` given to `MvccStore.open`, e.g. <data-dir>/member/snap/db):

    CURRENT              text "gen-000007\\n": the live environment generation
    gen-000007/data.mdb  the LMDB environment (LMDB's own file format)
    gen-000007/lock.mdb  LMDB's reader table (one per generation, never shared)

Defragment writes a compact copy into gen-000008/, fsyncs it, then renames a new
CURRENT over the old one. A reader process stats CURRENT at the start of every read
transaction and reopens when CURRENT changed (its inode and ctime: a freed inode is
soon reused), so no process ever pairs a lock file with the wrong data file (LMDB's
lock file caches the newest transaction id).

Named databases (all keys and values are raw bytes; integers are big-endian so that
byte order is numeric order):

    history   rev(main, sub) [+ b"t"]  ->  mvccpb.KeyValue, protobuf-encoded
              One entry per change ever made and not yet compacted: etcd's "key"
              bucket. A delete writes a tombstone: the key gets the suffix b"t" and
              the value is KeyValue{key} alone (what etcd stores).
    key_revs  user key  ->  ~rev(main, sub) + flag   (DUPSORT, 17-byte duplicates)
              Every revision of every key still in history, newest first: the
              bitwise complement makes LMDB's ascending duplicate order newest-first.
              flag is b"p" for a put, b"t" for a tombstone. Reads and compaction
              seek here: the first duplicate >= ~rev(R, 0) is the newest revision
              of the key at or below R; a key's first duplicate is its newest, so
              the key is live now if that one is a put.
    meta      b"consistent_index" -> u64  Raft index of the last applied entry
              b"term"             -> u64  its term
              b"conf_state"       -> opaque bytes (Raft ConfState), if ever given
              b"current_rev"      -> u64  store revision (starts at 1, like etcd)
              b"compact_rev"      -> i64  last compaction revision, -1 if none
              b"schema"           -> b"4"  (1 also had `keys`: user key -> live rev;
                                             1 and 2 had neither `leases` nor `lease_keys`;
                                             1 to 3 had no auth_* database)
    alarm     u32 alarm type + u64 member id  ->  b""
    leases    lease ID (8 bytes)  ->  TTL (i64, seconds) + remaining TTL (i64, milliseconds)
              Every granted lease not yet revoked: etcd's "lease" bucket. The ID is
              etcd's int64 as it writes it (uint64(ID), big-endian), so a negative ID,
              which a client may choose, sorts after the positive ones. TTL is the
              granted one (already raised to the minimum); remaining TTL is the last
              checkpoint, 0 if none: a new leader starts the lease with it, or with the
              full TTL when 0 (etcd's leasepb.Lease{TTL, RemainingTTL}).
    lease_keys lease ID (8 bytes)  ->  user key   (DUPSORT)
              The live keys attached to each lease, in key order: a revoke deletes
              them without scanning the key space. In etcd an in-memory map rebuilt
              from every key on start; here kept with the data. A key is under the
              lease its live KeyValue names, and only that one.

    auth      b"enabled"  -> b"\x01" | b"\x00"   etcd's authEnabled (absent: disabled)
              b"revision" -> u64   etcd's authRevision: +1 at every change of users or
                                   roles and at AuthDisable (absent: 1, the value etcd
                                   commits when it creates its auth bucket)
    auth_users user name  ->  authpb.User, protobuf-encoded (name, bcrypt hash, roles
              sorted, options.no_password): etcd's "authUsers" bucket
    auth_roles role name  ->  authpb.Role, protobuf-encoded (name, key permissions
              sorted by key): etcd's "authRoles" bucket. The role "root" has no stored
              permission: RoleGet answers READWRITE over every key for it, as etcd.
    auth_tokens b"t" + simple token  ->  u64 Raft index + user name
              b"i" + u64 Raft index  ->  simple token
              Simple tokens assigned by Authenticate entries: "<16 letters>.<index>",
              the letters chosen by the proposing member, the index the entry's. etcd
              keeps them in each member's memory; here they are Raft state, so every
              member knows them and they outlive a restart. The b"i" entries order
              them by age: past MAX_SIMPLE_TOKENS the oldest goes. Their time to live
              since last use is each member's own clock (actors/network/auth.py).

rev(main, sub) is 16 bytes: main and sub as u64 big-endian. ~rev is each u64 XOR
2**64-1. Nothing is ever rebuilt in memory on open: the current revision, the
compaction revision and every index live in LMDB, so opening costs what opening
LMDB costs, whatever the number of keys.

Worked example (values shortened; "kv(...)" is the protobuf KeyValue):

    put foo=a                -> revision 2
    put foo=b                -> revision 3
    delete foo               -> revision 4
    txn {put foo=c, put zoo=z} -> revision 5 (sub 0 and 1)
    grant lease 0x1a, TTL 60 -> (no revision)
    put bar=x lease 0x1a     -> revision 6

    history   00..02 00..00    kv(foo, create=2, mod=2, ver=1, a)
              00..03 00..00    kv(foo, create=2, mod=3, ver=2, b)
              00..04 00..00 t  kv(foo)
              00..05 00..00    kv(foo, create=5, mod=5, ver=1, c)
              00..05 00..01    kv(zoo, create=5, mod=5, ver=1, z)
              00..06 00..00    kv(bar, create=6, mod=6, ver=1, x, lease=0x1a)
    key_revs  bar -> ~(6,0)p
              foo -> ~(5,0)p ~(4,0)t ~(3,0)p ~(2,0)p
              zoo -> ~(5,1)p
    meta      current_rev = 6, compact_rev = -1
    leases    00 00 00 00 00 00 00 1a  ->  00..00 3c  00..00 00   (TTL 60, remaining 0)
    lease_keys 00 00 00 00 00 00 00 1a  ->  bar

    A read of foo at revision 3 seeks key_revs foo >= ~(3,0): finds ~(3,0)p, reads
    history 00..03 00..00. At revision 4 it finds ~(4,0)t: foo did not exist. Now
    (revision 5) foo's first duplicate ~(5,0)p says it is live at (5,0).

    compact(4): foo's newest revision at or below 4 is the tombstone (4,0), so the
    tombstone and everything older go; history keeps (5,0), (5,1) and (6,0), key_revs
    foo keeps ~(5,0)p. compact(3) instead would keep (3,0) and drop only (2,0).

    A checkpoint of lease 0x1a with 42 s left rewrites its value to 00..00 3c 00..a4 10
    (42,000 ms).
    A put bar=y without a lease at revision 7 would remove the duplicate 0x1a -> bar.
    A revoke of 0x1a instead deletes bar at revision 7 (history 00..07 00..00 t,
    key_revs bar -> ~(7,0)t ~(6,0)p; all the keys of a lease go in one revision, in
    key order), which removes that duplicate too, then the lease's `leases` entry.

Limits: LMDB keys are at most 511 bytes (MAX_KEY_BYTES), so a put of a longer user
key is refused (etcd allows keys up to its request size limit). Reads accept any
key length.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

DB_HISTORY = b"history"
DB_KEY_REVS = b"key_revs"
DB_META = b"meta"
DB_ALARM = b"alarm"
DB_LEASES = b"leases"
DB_LEASE_KEYS = b"lease_keys"
DB_AUTH = b"auth"
DB_AUTH_USERS = b"auth_users"
DB_AUTH_ROLES = b"auth_roles"
DB_AUTH_TOKENS = b"auth_tokens"
MAX_DBS = 12

SCHEMA_VERSION = b"4"
SCHEMA_V3 = b"3"  # had no auth_* databases (nothing could be written to them)
SCHEMA_V1 = b"1"  # had DB_KEYS_V1, each live key -> its rev: now key_revs' newest duplicate
SCHEMA_V2 = b"2"  # had no DB_LEASES nor DB_LEASE_KEYS (no lease could be granted)
DB_KEYS_V1 = b"keys"
MAX_KEY_BYTES = 511  # LMDB's compiled-in MDB_MAXKEYSIZE, also the DUPSORT limit

META_CONSISTENT_INDEX = b"consistent_index"
META_TERM = b"term"
META_CONF_STATE = b"conf_state"
META_CURRENT_REV = b"current_rev"
META_COMPACT_REV = b"compact_rev"
META_SCHEMA = b"schema"

AUTH_ENABLED = b"enabled"
AUTH_REVISION = b"revision"
AUTH_INITIAL_REVISION = 1
TOKEN_PREFIX = b"t"
TOKEN_ORDER_PREFIX = b"i"
MAX_SIMPLE_TOKENS = 65_536  # tokens kept; each ~60 bytes

# etcd's first revision: an empty store answers with header.revision 1.
INITIAL_REVISION = 1
NO_COMPACTION = -1

TOMBSTONE = b"t"
PUT_FLAG = b"p"
REV_BYTES = 16
KEY_REV_ENTRY_BYTES = 17
_U64_MAX = (1 << 64) - 1
MAX_REVISION = (1 << 63) - 1  # etcd revisions are int64

_REV = struct.Struct(">QQ")
U64 = struct.Struct(">Q")
I64 = struct.Struct(">q")
ALARM_KEY = struct.Struct(">IQ")
LEASE_ID = I64  # the same 8 bytes as etcd's uint64(ID) big-endian
LEASE_VALUE = struct.Struct(">qq")  # TTL s, remaining TTL ms (0: never checkpointed)


@dataclass(frozen=True, slots=True, order=True)
class Revision:
    """An etcd revision: `main` per write transaction, `sub` per change inside it."""

    main: int
    sub: int = 0

    def __post_init__(self) -> None:
        assert 0 <= self.main <= MAX_REVISION, self.main
        assert 0 <= self.sub <= MAX_REVISION, self.sub

    def to_bytes(self) -> bytes:
        return _REV.pack(self.main, self.sub)

    @staticmethod
    def from_bytes(raw: bytes) -> "Revision":
        main, sub = _REV.unpack_from(raw)
        return Revision(main, sub)


# Hot-path helpers work on plain ints: a dataclass per key costs too much in ranges
# over a million keys.


def rev_bytes(main: int, sub: int) -> bytes:
    return _REV.pack(main, sub)


def history_key(main: int, sub: int, tombstone: bool) -> bytes:
    raw = _REV.pack(main, sub)
    return raw + TOMBSTONE if tombstone else raw


def parse_history_key(raw: bytes) -> tuple[int, int, bool]:
    """(main, sub, is_tombstone) of a `history` key."""
    assert len(raw) in (REV_BYTES, REV_BYTES + 1), raw
    main, sub = _REV.unpack_from(raw)
    return main, sub, len(raw) > REV_BYTES


def key_rev_entry(main: int, sub: int, tombstone: bool) -> bytes:
    """A `key_revs` duplicate: complemented revision, newest sorts first."""
    flag = TOMBSTONE if tombstone else PUT_FLAG
    return _REV.pack(_U64_MAX ^ main, _U64_MAX ^ sub) + flag


def parse_key_rev_entry(raw: bytes) -> tuple[int, int, bool]:
    """(main, sub, is_tombstone) of a `key_revs` duplicate."""
    assert len(raw) == KEY_REV_ENTRY_BYTES, raw
    inv_main, inv_sub = _REV.unpack_from(raw)
    return _U64_MAX ^ inv_main, _U64_MAX ^ inv_sub, raw[16:] == TOMBSTONE


def key_rev_entry_history_key(raw: bytes) -> bytes:
    """The `history` key a `key_revs` duplicate points at."""
    main, sub, tomb = parse_key_rev_entry(raw)
    return history_key(main, sub, tomb)


def newest_at_or_below(main: int) -> bytes:
    """Seek value: the first duplicate >= this is the newest revision <= `main`."""
    # ~(main, 2**64-1) = (~main, 0): sorts before every duplicate of revision `main`.
    return _REV.pack(_U64_MAX ^ main, 0) + b"\x00"
