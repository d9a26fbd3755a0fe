"""Traced writes (actors/network/trace.py) on a real 3-member cluster: a client that
asks gets every stage's time, from the leader and from a follower, over gRPC and the
JSON gateway; a client that does not ask gets nothing extra."""

from __future__ import annotations

import json
import time
import urllib.request

import grpc
import pytest

from petcd.actors.network.trace import STAGES, decode
from petcd.api.etcdserverpb import rpc_pb2 as pb

from .lease_calls import RPC_TIMEOUT_S, follower_of, kv_stub
from .members import Member, b64, running


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with running(tmp_path_factory.mktemp("trace"), 3) as c:
        c.wait_leader()
        yield c


def _traced_put(member: Member, key: bytes) -> tuple[dict[str, int], float]:
    started = time.monotonic()
    _, call = kv_stub(member).Put.with_call(
        pb.PutRequest(key=key, value=b"v"), timeout=RPC_TIMEOUT_S,
        metadata=(("petcd-trace", "1"),))
    took_us = (time.monotonic() - started) * 1e6
    [text] = [v for k, v in call.trailing_metadata() if k == "petcd-trace"]
    return decode(text), took_us


@pytest.mark.parametrize("role", ["leader", "follower"])
def test_a_traced_put_answers_every_stage_in_order(cluster, role):
    member = cluster.wait_leader() if role == "leader" else follower_of(cluster)
    stamps, took_us = _traced_put(member, f"traced/{role}".encode())
    # `persisted` is missing when the others' copies committed the entry first
    assert [s for s in STAGES if s != "persisted"] == [s for s in stamps if s != "persisted"]
    assert stamps["arrived"] == 0 and stamps["returned"] <= took_us
    order = [s for s in STAGES if s in stamps]
    for earlier, later in zip(order, order[1:]):
        assert stamps[earlier] <= stamps[later], (earlier, later, stamps)


def test_the_gateway_traces_when_asked_and_an_untraced_put_carries_nothing(cluster):
    member = follower_of(cluster)
    request = urllib.request.Request(
        f"{member.client_url}/v3/kv/put", method="POST",
        data=json.dumps({"key": b64("traced/http"), "value": b64("v")}).encode(),
        headers={"Petcd-Trace": "1"})
    with urllib.request.urlopen(request, timeout=RPC_TIMEOUT_S) as resp:
        assert json.loads(resp.read())["header"]["revision"]
        stamps = decode(resp.headers["Petcd-Trace"])
        assert {"arrived", "proposed", "committed", "applied", "responded",
                "returned"} <= set(stamps)
    plain = urllib.request.Request(
        f"{member.client_url}/v3/kv/put", method="POST",
        data=json.dumps({"key": b64("plain/http"), "value": b64("v")}).encode())
    with urllib.request.urlopen(plain, timeout=RPC_TIMEOUT_S) as resp:
        assert "Petcd-Trace" not in resp.headers
    _, call = kv_stub(member).Put.with_call(pb.PutRequest(key=b"plain/grpc", value=b"v"),
                                            timeout=RPC_TIMEOUT_S)
    assert not [k for k, _ in call.trailing_metadata() or () if k == "petcd-trace"]


def test_a_refused_traced_write_gets_etcds_error(cluster):
    with pytest.raises(grpc.RpcError) as err:
        kv_stub(cluster.wait_leader()).Put(pb.PutRequest(key=b"", value=b"v"),
                                           timeout=RPC_TIMEOUT_S,
                                           metadata=(("petcd-trace", "1"),))
    assert err.value.details() == "etcdserver: key is not provided"
