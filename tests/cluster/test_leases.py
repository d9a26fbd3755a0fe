"""Leases, locks and elections on a real 3-member cluster, over gRPC: keep-alives
through followers, expiry deleting every key in one revision, the leader killed or
stopped while a client keeps its lease alive, etcd's answers to bad requests; Lock's
queue and fencing revisions, and Election's campaign, observe, proclaim and resign.
Leader changes, mass expiry, restarts and snapshots: test_lease_durability.py."""

from __future__ import annotations

import os
import signal
import threading
import time

import grpc
import msgpack
import pytest

from petcd.actors.network import leader as leader_link
from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.api.mvccpb.kv_pb2 import Event
from petcd.api.v3electionpb import v3election_pb2 as epb
from petcd.api.v3electionpb import v3election_pb2_grpc as erpc
from petcd.api.v3lockpb import v3lock_pb2 as lpb
from petcd.api.v3lockpb import v3lock_pb2_grpc as lrpc

from .lease_calls import (RPC_TIMEOUT_S, channel, create_revision, exists, follower_of, grant,
                          keep_alive, lease_stub, put, time_to_live)
from .members import Member, running, wait_until
from .watch_streams import RawWatch

CHECKPOINT_INTERVAL = "2s"
EXPIRY_TTL_S = 2


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with running(tmp_path_factory.mktemp("leases"), 3,
                 ["--experimental-lease-checkpoint-interval", CHECKPOINT_INTERVAL]) as c:
        c.wait_leader()
        yield c


class KeepingAlive:
    """Keeps a lease alive every `every_s` through the given members in turn, on a
    thread, counting the answers with TTL > 0 (as a client's keep-alive loop)."""

    def __init__(self, members: list[Member], lease_id: int, every_s: float) -> None:
        self.members, self.lease_id, self.every_s = members, lease_id, every_s
        self.renewed = 0
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        turn = 0
        while not self._stop.wait(self.every_s):
            member = self.members[turn % len(self.members)]
            turn += 1
            if not member.alive:
                continue
            try:
                ttl = keep_alive(member, self.lease_id)
            except grpc.RpcError:
                continue  # that member is down or has no leader: the next one
            self.lost = self.lost or ttl <= 0
            self.renewed += ttl > 0

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def test_grant_keep_alive_and_time_to_live_through_a_follower(cluster):
    follower = follower_of(cluster)
    lease_id = grant(follower, 30)
    put(follower, b"ka/a", lease_id)
    put(follower, b"ka/b", lease_id)
    assert keep_alive(follower, lease_id) == 30
    ttl = time_to_live(follower, lease_id, keys=True)
    assert (ttl.ID, ttl.grantedTTL, sorted(ttl.keys)) == (lease_id, 30, [b"ka/a", b"ka/b"])
    assert 28 <= ttl.TTL <= 30
    listed = lease_stub(follower).LeaseLeases(pb.LeaseLeasesRequest(), timeout=RPC_TIMEOUT_S)
    assert lease_id in [status.ID for status in listed.leases]
    with RawWatch(follower.client_port) as w:
        w.created(b"ka/", b"ka0")
        revoked = lease_stub(follower).LeaseRevoke(pb.LeaseRevokeRequest(ID=lease_id),
                                               timeout=RPC_TIMEOUT_S)
        resp = w.next()
        assert [(e.type, e.kv.key) for e in resp.events] == [
            (Event.DELETE, b"ka/a"), (Event.DELETE, b"ka/b")]
        assert {e.kv.mod_revision for e in resp.events} == {revoked.header.revision}
    assert not exists(follower, b"ka/a")


def test_bad_lease_requests_get_etcds_answers(cluster):
    member = cluster.members[0]
    assert keep_alive(member, 0x7777) == 0
    assert time_to_live(member, 0x7777).TTL == -1
    cases = [
        (lambda: lease_stub(member).LeaseRevoke(pb.LeaseRevokeRequest(ID=0x7777),
                                            timeout=RPC_TIMEOUT_S),
         grpc.StatusCode.NOT_FOUND, "etcdserver: requested lease not found"),
        (lambda: grant(member, 9_000_000_001),
         grpc.StatusCode.OUT_OF_RANGE, "etcdserver: too large lease TTL"),
        (lambda: put(member, b"bad/lease", 0x7777),
         grpc.StatusCode.NOT_FOUND, "etcdserver: requested lease not found"),
    ]
    lease_id = grant(member, 30)
    cases.append((lambda: grant(member, 30, lease_id),
                  grpc.StatusCode.FAILED_PRECONDITION, "etcdserver: lease already exists"))
    for call, code, message in cases:
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert (err.value.code(), err.value.details()) == (code, message)
    assert not exists(member, b"bad/lease")
    # A TTL below the minimum (ceil(1.5 x election timeout)), negative ones too, is
    # raised to it, as etcd's lessor does.
    assert grant(member, 1, 0x1234) == 0x1234
    assert grant(member, -5, 0x1235) == 0x1235
    assert time_to_live(member, 0x1234).grantedTTL == time_to_live(member, 0x1235).grantedTTL >= 1


