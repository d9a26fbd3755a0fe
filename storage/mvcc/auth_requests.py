"""etcd's authStore, the half that is state: every Auth request, applied through Raft.

Each member applies the same entries in the same order, so each holds the same users,
roles, flag, revision and tokens (etcd's server/auth/store.go and the authApplierV3 of
server/etcdserver/apply/auth.go, as of v3.5):

- Who asks: the proposer resolved the request's token to a user name before proposing
  (actors/network/auth.py) and wrote it in the header. While auth is enabled, every
  request here but Authenticate and AuthStatus is the root role's alone (etcd's
  needAdminPermission; an empty name is "user name is empty"), except that a user may
  get itself and a role it holds.
- Passwords arrive hashed (bcrypt, by the proposer: etcd hashes in its API layer too)
  in `hashedPassword`, base64 as etcd sends it; the plain `password` field is ignored.
- AuthEnable needs a user "root" holding the role "root"; enabling twice is no error.
  Neither it nor a second AuthDisable moves the auth revision; every other change
  does (etcd's commitRevision).
- While enabled, "root" cannot be deleted nor lose the role "root", and that role
  cannot be deleted: "invalid auth management".
- Names are at most layout.MAX_KEY_BYTES long (an LMDB key; etcd has no limit): a
  longer one is "request is too large", as a longer key is.
- Authenticate: the proposer checked the password; here the user must still exist and
  have a password, and the token becomes "<its 16 letters>.<entry index>".
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from petcd.api.authpb import auth_pb2
from petcd.api.etcdserverpb import raft_internal_pb2 as rpb
from petcd.api.etcdserverpb import rpc_pb2 as pb

from . import auth, errors
from .auth import ROOT_ROLE, ROOT_USER, Txn
from .env import Databases
from .errors import MvccError

# Requests a non-root user may not make while auth is enabled (etcd's needAdminPermission).
_ADMIN_ONLY = frozenset({
    "auth_enable", "auth_disable", "auth_user_add", "auth_user_delete",
    "auth_user_change_password", "auth_user_grant_role", "auth_user_revoke_role",
    "auth_role_add", "auth_role_grant_permission", "auth_role_revoke_permission",
    "auth_role_delete", "auth_user_list", "auth_role_list"})
SIMPLE_TOKEN_LETTERS = 16  # etcd's defaultSimpleTokenLength


class _Ctx:
    """One request's transaction, databases, asker and Raft index."""

    __slots__ = ("txn", "dbs", "username", "index")

    def __init__(self, txn: Txn, dbs: Databases, username: str, index: int) -> None:
        self.txn, self.dbs, self.username, self.index = txn, dbs, username, index


def field_of(request: Any) -> str | None:
    """The auth field an InternalRaftRequest carries, None if it is no auth request."""
    if not isinstance(request, rpb.InternalRaftRequest):
        return None
    for field, _ in request.ListFields():
        name: str = field.name
        if name in _APPLY:
            return name
    return None


def apply(txn: Txn, dbs: Databases, request: rpb.InternalRaftRequest, index: int) -> Any:
    """Apply the auth request of an entry; its response, or raise MvccError."""
    name = field_of(request)
    assert name is not None and index > 0, (request, index)
    ctx = _Ctx(txn, dbs, request.header.username, index)
    body = getattr(request, name)
    _check_asker(ctx, name, body)
    return _APPLY[name](ctx, body)


def _check_asker(ctx: _Ctx, name: str, body: Any) -> None:
    """etcd's authApplierV3: admin requests need the root role while auth is on."""
    if name in _ADMIN_ONLY:
        _check_admin(ctx)
    elif name == "auth_user_get":
        if ctx.username != body.name:
            _check_admin(ctx)
    elif name == "auth_role_get":
        asker = auth.get_user(ctx.txn, ctx.dbs, ctx.username)
        if asker is None or body.role not in asker.roles:
            _check_admin(ctx)


