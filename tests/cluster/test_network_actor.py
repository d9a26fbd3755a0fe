"""The network actor in a real process, with the raft and apply actors played by hand.

The actor runs as the supervisor would run it (spawned, its own ZeroMQ context, a temp
data dir, free ports). The test binds the "raft" and "supervisor" inboxes itself and
answers like the other actors: PROPOSE is applied to a real MvccStore (which the actor
reads, read-only, for ranges) and answered in APPLIED, then VISIBLE; READ_INDEX with
READ_STATES; STATUS says who leads. A fake second member talks to the actor's peer
ROUTER through the bus's PeerTransport. Every check is a real HTTP request and every
wait is bounded.
"""

from __future__ import annotations

import base64
import json
import multiprocessing
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from petcd.actors.apply import members
from petcd.actors.bus import codec
from petcd.actors.bus.peer import PeerTransport
from petcd.actors.bus.sockets import Inbox, Outbox
from petcd.actors.member import MemberContext
from petcd.actors.network import actor as network_actor
from petcd.actors.protocol import Kind, member_id_prefix
from petcd.actors.raft.types import Message, MessageType, Role
from petcd.api.etcdserverpb import raft_internal_pb2 as rpb
from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.api.membershippb import membership_pb2
from petcd.config import load
from petcd.storage.mvcc import MvccError, MvccStore

from tests.ports import free_ports

WAIT_S = 10.0
HTTP_TIMEOUT_S = 15.0
MAX_REQUEST_BYTES = 4096
TERM = 2
# The smallest timing etcd accepts: the request timeout is 5 s + 2 x 50 ms.
HEARTBEAT_MS, ELECTION_MS = 10, 50
REQUEST_TIMEOUT_S = 5.1

