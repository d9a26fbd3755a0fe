"""storage/mvcc: the etcd v3 key-value state machine (MVCC) on LMDB.

The on-disk format - databases, byte layout, invariants and a worked example - is
documented at the top of layout.py; read it first. In short:

    history   rev(main,sub)[+"t"] -> mvccpb.KeyValue     every change not compacted
    key_revs  key -> ~rev(main,sub) + "p"|"t" (DUPSORT)  every revision, newest first
                                                          (live now: newest is "p")
    meta      current/compact revision, Raft index, term, conf state
    alarm     (type, member) -> ""
    leases    lease ID -> TTL, remaining TTL             every granted lease
    lease_keys lease ID -> user key (DUPSORT)            the live keys under each
    auth, auth_users, auth_roles, auth_tokens             flag and revision, users,
                                                          roles, simple tokens

Modules, one idea each:
    layout      byte encodings and database names
    env         LMDB environment generations (CURRENT), open, defragment swap
    keyindex    which revision of which key is live at a revision
    view        read/write views over one LMDB transaction (etcd's storeTxn*)
    ranges      Range        ops      Put, DeleteRange        txn    Txn, Compare
    checks      request checks of etcd's v3rpc/key.go
    compaction  Compact      hashing  Hash, HashKV            alarms Alarm
    quota       quota, request cost, LMDB map size
    meta        revisions and the applied Raft position
    history     the changes of each revision, as watchers get them
    leases      the lease table and the keys attached to each lease
    lease_requests  LeaseGrant, LeaseRevoke, LeaseCheckpoint (etcd's lessor, applied half)
    auth        the auth records: users, roles, enabled flag, auth revision, tokens
    auth_requests  every Auth request with etcd's rules (etcd's authStore, applied half)
    store       MvccStore: the facade the apply and network actors use
    errors      MvccError with etcd's messages and gRPC codes
"""

from .env import StoreCorruptError
from .errors import MvccError
from .history import Change
from .leases import Lease
from .lease_requests import LeaseChange
from .store import ApplyEntry, MvccStore, StoreOptions

__all__ = ["ApplyEntry", "Change", "Lease", "LeaseChange", "MvccError", "MvccStore",
           "StoreCorruptError", "StoreOptions"]
