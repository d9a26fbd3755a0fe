"""The lease calls the cluster tests make, over gRPC to one member (no client library:
the tests see exactly what the server answers)."""

from __future__ import annotations

import grpc

from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.api.etcdserverpb import rpc_pb2_grpc as rpc

from .members import Member

RPC_TIMEOUT_S = 10.0


def channel(member: Member) -> grpc.Channel:
    return grpc.insecure_channel(f"127.0.0.1:{member.client_port}")


def lease_stub(member: Member) -> rpc.LeaseStub:
    return rpc.LeaseStub(channel(member))


def kv_stub(member: Member) -> rpc.KVStub:
    return rpc.KVStub(channel(member))


def follower_of(cluster) -> Member:  # type: ignore[no-untyped-def]
    leader = cluster.wait_leader()
    return next(m for m in cluster.members if m is not leader)


def grant(member: Member, ttl: int, lease_id: int = 0) -> int:
    return lease_stub(member).LeaseGrant(pb.LeaseGrantRequest(TTL=ttl, ID=lease_id),
                                         timeout=RPC_TIMEOUT_S).ID


def keep_alive(member: Member, lease_id: int) -> int:
    requests = iter([pb.LeaseKeepAliveRequest(ID=lease_id)])
    [resp] = list(lease_stub(member).LeaseKeepAlive(requests, timeout=RPC_TIMEOUT_S))
    assert resp.ID == lease_id
    return resp.TTL


def time_to_live(member: Member, lease_id: int,
                 keys: bool = False) -> pb.LeaseTimeToLiveResponse:
    return lease_stub(member).LeaseTimeToLive(
        pb.LeaseTimeToLiveRequest(ID=lease_id, keys=keys), timeout=RPC_TIMEOUT_S)


def revoke(member: Member, lease_id: int) -> int:
    return lease_stub(member).LeaseRevoke(pb.LeaseRevokeRequest(ID=lease_id),
                                          timeout=RPC_TIMEOUT_S).header.revision


def put(member: Member, key: bytes, lease_id: int = 0) -> int:
    return kv_stub(member).Put(pb.PutRequest(key=key, value=b"v", lease=lease_id),
                               timeout=RPC_TIMEOUT_S).header.revision


def exists(member: Member, key: bytes) -> bool:
    return bool(kv_stub(member).Range(pb.RangeRequest(key=key), timeout=RPC_TIMEOUT_S).kvs)


def member_id(member: Member) -> int:
    return int(member.status()["header"]["member_id"])


def create_revision(member: Member, key: bytes) -> int:
    [kv] = kv_stub(member).Range(pb.RangeRequest(key=key), timeout=RPC_TIMEOUT_S).kvs
    return kv.create_revision


def move_leader(leader: Member, target: Member) -> None:
    rpc.MaintenanceStub(channel(leader)).MoveLeader(
        pb.MoveLeaderRequest(targetID=member_id(target)), timeout=RPC_TIMEOUT_S)
