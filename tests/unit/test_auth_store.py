"""etcd's auth rules as the store applies them (storage/mvcc/auth_requests.py), each
checked against the message etcd answers (server/auth/store.go, apply/auth.go)."""

from __future__ import annotations

import base64
import itertools
from pathlib import Path
from typing import Any, Iterator

import pytest

from petcd.api.authpb import auth_pb2
from petcd.api.etcdserverpb import raft_internal_pb2 as rpb
from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.storage.mvcc import MvccError, MvccStore, errors, snaprestore

READ, WRITE, READWRITE = (auth_pb2.Permission.READ, auth_pb2.Permission.WRITE,
                          auth_pb2.Permission.READWRITE)
HASH = base64.b64encode(b"$2a$04$notreallyahashbutbytes").decode()
LETTERS = "abcdefghijklmnop"


class Auth:
    """A store and a Raft index that moves with every request applied."""

    def __init__(self, store: MvccStore) -> None:
        self.store = store
        self.index = itertools.count(1)
        self.as_user = ""

    def __call__(self, **field: Any) -> Any:
        request = rpb.InternalRaftRequest(header=rpb.RequestHeader(username=self.as_user),
                                          **field)
        return self.store.apply(next(self.index), 1, request)

    def refused(self, kind: errors.ErrorKind, **field: Any) -> None:
        with pytest.raises(MvccError) as err:
            self(**field)
        assert err.value == MvccError(kind)

    def add_user(self, name: str) -> None:
        self(auth_user_add=pb.AuthUserAddRequest(name=name, hashedPassword=HASH))

    def root(self) -> None:
        self(auth_role_add=pb.AuthRoleAddRequest(name="root"))
        self.add_user("root")
        self(auth_user_grant_role=pb.AuthUserGrantRoleRequest(user="root", role="root"))


@pytest.fixture
def auth(tmp_path: Path) -> Iterator[Auth]:
    with MvccStore.open(str(tmp_path / "db"), sync=False) as store:
        yield Auth(store)


def test_a_new_store_has_auth_disabled_at_revision_1(auth: Auth) -> None:
    status = auth(auth_status=pb.AuthStatusRequest())
    assert (status.enabled, status.authRevision) == (False, 1)


def test_enable_needs_root_user_with_root_role(auth: Auth) -> None:
    auth.refused(errors.ROOT_USER_NOT_EXIST, auth_enable=pb.AuthEnableRequest())
    auth.add_user("root")  # the root role need not exist (etcd's UserGrantRole)
    auth.refused(errors.ROOT_ROLE_NOT_EXIST, auth_enable=pb.AuthEnableRequest())
    auth(auth_user_grant_role=pb.AuthUserGrantRoleRequest(user="root", role="root"))
    auth(auth_enable=pb.AuthEnableRequest())
    assert auth.store.auth_status() == (True, 3)  # enable itself moves no revision
    auth.as_user = "root"
    auth(auth_enable=pb.AuthEnableRequest())  # again: no error, as etcd's


def test_while_enabled_only_root_manages(auth: Auth) -> None:
    auth.root()
    auth.add_user("alice")
    auth(auth_enable=pb.AuthEnableRequest())
    auth.refused(errors.USER_EMPTY, auth_disable=pb.AuthDisableRequest())
    auth.as_user = "alice"
    auth.refused(errors.PERMISSION_DENIED_AUTH, auth_role_add=pb.AuthRoleAddRequest(name="r"))
    assert list(auth(auth_user_get=pb.AuthUserGetRequest(name="alice")).roles) == []
    auth.refused(errors.PERMISSION_DENIED_AUTH, auth_user_get=pb.AuthUserGetRequest(name="root"))
    auth.as_user = "ghost"
    auth.refused(errors.USER_NOT_FOUND, auth_user_list=pb.AuthUserListRequest())
    auth.as_user = "root"
    auth.refused(errors.INVALID_AUTH_MGMT, auth_user_delete=pb.AuthUserDeleteRequest(name="root"))
    auth.refused(errors.INVALID_AUTH_MGMT, auth_user_revoke_role=pb.AuthUserRevokeRoleRequest(
        name="root", role="root"))
    auth.refused(errors.INVALID_AUTH_MGMT, auth_role_delete=pb.AuthRoleDeleteRequest(role="root"))
    before = auth.store.auth_status()[1]
    auth(auth_disable=pb.AuthDisableRequest())
    assert auth.store.auth_status() == (False, before + 1)


