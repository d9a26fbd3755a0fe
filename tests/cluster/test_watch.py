"""etcd's Watch service on real members, spoken with grpcio and the gateway's JSON:
requests and etcd's answers to bad ones, history and compaction, progress, fragments,
require-leader, a watcher whose member installs a snapshot, and on three members with
a writer on each, a client that stops reading and a slow watcher behind a compaction."""

from __future__ import annotations

import json
import os
import signal
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import psutil
import pytest

from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.api.etcdserverpb import rpc_pb2_grpc as rpc
from petcd.api.mvccpb.kv_pb2 import Event

from .gateway_watch import GatewayWatch
from .members import b64, running, wait_until
from .watch_streams import RawWatch

MAX_REQUEST_BYTES = 64 * 1024
OVERHEAD_BYTES = 512 * 1024
PROGRESS_INTERVAL = "300ms"
COMPACTED = "etcdserver: mvcc: required revision has been compacted"
RPC_TIMEOUT_S = 10.0
PUTS_WHILE_STOPPED = 600
COMPACTION_RACES = 30  # before the fix, about one in four watches read a stale store
VALUE = b"s" * 60_000
KEYS_PER_WRITER = 20
BASELINE_PUTS = 90
STALLED_PUTS = 300  # 18 MB, more than gRPC's and the kernel's buffers hold (9-13 MB here)
LAGGING_PUTS = 450
COMPACT_AFTER_PUTS = 400


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


def test_a_watch_made_right_after_a_compaction_sees_it(member):
    """A batch is answered before its commit: a watch from a revision that a compaction
    just answered made unreachable is canceled with compact_revision, as in etcd,
    every time, never served from a store that does not show the compaction yet."""
    kv = _kv(member)
    with RawWatch(member.client_port) as w:
        for i in range(COMPACTION_RACES):
            key = b"race/%d" % i
            first = kv.Put(pb.PutRequest(key=key), timeout=RPC_TIMEOUT_S).header.revision
            gone = kv.DeleteRange(pb.DeleteRangeRequest(key=key),
                                  timeout=RPC_TIMEOUT_S).header.revision
            kv.Compact(pb.CompactionRequest(revision=gone), timeout=RPC_TIMEOUT_S)
            w.create(key, start_revision=first)
            assert w.next().created
            canceled = w.next()
            assert (canceled.canceled, canceled.compact_revision, len(canceled.events)) == (
                True, gone, 0), (i, canceled)


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


def test_gateway_watch_creates_progresses_and_cancels_on_one_connection(member):
    rev = _put(member, b"gw", b"0")
    with GatewayWatch(member.client_port) as w:  # each request sent as the test goes
        w.send({"create_request": {"key": b64("gw"), "start_revision": str(rev)}})
        created = w.next()["result"]
        assert (w.status, w.headers["content-type"]) == (200, "application/json")
        assert created["created"] is True and "watch_id" not in created  # id 0, omitted
        assert w.next()["result"]["events"] == [{"kv": {
            "key": b64("gw"), "create_revision": str(rev), "mod_revision": str(rev),
            "version": "1", "value": b64("0")}}]
        _put(member, b"gw", b"1")
        [live] = w.next()["result"]["events"]
        assert (live["kv"]["mod_revision"], live["kv"]["value"]) == (str(rev + 1), b64("1"))
        w.send({"progress_request": {}})
        progress = w.next()["result"]
        assert (progress["watch_id"], progress["header"]["revision"]) == ("-1", str(rev + 1))
        assert "events" not in progress
        w.send({"cancel_request": {"watch_id": "0"}})
        canceled = w.next()["result"]
        assert canceled["canceled"] is True and "watch_id" not in canceled
        _put(member, b"gw", b"2")
        assert w.quiet(), "no event after the cancel"
        assert w.line_per_chunk, "one line per HTTP chunk (etcd3gw reads a chunk as a line)"


def test_gateway_watch_refuses_a_first_request_that_does_not_decode(member):
    """grpc-gateway fails the call (Unknown, 500) when the first request does not
    decode; a later one only ends the requests, and the stream goes on."""
    cut_short = b'{"create_request": {"key": "Z3c="}'
    with GatewayWatch(member.client_port, content_length_bytes=len(cut_short)) as w:
        w.write(cut_short)
        status, content_type, body = w.response()
    assert (status, content_type, json.loads(body)) == (500, "application/json", {
        "error": "unexpected EOF", "code": 2, "message": "unexpected EOF"})
    with GatewayWatch(member.client_port) as w:
        w.send({"create_request": {"key": b64("gw-bad")}})
        w.send(b'{"progress_request": nope}')
        assert w.next()["result"]["created"] is True
        w.end_body()
        rev = _put(member, b"gw-bad")
        assert w.next()["result"]["events"][0]["kv"]["mod_revision"] == str(rev)


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


