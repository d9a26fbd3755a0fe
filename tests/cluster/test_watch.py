"""etcd's Watch service on real members, spoken with grpcio and curl's JSON: requests
and etcd's answers to bad ones, history and compaction, progress, fragments, a client
that stops reading, require-leader, and a watcher whose member installs a snapshot."""

from __future__ import annotations

import http.client
import json
import os
import signal
import time

import grpc
import psutil
import pytest

from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.api.etcdserverpb import rpc_pb2_grpc as rpc
from petcd.api.mvccpb.kv_pb2 import Event

from .members import b64, running, wait_until
from .watch_streams import RawWatch

MAX_REQUEST_BYTES = 64 * 1024
OVERHEAD_BYTES = 512 * 1024
PROGRESS_INTERVAL = "300ms"
COMPACTED = "etcdserver: mvcc: required revision has been compacted"
RPC_TIMEOUT_S = 10.0
PUTS_WHILE_STOPPED = 600


@pytest.fixture(scope="module")
def member(tmp_path_factory):
    with running(tmp_path_factory.mktemp("watch"), 1,
                 ["--max-request-bytes", str(MAX_REQUEST_BYTES),
                  "--experimental-watch-progress-notify-interval", PROGRESS_INTERVAL]) as c:
        c.wait_leader()
        yield c.members[0]


def _kv(member) -> rpc.KVStub:
    return rpc.KVStub(grpc.insecure_channel(f"127.0.0.1:{member.client_port}"))


def _put(member, key: bytes, value: bytes = b"v") -> int:
    resp = _kv(member).Put(pb.PutRequest(key=key, value=value), timeout=RPC_TIMEOUT_S)
    return resp.header.revision


def _events(resp: pb.WatchResponse) -> list[tuple[str, bytes, bytes, int]]:
    return [(Event.EventType.Name(e.type), e.kv.key, e.kv.value, e.kv.mod_revision)
            for e in resp.events]


def test_create_events_and_cancel(member):
    with RawWatch(member.client_port) as w:
        first = w.created(b"basic/", b"basic0")
        second = w.created(b"basic/a", watch_id=42)
        assert (first.watch_id, second.watch_id) == (0, 42)
        assert first.header.revision >= 1 and first.header.member_id
        rev = _put(member, b"basic/a", b"1")
        _kv(member).DeleteRange(pb.DeleteRangeRequest(key=b"basic/a"), timeout=RPC_TIMEOUT_S)
        responses = [w.next() for _ in range(4)]
        by_watch: dict[int, list] = {0: [], 42: []}
        for resp in responses:
            by_watch[resp.watch_id].extend(_events(resp))
        expected = [("PUT", b"basic/a", b"1", rev), ("DELETE", b"basic/a", b"", rev + 1)]
        assert by_watch == {0: expected, 42: expected}
        w.cancel(0)
        canceled = w.next()
        assert (canceled.watch_id, canceled.canceled) == (0, True)
        _put(member, b"basic/a", b"2")
        only = w.next()
        assert only.watch_id == 42 and _events(only)[0][2] == b"2"
        assert w.quiet(), "nothing for the canceled watch"


def test_bad_requests_are_refused_and_the_stream_goes_on(member):
    def refusal(key: bytes, range_end: bytes = b"", **options) -> tuple:  # type: ignore[no-untyped-def]
        w.create(key, range_end, **options)
        r = w.next()
        return r.watch_id, r.created, r.canceled, r.cancel_reason

    with RawWatch(member.client_port) as w:
        assert refusal(b"bad", start_revision=-1) == (-1, True, True, COMPACTED)
        assert refusal(b"z", b"a") == (-1, True, True, "mvcc: watcher range is empty")
        assert w.created(b"bad", watch_id=7).watch_id == 7
        assert refusal(b"other", watch_id=7) == (
            -1, True, True, "mvcc: duplicate watch ID provided on the WatchStream")
        w.send(pb.WatchRequest())  # no request at all: ignored, as etcd does
        rev = _put(member, b"bad", b"x")
        resp = w.next()
        assert (resp.watch_id, _events(resp)) == (7, [("PUT", b"bad", b"x", rev)])


def test_garbage_and_oversized_requests_fail_only_their_stream(member):
    with RawWatch(member.client_port) as healthy:
        healthy.created(b"garbage-ok")
        with RawWatch(member.client_port, serialize=lambda raw: raw) as garbage:
            garbage.send(b"\xff\xff\xff\xff")
            with pytest.raises(grpc.RpcError) as err:
                garbage.next()
            assert err.value.code() == grpc.StatusCode.INTERNAL
            assert "grpc: error unmarshalling request" in err.value.details()
        with RawWatch(member.client_port) as big:
            big.create(b"k" * (MAX_REQUEST_BYTES + OVERHEAD_BYTES + 1))
            with pytest.raises(grpc.RpcError) as err:
                big.next()
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        rev = _put(member, b"garbage-ok")
        assert _events(healthy.next()) == [("PUT", b"garbage-ok", b"v", rev)]