def test_users_rules_and_messages(auth: Auth) -> None:
    auth.refused(errors.USER_EMPTY, auth_user_add=pb.AuthUserAddRequest(name=""))
    auth.add_user("bob")
    auth.refused(errors.USER_ALREADY_EXIST, auth_user_add=pb.AuthUserAddRequest(
        name="bob", hashedPassword=HASH))
    auth.refused(errors.USER_NOT_FOUND, auth_user_get=pb.AuthUserGetRequest(name="eve"))
    auth.refused(errors.USER_NOT_FOUND, auth_user_delete=pb.AuthUserDeleteRequest(name="eve"))
    auth.refused(errors.ROLE_NOT_FOUND, auth_user_grant_role=pb.AuthUserGrantRoleRequest(
        user="bob", role="nope"))
    auth.refused(errors.ROLE_NOT_GRANTED, auth_user_revoke_role=pb.AuthUserRevokeRoleRequest(
        name="bob", role="root"))
    auth(auth_user_add=pb.AuthUserAddRequest(
        name="nopw", options=auth_pb2.UserAddOptions(no_password=True)))
    assert auth.store.auth_user("nopw").password == b""
    assert list(auth(auth_user_list=pb.AuthUserListRequest()).users) == ["bob", "nopw"]
    long_name = "u" * 600  # past an LMDB key: refused, and never found
    auth.refused(errors.KEY_TOO_LONG, auth_user_add=pb.AuthUserAddRequest(name=long_name))
    auth.refused(errors.KEY_TOO_LONG, auth_role_add=pb.AuthRoleAddRequest(name=long_name))
    auth.refused(errors.USER_NOT_FOUND, auth_user_get=pb.AuthUserGetRequest(name=long_name))
    assert auth.store.token_user("t" * 600) == (False, None, auth.store.auth_status()[1])
    # A gateway header's bytes that are no UTF-8 reach the store as surrogates: unknown.
    assert auth.store.token_user(b"\xff\xfe.1".decode("utf-8", "surrogateescape"))[1] is None


def test_roles_are_kept_sorted_and_a_second_grant_is_ignored(auth: Auth) -> None:
    auth.add_user("u")
    for role in ("zeta", "alpha"):
        auth(auth_role_add=pb.AuthRoleAddRequest(name=role))
        auth(auth_user_grant_role=pb.AuthUserGrantRoleRequest(user="u", role=role))
    revision = auth.store.auth_status()[1]
    auth(auth_user_grant_role=pb.AuthUserGrantRoleRequest(user="u", role="alpha"))
    assert auth.store.auth_status()[1] == revision
    assert list(auth(auth_user_get=pb.AuthUserGetRequest(name="u")).roles) == ["alpha", "zeta"]
    auth(auth_role_delete=pb.AuthRoleDeleteRequest(role="zeta"))  # leaves every user
    assert list(auth.store.auth_user("u").roles) == ["alpha"]


