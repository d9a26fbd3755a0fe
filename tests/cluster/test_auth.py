"""Auth on a real 3-member cluster: the root user and role, enabling auth, users and
roles with permissions, a token one member assigned honoured by another (tokens are
Raft state), etcd's refusals (wrong password, a disable without root, a forged token),
the JSON gateway's Authorization header, and the whole auth state after a restart."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import grpc
import pytest

from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.api.etcdserverpb import rpc_pb2_grpc as rpc

from petcd.client import Client
from petcd.client.errors import EtcdError

from .members import Cluster, Member, running, wait_until

AUTH_FAILED = "etcdserver: authentication failed, invalid user ID or password"
HTTP_TIMEOUT_S = 10.0
LEASE_EXPIRY_S = 15.0  # a 2 s lease, plus a new leader's grace and a loaded machine


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with running(tmp_path_factory.mktemp("auth"), 3, ["--bcrypt-cost", "4"]) as c:
        c.wait_leader()
        yield c


def _client(member: Member, user: str | None = None, password: str | None = None) -> Client:
    return Client([f"127.0.0.1:{member.client_port}"], command_timeout_s=10.0, user=user,
                  password=password)


def _refused(call, message: str) -> None:
    with pytest.raises(EtcdError) as err:
        call()
    assert str(err.value.message) == message


def _gateway(member: Member, path: str, body: dict, token: str | None = None
             ) -> tuple[int, dict]:
    request = urllib.request.Request(f"{member.client_url}{path}", json.dumps(body).encode(),
                                     {"Authorization": token} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _watch_answer(member: Member, token: str, key: bytes) -> pb.WatchResponse:
    with grpc.insecure_channel(f"127.0.0.1:{member.client_port}") as channel:
        answers = rpc.WatchStub(channel).Watch(
            iter([pb.WatchRequest(create_request=pb.WatchCreateRequest(key=key))]),
            metadata=(("token", token),), timeout=HTTP_TIMEOUT_S)
        first = next(answers)
        answers.cancel()
        return first


def _watch_refused(member: Member, token: str, key: bytes) -> None:
    answer = _watch_answer(member, token, key)
    assert (answer.created, answer.canceled, answer.cancel_reason) == (
        True, True, "etcdserver: permission denied")


def _watch_created(member: Member, token: str, key: bytes) -> None:
    answer = _watch_answer(member, token, key)
    assert answer.created and not answer.canceled


def _has_leader(client: Client) -> bool:
    try:
        return client.status().leader != 0
    except EtcdError:
        return False


def _first_event_value(watch) -> bytes:
    deadline = time.monotonic() + HTTP_TIMEOUT_S
    while time.monotonic() < deadline:
        resp = watch.get(max(deadline - time.monotonic(), 0.01))
        assert resp is not None and not resp.canceled, resp
        if resp.events:
            return resp.events[0].kv.value
    raise AssertionError(f"no event in {HTTP_TIMEOUT_S}s")


def test_auth_lifecycle_across_members_and_a_restart(cluster: Cluster) -> None:
    first, second, third = cluster.members
    with _client(first) as c:
        _refused(c.auth_enable, "etcdserver: root user does not exist")
        c.user_add("root", "rootpw")
        _refused(c.auth_enable, "etcdserver: root user does not have root role")
        c.role_add("root")
        c.user_grant_role("root", "root")
        c.role_add("reader")
        c.role_grant_permission("reader", "k", "\0", "READ")
        c.user_add("alice", "alicepw")
        c.user_grant_role("alice", "reader")
        c.user_add("np", no_password=True)
        c.auth_enable()
        _refused(c.auth_disable, "etcdserver: user name is empty")
        status = c.auth_status()
        assert status.enabled and status.authRevision > 1

    with _client(first, "alice", "alicepw") as alice:
        token = alice.authenticate("alice", "alicepw").token
        letters, index = token.split(".")
        assert len(letters) == 16 and letters.isalpha() and int(index) > 0
        _refused(alice.auth_disable, "etcdserver: permission denied")
        assert list(alice.user_get("alice").roles) == ["reader"]  # herself: allowed
        _refused(lambda: alice.put("k1", "v"), "etcdserver: permission denied")
        _refused(lambda: alice.get("a"), "etcdserver: permission denied")
        assert alice.get("k1").count == 0  # reader reads every key from k on
        _watch_refused(first, token, b"a")
        _watch_created(first, token, b"k1")
        watch = alice.watch("k3")  # the client's watches carry its token
        try:
            with _client(first, "root", "rootpw") as root:
                root.put("k3", "v3")
            assert _first_event_value(watch) == b"v3"
        finally:
            watch.close()
    # The token first's member assigned is known to another member.
    status, body = _gateway(third, "/v3/auth/user/get", {"name": "alice"}, token)
    assert (status, body.get("roles")) == (200, ["reader"])
    status, body = _gateway(third, "/v3/kv/range", {"key": "YQ=="}, token)
    assert (status, body["message"]) == (403, "etcdserver: permission denied")
    status, body = _gateway(third, "/v3/kv/range", {"key": "YQ=="})
    assert (status, body["message"]) == (400, "etcdserver: user name is empty")
    status, body = _gateway(third, "/v3/auth/user/list", {}, "forged.1")
    assert (status, body["message"]) == (401, "etcdserver: invalid auth token")

    with _client(second) as anonymous:
        _refused(lambda: anonymous.authenticate("alice", "wrong"), AUTH_FAILED)
        _refused(lambda: anonymous.authenticate("ghost", "pw"), AUTH_FAILED)
        _refused(lambda: anonymous.authenticate("np", ""),
                 "auth: authentication failed, password was given for no password user")

    with _client(second, "root", "rootpw") as root:
        assert list(root.user_list().users) == ["alice", "np", "root"]
        root.put("k1", "v1")  # root writes anywhere
        assert root.get("k1").kvs[0].value == b"v1"
        # The leader revokes an expired lease as root, whoever attached keys to it.
        lease = root.lease_grant(2).ID
        root.put("k2", "v2", lease=lease)
        assert wait_until(lambda: root.get("k2").count == 0, LEASE_EXPIRY_S)
        [perm] = root.role_get("reader").perm
        assert (perm.key, perm.range_end) == (b"k", b"\0")
        revision = root.auth_status().authRevision

    second.stop()
    second.start(cluster.initial_cluster, cluster.token)
    with _client(second, "root", "rootpw") as root:
        # Status needs a user while auth is enabled (etcd's requireAuthInfo).
        assert wait_until(lambda: _has_leader(root), 30.0)
        status = root.auth_status()
        assert (status.enabled, status.authRevision) == (True, revision)
        assert list(root.user_get("alice").roles) == ["reader"]
        root.auth_disable()
    with _client(first) as c:
        assert not c.auth_status().enabled
        assert list(c.user_list().users) == ["alice", "np", "root"]


def test_maintenance_and_cluster_calls_follow_etcds_admin_rules(cluster: Cluster) -> None:
    """etcd's AuthAdmin: Defragment, Hash, HashKV, Snapshot, MoveLeader, alarm changes
    and membership changes are root's; Status, MemberList and listing alarms need a
    user. Nothing changes on a refusal."""
    first = cluster.members[0]
    with _client(first) as anyone:  # root and alice exist from the test before
        anyone.auth_enable()
        root_token = anyone.authenticate("root", "rootpw").token
    with _client(first) as anyone:
        alice_token = anyone.authenticate("alice", "alicepw").token
    admin_only = [
        ("Defragment", lambda m, t: m.Defragment(pb.DefragmentRequest(), **t)),
        ("Hash", lambda m, t: m.Hash(pb.HashRequest(), **t)),
        ("HashKV", lambda m, t: m.HashKV(pb.HashKVRequest(), **t)),
        ("Snapshot", lambda m, t: next(m.Snapshot(pb.SnapshotRequest(), **t))),
        ("Alarm", lambda m, t: m.Alarm(pb.AlarmRequest(action=pb.AlarmRequest.DEACTIVATE,
                                                        alarm=pb.NOSPACE), **t)),
    ]
    for_users = [
        ("Status", lambda m, t: m.Status(pb.StatusRequest(), **t)),
        ("Alarm GET", lambda m, t: m.Alarm(pb.AlarmRequest(action=pb.AlarmRequest.GET), **t)),
    ]
    with grpc.insecure_channel(f"127.0.0.1:{first.client_port}") as channel:
        maintenance, members = rpc.MaintenanceStub(channel), rpc.ClusterStub(channel)

        def token(t: str | None) -> dict:
            return {"metadata": (("token", t),) if t else None, "timeout": HTTP_TIMEOUT_S}

        def refused(call, t: str | None) -> str:
            with pytest.raises(grpc.RpcError) as err:
                call(token(t))
            return err.value.details()

        for name, call in admin_only:
            assert refused(lambda t, c=call: c(maintenance, t), alice_token) == \
                "etcdserver: permission denied", name
            assert refused(lambda t, c=call: c(maintenance, t), None) == \
                "etcdserver: user name is empty", name
            call(maintenance, token(root_token))
        for name, call in for_users:
            assert refused(lambda t, c=call: c(maintenance, t), None) == \
                "etcdserver: user name is empty", name
            call(maintenance, token(alice_token))
        move = pb.MoveLeaderRequest(targetID=1)
        assert refused(lambda t: maintenance.MoveLeader(move, **t), alice_token) == \
            "etcdserver: permission denied"
        assert refused(lambda t: maintenance.MoveLeader(move, **t), root_token) in (
            "etcdserver: not leader", "etcdserver: bad leader transferee")  # past the check
        members.MemberList(pb.MemberListRequest(), **token(alice_token))
        bad_add = pb.MemberAddRequest(peerURLs=["not a url"])
        assert refused(lambda t: members.MemberAdd(bad_add, **t), alice_token) == \
            "etcdserver: permission denied"
        # root passes the check (and meets the URL's own error); a follower forwards
        # the call, with its token, to the leader.
        for m in cluster.members:
            with grpc.insecure_channel(f"127.0.0.1:{m.client_port}") as ch:
                assert refused(lambda t: rpc.ClusterStub(ch).MemberAdd(bad_add, **t),
                               root_token) == "etcdserver: given member URLs are invalid"
    with _client(first, "root", "rootpw") as root:
        root.auth_disable()