def _check_admin(ctx: _Ctx) -> None:
    """etcd's IsAdminPermitted."""
    if not auth.enabled(ctx.txn, ctx.dbs):
        return
    if not ctx.username:
        raise MvccError(errors.USER_EMPTY)
    user = auth.get_user(ctx.txn, ctx.dbs, ctx.username)
    if user is None:
        raise MvccError(errors.USER_NOT_FOUND)
    if not auth.has_root_role(user):
        raise MvccError(errors.PERMISSION_DENIED_AUTH)


# -- enable, disable, status, authenticate ------------------------------------------------


def _enable(ctx: _Ctx, r: pb.AuthEnableRequest) -> pb.AuthEnableResponse:
    if not auth.enabled(ctx.txn, ctx.dbs):
        root = auth.get_user(ctx.txn, ctx.dbs, ROOT_USER)
        if root is None:
            raise MvccError(errors.ROOT_USER_NOT_EXIST)
        if not auth.has_root_role(root):
            raise MvccError(errors.ROOT_ROLE_NOT_EXIST)
        auth.set_enabled(ctx.txn, ctx.dbs, True)
    return pb.AuthEnableResponse()


def _disable(ctx: _Ctx, r: pb.AuthDisableRequest) -> pb.AuthDisableResponse:
    if auth.enabled(ctx.txn, ctx.dbs):
        auth.set_enabled(ctx.txn, ctx.dbs, False)
        auth.commit_revision(ctx.txn, ctx.dbs)
        auth.drop_all_tokens(ctx.txn, ctx.dbs)
    return pb.AuthDisableResponse()


def _status(ctx: _Ctx, r: pb.AuthStatusRequest) -> pb.AuthStatusResponse:
    return pb.AuthStatusResponse(enabled=auth.enabled(ctx.txn, ctx.dbs),
                                 authRevision=auth.revision(ctx.txn, ctx.dbs))


def _authenticate(ctx: _Ctx, r: rpb.InternalAuthenticateRequest) -> pb.AuthenticateResponse:
    if not auth.enabled(ctx.txn, ctx.dbs):
        raise MvccError(errors.AUTH_NOT_ENABLED)
    user = auth.get_user(ctx.txn, ctx.dbs, r.name)
    if user is None or user.options.no_password:
        raise MvccError(errors.AUTH_FAILED)
    if len(r.simple_token) != SIMPLE_TOKEN_LETTERS or not r.simple_token.isalpha():
        raise MvccError(errors.AUTH_FAILED)  # only a bad proposer sends another prefix
    token = f"{r.simple_token}.{ctx.index}"
    auth.add_token(ctx.txn, ctx.dbs, token, ctx.index, r.name)
    return pb.AuthenticateResponse(token=token)


# -- users ----------------------------------------------------------------------------------


def _hashed(hashed_password: str) -> bytes:
    """The bcrypt hash the proposer sent, base64 as etcd sends it (selectPassword)."""
    try:
        return base64.b64decode(hashed_password, validate=True)
    except binascii.Error:
        raise MvccError(errors.NO_PASSWORD_USER) from None


def _user_add(ctx: _Ctx, r: pb.AuthUserAddRequest) -> pb.AuthUserAddResponse:
    if not r.name:
        raise MvccError(errors.USER_EMPTY)
    if not auth.storable(r.name):
        raise MvccError(errors.KEY_TOO_LONG)
    if auth.get_user(ctx.txn, ctx.dbs, r.name) is not None:
        raise MvccError(errors.USER_ALREADY_EXIST)
    user = auth_pb2.User(name=r.name.encode(), options=auth_pb2.UserAddOptions(
        no_password=r.options.no_password))
    if not r.options.no_password:
        user.password = _hashed(r.hashedPassword)
    auth.put_user(ctx.txn, ctx.dbs, user)
    auth.commit_revision(ctx.txn, ctx.dbs)
    return pb.AuthUserAddResponse()


def _existing_user(ctx: _Ctx, name: str) -> auth_pb2.User:
    user = auth.get_user(ctx.txn, ctx.dbs, name)
    if user is None:
        raise MvccError(errors.USER_NOT_FOUND)
    return user