def test_permissions_grant_replace_and_revoke(auth: Auth) -> None:
    auth.refused(errors.ROLE_EMPTY, auth_role_add=pb.AuthRoleAddRequest(name=""))
    auth(auth_role_add=pb.AuthRoleAddRequest(name="r"))
    auth.refused(errors.ROLE_ALREADY_EXIST, auth_role_add=pb.AuthRoleAddRequest(name="r"))

    def grant(key: bytes, end: bytes, kind: int) -> None:
        auth(auth_role_grant_permission=pb.AuthRoleGrantPermissionRequest(
            name="r", perm=auth_pb2.Permission(permType=kind, key=key, range_end=end)))

    grant(b"foo", b"", READ)
    grant(b"a", b"b", WRITE)
    grant(b"foo", b"", READWRITE)  # the same range: its type changes
    grant(b"k", b"\x00", READ)  # from k on
    perms = auth(auth_role_get=pb.AuthRoleGetRequest(role="r")).perm
    assert [(p.key, p.range_end, p.permType) for p in perms] == [
        (b"a", b"b", WRITE), (b"foo", b"", READWRITE), (b"k", b"\x00", READ)]
    auth.refused(errors.INVALID_AUTH_MGMT, auth_role_grant_permission=pb.AuthRoleGrantPermissionRequest(
        name="r", perm=auth_pb2.Permission(key=b"b", range_end=b"a")))
    auth.refused(errors.PERMISSION_NOT_GIVEN,
                 auth_role_grant_permission=pb.AuthRoleGrantPermissionRequest(name="r"))
    auth.refused(errors.PERMISSION_NOT_GRANTED,
                 auth_role_revoke_permission=pb.AuthRoleRevokePermissionRequest(role="r", key=b"a"))
    auth(auth_role_revoke_permission=pb.AuthRoleRevokePermissionRequest(
        role="r", key=b"a", range_end=b"b"))
    assert len(auth(auth_role_get=pb.AuthRoleGetRequest(role="r")).perm) == 2
    auth.add_user("u")
    auth(auth_user_grant_role=pb.AuthUserGrantRoleRequest(user="u", role="r"))
    assert len(auth.store.user_permissions("u")) == 2


def test_root_role_answers_every_key(auth: Auth) -> None:
    auth.root()
    [perm] = auth(auth_role_get=pb.AuthRoleGetRequest(role="root")).perm
    assert (perm.key, perm.range_end, perm.permType) == (b"", b"\x00", READWRITE)
    assert auth.store.user_permissions("root") == [perm]


def test_tokens_are_assigned_by_index_and_die_with_their_user(auth: Auth) -> None:
    auth.root()
    auth.add_user("bob")
    authenticate = rpb.InternalAuthenticateRequest(name="bob", simple_token=LETTERS)
    auth.refused(errors.AUTH_NOT_ENABLED, authenticate=authenticate)
    auth(auth_enable=pb.AuthEnableRequest())
    index = next(auth.index)  # the index the next request gets is one more
    token = auth(authenticate=authenticate).token
    assert token == f"{LETTERS}.{index + 1}"
    assert auth.store.token_user(token)[1] == "bob"
    auth.refused(errors.AUTH_FAILED, authenticate=rpb.InternalAuthenticateRequest(
        name="eve", simple_token=LETTERS))
    auth.as_user = "root"
    auth(auth_user_change_password=pb.AuthUserChangePasswordRequest(name="bob", hashedPassword=HASH))
    assert auth.store.token_user(token)[1] is None
    root_token = auth(authenticate=rpb.InternalAuthenticateRequest(
        name="root", simple_token=LETTERS)).token
    auth(auth_disable=pb.AuthDisableRequest())
    assert auth.store.token_user(root_token)[1] is None


def test_auth_state_survives_reopening(tmp_path: Path) -> None:
    path = str(tmp_path / "db")
    with MvccStore.open(path, sync=False) as store:
        auth = Auth(store)
        auth.root()
        auth(auth_enable=pb.AuthEnableRequest())
    with MvccStore.open(path, sync=False) as store:
        assert store.auth_status() == (True, 4)
        assert list(store.auth_user("root").roles) == ["root"]


def test_a_restored_snapshot_keeps_users_and_roles_but_no_token(tmp_path: Path) -> None:
    """etcdutl snapshot restore keeps the auth buckets; tokens were never in them."""
    source = tmp_path / "db"
    with MvccStore.open(str(source), sync=False) as store:
        auth = Auth(store)
        auth.root()
        auth(auth_enable=pb.AuthEnableRequest())
        token = auth(authenticate=rpb.InternalAuthenticateRequest(
            name="root", simple_token=LETTERS)).token
        data = Path(store.backend.data_file).read_bytes()
    snapshot = tmp_path / "snap.db"
    snapshot.write_bytes(data)  # a copy of the file, without the optional trailer
    snaprestore.install(str(snapshot), str(tmp_path / "restored"))
    with MvccStore.open(str(tmp_path / "restored"), sync=False) as restored:
        assert restored.auth_status()[0] is True
        assert list(restored.auth_user("root").roles) == ["root"]
        assert restored.token_user(token)[1] is None
