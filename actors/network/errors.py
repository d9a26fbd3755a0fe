"""etcd's client-visible errors as the JSON gateway shows them.

etcd v3.5 serves JSON through grpc-gateway v1: a handler's gRPC status becomes

    HTTP <status for the code>
    Content-Type: application/json
    {"error":"etcdserver: key is not provided","code":3,"message":"etcdserver: key is not provided"}

with `code` the gRPC code number and `error` == `message` (grpc-gateway's
DefaultHTTPError; `details` is empty and so omitted). The HTTP status is
grpc-gateway's HTTPStatusFromCode (`HTTP_STATUS` below): note that FailedPrecondition
and OutOfRange are 400, not 412/416, and ResourceExhausted is 429.

The messages and codes are etcd's (api/v3rpc/rpctypes/error.go); the store's own
errors (storage/mvcc/errors) already carry them and map through `from_mvcc`.
"""

from __future__ import annotations

import enum
import json

from petcd.storage.mvcc.errors import MvccError


class Code(enum.IntEnum):
    """gRPC status codes (google.golang.org/grpc/codes), numbered as on the wire."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


# grpc-gateway v1 runtime.HTTPStatusFromCode.
HTTP_STATUS: dict[Code, int] = {
    Code.OK: 200, Code.CANCELLED: 408, Code.UNKNOWN: 500, Code.INVALID_ARGUMENT: 400,
    Code.DEADLINE_EXCEEDED: 504, Code.NOT_FOUND: 404, Code.ALREADY_EXISTS: 409,
    Code.PERMISSION_DENIED: 403, Code.RESOURCE_EXHAUSTED: 429,
    Code.FAILED_PRECONDITION: 400, Code.ABORTED: 409, Code.OUT_OF_RANGE: 400,
    Code.UNIMPLEMENTED: 501, Code.INTERNAL: 500, Code.UNAVAILABLE: 503,
    Code.DATA_LOSS: 500, Code.UNAUTHENTICATED: 401,
}


class EtcdError(Exception):
    """A request refused with one of etcd's gRPC statuses; nothing was written."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]

    def body(self) -> bytes:
        """grpc-gateway's error body, field order as it marshals them."""
        return json.dumps({"error": self.message, "code": int(self.code),
                           "message": self.message}, separators=(",", ":")).encode()

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, EtcdError) and other.code == self.code
                and other.message == self.message)

    def __hash__(self) -> int:
        return hash((self.code, self.message))

    def __repr__(self) -> str:
        return f"EtcdError({self.code.name}, {self.message!r})"


def _e(code: Code, message: str) -> EtcdError:
    return EtcdError(code, message)


# rpctypes.ErrGRPC* that the network actor itself raises. Constants are templates:
# raise `copy()` of one, never the shared instance (tracebacks attach to it).
NO_LEADER = _e(Code.UNAVAILABLE, "etcdserver: no leader")
LEADER_CHANGED = _e(Code.UNAVAILABLE, "etcdserver: leader changed")
STOPPED = _e(Code.UNAVAILABLE, "etcdserver: server stopped")
TIMEOUT = _e(Code.UNAVAILABLE, "etcdserver: request timed out")
TOO_MANY_REQUESTS = _e(Code.RESOURCE_EXHAUSTED, "etcdserver: too many requests")
REQUEST_TOO_LARGE = _e(Code.INVALID_ARGUMENT, "etcdserver: request is too large")
NOT_CAPABLE = _e(Code.FAILED_PRECONDITION, "etcdserver: not capable")
NOT_LEADER = _e(Code.FAILED_PRECONDITION, "etcdserver: not leader")
BAD_LEADER_TRANSFEREE = _e(Code.FAILED_PRECONDITION, "etcdserver: bad leader transferee")
LEASE_NOT_FOUND = _e(Code.NOT_FOUND, "etcdserver: requested lease not found")
UNHEALTHY = _e(Code.UNAVAILABLE, "etcdserver: unhealthy cluster")
# Membership (etcd's rpctypes; membership.ErrIDRemoved answers MEMBER_NOT_FOUND too).
MEMBER_EXIST = _e(Code.FAILED_PRECONDITION, "etcdserver: member ID already exist")
PEER_URL_EXIST = _e(Code.FAILED_PRECONDITION, "etcdserver: Peer URLs already exists")
MEMBER_NOT_ENOUGH_STARTED = _e(Code.FAILED_PRECONDITION, "etcdserver: re-configuration "
                               "failed due to not enough started members")
