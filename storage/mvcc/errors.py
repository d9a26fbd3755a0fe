"""Errors of the key-value state machine, with etcd's messages and gRPC codes.

The messages and codes are those of etcd's api/v3rpc/rpctypes/error.go, so the
gRPC layer maps an `MvccError` with `status(code, message)` and the JSON gateway
with the same pair: clients that match on etcd's strings keep working.
"""

from __future__ import annotations

from dataclasses import dataclass

# gRPC status code names (grpc.StatusCode member names).
INVALID_ARGUMENT = "INVALID_ARGUMENT"
OUT_OF_RANGE = "OUT_OF_RANGE"
RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
FAILED_PRECONDITION = "FAILED_PRECONDITION"
NOT_FOUND = "NOT_FOUND"
DATA_LOSS = "DATA_LOSS"
PERMISSION_DENIED = "PERMISSION_DENIED"
UNAUTHENTICATED = "UNAUTHENTICATED"


@dataclass(frozen=True, slots=True)
class ErrorKind:
    """One of etcd's client-visible errors: a gRPC code name and a message."""

    code: str
    message: str


EMPTY_KEY = ErrorKind(INVALID_ARGUMENT, "etcdserver: key is not provided")
KEY_NOT_FOUND = ErrorKind(INVALID_ARGUMENT, "etcdserver: key not found")
VALUE_PROVIDED = ErrorKind(INVALID_ARGUMENT, "etcdserver: value is provided")
LEASE_PROVIDED = ErrorKind(INVALID_ARGUMENT, "etcdserver: lease is provided")
LEASE_NOT_FOUND = ErrorKind(NOT_FOUND, "etcdserver: requested lease not found")
LEASE_EXISTS = ErrorKind(FAILED_PRECONDITION, "etcdserver: lease already exists")
LEASE_TTL_TOO_LARGE = ErrorKind(OUT_OF_RANGE, "etcdserver: too large lease TTL")
TOO_MANY_OPS = ErrorKind(INVALID_ARGUMENT, "etcdserver: too many operations in txn request")
DUPLICATE_KEY = ErrorKind(INVALID_ARGUMENT, "etcdserver: duplicate key given in txn request")
INVALID_SORT_OPTION = ErrorKind(INVALID_ARGUMENT, "etcdserver: invalid sort option")
COMPACTED = ErrorKind(OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted")
FUTURE_REV = ErrorKind(OUT_OF_RANGE, "etcdserver: mvcc: required revision is a future revision")
NO_SPACE = ErrorKind(RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded")
CORRUPT = ErrorKind(DATA_LOSS, "etcdserver: corrupt cluster")
# etcd has no key length limit below its request size limit; LMDB keys are at most
# 511 bytes, so petcd refuses longer keys with the message clients already know for
# oversized requests (see layout.MAX_KEY_BYTES).
KEY_TOO_LONG = ErrorKind(INVALID_ARGUMENT, "etcdserver: request is too large")
# Auth (rpctypes.ErrGRPC*): the apply half of etcd's authStore refuses with these.
ROOT_USER_NOT_EXIST = ErrorKind(FAILED_PRECONDITION, "etcdserver: root user does not exist")
ROOT_ROLE_NOT_EXIST = ErrorKind(FAILED_PRECONDITION, "etcdserver: root user does not have root role")
USER_ALREADY_EXIST = ErrorKind(FAILED_PRECONDITION, "etcdserver: user name already exists")
USER_EMPTY = ErrorKind(INVALID_ARGUMENT, "etcdserver: user name is empty")
USER_NOT_FOUND = ErrorKind(FAILED_PRECONDITION, "etcdserver: user name not found")
ROLE_ALREADY_EXIST = ErrorKind(FAILED_PRECONDITION, "etcdserver: role name already exists")
ROLE_NOT_FOUND = ErrorKind(FAILED_PRECONDITION, "etcdserver: role name not found")
ROLE_EMPTY = ErrorKind(INVALID_ARGUMENT, "etcdserver: role name is empty")
AUTH_FAILED = ErrorKind(INVALID_ARGUMENT,
                        "etcdserver: authentication failed, invalid user ID or password")
PERMISSION_NOT_GIVEN = ErrorKind(INVALID_ARGUMENT, "etcdserver: permission not given")
PERMISSION_DENIED_AUTH = ErrorKind(PERMISSION_DENIED, "etcdserver: permission denied")
ROLE_NOT_GRANTED = ErrorKind(FAILED_PRECONDITION, "etcdserver: role is not granted to the user")
PERMISSION_NOT_GRANTED = ErrorKind(FAILED_PRECONDITION,
                                   "etcdserver: permission is not granted to the role")
AUTH_NOT_ENABLED = ErrorKind(FAILED_PRECONDITION, "etcdserver: authentication is not enabled")
INVALID_AUTH_TOKEN = ErrorKind(UNAUTHENTICATED, "etcdserver: invalid auth token")
INVALID_AUTH_MGMT = ErrorKind(INVALID_ARGUMENT, "etcdserver: invalid auth management")
# etcd's ErrNoPasswordUser has no gRPC mapping: clients see its text with code Unknown.
NO_PASSWORD_USER = ErrorKind("UNKNOWN",
                             "auth: authentication failed, password was given for no password user")
AUTH_OLD_REVISION = ErrorKind(INVALID_ARGUMENT, "etcdserver: revision of auth store is old")


class MvccError(Exception):
    """A request the state machine refuses; nothing it would have written was kept,
    except for NO_SPACE answered to a write that was applied over quota (etcd's
    quotaApplierV3 applies it on every member, then answers the error)."""

    def __init__(self, kind: ErrorKind) -> None:
        super().__init__(kind.message)
        self.kind = kind

    @property
    def code(self) -> str:
        return self.kind.code

    @property
    def message(self) -> str:
        return self.kind.message

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MvccError) and other.kind == self.kind

    def __hash__(self) -> int:
        return hash(self.kind)

    def __repr__(self) -> str:
        return f"MvccError({self.kind.code}, {self.kind.message!r})"