def _user_delete(ctx: _Ctx, r: pb.AuthUserDeleteRequest) -> pb.AuthUserDeleteResponse:
    if auth.enabled(ctx.txn, ctx.dbs) and r.name == ROOT_USER:
        raise MvccError(errors.INVALID_AUTH_MGMT)
    _existing_user(ctx, r.name)
    auth.delete_user(ctx.txn, ctx.dbs, r.name)
    auth.commit_revision(ctx.txn, ctx.dbs)
    auth.drop_user_tokens(ctx.txn, ctx.dbs, r.name)
    return pb.AuthUserDeleteResponse()


def _user_change_password(ctx: _Ctx, r: pb.AuthUserChangePasswordRequest
                          ) -> pb.AuthUserChangePasswordResponse:
    user = _existing_user(ctx, r.name)
    if not user.options.no_password:
        user.password = _hashed(r.hashedPassword)
    auth.put_user(ctx.txn, ctx.dbs, user)
    auth.commit_revision(ctx.txn, ctx.dbs)
    auth.drop_user_tokens(ctx.txn, ctx.dbs, r.name)
    return pb.AuthUserChangePasswordResponse()


def _user_grant_role(ctx: _Ctx, r: pb.AuthUserGrantRoleRequest) -> pb.AuthUserGrantRoleResponse:
    user = _existing_user(ctx, r.user)
    if r.role != ROOT_ROLE and auth.get_role(ctx.txn, ctx.dbs, r.role) is None:
        raise MvccError(errors.ROLE_NOT_FOUND)
    if r.role not in user.roles:  # a second grant is ignored, as etcd's
        roles = sorted([*user.roles, r.role])
        del user.roles[:]
        user.roles.extend(roles)
        auth.put_user(ctx.txn, ctx.dbs, user)
        auth.commit_revision(ctx.txn, ctx.dbs)
    return pb.AuthUserGrantRoleResponse()


def _user_revoke_role(ctx: _Ctx, r: pb.AuthUserRevokeRoleRequest
                      ) -> pb.AuthUserRevokeRoleResponse:
    if auth.enabled(ctx.txn, ctx.dbs) and r.name == ROOT_USER and r.role == ROOT_ROLE:
        raise MvccError(errors.INVALID_AUTH_MGMT)
    user = _existing_user(ctx, r.name)
    if r.role not in user.roles:
        raise MvccError(errors.ROLE_NOT_GRANTED)
    user.roles.remove(r.role)
    auth.put_user(ctx.txn, ctx.dbs, user)
    auth.commit_revision(ctx.txn, ctx.dbs)
    return pb.AuthUserRevokeRoleResponse()


def _user_get(ctx: _Ctx, r: pb.AuthUserGetRequest) -> pb.AuthUserGetResponse:
    return pb.AuthUserGetResponse(roles=list(_existing_user(ctx, r.name).roles))


def _user_list(ctx: _Ctx, r: pb.AuthUserListRequest) -> pb.AuthUserListResponse:
    return pb.AuthUserListResponse(users=[u.name.decode() for u in auth.users(ctx.txn, ctx.dbs)])


# -- roles ------------------------------------------------------------------------------------


def _existing_role(ctx: _Ctx, name: str) -> auth_pb2.Role:
    role = auth.get_role(ctx.txn, ctx.dbs, name)
    if role is None:
        raise MvccError(errors.ROLE_NOT_FOUND)
    return role


def _role_add(ctx: _Ctx, r: pb.AuthRoleAddRequest) -> pb.AuthRoleAddResponse:
    if not r.name:
        raise MvccError(errors.ROLE_EMPTY)
    if not auth.storable(r.name):
        raise MvccError(errors.KEY_TOO_LONG)
    if auth.get_role(ctx.txn, ctx.dbs, r.name) is not None:
        raise MvccError(errors.ROLE_ALREADY_EXIST)
    auth.put_role(ctx.txn, ctx.dbs, auth_pb2.Role(name=r.name.encode()))
    auth.commit_revision(ctx.txn, ctx.dbs)
    return pb.AuthRoleAddResponse()


