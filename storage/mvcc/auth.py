"""The auth records: users, roles, the enabled flag, the auth revision, simple tokens.

Reads and writes of the four auth_* databases (layout.py documents their bytes) over
one LMDB transaction; etcd's rules for changing them are auth_requests.py's. Both the
apply actor (writing, inside its batch transaction) and the network actor (reading:
who holds a token, what may a user do) use these.
"""

from __future__ import annotations

from typing import TypeAlias

import lmdb

from petcd.api.authpb import auth_pb2

from . import layout
from .env import Databases

ROOT_USER = "root"
ROOT_ROLE = "root"
# What RoleGet answers for the root role (etcd's rootPerm): read and write every key.
ROOT_PERMISSION = auth_pb2.Permission(permType=auth_pb2.Permission.READWRITE, key=b"",
                                      range_end=b"\x00")
_TOKEN_INDEX_BYTES = 8

Txn: TypeAlias = "lmdb.Transaction[bytes]"


def enabled(txn: Txn, dbs: Databases) -> bool:
    return txn.get(layout.AUTH_ENABLED, db=dbs.auth) == b"\x01"


def set_enabled(txn: Txn, dbs: Databases, on: bool) -> None:
    txn.put(layout.AUTH_ENABLED, b"\x01" if on else b"\x00", db=dbs.auth)


def revision(txn: Txn, dbs: Databases) -> int:
    raw = txn.get(layout.AUTH_REVISION, db=dbs.auth)
    return layout.AUTH_INITIAL_REVISION if raw is None else layout.U64.unpack(raw)[0]


def commit_revision(txn: Txn, dbs: Databases) -> int:
    """etcd's commitRevision: every change of users or roles moves it, so a request
    checked against an older state can be told apart (AUTH_OLD_REVISION)."""
    new = revision(txn, dbs) + 1
    txn.put(layout.AUTH_REVISION, layout.U64.pack(new), db=dbs.auth)
    return new


def storable(name: str) -> bool:
    """Whether a user or role name fits an LMDB key (layout.MAX_KEY_BYTES): a longer
    one is never stored, so never found, and adding it is refused."""
    return 0 < len(name.encode()) <= layout.MAX_KEY_BYTES


def get_user(txn: Txn, dbs: Databases, name: str) -> auth_pb2.User | None:
    raw = txn.get(name.encode(), db=dbs.auth_users) if storable(name) else None
    return None if raw is None else auth_pb2.User.FromString(raw)


def put_user(txn: Txn, dbs: Databases, user: auth_pb2.User) -> None:
    assert user.name and list(user.roles) == sorted(set(user.roles)), user
    txn.put(user.name, user.SerializeToString(), db=dbs.auth_users)


def delete_user(txn: Txn, dbs: Databases, name: str) -> None:
    assert txn.delete(name.encode(), db=dbs.auth_users), name


def users(txn: Txn, dbs: Databases) -> list[auth_pb2.User]:
    """Every user, in name byte order (etcd's UnsafeGetAllUsers)."""
    with txn.cursor(db=dbs.auth_users) as cur:
        return [auth_pb2.User.FromString(raw) for _, raw in cur]


def get_role(txn: Txn, dbs: Databases, name: str) -> auth_pb2.Role | None:
    raw = txn.get(name.encode(), db=dbs.auth_roles) if storable(name) else None
    return None if raw is None else auth_pb2.Role.FromString(raw)


def put_role(txn: Txn, dbs: Databases, role: auth_pb2.Role) -> None:
    keys = [p.key for p in role.keyPermission]
    assert role.name and keys == sorted(keys), role
    txn.put(role.name, role.SerializeToString(), db=dbs.auth_roles)


def delete_role(txn: Txn, dbs: Databases, name: str) -> None:
    assert txn.delete(name.encode(), db=dbs.auth_roles), name