def test_history_prev_kv_filters_and_compaction(member):
    base = _put(member, b"hist", b"1")
    _put(member, b"hist", b"2")
    _kv(member).DeleteRange(pb.DeleteRangeRequest(key=b"hist"), timeout=RPC_TIMEOUT_S)
    _put(member, b"hist", b"3")
    with RawWatch(member.client_port) as w:
        w.created(b"hist", start_revision=base, prev_kv=True)
        got = w.events(4)
        assert [(Event.EventType.Name(e.type), e.kv.value, e.prev_kv.value) for e in got] == [
            ("PUT", b"1", b""), ("PUT", b"2", b"1"), ("DELETE", b"", b"2"), ("PUT", b"3", b"")]
        assert got[3].kv.create_revision == got[3].kv.mod_revision == base + 3
        w.created(b"hist", start_revision=base, filters=[pb.WatchCreateRequest.NOPUT])
        [deleted] = w.events(1)
        assert (deleted.type, deleted.kv.mod_revision) == (Event.DELETE, base + 2)
    _kv(member).Compact(pb.CompactionRequest(revision=base + 2), timeout=RPC_TIMEOUT_S)
    with RawWatch(member.client_port) as w:
        w.created(b"hist", start_revision=base + 1)
        canceled = w.next()
        assert (canceled.canceled, canceled.compact_revision, canceled.events) == (
            True, base + 2, [])
        w.created(b"hist", start_revision=base + 2, prev_kv=True)
        [again] = w.events(1)  # the delete at the compaction revision went with it, as in etcd
        assert (again.kv.value, again.prev_kv.value) == (b"3", b"")


def test_progress_request_and_progress_notifications(member):
    with RawWatch(member.client_port) as w:
        w.progress()  # no watch yet: answered at once
        alone = w.next()
        assert (alone.watch_id, alone.events, alone.header.revision > 0) == (-1, [], True)
        created = w.created(b"prog", progress_notify=True)
        # From here on the first watch's notifications (every 300 ms) may come between
        # any two responses: a slow machine takes that long to create a watch.
        w.create(b"prog-future", start_revision=created.header.revision + 1000,
                 progress_notify=True)
        [future] = _besides_notifications(w, created.watch_id, 1)
        assert future.created, future
        rev = _put(member, b"prog")
        w.progress()
        responses = _besides_notifications(w, created.watch_id, 2)
        assert _events(responses[0]) == [("PUT", b"prog", b"v", rev)]
        assert (responses[1].watch_id, responses[1].header.revision) == (-1, rev)
        # progress notifications (every 300 ms here) go to the synced watch, never to
        # the one whose start revision is in the future
        deadline = time.monotonic() + 5
        notified = []
        while len(notified) < 2 and time.monotonic() < deadline:
            resp = w.next()
            assert not resp.events and resp.watch_id == created.watch_id, resp
            notified.append(resp.header.revision)
        assert len(notified) == 2 and notified[0] <= notified[1]
        assert future.watch_id != created.watch_id


def _besides_notifications(w: RawWatch, watch_id: int, count: int) -> list[pb.WatchResponse]:
    """The next `count` responses that are not periodic progress notifications of
    watch `watch_id`."""
    out: list[pb.WatchResponse] = []
    while len(out) < count:
        resp = w.next()
        periodic = (resp.watch_id == watch_id and not resp.events and not resp.created
                    and not resp.canceled)
        if not periodic:
            out.append(resp)
    return out


def test_one_revision_over_the_limit_comes_in_fragments_only_if_asked(tmp_path):
    with running(tmp_path, 1, ["--max-request-bytes", str(MAX_REQUEST_BYTES)]) as c:
        m = c.wait_leader()
        with RawWatch(m.client_port) as whole, RawWatch(m.client_port) as pieces:
            whole.created(b"frag/", b"frag0", prev_kv=True)
            pieces.created(b"frag/", b"frag0", prev_kv=True, fragment=True)
            for i in range(24):  # 24 keys of 30,000 bytes, each put alone under the limit
                _put(m, b"frag/%02d" % i, b"x" * 30_000)
            whole.events(24)
            pieces.events(24)
            # One revision deletes them all: with prev_kv its events are 720 kB, over
            # --max-request-bytes plus gRPC's 512 KiB.
            _kv(m).DeleteRange(pb.DeleteRangeRequest(key=b"frag/", range_end=b"frag0"),
                               timeout=RPC_TIMEOUT_S)
            one = whole.next()
            assert len(one.events) == 24 and not one.fragment, "one revision, one response"
            parts = [pieces.next()]
            while parts[-1].fragment:
                parts.append(pieces.next())
            assert len(parts) >= 2
            assert all(p.ByteSize() < MAX_REQUEST_BYTES + OVERHEAD_BYTES for p in parts)
            assert [e.kv.key for p in parts for e in p.events] == [e.kv.key for e in one.events]