def _role_delete(ctx: _Ctx, r: pb.AuthRoleDeleteRequest) -> pb.AuthRoleDeleteResponse:
    if auth.enabled(ctx.txn, ctx.dbs) and r.role == ROOT_ROLE:
        raise MvccError(errors.INVALID_AUTH_MGMT)
    _existing_role(ctx, r.role)
    auth.delete_role(ctx.txn, ctx.dbs, r.role)
    for user in auth.users(ctx.txn, ctx.dbs):  # the role leaves every user holding it
        if r.role in user.roles:
            user.roles.remove(r.role)
            auth.put_user(ctx.txn, ctx.dbs, user)
    auth.commit_revision(ctx.txn, ctx.dbs)
    return pb.AuthRoleDeleteResponse()


def _role_get(ctx: _Ctx, r: pb.AuthRoleGetRequest) -> pb.AuthRoleGetResponse:
    role = _existing_role(ctx, r.role)
    if r.role == ROOT_ROLE:
        return pb.AuthRoleGetResponse(perm=[auth.ROOT_PERMISSION])
    return pb.AuthRoleGetResponse(perm=list(role.keyPermission))


def _role_list(ctx: _Ctx, r: pb.AuthRoleListRequest) -> pb.AuthRoleListResponse:
    return pb.AuthRoleListResponse(roles=[x.name.decode() for x in auth.roles(ctx.txn, ctx.dbs)])


def valid_permission_range(key: bytes, range_end: bytes) -> bool:
    """etcd's isValidPermissionRange: a key, then nothing (one key), an end after it,
    or "\\x00" (every key from it on)."""
    return bool(key) and (not range_end or key < range_end or range_end == b"\x00")


def _role_grant_permission(ctx: _Ctx, r: pb.AuthRoleGrantPermissionRequest
                           ) -> pb.AuthRoleGrantPermissionResponse:
    if not r.HasField("perm"):
        raise MvccError(errors.PERMISSION_NOT_GIVEN)
    if not valid_permission_range(r.perm.key, r.perm.range_end):
        raise MvccError(errors.INVALID_AUTH_MGMT)
    role = _existing_role(ctx, r.name)
    for perm in role.keyPermission:
        if perm.key == r.perm.key and perm.range_end == r.perm.range_end:
            perm.permType = r.perm.permType  # the same range: its type is replaced
            break
    else:
        perms = sorted([*role.keyPermission, r.perm], key=lambda p: p.key)
        del role.keyPermission[:]
        role.keyPermission.extend(perms)
    auth.put_role(ctx.txn, ctx.dbs, role)
    auth.commit_revision(ctx.txn, ctx.dbs)
    return pb.AuthRoleGrantPermissionResponse()


def _role_revoke_permission(ctx: _Ctx, r: pb.AuthRoleRevokePermissionRequest
                            ) -> pb.AuthRoleRevokePermissionResponse:
    role = _existing_role(ctx, r.role)
    kept = [p for p in role.keyPermission if (p.key, p.range_end) != (r.key, r.range_end)]
    if len(kept) == len(role.keyPermission):
        raise MvccError(errors.PERMISSION_NOT_GRANTED)
    del role.keyPermission[:]
    role.keyPermission.extend(kept)
    auth.put_role(ctx.txn, ctx.dbs, role)
    auth.commit_revision(ctx.txn, ctx.dbs)
    return pb.AuthRoleRevokePermissionResponse()


_APPLY: dict[str, Callable[[_Ctx, Any], Any]] = {
    "auth_enable": _enable, "auth_disable": _disable, "auth_status": _status,
    "authenticate": _authenticate,
    "auth_user_add": _user_add, "auth_user_delete": _user_delete,
    "auth_user_change_password": _user_change_password,
    "auth_user_grant_role": _user_grant_role, "auth_user_revoke_role": _user_revoke_role,
    "auth_user_get": _user_get, "auth_user_list": _user_list,
    "auth_role_add": _role_add, "auth_role_delete": _role_delete, "auth_role_get": _role_get,
    "auth_role_list": _role_list, "auth_role_grant_permission": _role_grant_permission,
    "auth_role_revoke_permission": _role_revoke_permission,
}
FIELDS = frozenset(_APPLY)