def _write(members, puts: int, prefix: bytes, done: list[tuple[float, int]]) -> None:
    """`puts` puts of VALUE, one writer per member at once; each put's (latency in s,
    revision) goes into `done` as it is acknowledged."""
    def writer(i: int, m) -> None:  # type: ignore[no-untyped-def]
        kv = _kv(m)
        for n in range(puts // len(members)):
            begun = time.monotonic()
            resp = kv.Put(pb.PutRequest(key=prefix + b"%d/%02d" % (i, n % KEYS_PER_WRITER),
                                        value=VALUE), timeout=RPC_TIMEOUT_S)
            done.append((time.monotonic() - begun, resp.header.revision))

    with ThreadPoolExecutor(len(members)) as pool:
        for future in [pool.submit(writer, i, m) for i, m in enumerate(members)]:
            future.result()


def _next_revision(m) -> int:  # type: ignore[no-untyped-def]
    """The revision the next write gets: a linearizable read on `m` has applied the
    writes acknowledged before it."""
    return _kv(m).Range(pb.RangeRequest(key=b"-"), timeout=RPC_TIMEOUT_S).header.revision + 1


@pytest.fixture(scope="module")
def trio(tmp_path_factory):
    with running(tmp_path_factory.mktemp("watch3"), 3) as c:
        c.wait_leader()
        _write(c.members, len(c.members), b"warm/", [])  # connections and elections done
        yield c


def test_a_client_that_stops_reading_slows_no_writer_and_misses_nothing(trio):
    watched = trio.members[0]
    baseline: list[tuple[float, int]] = []
    _write(trio.members, BASELINE_PUTS, b"stop/", baseline)
    start = _next_revision(watched)
    with RawWatch(watched.client_port) as stalled, RawWatch(watched.client_port) as fast:
        stalled.created(b"stop/", b"stop0", start_revision=start)
        fast.created(b"stop/", b"stop0", start_revision=start)
        stalled.reading.clear()  # gRPC's window, the kernel's buffers, the member's queue fill
        network = _network_actor(watched)
        rss_before = network.memory_info().rss
        stalled_writes: list[tuple[float, int]] = []
        _write(trio.members, STALLED_PUTS, b"stop/", stalled_writes)
        expected = list(range(start, start + STALLED_PUTS))
        assert sorted(rev for _, rev in stalled_writes) == expected
        assert [e.kv.mod_revision for e in fast.events(STALLED_PUTS)] == expected
        grown = network.memory_info().rss - rss_before
        assert grown < 64 * 1024 * 1024, f"the network actor grew by {grown} bytes"
        usual, meanwhile = (statistics.median(t for t, _ in w) for w in (baseline, stalled_writes))
        assert meanwhile < 3 * usual + 0.1, f"median put {meanwhile:.3f} s, {usual:.3f} s before"
        stalled.reading.set()
        got = stalled.events(STALLED_PUTS, timeout_s=30)
        assert [e.kv.mod_revision for e in got] == expected


def test_a_slow_watcher_behind_a_compaction_is_canceled(trio):
    start = _next_revision(trio.members[0])
    with RawWatch(trio.members[0].client_port) as slow, ThreadPoolExecutor(1) as background:
        slow.created(b"lag/", b"lag0", start_revision=start)
        slow.reading.clear()
        done: list[tuple[float, int]] = []
        writing = background.submit(_write, trio.members, LAGGING_PUTS, b"lag/", done)
        # Compact while the writers go on, far past where the watcher stopped taking
        # events (after 9-13 MB here: what gRPC and the kernel hold). Through the
        # watcher's member: its answer says that member applied the compaction.
        assert wait_until(lambda: len(done) >= COMPACT_AFTER_PUTS or writing.done(), 60)
        assert len(done) >= COMPACT_AFTER_PUTS, writing.exception()
        compacted = max(rev for _, rev in done)
        _kv(trio.members[0]).Compact(pb.CompactionRequest(revision=compacted),
                                     timeout=RPC_TIMEOUT_S)
        writing.result()
        slow.reading.set()
        seen = []
        while not (resp := slow.next(30)).canceled:
            seen.extend(e.kv.mod_revision for e in resp.events)
        assert (resp.watch_id, resp.compact_revision) == (0, compacted)
        # what came before the cancel came in order and without a gap
        assert seen == list(range(start, start + len(seen)))
        assert start + len(seen) < compacted


def _network_actor(member) -> psutil.Process:
    return psutil.Process(member.actor_pids()["network"])
