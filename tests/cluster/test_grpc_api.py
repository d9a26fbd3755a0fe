"""etcd's gRPC API on a real 3-member cluster, spoken with grpcio: the same client URL
as the JSON gateway, etcd's status codes for bad requests (and nothing written), and
etcd's retryable error - never a silent success - when the leader dies mid-request."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.api.etcdserverpb import rpc_pb2_grpc as rpc

from .members import Cluster, b64, free_ports, running, wait_until

MAX_REQUEST_BYTES = 64 * 1024
OVERHEAD_BYTES = 512 * 1024  # gRPC's allowance above --max-request-bytes, as etcd's
RPC_TIMEOUT_S = 10.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with running(tmp_path_factory.mktemp("grpc"), 3,
                 ["--max-request-bytes", str(MAX_REQUEST_BYTES)]) as c:
        c.wait_leader()
        yield c


def _channel(member) -> grpc.Channel:
    return grpc.insecure_channel(f"127.0.0.1:{member.client_port}",
                                 options=[("grpc.max_send_message_length", -1)])


def _revision(member) -> int:
    with _channel(member) as ch:
        return rpc.KVStub(ch).Range(pb.RangeRequest(key=b"-"), timeout=RPC_TIMEOUT_S).header.revision


def _serves_grpc(member) -> bool:
    try:
        return _revision(member) >= 1
    except grpc.RpcError:
        return False


def test_grpc_and_json_on_the_same_url_agree(cluster):
    a, b = cluster.members[0], cluster.members[2]
    with _channel(a) as ch:
        put = rpc.KVStub(ch).Put(pb.PutRequest(key=b"same/k", value=b"v"), timeout=RPC_TIMEOUT_S)
    got = b.call("/v3/kv/range", {"key": b64("same/k")})
    assert int(got["kvs"][0]["mod_revision"]) == put.header.revision
    with _channel(b) as ch:
        resp = rpc.KVStub(ch).Range(pb.RangeRequest(key=b"same/k"), timeout=RPC_TIMEOUT_S)
    assert [(kv.key, kv.value, kv.mod_revision) for kv in resp.kvs] == [
        (b"same/k", b"v", put.header.revision)]
    assert resp.header.cluster_id == put.header.cluster_id != 0


def test_health_service_says_serving(cluster):
    with _channel(cluster.members[1]) as ch:
        resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(),
                                                    timeout=RPC_TIMEOUT_S)
    assert resp.status == health_pb2.HealthCheckResponse.SERVING


def test_malformed_protobuf_is_refused_and_changes_nothing(cluster):
    member = cluster.members[0]
    before = _revision(member)
    with _channel(member) as ch:
        raw = ch.unary_unary("/etcdserverpb.KV/Put")  # bytes in, bytes out
        with pytest.raises(grpc.RpcError) as err:
            raw(b"\x0a\xff\xff\xff\xff\x0f", timeout=RPC_TIMEOUT_S)  # a truncated key field
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert _revision(member) == before


def test_too_large_requests_get_etcds_statuses(cluster):
    member = cluster.members[1]
    before = _revision(member)
    with _channel(member) as ch:
        kv = rpc.KVStub(ch)
        with pytest.raises(grpc.RpcError) as err:  # over the limit: the server's check
            kv.Put(pb.PutRequest(key=b"big", value=b"x" * (MAX_REQUEST_BYTES + 1)),
                   timeout=RPC_TIMEOUT_S)
        assert (err.value.code(), err.value.details()) == (
            grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: request is too large")
        with pytest.raises(grpc.RpcError) as err:  # over gRPC's own limit
            kv.Put(pb.PutRequest(key=b"big", value=b"x" * (MAX_REQUEST_BYTES + OVERHEAD_BYTES)),
                   timeout=RPC_TIMEOUT_S)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert _revision(member) == before


def test_too_many_txn_ops_is_invalid_argument(cluster):
    member = cluster.members[2]
    before = _revision(member)
    ops = [pb.RequestOp(request_put=pb.PutRequest(key=f"ops/{i}".encode(), value=b"x"))
           for i in range(129)]
    with _channel(member) as ch, pytest.raises(grpc.RpcError) as err:
        rpc.KVStub(ch).Txn(pb.TxnRequest(success=ops), timeout=RPC_TIMEOUT_S)
    assert (err.value.code(), err.value.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: too many operations in txn request")
    assert _revision(member) == before


def test_unserved_methods_are_unimplemented(cluster):
    with _channel(cluster.members[0]) as ch:
        with pytest.raises(grpc.RpcError) as err:
            rpc.MaintenanceStub(ch).Downgrade(pb.DowngradeRequest(), timeout=RPC_TIMEOUT_S)
        assert (err.value.code(), err.value.details()) == (
            grpc.StatusCode.UNIMPLEMENTED, "method Downgrade not implemented")


def test_leader_killed_mid_write_gives_retryable_errors_never_silent_success(cluster):
    """Puts through a follower while the leader is SIGKILLed: each either succeeds
    (and is then readable) or fails with Unavailable; the killed member comes back."""
    leader = cluster.wait_leader()
    follower = next(m for m in cluster.members if m is not leader)
    acked: list[bytes] = []
    failures: list[grpc.StatusCode] = []
    stop = threading.Event()

    def write() -> None:
        with _channel(follower) as ch:
            kv = rpc.KVStub(ch)
            i = 0
            while not stop.is_set():
                key = f"loss/{i:05d}".encode()
                i += 1
                try:
                    kv.Put(pb.PutRequest(key=key, value=b"v"), timeout=RPC_TIMEOUT_S)
                    acked.append(key)
                except grpc.RpcError as err:
                    failures.append(err.code())

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert wait_until(lambda: len(acked) >= 20, 15)
        leader.kill()
        time.sleep(2.0)
        assert wait_until(lambda: len(acked) >= 40 and cluster.leader() is not None, 20)
    finally:
        stop.set()
        writer.join(RPC_TIMEOUT_S + 5)
    assert set(failures) <= {grpc.StatusCode.UNAVAILABLE}, failures
    with _channel(follower) as ch:
        resp = rpc.KVStub(ch).Range(pb.RangeRequest(key=b"loss/", range_end=b"loss0"),
                                    timeout=RPC_TIMEOUT_S)
    stored = {kv.key for kv in resp.kvs}
    assert set(acked) <= stored
    cluster.start(leader)
    assert wait_until(lambda: leader.count("loss/") >= len(acked), 30)


def test_listen_client_http_urls_moves_http_off_the_grpc_url(tmp_path):
    """etcd's --listen-client-http-urls: gRPC alone on the client URL, HTTP there."""
    [http_port] = free_ports(1)
    single = Cluster(tmp_path, 1, extra_args=[
        "--listen-client-http-urls", f"http://127.0.0.1:{http_port}"])
    single.start()
    try:
        member = single.members[0]
        assert wait_until(lambda: _serves_grpc(member), 20)
        with _channel(member) as ch:
            put = rpc.KVStub(ch).Put(pb.PutRequest(key=b"h", value=b"v"), timeout=RPC_TIMEOUT_S)
        body = json.dumps({"key": b64("h")}).encode()
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v3/kv/range", body,
                                    timeout=RPC_TIMEOUT_S) as resp:
            kvs = json.loads(resp.read())["kvs"]
        assert int(kvs[0]["mod_revision"]) == put.header.revision
        with pytest.raises((OSError, http.client.HTTPException)):  # gRPC only there now
            urllib.request.urlopen(f"{member.client_url}/v3/kv/range", body, timeout=5)
    finally:
        single.stop()