def _forward(member: Member, batches: list[bytes]) -> list[list[int]]:
    """Batches of keep-alives sent as a member forwards them (leader.py), raw bytes."""
    method = channel(member).stream_stream(leader_link.FORWARD_METHOD,
                                           request_serializer=lambda data: data,
                                           response_deserializer=leader_link.unpack_ids)
    return list(method(iter(batches), timeout=RPC_TIMEOUT_S))


def test_forwarded_keep_alive_batches_are_answered_by_the_leader_alone(cluster):
    leader = cluster.wait_leader()
    lease_id = grant(leader, 30)
    batches = [leader_link.pack_ids([lease_id, 0x7778]), leader_link.pack_ids([lease_id])]
    assert _forward(leader, batches) == [[30, 0], [30]]
    with pytest.raises(grpc.RpcError) as err:  # a follower would pass them on again
        _forward(follower_of(cluster), batches)
    assert (err.value.code(), err.value.details()) == (grpc.StatusCode.UNAVAILABLE,
                                                       "etcdserver: leader changed")
    too_many = list(range(1, leader_link.MAX_BATCH + 2))
    for bad in (b"\xc1", msgpack.packb([]), msgpack.packb(["x"]), msgpack.packb([True]),
                msgpack.packb([1 << 63]), msgpack.packb(too_many), msgpack.packb({1: 2})):
        with pytest.raises(grpc.RpcError) as err:
            _forward(leader, [bad])
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
        assert err.value.details().startswith("keep-alive batch: ")


def test_an_unrenewed_lease_expires_and_its_keys_go_in_one_revision(cluster):
    """Within TTL + 1 s of the grant's answer, as the issue asks (2.03-2.61 s measured
    for a TTL of 2 s on a busy 2-core machine: the deadline, the lessor's 0.5 s look,
    the revoke's commit and the watch)."""
    follower = follower_of(cluster)
    with RawWatch(follower.client_port) as w:
        w.created(b"exp/", b"exp0")
        lease_id = grant(follower, EXPIRY_TTL_S)
        granted_at = time.monotonic()
        for i in range(5):
            put(follower, b"exp/%d" % i, lease_id)
        w.events(5)
        resp = w.next(timeout_s=10)
        lived_s = time.monotonic() - granted_at
        assert EXPIRY_TTL_S - 1 <= lived_s <= EXPIRY_TTL_S + 1, lived_s
        assert [e.type for e in resp.events] == [Event.DELETE] * 5
        assert len({e.kv.mod_revision for e in resp.events}) == 1
    assert time_to_live(follower, lease_id).TTL == -1


def test_keep_alives_hold_a_lease_over_many_ttls_and_a_killed_leader(cluster):
    leader = cluster.wait_leader()
    others = [m for m in cluster.members if m is not leader]
    lease_id = grant(others[0], 2)
    put(others[0], b"held", lease_id)
    keeper = KeepingAlive(others, lease_id, every_s=0.5)
    try:
        time.sleep(3)
        leader.kill()
        assert wait_until(lambda: cluster.leader() not in (None, leader), 15)
        time.sleep(4)  # two TTLs after the kill
        assert exists(others[0], b"held")
        assert not keeper.lost and keeper.renewed > 8
    finally:
        keeper.stop()
        cluster.start(leader)
        cluster.wait_leader()


def test_a_stopped_leader_revokes_nothing_once_continued(tmp_path):
    """On a cluster just started: the leader may be stopped before the members'
    client URLs (which keep-alives are forwarded to) are published through it."""
    with running(tmp_path, 3) as fresh:
        _keep_alive_while_the_leader_is_stopped(fresh)