MEMBER_BAD_URLS = _e(Code.INVALID_ARGUMENT, "etcdserver: given member URLs are invalid")
MEMBER_NOT_FOUND = _e(Code.NOT_FOUND, "etcdserver: member not found")
MEMBER_NOT_LEARNER = _e(Code.FAILED_PRECONDITION, "etcdserver: can only promote a learner member")
LEARNER_NOT_READY = _e(Code.FAILED_PRECONDITION, "etcdserver: can only promote a learner "
                       "member which is in sync with leader")
TOO_MANY_LEARNERS = _e(Code.FAILED_PRECONDITION, "etcdserver: too many learner members in cluster")
# etcdserver.ErrTimeoutLeaderTransfer has no gRPC mapping in v3rpc (togRPCError), so
# clients see it with code Unknown.
TIMEOUT_LEADER_TRANSFER = _e(Code.UNKNOWN,
                             "etcdserver: request timed out, leader transfer took too long")

# Auth refusals the network actor answers itself, before any proposal (etcd's
# CheckPassword and AuthInfoFromCtx); the apply's come through from_mvcc.
AUTH_FAILED = _e(Code.INVALID_ARGUMENT,
                 "etcdserver: authentication failed, invalid user ID or password")
# etcd's auth.ErrNoPasswordUser has no gRPC mapping: clients see its text as Unknown.
NO_PASSWORD_USER = _e(Code.UNKNOWN,
                      "auth: authentication failed, password was given for no password user")
# etcd's auth.ErrVerifyOnly (--auth-token jwt with a pub-key alone), unmapped too.
VERIFY_ONLY = _e(Code.UNKNOWN, "auth: token signing attempted with verify-only key")
AUTH_NOT_ENABLED = _e(Code.FAILED_PRECONDITION, "etcdserver: authentication is not enabled")
INVALID_AUTH_TOKEN = _e(Code.UNAUTHENTICATED, "etcdserver: invalid auth token")
AUTH_OLD_REVISION = _e(Code.INVALID_ARGUMENT, "etcdserver: revision of auth store is old")
PERMISSION_DENIED = _e(Code.PERMISSION_DENIED, "etcdserver: permission denied")
USER_EMPTY = _e(Code.INVALID_ARGUMENT, "etcdserver: user name is empty")
USER_NOT_FOUND = _e(Code.FAILED_PRECONDITION, "etcdserver: user name not found")

# The raft core's ProposalDropped reasons (actors/raft/core.py), as etcd reports the
# same situations. A client retries Unavailable; etcd's own raft would answer a
# dropped proposal with "raft proposal dropped" (Unknown), which clients do not retry.
_DROPPED: dict[str, EtcdError] = {
    "no leader": NO_LEADER,
    "leader transfer in progress": LEADER_CHANGED,
    "too many pending reads": TOO_MANY_REQUESTS,
    "this member was removed from the cluster": STOPPED,
    # etcd's raft turns such a change into an empty entry, and its proposer times out.
    "a configuration change is already pending": TIMEOUT,
}


def copy(err: EtcdError) -> EtcdError:
    return EtcdError(err.code, err.message)


def from_dropped(reason: str) -> EtcdError:
    """The error for a proposal or read the raft core refused (DROPPED)."""
    return copy(_DROPPED.get(reason, LEADER_CHANGED))


def from_code_name(code_name: str, message: str) -> EtcdError:
    """An error the apply actor answered (RESPONSES): gRPC code name and message."""
    try:
        code = Code[code_name]
    except KeyError:
        code = Code.UNKNOWN
    return EtcdError(code, message)


def from_mvcc(err: MvccError) -> EtcdError:
    return from_code_name(err.code, err.message)


def invalid_argument(message: str) -> EtcdError:
    """What grpc-gateway answers for a body it cannot decode into the request."""
    return EtcdError(Code.INVALID_ARGUMENT, message)
