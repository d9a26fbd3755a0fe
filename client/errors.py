"""The one exception the client raises: a gRPC status code and etcd's message.

etcd's server puts its own error text (rpctypes, e.g. "etcdserver: mvcc: required
revision has been compacted") in the gRPC status details; callers and petcdctl show
that text unchanged, so a script that greps etcd's messages works against petcd too.
"""

from __future__ import annotations

import grpc

# What etcd's Go client reports when a deadline passes on the client side (its
# context's error text); petcdctl prints it exactly as etcdctl does.
DEADLINE_MESSAGE = "context deadline exceeded"


class EtcdError(Exception):
    """A failed call: `code` is the gRPC status code, `message` etcd's error text."""

    def __init__(self, code: grpc.StatusCode, message: str, detail: str = "") -> None:
        super().__init__(message if not detail else f"{message} ({detail})")
        self.code = code
        self.message = message
        self.detail = detail  # what the client saw locally (e.g. endpoints tried)


def from_rpc_error(exc: grpc.RpcError) -> EtcdError:
    code, details = exc.code(), exc.details() or ""
    if code == grpc.StatusCode.DEADLINE_EXCEEDED and not details.startswith("etcdserver:"):
        return EtcdError(code, DEADLINE_MESSAGE, details)
    return EtcdError(code, details)


def is_server_error(exc: grpc.RpcError) -> bool:
    """True if etcd itself answered (its rpctypes messages all start this way), False
    for a failure of the transport, where a request may never have left the client."""
    return (exc.details() or "").startswith("etcdserver:")