def _keep_alive_while_the_leader_is_stopped(cluster) -> None:  # type: ignore[no-untyped-def]
    leader = cluster.wait_leader()
    others = [m for m in cluster.members if m is not leader]
    lease_id = grant(others[0], 3)
    put(others[0], b"stopped/k", lease_id)
    keeper = KeepingAlive(others, lease_id, every_s=0.5)
    os.killpg(leader.proc.pid, signal.SIGSTOP)
    try:
        time.sleep(6)  # twice the TTL: the old leader's deadlines all pass
        assert cluster.leader() is not leader
    finally:
        os.killpg(leader.proc.pid, signal.SIGCONT)
    time.sleep(3)
    keeper.stop()
    assert exists(others[1], b"stopped/k") and not keeper.lost
    assert not [e for e in leader.log_events("failed to revoke an expired lease; retrying")]


# -- Lock and Election ---------------------------------------------------------------

def _lock(member: Member, name: bytes, lease_id: int, timeout_s: float = RPC_TIMEOUT_S
          ) -> lpb.LockResponse:
    return lrpc.LockStub(channel(member)).Lock(lpb.LockRequest(name=name, lease=lease_id),
                                                timeout=timeout_s)


def test_lock_queue_fencing_and_a_dead_holder(cluster):
    a, b, c = cluster.members
    first, second, third = grant(a, 30), grant(b, 2), grant(c, 30)
    held = _lock(a, b"mutex", first)
    assert held.key == b"mutex/" + format(first, "x").encode()
    fencing_a = create_revision(a, held.key)
    got: dict[str, lpb.LockResponse] = {}
    waiter = threading.Thread(target=lambda: got.update(b=_lock(b, b"mutex", second)))
    waiter.start()
    time.sleep(1)
    assert "b" not in got, "a second holder while the first holds the lock"
    lrpc.LockStub(channel(a)).Unlock(lpb.UnlockRequest(key=held.key), timeout=RPC_TIMEOUT_S)
    waiter.join(RPC_TIMEOUT_S)
    fencing_b = create_revision(b, got["b"].key)
    assert fencing_b > fencing_a
    # b's holder dies (its lease is not kept alive): c gets the lock once it expires
    started = time.monotonic()
    taken = _lock(c, b"mutex", third)
    assert time.monotonic() - started < 2 + 2
    assert create_revision(c, taken.key) > fencing_b


def test_a_lock_on_an_unknown_lease_is_refused(cluster):
    """With code Unknown, as etcd's lock server passes on its client's errors (an
    expired lease: tests/compat/test_lease_lock_election_gateway.py)."""
    with pytest.raises(grpc.RpcError) as err:
        _lock(cluster.members[0], b"nolease", 0x5555)
    assert (err.value.code(), err.value.details()) == (
        grpc.StatusCode.UNKNOWN, "etcdserver: requested lease not found")


def _collect(observer, observed: list[bytes]) -> None:  # type: ignore[no-untyped-def]
    try:
        for resp in observer:
            observed.append(resp.kv.value)
    except grpc.RpcError:
        pass  # canceled by the test once it has seen enough


def test_election_campaign_observe_proclaim_resign(cluster):
    a, b, _ = cluster.members
    election = erpc.ElectionStub(channel(a))
    lease_a, lease_b = grant(a, 30), grant(b, 30)
    observed: list[bytes] = []
    observer = election.Observe(epb.LeaderRequest(name=b"vote"), timeout=30)
    reader = threading.Thread(target=_collect, args=(observer, observed), daemon=True)
    reader.start()
    leader_a = election.Campaign(epb.CampaignRequest(name=b"vote", lease=lease_a, value=b"a"),
                                 timeout=RPC_TIMEOUT_S).leader
    assert election.Leader(epb.LeaderRequest(name=b"vote"), timeout=RPC_TIMEOUT_S).kv.value == b"a"
    got: dict[str, epb.LeaderKey] = {}
    contender = threading.Thread(target=lambda: got.update(b=erpc.ElectionStub(channel(b)).Campaign(
        epb.CampaignRequest(name=b"vote", lease=lease_b, value=b"b"), timeout=RPC_TIMEOUT_S).leader))
    contender.start()
    election.Proclaim(epb.ProclaimRequest(leader=leader_a, value=b"a2"), timeout=RPC_TIMEOUT_S)
    time.sleep(0.5)
    assert "b" not in got
    election.Resign(epb.ResignRequest(leader=leader_a), timeout=RPC_TIMEOUT_S)
    contender.join(RPC_TIMEOUT_S)
    assert got["b"].rev > leader_a.rev
    assert wait_until(lambda: observed[-1:] == [b"b"], 5)
    observer.cancel()
    assert observed == [b"a", b"a2", b"b"]
    with pytest.raises(grpc.RpcError) as err:
        election.Proclaim(epb.ProclaimRequest(leader=leader_a, value=b"late"),
                          timeout=RPC_TIMEOUT_S)
    assert err.value.details() == "election: not leader"