def test_gateway_watch_streams_json_lines(member):
    rev = _put(member, b"gw", b"0")
    body = json.dumps({"create_request": {"key": b64("gw"), "start_revision": str(rev)}})
    conn = http.client.HTTPConnection("127.0.0.1", member.client_port, timeout=RPC_TIMEOUT_S)
    conn.request("POST", "/v3/watch", body=body)
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Type") == "application/json"
    created = json.loads(resp.readline())["result"]
    assert created["created"] is True and "watch_id" not in created
    first = json.loads(resp.readline())["result"]
    assert first["events"][0]["kv"]["value"] == b64("0")
    _put(member, b"gw", b"1")
    second = json.loads(resp.readline())["result"]
    assert second["events"][0]["kv"]["mod_revision"] == str(rev + 1)
    conn.close()


def test_a_client_that_stops_reading_slows_nothing_and_misses_nothing(member):
    value = b"s" * 60_000  # 36 MB in all: more than gRPC's buffers hold
    with RawWatch(member.client_port) as slow, RawWatch(member.client_port) as fast:
        start = slow.created(b"slow/", b"slow0").header.revision + 1
        fast.created(b"slow/", b"slow0")
        slow.reading.clear()  # stops reading: gRPC's window, then the member's queue fill up
        network = _network_actor(member)
        rss_before = network.memory_info().rss
        took = []
        for i in range(600):
            begun = time.monotonic()
            _put(member, b"slow/%04d" % (i % 50), value)
            took.append(time.monotonic() - begun)
        assert [e.kv.mod_revision for e in fast.events(600)] == list(range(start, start + 600))
        grown = network.memory_info().rss - rss_before
        assert grown < 64 * 1024 * 1024, f"the network actor grew by {grown} bytes"
        assert sorted(took)[len(took) // 2] < 0.5
        slow.reading.set()
        got = slow.events(600, timeout_s=30)
        assert [e.kv.mod_revision for e in got] == list(range(start, start + 600))


def test_a_slow_watcher_behind_a_compaction_is_canceled(member):
    with RawWatch(member.client_port) as slow:
        slow.created(b"lag/", b"lag0")
        slow.reading.clear()
        rev = 0
        for i in range(600):
            rev = _put(member, b"lag/%03d" % (i % 100), b"l" * 60_000)
        _kv(member).Compact(pb.CompactionRequest(revision=rev), timeout=RPC_TIMEOUT_S)
        slow.reading.set()
        seen = []
        while True:
            resp = slow.next(30)
            if resp.canceled:
                break
            seen.extend(e.kv.mod_revision for e in resp.events)
        assert resp.compact_revision == rev
        # what came before the cancel came in order and without a gap
        assert seen == list(range(seen[0], seen[0] + len(seen))) if seen else seen == []
        assert not seen or seen[-1] < rev


def _network_actor(member) -> psutil.Process:
    return psutil.Process(member.actor_pids()["network"])


def test_require_leader_streams_end_without_a_leader(tmp_path):
    with running(tmp_path, 3) as c:
        c.wait_leader()
        survivor = c.members[0]
        with RawWatch(survivor.client_port, metadata=(("hasleader", "true"),)) as w:
            w.created(b"leader")
            for m in c.members[1:]:
                m.stop()
            with pytest.raises(grpc.RpcError) as err:
                w.next(timeout_s=20)
            assert (err.value.code(), err.value.details()) == (
                grpc.StatusCode.UNAVAILABLE, "etcdserver: no leader")
        with RawWatch(survivor.client_port, metadata=(("hasleader", "true"),)) as refused:
            refused.create(b"leader")
            with pytest.raises(grpc.RpcError) as err:
                refused.next()
            assert err.value.details() == "etcdserver: no leader"
        with RawWatch(survivor.client_port) as plain:  # without the metadata: served
            plain.created(b"leader")


def test_a_watcher_on_a_member_that_installs_a_snapshot_misses_nothing(tmp_path):
    args = ["--snapshot-count", "50", "--snapshot-catchup-entries", "10"]
    with running(tmp_path, 3, args) as c:
        leader = c.wait_leader()
        follower = next(m for m in c.members if m is not leader)
        with RawWatch(follower.client_port) as w:
            start = w.created(b"snap/", b"snap0").header.revision + 1
            os.killpg(follower.proc.pid, signal.SIGSTOP)
            try:
                # More appends than the leader keeps in flight to a member that does
                # not answer, so it stops sending and must send a snapshot later.
                for i in range(PUTS_WHILE_STOPPED):
                    _put(leader, b"snap/%03d" % (i % 20), b"v%d" % i)
            finally:
                os.killpg(follower.proc.pid, signal.SIGCONT)
            assert wait_until(lambda: any(e.get("event") == "snapshot applied"
                                          for e in follower.log_events()), 30)
            revisions = []
            while len(revisions) < PUTS_WHILE_STOPPED:
                resp = w.next(20)
                assert not resp.canceled, resp
                revisions.extend(e.kv.mod_revision for e in resp.events)
            assert revisions == list(range(start, start + PUTS_WHILE_STOPPED))