def roles(txn: Txn, dbs: Databases) -> list[auth_pb2.Role]:
    with txn.cursor(db=dbs.auth_roles) as cur:
        return [auth_pb2.Role.FromString(raw) for _, raw in cur]


def has_root_role(user: auth_pb2.User) -> bool:
    return ROOT_ROLE in user.roles


def permissions(txn: Txn, dbs: Databases, name: str) -> list[auth_pb2.Permission]:
    """The key permissions of every role a user holds (root's: every key), for the
    checks of KV requests; [] for an unknown user."""
    user = get_user(txn, dbs, name)
    if user is None:
        return []
    if has_root_role(user):
        return [ROOT_PERMISSION]
    found: list[auth_pb2.Permission] = []
    for role_name in user.roles:
        role = get_role(txn, dbs, role_name)
        if role is not None:  # deleting a role revokes it from every user: always found
            found.extend(role.keyPermission)
    return found


# -- simple tokens ---------------------------------------------------------------------


def add_token(txn: Txn, dbs: Databases, token: str, index: int, user: str) -> None:
    """Keep a token assigned by the Authenticate entry at `index`; past
    MAX_SIMPLE_TOKENS the oldest one goes (memory is bounded on every member alike)."""
    assert index > 0 and user and token.endswith(f".{index}"), (token, index)
    packed = layout.U64.pack(index)
    assert txn.put(layout.TOKEN_PREFIX + token.encode(), packed + user.encode(),
                   db=dbs.auth_tokens, overwrite=False), f"token {token} assigned twice"
    txn.put(layout.TOKEN_ORDER_PREFIX + packed, token.encode(), db=dbs.auth_tokens)
    if txn.stat(dbs.auth_tokens)["entries"] > 2 * layout.MAX_SIMPLE_TOKENS:
        _drop_oldest_token(txn, dbs)


def _drop_oldest_token(txn: Txn, dbs: Databases) -> None:
    with txn.cursor(db=dbs.auth_tokens) as cur:
        assert cur.set_range(layout.TOKEN_ORDER_PREFIX), "an order entry per token"
        order_key, token = cur.item()
    txn.delete(order_key, db=dbs.auth_tokens)
    assert txn.delete(layout.TOKEN_PREFIX + token, db=dbs.auth_tokens), token


def token_user(txn: Txn, dbs: Databases, token: str) -> str | None:
    """The user a simple token was assigned to, if it is still valid."""
    try:
        key = layout.TOKEN_PREFIX + token.encode()
    except UnicodeEncodeError:
        # An HTTP header's bytes that are no UTF-8 (aiohttp keeps them as surrogates):
        # junk, as no token the store made (ASCII letters and digits) looks like that.
        return None
    if len(key) > layout.MAX_KEY_BYTES:
        return None  # a client's junk: no token is that long
    raw = txn.get(key, db=dbs.auth_tokens)
    return None if raw is None else raw[_TOKEN_INDEX_BYTES:].decode()


def drop_user_tokens(txn: Txn, dbs: Databases, user: str) -> None:
    """etcd's invalidateUser: a deleted user's or changed password's tokens die."""
    doomed: list[tuple[bytes, bytes]] = []
    with txn.cursor(db=dbs.auth_tokens) as cur:
        if cur.set_range(layout.TOKEN_PREFIX):
            for key, value in cur:
                if not key.startswith(layout.TOKEN_PREFIX):
                    break
                if value[_TOKEN_INDEX_BYTES:].decode() == user:
                    doomed.append((key, value[:_TOKEN_INDEX_BYTES]))
    for key, index in doomed:
        txn.delete(key, db=dbs.auth_tokens)
        txn.delete(layout.TOKEN_ORDER_PREFIX + index, db=dbs.auth_tokens)


def drop_all_tokens(txn: Txn, dbs: Databases) -> None:
    """AuthDisable: etcd's tokenProvider.disable forgets every token."""
    txn.drop(dbs.auth_tokens, delete=False)
