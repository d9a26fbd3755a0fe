"""The auth tests' view of one member: raw gRPC stubs that carry a chosen token (or
none), so a test sees exactly what the server answers to whom, and the setup of users
and roles (tests/cluster/test_rbac_matrix.py, test_auth_bad_input.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest

from petcd.api.authpb import auth_pb2
from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.api.etcdserverpb import rpc_pb2_grpc as rpc
from petcd.api.v3electionpb import v3election_pb2_grpc as election_rpc
from petcd.api.v3lockpb import v3lock_pb2_grpc as lock_rpc

from .members import Member

RPC_TIMEOUT_S = 10.0
PERMISSION_DENIED = "etcdserver: permission denied"
USER_EMPTY = "etcdserver: user name is empty"
INVALID_TOKEN = "etcdserver: invalid auth token"
AUTH_FAILED = "etcdserver: authentication failed, invalid user ID or password"
ROOT_PASSWORD = "rootpw"


class Api:
    """Every etcd service of one member, each call made with `token` (None: none)."""

    def __init__(self, channel: grpc.Channel, token: str | None) -> None:
        self.token = token
        self.kv = rpc.KVStub(channel)
        self.lease = rpc.LeaseStub(channel)
        self.watch = rpc.WatchStub(channel)
        self.maintenance = rpc.MaintenanceStub(channel)
        self.cluster = rpc.ClusterStub(channel)
        self.auth = rpc.AuthStub(channel)
        self.lock = lock_rpc.LockStub(channel)
        self.election = election_rpc.ElectionStub(channel)

    @property
    def opts(self) -> dict[str, Any]:
        """The keyword arguments of every call: the token, and a bound on the wait."""
        metadata = (("token", self.token),) if self.token is not None else None
        return {"metadata": metadata, "timeout": RPC_TIMEOUT_S}

    def get(self, key: bytes) -> bytes | None:
        kvs = self.kv.Range(pb.RangeRequest(key=key), **self.opts).kvs
        return kvs[0].value if kvs else None

    def count(self, key: bytes, range_end: bytes) -> int:
        return self.kv.Range(pb.RangeRequest(key=key, range_end=range_end, count_only=True),
                             **self.opts).count


def channel_to(member: Member) -> grpc.Channel:
    return grpc.insecure_channel(f"127.0.0.1:{member.client_port}")


def authenticate(channel: grpc.Channel, name: str, password: str) -> str:
    return rpc.AuthStub(channel).Authenticate(
        pb.AuthenticateRequest(name=name, password=password), timeout=RPC_TIMEOUT_S).token


def refusal(call: Callable[[], Any]) -> str:
    """What the server answered a call it refused (the gRPC status message)."""
    with pytest.raises(grpc.RpcError) as err:
        call()
    return str(err.value.details())


def add_user(api: Api, name: str, password: str, *roles: str) -> None:
    api.auth.UserAdd(pb.AuthUserAddRequest(name=name, password=password), **api.opts)
    for role in roles:
        api.auth.UserGrantRole(pb.AuthUserGrantRoleRequest(user=name, role=role), **api.opts)


def add_role(api: Api, name: str, prefix: bytes | None = None,
             perm: int = auth_pb2.Permission.READ) -> None:
    """A role, with `perm` on every key starting with `prefix` if given."""
    api.auth.RoleAdd(pb.AuthRoleAddRequest(name=name), **api.opts)
    if prefix is not None:
        permission = auth_pb2.Permission(permType=perm, key=prefix, range_end=prefix_end(prefix))
        api.auth.RoleGrantPermission(pb.AuthRoleGrantPermissionRequest(
            name=name, perm=permission), **api.opts)


def enable_auth(api: Api) -> None:
    """The user root with the role root, then auth on (etcd's own order of steps)."""
    add_role(api, "root")
    add_user(api, "root", ROOT_PASSWORD, "root")
    api.auth.AuthEnable(pb.AuthEnableRequest(), **api.opts)


def prefix_end(prefix: bytes) -> bytes:
    """clientv3.GetPrefixRangeEnd for the printable prefixes of these tests."""
    assert prefix and prefix[-1] < 0xFF, prefix
    return prefix[:-1] + bytes([prefix[-1] + 1])
