"""Who may read and write which keys (storage/mvcc/permissions.py): etcd's interval
rules, and the store refusing a Range, Put, DeleteRange or Txn its user may not make
while auth is enabled (etcd's authApplierV3 and isOpPermitted)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from petcd.api.authpb import auth_pb2
from petcd.api.etcdserverpb import raft_internal_pb2 as rpb
from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.storage.mvcc import MvccError, MvccStore, errors
from petcd.storage.mvcc.permissions import covered, interval

from .test_auth_store import Auth

READ, WRITE, READWRITE = (auth_pb2.Permission.READ, auth_pb2.Permission.WRITE,
                          auth_pb2.Permission.READWRITE)


def perm(kind: int, key: bytes, end: bytes = b"") -> auth_pb2.Permission:
    return auth_pb2.Permission(permType=kind, key=key, range_end=end)


@pytest.mark.parametrize(("perms", "key", "end", "write", "expected"), [
    ([perm(READ, b"k")], b"k", b"", False, True),  # the key alone
    ([perm(READ, b"k")], b"k", b"", True, False),  # read is not write
    ([perm(READWRITE, b"k")], b"k", b"", True, True),
    ([perm(READ, b"k")], b"k", b"l", False, False),  # one key does not cover a range
    ([perm(READ, b"a", b"c")], b"b", b"", False, True),
    ([perm(READ, b"a", b"c")], b"a", b"c", False, True),
    ([perm(READ, b"a", b"c")], b"a", b"d", False, False),
    ([perm(READ, b"a", b"c"), perm(READ, b"c", b"e")], b"b", b"d", False, True),  # joined
    ([perm(READ, b"a", b"c"), perm(READ, b"d", b"e")], b"b", b"d\x00", False, False),  # gap
    ([perm(READ, b"k", b"\x00")], b"zzz", b"\x00", False, True),  # from-key covers the rest
    ([perm(READ, b"k", b"\x00")], b"a", b"\x00", False, False),
    ([perm(WRITE, b"foo", b"fop")], b"foo/bar", b"", True, True),  # a prefix
    ([], b"k", b"", False, False),
])
def test_covered(perms, key, end, write, expected) -> None:
    assert covered(perms, interval(key, end), write) is expected


@pytest.fixture
def auth(tmp_path: Path) -> Iterator[Auth]:
    with MvccStore.open(str(tmp_path / "db"), sync=False) as store:
        made = Auth(store)
        made.root()
        made.add_user("bob")
        made(auth_role_add=pb.AuthRoleAddRequest(name="app"))
        made(auth_role_grant_permission=pb.AuthRoleGrantPermissionRequest(
            name="app", perm=perm(READWRITE, b"app/", b"app0")))
        made(auth_role_grant_permission=pb.AuthRoleGrantPermissionRequest(
            name="app", perm=perm(READ, b"conf")))
        made(auth_user_grant_role=pb.AuthUserGrantRoleRequest(user="bob", role="app"))
        made(auth_enable=pb.AuthEnableRequest())
        yield made


def _as(auth: Auth, user: str, request: object) -> object:
    field = {pb.PutRequest: "put", pb.DeleteRangeRequest: "delete_range",
             pb.TxnRequest: "txn", pb.LeaseRevokeRequest: "lease_revoke"}[type(request)]
    revision = auth.store.auth_status()[1] if user else 0
    return auth.store.apply(next(auth.index), 1, rpb.InternalRaftRequest(
        header=rpb.RequestHeader(username=user, auth_revision=revision), **{field: request}))


def _refused(kind: errors.ErrorKind, call) -> None:
    with pytest.raises(MvccError) as err:
        call()
    assert err.value == MvccError(kind)


def test_writes_need_write_permission(auth: Auth) -> None:
    assert _as(auth, "bob", pb.PutRequest(key=b"app/x", value=b"1")).header.revision == 2
    _refused(errors.PERMISSION_DENIED_AUTH, lambda: _as(auth, "bob", pb.PutRequest(key=b"conf")))
    _refused(errors.USER_EMPTY, lambda: _as(auth, "", pb.PutRequest(key=b"app/x")))
    _as(auth, "root", pb.PutRequest(key=b"conf", value=b"c"))
    _refused(errors.PERMISSION_DENIED_AUTH, lambda: _as(auth, "bob", pb.DeleteRangeRequest(
        key=b"a", range_end=b"\x00")))
    txn = pb.TxnRequest(compare=[pb.Compare(key=b"conf", target=pb.Compare.VERSION)],
                        success=[pb.RequestOp(request_put=pb.PutRequest(key=b"app/y"))],
                        failure=[pb.RequestOp(request_put=pb.PutRequest(key=b"other"))])
    _refused(errors.PERMISSION_DENIED_AUTH, lambda: _as(auth, "bob", txn))  # either branch
    del txn.failure[:]
    assert _as(auth, "bob", txn).succeeded is False


def test_an_old_auth_revision_is_refused(auth: Auth) -> None:
    old = auth.store.auth_status()[1]
    auth.as_user = "root"
    auth(auth_role_add=pb.AuthRoleAddRequest(name="later"))
    _refused(errors.AUTH_OLD_REVISION, lambda: auth.store.apply(
        next(auth.index), 1, rpb.InternalRaftRequest(
            header=rpb.RequestHeader(username="bob", auth_revision=old),
            put=pb.PutRequest(key=b"app/x"))))


def test_range_checks_its_asker(auth: Auth) -> None:
    revision = auth.store.auth_status()[1]
    bob = ("bob", revision)
    assert auth.store.range(pb.RangeRequest(key=b"conf"), bob).count == 0
    _refused(errors.PERMISSION_DENIED_AUTH,
             lambda: auth.store.range(pb.RangeRequest(key=b"a", range_end=b"\x00"), bob))
    _refused(errors.USER_EMPTY, lambda: auth.store.range(pb.RangeRequest(key=b"conf"), ("", 0)))
    assert auth.store.range(pb.RangeRequest(key=b"a", range_end=b"\x00")).count == 0  # internal


def test_a_put_attaching_a_lease_needs_every_key_under_it(auth: Auth) -> None:
    auth.store.apply(next(auth.index), 1, pb.LeaseGrantRequest(ID=7, TTL=60))
    _as(auth, "root", pb.PutRequest(key=b"conf", value=b"c", lease=7))
    _refused(errors.PERMISSION_DENIED_AUTH,
             lambda: _as(auth, "bob", pb.PutRequest(key=b"app/x", lease=7)))
    _as(auth, "root", pb.PutRequest(key=b"conf", value=b"c"))  # conf leaves the lease
    assert _as(auth, "bob", pb.PutRequest(key=b"app/x", lease=7)).header.revision > 0


def test_a_revoke_needs_every_key_under_the_lease(auth: Auth) -> None:
    auth.store.apply(next(auth.index), 1, pb.LeaseGrantRequest(ID=8, TTL=60))
    _as(auth, "root", pb.PutRequest(key=b"conf", value=b"c", lease=8))
    _refused(errors.PERMISSION_DENIED_AUTH, lambda: _as(auth, "bob", pb.LeaseRevokeRequest(ID=8)))
    _as(auth, "root", pb.LeaseRevokeRequest(ID=8))  # the lessor's expiry revokes so
    assert auth.store.lease(8) is None