pytestmark = pytest.mark.timeout(60)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class FakeRaft:
    """The raft and apply actors: what the network actor sends them arrives here."""

    def __init__(self, run_dir: Path, store: MvccStore) -> None:
        self.inbox = Inbox.for_actor(run_dir, "raft")
        self.outbox = Outbox(run_dir)
        self.store = store
        self.index = store.applied_index()
        self.peers: Any = None  # the last PEERS payload

    def next(self, timeout_s: float = WAIT_S) -> tuple[str, Any]:
        """The next message but PEERS (the member table, sent whenever it changes:
        kept in `peers`)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for kind, payload in self.inbox.drain(1, 50):
                if kind != Kind.PEERS.value:
                    return kind, payload
                self.peers = payload
        raise AssertionError(f"nothing reached raft in {timeout_s} s")

    def expect(self, kind: Kind, timeout_s: float = WAIT_S) -> Any:
        got, payload = self.next(timeout_s)
        assert got == kind.value, (got, payload)
        return payload

    def quiet(self, wait_s: float = 0.3) -> None:
        """Nothing but PEERS reaches raft for `wait_s`."""
        deadline = time.monotonic() + wait_s
        while (left_s := deadline - time.monotonic()) > 0:
            for kind, payload in self.inbox.drain(16, max(1, int(left_s * 1000))):
                assert kind == Kind.PEERS.value, (kind, payload)
                self.peers = payload

    def send(self, kind: Kind, payload: Any) -> None:
        assert self.outbox.send("network", kind.value, payload, timeout_ms=1000)

    def answer_reads_until(self, request: Future[Any]) -> Any:
        """Answer every READ_INDEX until `request` (a call waiting on them) is done."""
        deadline = time.monotonic() + WAIT_S
        while not request.done() and time.monotonic() < deadline:
            for kind, payload in self.inbox.drain(1, 50):
                if kind == Kind.READ_INDEX.value:
                    self.answer_read(payload)
                elif kind == Kind.PEERS.value:
                    self.peers = payload
                else:
                    raise AssertionError((kind, payload))
        return request.result(timeout=HTTP_TIMEOUT_S)

    def status(self, leader: int, voters: list[int], learners: tuple[int, ...] = ()) -> None:
        self.send(Kind.STATUS, [int(Role.LEADER), TERM, leader, self.index, self.index,
                                self.index, voters, list(learners), []])

    def applied(self, replies: list[Any] | None = None) -> None:
        # No changes list: the watchers (not tested here) catch up from the store.
        self.send(Kind.APPLIED, [self.index, self.store.current_revision(), None, None,
                                 None, None, replies])
        self.send(Kind.VISIBLE, [self.index, self.store.current_revision()])

    def apply(self, request: Any, conf_state: bytes | None = None) -> Any:
        self.index += 1
        return self.store.apply(self.index, TERM, request, conf_state)

    def answer_proposals(self, payload: Any) -> None:
        """Apply every proposal to the store, answer them in APPLIED."""
        answers = []
        for request_id, data in payload:
            request = rpb.InternalRaftRequest.FromString(data)
            assert request.header.ID == request_id
            try:
                resp = self.apply(request)
                body = b"" if resp is None else resp.SerializeToString()
                answers.append([request_id, True, body])
            except MvccError as err:
                answers.append([request_id, False, [err.code, err.message]])
        self.applied(answers)

    def answer_read(self, payload: Any, index: int | None = None) -> None:
        [context] = payload
        self.send(Kind.READ_STATES, [[self.index if index is None else index, context]])

    def close(self) -> None:
        self.inbox.close()
        self.outbox.close()


@dataclass
class Member:
    ctx: MemberContext
    raft: FakeRaft
    store: MvccStore
    proc: Any
    client_url: str
    peer: PeerTransport  # the fake second member
    other_id: int
    pool: ThreadPoolExecutor

    @property
    def id(self) -> int:
        return self.ctx.member_id

    def http(self, method: str, path: str, body: bytes | None = None
             ) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(self.client_url + path, data=body, method=method)
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    def post(self, path: str, body: Any) -> Future[tuple[int, dict[str, str], bytes]]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.pool.submit(self.http, "POST", path, data)

    def json(self, future: Future[tuple[int, dict[str, str], bytes]]) -> tuple[int, Any]:
        status, _, body = future.result(timeout=HTTP_TIMEOUT_S)
        return status, json.loads(body)

    def header(self, revision: int | None) -> dict[str, str]:
        h = {"cluster_id": str(self.ctx.cluster_id), "member_id": str(self.id)}
        if revision is not None:
            h["revision"] = str(revision)
        h["raft_term"] = str(TERM)
        return h

    def put(self, key: bytes, value: bytes) -> None:
        """A put through the gateway, answered by the fake raft."""
        future = self.post("/v3/kv/put", {"key": b64(key), "value": b64(value)})
        self.raft.answer_proposals(self.raft.expect(Kind.PROPOSE))
        assert future.result(timeout=HTTP_TIMEOUT_S)[0] == 200


def member_context(tmp: Path, client_port: int, peer_port: int, other_port: int
                   ) -> MemberContext:
    """Member n1 of a two-member cluster (n2 is the fake peer), on loopback."""
    me, other = f"http://127.0.0.1:{peer_port}", f"http://127.0.0.1:{other_port}"
    settings = load([
        "--name", "n1", "--data-dir", str(tmp / "n1"),
        "--listen-client-urls", f"http://127.0.0.1:{client_port}",
        "--advertise-client-urls", f"http://127.0.0.1:{client_port}",
        "--listen-peer-urls", me, "--initial-advertise-peer-urls", me,
        "--initial-cluster", f"n1={me},n2={other}",
        "--heartbeat-interval", str(HEARTBEAT_MS), "--election-timeout", str(ELECTION_MS),
        "--max-request-bytes", str(MAX_REQUEST_BYTES), "--log-level", "warn"], {})
    return replace(MemberContext.from_settings(settings), run_dir=tmp / "run")


def _main(ctx: MemberContext) -> None:
    """Child process body, as the supervisor runs an actor."""
    sys.exit(network_actor.run(ctx))


def spawn(ctx: MemberContext) -> Any:
    proc = multiprocessing.get_context("spawn").Process(
        target=_main, args=(ctx,), name="petcd-network")
    proc.start()
    return proc


@pytest.fixture(scope="module")
def member(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Member]:
    tmp = tmp_path_factory.mktemp("network")
    client_port, peer_port, other_port = free_ports(3)
    ctx = member_context(tmp, client_port, peer_port, other_port)
    other_id = next(p.member_id for p in ctx.initial_peers if p.name == "n2")
    store = MvccStore.open(str(ctx.db_dir), sync=False)
    raft = FakeRaft(ctx.run_dir, store)
    supervisor = Inbox.for_actor(ctx.run_dir, "supervisor")
    peer = PeerTransport(other_id, f"tcp://127.0.0.1:{other_port}",
                         {ctx.member_id: f"tcp://127.0.0.1:{peer_port}"})
    proc = spawn(ctx)
    pool = ThreadPoolExecutor(8)
    try:
        assert supervisor.drain(1, int(WAIT_S * 1000)) == [(Kind.READY.value, "network")]
        raft.applied()
        raft.status(ctx.member_id, [ctx.member_id, other_id])
        yield Member(ctx, raft, store, proc, f"http://127.0.0.1:{client_port}", peer,
                     other_id, pool)
    finally:
        if proc.is_alive():
            proc.terminate()
        proc.join(WAIT_S)
        if proc.is_alive():
            proc.kill()
            proc.join(WAIT_S)
        pool.shutdown(wait=False, cancel_futures=True)
        for closeable in (peer, supervisor, raft, store):
            closeable.close()


# -- writes ---------------------------------------------------------------------------

def test_put_is_proposed_with_a_member_request_id_and_answers_etcds_json(member: Member) -> None:
    future = member.post("/v3/kv/put", {"key": b64(b"foo"), "value": b64(b"bar")})
    [[request_id, data]] = member.raft.expect(Kind.PROPOSE)
    request = rpb.InternalRaftRequest.FromString(data)
    assert request.header.ID == request_id
    assert request_id >> 48 == member_id_prefix(member.id)
    assert request.put == pb.PutRequest(key=b"foo", value=b"bar")
    member.raft.answer_proposals([[request_id, data]])
    status, headers, body = future.result(timeout=HTTP_TIMEOUT_S)
    assert status == 200 and headers["Content-Type"] == "application/json"
    revision = member.store.current_revision()
    # Defaults omitted, int64 as strings, proto field names, compact.
    assert body == json.dumps({"header": member.header(revision)},
                              separators=(",", ":")).encode()


def test_put_prev_kv_renders_bytes_as_base64_and_revisions_as_strings(member: Member) -> None:
    member.put(b"pk", b"v1")
    created = member.store.current_revision()
    future = member.post("/v3/kv/put", {"key": b64(b"pk"), "value": b64(b"v2"),
                                        "prev_kv": True})
    member.raft.answer_proposals(member.raft.expect(Kind.PROPOSE))
    status, body = member.json(future)
    assert status == 200
    assert body == {"header": member.header(created + 1),
                    "prev_kv": {"key": b64(b"pk"), "create_revision": str(created),
                                "mod_revision": str(created), "version": "1",
                                "value": b64(b"v1")}}


def test_delete_range_and_txn_are_proposed(member: Member) -> None:
    member.put(b"del/a", b"1")
    member.put(b"del/b", b"2")
    future = member.post("/v3/kv/deleterange", {"key": b64(b"del/"), "range_end": b64(b"del0")})
    member.raft.answer_proposals(member.raft.expect(Kind.PROPOSE))
    status, body = member.json(future)
    assert status == 200 and body["deleted"] == "2"
    txn = {"compare": [{"key": b64(b"del/a"), "target": "VERSION", "result": "EQUAL",
                        "version": "0"}],
           "success": [{"request_put": {"key": b64(b"txn"), "value": b64(b"x")}}]}
    future = member.post("/v3/kv/txn", txn)
    [[_, data]] = payload = member.raft.expect(Kind.PROPOSE)
    assert rpb.InternalRaftRequest.FromString(data).HasField("txn")
    member.raft.answer_proposals(payload)
    status, body = member.json(future)
    assert status == 200 and body["succeeded"] is True
    assert body["responses"] == [{"response_put": {"header": {"revision": str(
        member.store.current_revision())}}}]


def test_a_refusal_from_apply_is_etcds_error(member: Member) -> None:
    future = member.post("/v3/kv/compaction", {"revision": "999999"})
    member.raft.answer_proposals(member.raft.expect(Kind.PROPOSE))
    status, body = member.json(future)
    message = "etcdserver: mvcc: required revision is a future revision"
    assert (status, body) == (400, {"error": message, "code": 11, "message": message})


def test_dropped_proposal_and_read_are_no_leader(member: Member) -> None:
    future = member.post("/v3/kv/put", {"key": b64(b"k"), "value": b64(b"v")})
    [[request_id, _]] = member.raft.expect(Kind.PROPOSE)
    member.raft.send(Kind.DROPPED, [[request_id, "no leader"]])
    no_leader = {"error": "etcdserver: no leader", "code": 14,
                 "message": "etcdserver: no leader"}
    assert member.json(future) == (503, no_leader)
    future = member.post("/v3/kv/range", {"key": b64(b"k")})
    [context] = member.raft.expect(Kind.READ_INDEX)
    member.raft.send(Kind.DROPPED, [[context, "no leader"]])
    assert member.json(future) == (503, no_leader)


def test_unanswered_requests_time_out_with_etcds_error(member: Member) -> None:
    started = time.monotonic()
    put = member.post("/v3/kv/put", {"key": b64(b"slow"), "value": b64(b"v")})
    read = member.post("/v3/kv/range", {"key": b64(b"slow")})
    kinds = {member.raft.next()[0], member.raft.next()[0]}
    assert kinds == {Kind.PROPOSE.value, Kind.READ_INDEX.value}
    timed_out = {"error": "etcdserver: request timed out", "code": 14,
                 "message": "etcdserver: request timed out"}
    assert member.json(put) == (503, timed_out)
    assert member.json(read) == (503, timed_out)
    assert REQUEST_TIMEOUT_S - 0.2 <= time.monotonic() - started < REQUEST_TIMEOUT_S + 3


# -- reads ----------------------------------------------------------------------------

def test_serializable_range_reads_the_local_store_without_raft(member: Member) -> None:
    member.put(b"ser", b"value")
    kv = member.store.range(pb.RangeRequest(key=b"ser")).kvs[0]
    future = member.post("/v3/kv/range", {"key": b64(b"ser"), "serializable": True})
    status, body = member.json(future)
    assert status == 200
    assert body == {"header": member.header(member.store.current_revision()),
                    "kvs": [{"key": b64(b"ser"), "create_revision": str(kv.create_revision),
                             "mod_revision": str(kv.mod_revision), "version": "1",
                             "value": b64(b"value")}],
                    "count": "1"}
    member.raft.quiet()


def test_linearizable_range_waits_for_the_read_index_to_be_applied(member: Member) -> None:
    future = member.post("/v3/kv/range", {"key": b64(b"lin")})
    payload = member.raft.expect(Kind.READ_INDEX)
    assert len(payload) == 1 and isinstance(payload[0], bytes)
    read_index = member.raft.index + 1  # committed, not applied yet
    member.raft.answer_read(payload, read_index)
    time.sleep(0.3)
    assert not future.done()
    member.raft.apply(pb.PutRequest(key=b"lin", value=b"new"))
    member.raft.applied()
    status, body = member.json(future)
    assert status == 200 and body["count"] == "1"
    assert body["kvs"][0]["value"] == b64(b"new")


def test_reads_arriving_while_a_read_index_is_awaited_share_the_next_one(
        member: Member) -> None:
    first = member.post("/v3/kv/range", {"key": b64(b"r")})
    asked = member.raft.expect(Kind.READ_INDEX)
    later = [member.post("/v3/kv/range", {"key": b64(b"r")}) for _ in range(3)]
    member.raft.quiet(0.2)  # an index asked before they began cannot serve them
    member.raft.answer_read(asked)
    assert member.json(first)[0] == 200
    member.raft.answer_read(member.raft.expect(Kind.READ_INDEX))  # one for all three
    assert [member.json(f)[0] for f in later] == [200, 200, 200]
    member.raft.quiet()


def test_an_unanswered_read_index_does_not_hold_later_reads_back(member: Member) -> None:
    lost = member.post("/v3/kv/range", {"key": b64(b"r")})
    member.raft.expect(Kind.READ_INDEX)  # never answered (a leader change lost it)
    started = time.monotonic()
    later = member.post("/v3/kv/range", {"key": b64(b"r")})
    member.raft.answer_read(member.raft.expect(Kind.READ_INDEX))
    assert 0.3 <= time.monotonic() - started  # asked again after READ_INDEX_RETRY_S
    assert member.json(later)[0] == 200
    assert member.json(lost)[0] == 503  # timed out


def test_missing_key_range_omits_kvs_and_count(member: Member) -> None:
    future = member.post("/v3/kv/range", {"key": b64(b"absent"), "serializable": True})
    assert member.json(future) == (200, {"header": member.header(
        member.store.current_revision())})


# -- refused before anything is proposed ---------------------------------------------------

def _invalid(message: str) -> dict[str, Any]:
    return {"error": message, "code": 3, "message": message}


@pytest.mark.parametrize("path, body, message", [
    ("/v3/kv/put", {"value": b64(b"v")}, "etcdserver: key is not provided"),
    ("/v3/kv/put", b"", "etcdserver: key is not provided"),
    ("/v3/kv/put", {"key": b64(b"k"), "value": b64(b"v"), "ignore_value": True},
     "etcdserver: value is provided"),
    ("/v3/kv/range", {"key": b64(b"k"), "sort_order": 9}, "etcdserver: invalid sort option"),
    ("/v3/kv/put", {"key": b64(b"k"), "value": "A" * 6000},
     "etcdserver: request is too large"),
    ("/v3/kv/txn", {"success": [{"request_put": {"key": b64(b"k")}},
                                {"request_put": {"key": b64(b"k")}}]},
     "etcdserver: duplicate key given in txn request"),
])
def test_etcd_checks_refuse_with_etcds_message(member: Member, path: str, body: Any,
                                              message: str) -> None:
    assert member.json(member.post(path, body)) == (400, _invalid(message))
    member.raft.quiet(0.1)


@pytest.mark.parametrize("body", [
    b"{not json",
    b"[1, 2]",
    b'{"key": "not base64!", "value": "dg=="}',
    b'{"key": "YQ", "value": "dg=="}',  # unpadded
    b'{"key": 5}',
    b'{"key": "YQ==", "lease": "abc"}',
    b'{"key": "YQ==", "prev_kv": "yes"}',
    b"\xff\xfe",
])
def test_undecodable_bodies_are_invalid_argument_and_not_proposed(member: Member,
                                                                  body: bytes) -> None:
    status, headers, raw = member.post("/v3/kv/put", body).result(timeout=HTTP_TIMEOUT_S)
    answer = json.loads(raw)
    assert status == 400 and headers["Content-Type"] == "application/json"
    assert list(answer) == ["error", "code", "message"]
    assert answer["code"] == 3 and answer["error"] == answer["message"] != ""
    member.raft.quiet(0.1)


def test_a_body_beyond_what_the_gateway_reads_is_too_large(member: Member) -> None:
    body = json.dumps({"key": b64(b"k"), "value": "A" * (1024 * 1024)}).encode()
    status, _, raw = member.post("/v3/kv/put", body).result(timeout=HTTP_TIMEOUT_S)
    assert (status, json.loads(raw)) == (400, _invalid("etcdserver: request is too large"))
    member.raft.quiet(0.1)


def test_unknown_fields_are_ignored(member: Member) -> None:
    future = member.post("/v3/kv/put", {"key": b64(b"uf"), "value": b64(b"v"),
                                        "no_such_field": {"x": [1]}, "ttl": 5})
    [[_, data]] = payload = member.raft.expect(Kind.PROPOSE)
    assert rpb.InternalRaftRequest.FromString(data).put == pb.PutRequest(key=b"uf", value=b"v")
    member.raft.answer_proposals(payload)
    assert member.json(future)[0] == 200


# -- other endpoints -----------------------------------------------------------------------

def test_version(member: Member) -> None:
    status, headers, body = member.http("GET", "/version")
    assert (status, body) == (200, b'{"etcdserver":"3.5.0","etcdcluster":"3.5.0"}')
    assert headers["Content-Type"] == "application/json"


@pytest.mark.parametrize("method, path, status, body", [
    ("POST", "/v3/kv/nothing", 404, b"Not Found\n"),
    ("GET", "/v3/kv/put", 405, b"Method Not Allowed\n"),
    ("GET", "/nothing", 404, b"404 page not found\n"),
    ("POST", "/version", 405, b"Method Not Allowed\n"),
])
def test_unknown_paths_and_methods_answer_as_etcds_mux(member: Member, method: str, path: str,
                                                      status: int, body: bytes) -> None:
    assert member.http(method, path, b"{}" if method == "POST" else None)[::2] == (status, body)


def test_an_etcd_api_not_served_yet_is_unimplemented(member: Member) -> None:
    status, body = member.json(member.post("/v3/maintenance/downgrade", {}))
    message = "method Downgrade not implemented"
    assert (status, body) == (501, {"error": message, "code": 12, "message": message})


def test_health_needs_a_leader_and_a_read(member: Member) -> None:
    future = member.pool.submit(member.http, "GET", "/health")
    member.raft.answer_read(member.raft.expect(Kind.READ_INDEX))
    status, _, body = future.result(timeout=HTTP_TIMEOUT_S)
    assert (status, body) == (200, b'{"health":"true","reason":""}')
    member.raft.status(0, [member.id, member.other_id])
    try:
        deadline = time.monotonic() + WAIT_S
        while True:  # until the actor has taken the STATUS in
            # A /health the actor reads before the STATUS waits on a read index: the
            # HTTP socket and the actor's inbox are two channels, either may come first.
            status, _, body = member.raft.answer_reads_until(
                member.pool.submit(member.http, "GET", "/health"))
            if status == 503 or time.monotonic() > deadline:
                break
        assert (status, body) == (503, b'{"health":"false","reason":"RAFT NO LEADER"}\n')
        status, body = member.json(member.post("/v3/maintenance/status", {}))
        assert body["errors"] == ["etcdserver: no leader"] and "leader" not in body
    finally:
        member.raft.status(member.id, [member.id, member.other_id])
        time.sleep(0.2)


def test_maintenance_status(member: Member) -> None:
    status, body = member.json(member.post("/v3/maintenance/status", {}))
    assert status == 200
    revision = member.store.current_revision()
    assert body["header"] == member.header(revision)
    assert body["version"] == "3.5.0"
    assert body["leader"] == str(member.id)
    assert body["raftTerm"] == str(TERM)
    assert body["raftAppliedIndex"] == str(member.raft.index)
    assert int(body["dbSize"]) > 0 and 0 < int(body["dbSizeInUse"]) <= int(body["dbSize"])
    assert "errors" not in body and "isLearner" not in body


def test_member_list_from_initial_cluster_then_from_the_member_table(member: Member) -> None:
    status, body = member.json(member.post("/v3/cluster/member/list", {}))
    assert status == 200
    # Cluster responses carry no revision, as etcd's.
    assert body["header"] == member.header(None)
    listed = {m["name"]: m for m in body["members"]}
    peer = {p.name: p for p in member.ctx.initial_peers}
    assert listed["n1"] == {"ID": str(member.id), "name": "n1",
                            "peerURLs": list(peer["n1"].peer_urls),
                            "clientURLs": [member.client_url]}
    assert listed["n2"] == {"ID": str(member.other_id), "name": "n2",
                            "peerURLs": list(peer["n2"].peer_urls)}
    table = members.MemberTable(tuple(sorted((
        members.Member(member.id, "n1", peer["n1"].peer_urls, (member.client_url,)),
        members.Member(member.other_id, "n2", peer["n2"].peer_urls, ("http://n2:2379",),
                       is_learner=True)), key=lambda m: m.member_id)))
    member.raft.apply(None, members.encode(table))
    member.raft.applied()
    future = member.post("/v3/cluster/member/list", {"linearizable": True})
    member.raft.answer_read(member.raft.expect(Kind.READ_INDEX))
    status, body = member.json(future)
    assert status == 200
    assert body["members"][[m["name"] for m in body["members"]].index("n2")] == {
        "ID": str(member.other_id), "name": "n2", "peerURLs": list(peer["n2"].peer_urls),
        "clientURLs": ["http://n2:2379"], "isLearner": True}


def test_member_publishes_its_name_and_client_urls_once_in_the_table(member: Member) -> None:
    peer = {p.name: p for p in member.ctx.initial_peers}
    unpublished = members.MemberTable(tuple(sorted((
        members.Member(member.id, "", peer["n1"].peer_urls, ()),
        members.Member(member.other_id, "n2", peer["n2"].peer_urls, ())),
        key=lambda m: m.member_id)))
    member.raft.apply(None, members.encode(unpublished))
    member.raft.applied()
    [[request_id, data]] = member.raft.expect(Kind.PROPOSE)
    request = rpb.InternalRaftRequest.FromString(data)
    assert request.header.ID == request_id
    assert request.cluster_member_attr_set == membership_pb2.ClusterMemberAttrSetRequest(
        member_ID=member.id, member_attributes=membership_pb2.Attributes(
            name="n1", client_urls=[member.client_url]))
    published = unpublished.set_attributes(member.id, "n1", [member.client_url])
    assert published is not None
    member.raft.apply(None, members.encode(published))
    member.raft.applied([[request_id, True, b""]])
    member.raft.quiet(1.5)  # published once, not again


# -- peers: snapshot streams (Raft messages go raft actor to raft actor) -----------------

def test_snapshot_frames_from_raft_reach_the_streams_and_answers_reach_the_peer(
        member: Member) -> None:
    # A chunk of a transfer the member never started, as the raft actor hands it on
    # (PEER_FRAMES): refused with an ack the fake peer gets on its ROUTER.
    stray = [member.other_id, "snap_chunk", [77, 3, b"data", None, None]]
    deadline = time.monotonic() + WAIT_S
    acks: list[tuple[int, str, Any]] = []
    while not acks:  # the actor's DEALER connects in the background
        assert time.monotonic() < deadline, "no ack reached the fake peer"
        member.raft.send(Kind.PEER_FRAMES, [stray, [member.other_id, "raft", []]])
        acks = [f for f in member.peer.drain(16, 100) if f[1] == "snap_ack"]
    assert acks[0] == (member.id, "snap_ack", [77, 3, "unknown transfer"])
    member.raft.quiet(0.2)  # the "raft" frame among them is dropped, not passed back


def test_a_snap_without_a_snapshot_is_reported_failed(member: Member) -> None:
    snap = Message(MessageType.SNAP, member.id, member.other_id, TERM)
    member.raft.send(Kind.SEND_SNAPSHOT, codec.messages_to_wire([snap]))
    assert member.raft.expect(Kind.SNAPSHOT_STATUS) == [member.other_id, False]


def test_the_member_table_is_passed_to_raft_for_its_peer_links(member: Member) -> None:
    # (Last of the peer tests: n2 moves to a port where nobody listens.)
    n2 = members.Member(member.other_id, "n2", ("http://127.0.0.1:1",), ())
    n1 = members.read_member_table(member.store).get(member.id)
    assert n1 is not None
    table = members.MemberTable(tuple(sorted((n1, n2), key=lambda m: m.member_id)))
    member.raft.apply(None, members.encode(table))
    member.raft.applied()
    expected = [[[m.member_id, list(m.peer_urls)] for m in table], []]
    deadline = time.monotonic() + WAIT_S
    while member.raft.peers != expected:  # member sync runs every second
        assert time.monotonic() < deadline, member.raft.peers
        member.raft.quiet(0.1)


def test_a_client_port_in_use_stops_the_actor_with_status_1(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        proc = spawn(member_context(tmp_path, busy.getsockname()[1], *free_ports(2)))
        try:
            proc.join(WAIT_S)
            assert proc.exitcode == 1
        finally:
            if proc.is_alive():
                proc.kill()
                proc.join(WAIT_S)


# -- last: shutdown -------------------------------------------------------------------------

def test_sigterm_answers_waiting_requests_and_exits_zero(member: Member) -> None:
    future = member.post("/v3/kv/put", {"key": b64(b"bye"), "value": b64(b"v")})
    member.raft.expect(Kind.PROPOSE)
    member.proc.terminate()
    status, body = member.json(future)
    stopped = "etcdserver: server stopped"
    assert (status, body) == (503, {"error": stopped, "code": 14, "message": stopped})
    member.proc.join(WAIT_S)
    assert member.proc.exitcode == 0
