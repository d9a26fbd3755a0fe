"""Whether a user may read or write keys: etcd's isOpPermitted and its range
permission cache (server/auth/store.go, range_perm_cache.go), for Range, Put,
DeleteRange, Txn and LeaseRevoke (and a Put attaching a lease: etcd's checkLeasePuts).

A permission is an interval of keys: [key, range_end), with range_end b"\\x00" open
(every key from `key` on) and an empty range_end the single key, i.e. [key,
key + b"\\x00") as etcd's BytesAffinePoint. A request's keys are an interval the same
way, and are permitted when the union of the user's intervals of the right kind
(READWRITE counts as both) covers it. The root role may do anything.

Who asks is the request header's (username, auth_revision), written by the proposer
(actors/network/auth.py): revision 0 means no user was given ("user name is empty"),
one older than the store's means the user's rights may have changed since ("revision
of auth store is old"), as etcd answers.
"""

from __future__ import annotations

from collections.abc import Iterable

from petcd.api.authpb import auth_pb2
from petcd.api.etcdserverpb import rpc_pb2 as pb

from . import auth, errors, leases
from .auth import Txn
from .env import Databases
from .errors import MvccError

READ_TYPES = frozenset({auth_pb2.Permission.READ, auth_pb2.Permission.READWRITE})
WRITE_TYPES = frozenset({auth_pb2.Permission.WRITE, auth_pb2.Permission.READWRITE})
_OPEN = b"\x00"
Interval = tuple[bytes, bytes | None]  # [start, end); end None: no end


def interval(key: bytes, range_end: bytes) -> Interval:
    if not range_end:
        return key, key + b"\x00"
    return key, None if range_end == _OPEN else range_end


def covered(perms: Iterable[auth_pb2.Permission], wanted: Interval, write: bool) -> bool:
    """Whether the permissions of the kind asked for cover every key of `wanted`."""
    kinds = WRITE_TYPES if write else READ_TYPES
    held = sorted(interval(p.key, p.range_end) for p in perms if p.permType in kinds)
    start, end = wanted
    reached = start  # every key in [start, reached) is covered
    for low, high in held:
        if low > reached:
            break  # a gap: sorted by start, no later interval fills it
        if high is None:
            return True
        if high > reached:
            reached = high
        if end is not None and reached >= end:
            return True
    return False


class Checker:
    """The permissions of one request's user, read once, checked per key range."""

    def __init__(self, txn: Txn, dbs: Databases, username: str, auth_revision: int) -> None:
        if auth_revision == 0:
            raise MvccError(errors.USER_EMPTY)
        if auth_revision < auth.revision(txn, dbs):
            raise MvccError(errors.AUTH_OLD_REVISION)
        user = auth.get_user(txn, dbs, username)
        if user is None:
            raise MvccError(errors.PERMISSION_DENIED_AUTH)
        self.txn, self.dbs = txn, dbs
        self.root = auth.has_root_role(user)
        self.perms = [] if self.root else auth.permissions(txn, dbs, username)

    def check(self, key: bytes, range_end: bytes, write: bool) -> None:
        if not self.root and not covered(self.perms, interval(key, range_end), write):
            raise MvccError(errors.PERMISSION_DENIED_AUTH)

    def check_range(self, r: pb.RangeRequest) -> None:
        self.check(r.key, r.range_end, write=False)

    def check_put(self, r: pb.PutRequest) -> None:
        self.check(r.key, b"", write=True)
        if r.prev_kv:
            self.check(r.key, b"", write=False)
        if r.lease != leases.NO_LEASE:
            # etcd's checkLeasePuts: whoever attaches a key to a lease could revoke it,
            # deleting every key under it; so all of them must be the user's to write.
            self.check_lease_keys([r.lease], write=True)

    def check_delete(self, r: pb.DeleteRangeRequest) -> None:
        self.check(r.key, r.range_end, write=True)
        if r.prev_kv:
            self.check(r.key, r.range_end, write=False)

    def check_lease_revoke(self, r: pb.LeaseRevokeRequest) -> None:
        """A revoke deletes every key under the lease: all must be the user's to write."""
        self.check_lease_keys([r.ID], write=True)

    def check_lease_keys(self, lease_ids: list[int], write: bool) -> None:
        """Every key attached to the leases must be the user's to write (revoke,
        keep-alive: etcd's checkLeasePuts, checkLeaseRenew) or read (time-to-live,
        the lease list: checkLeaseTimeToLive, checkLeaseLeases)."""
        if not self.root:
            for lease_id in lease_ids:
                for key in leases.keys(self.txn, self.dbs, lease_id):
                    self.check(key, b"", write=write)

    def check_txn(self, r: pb.TxnRequest) -> None:
        """etcd's checkTxnReqsPermission: compares are reads; both branches' ops count,
        whichever runs."""
        for compare in r.compare:
            self.check(compare.key, compare.range_end, write=False)
        for op in [*r.success, *r.failure]:
            which = op.WhichOneof("request")
            if which == "request_range":
                self.check_range(op.request_range)
            elif which == "request_put":
                self.check_put(op.request_put)
            elif which == "request_delete_range":
                self.check_delete(op.request_delete_range)
            elif which == "request_txn":
                self.check_txn(op.request_txn)


def check_request(txn: Txn, dbs: Databases, username: str, auth_revision: int,
                  request: object) -> None:
    """Refuse a Range, Put, DeleteRange, Txn or LeaseRevoke its user may not make
    (auth enabled)."""
    checker = Checker(txn, dbs, username, auth_revision)
    if isinstance(request, pb.RangeRequest):
        checker.check_range(request)
    elif isinstance(request, pb.PutRequest):
        checker.check_put(request)
    elif isinstance(request, pb.DeleteRangeRequest):
        checker.check_delete(request)
    elif isinstance(request, pb.TxnRequest):
        checker.check_txn(request)
    elif isinstance(request, pb.LeaseRevokeRequest):
        checker.check_lease_revoke(request)
