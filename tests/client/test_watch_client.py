"""The Python client's watch against a real server: events, ranges, history, filters,
cancel, progress, and resumption on another member when its own is stopped."""

from __future__ import annotations

import threading
import time

import grpc
import pytest

from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.api.mvccpb import kv_pb2
from petcd.client import Client, EtcdError
from petcd.client.errors import DEADLINE_MESSAGE
from petcd.client.watch import ResumePoint, advance

WAIT_S = 5.0  # for any one response: every wait in these tests is bounded
QUIET_S = 0.3  # how long a watch must stay silent to show it got nothing more
DEAD_ENDPOINT = "127.0.0.1:1"
PUT, DELETE = kv_pb2.Event.PUT, kv_pb2.Event.DELETE


@pytest.fixture
def client(cluster):
    with Client(cluster.endpoints) as made:
        yield made


def _created(watch) -> pb.WatchResponse:
    resp = watch.get(WAIT_S)
    assert resp is not None and resp.created, resp
    return resp


def _events(watch, count: int, exact: bool = True) -> list[kv_pb2.Event]:
    """The next `count` events (from as many responses as they come in); with
    exact=False, at least `count` (one response may carry several revisions)."""
    events: list[kv_pb2.Event] = []
    deadline = time.monotonic() + WAIT_S
    while len(events) < count:
        resp = watch.get(max(deadline - time.monotonic(), 0.01))
        assert resp is not None, f"only {len(events)} of {count} events in {WAIT_S}s"
        events.extend(resp.events)
    assert len(events) == count or not exact, events
    return events


def _seen(events: list[kv_pb2.Event]) -> list[tuple[int, bytes, bytes]]:
    return [(e.type, e.kv.key, e.kv.value) for e in events]


def test_puts_and_deletes_arrive_in_order(client):
    with client.watch("w1/k") as watch:
        created = _created(watch)
        revisions = [client.put("w1/k", "v1").header.revision]
        client.put("w1/other", "not watched")
        revisions.append(client.put("w1/k", "v2").header.revision)
        revisions.append(client.delete("w1/k").header.revision)
        events = _events(watch, 3)
        assert _seen(events) == [(PUT, b"w1/k", b"v1"), (PUT, b"w1/k", b"v2"),
                                 (DELETE, b"w1/k", b"")]
        assert [e.kv.mod_revision for e in events] == revisions
        assert created.header.revision < revisions[0]
        assert watch.get(QUIET_S) is None and not watch.ended


def test_prefix_and_explicit_range(client):
    with client.watch("w2/", prefix=True, require_leader=True) as by_prefix, \
            client.watch("w2/a", "w2/c") as by_range:
        _created(by_prefix)
        _created(by_range)
        for key in ("w2/a", "w2/b", "w2/c", "w3"):
            client.put(key, "v")
        assert [e.kv.key for e in _events(by_prefix, 3)] == [b"w2/a", b"w2/b", b"w2/c"]
        assert [e.kv.key for e in _events(by_range, 2)] == [b"w2/a", b"w2/b"]
        assert by_range.get(QUIET_S) is None


def test_start_revision_in_the_past_replays_history(client):
    first = client.put("w4/k", "1").header.revision
    client.put("w4/k", "2")
    client.put("w4/k", "3")
    with client.watch("w4/k", start_revision=first + 1) as watch:
        _created(watch)
        assert [e.kv.value for e in _events(watch, 2)] == [b"2", b"3"]


def test_prev_kv_comes_with_each_event(client):
    client.put("w5/k", "old")
    with client.watch("w5/k", prev_kv=True) as watch:
        _created(watch)
        client.put("w5/k", "new")
        client.delete("w5/k")
        events = _events(watch, 2)
        assert [e.prev_kv.value for e in events] == [b"old", b"new"]


def test_no_put_and_no_delete_filter_events(client):
    with client.watch("w6/k", no_put=True) as deletes, \
            client.watch("w6/k", no_delete=True) as puts:
        _created(deletes)
        _created(puts)
        client.put("w6/k", "1")
        client.delete("w6/k")
        client.put("w6/k", "2")
        assert [e.type for e in _events(deletes, 1)] == [DELETE]
        assert _seen(_events(puts, 2)) == [(PUT, b"w6/k", b"1"), (PUT, b"w6/k", b"2")]
        assert deletes.get(QUIET_S) is None


def test_cancel_ends_the_iterator_after_the_canceled_response(client):
    watch = client.watch("w7/k")
    _created(watch)
    watch.cancel()
    resp = watch.get(WAIT_S)
    assert resp is not None and resp.canceled, resp
    assert list(watch) == [] and watch.ended
    watch.close()


def test_progress_request_tells_the_revision_reached(client):
    with client.watch("w8/k") as watch:
        _created(watch)
        revision = client.put("w8/other", "x").header.revision
        watch.request_progress()
        resp = watch.get(WAIT_S)
        assert resp is not None and not resp.events and not resp.created, resp
        assert resp.header.revision >= revision
        assert watch.next_revision == resp.header.revision + 1


def test_a_compacted_start_revision_cancels_the_watch(client):
    old = client.put("w9/k", "1").header.revision
    client.put("w9/k", "2")
    client.compact(old + 1)
    with client.watch("w9/k", start_revision=old) as watch:
        responses = [watch.get(WAIT_S) for _ in range(2)]
        last = [r for r in responses if r is not None][-1]
        assert (last.canceled, last.compact_revision, list(last.events)) == (True, old + 1, [])
        assert watch.ended


def test_close_ends_an_iteration_in_another_thread(client):
    watch = client.watch("w10/k")
    seen: list[pb.WatchResponse] = []
    reader = threading.Thread(target=lambda: seen.extend(watch))
    reader.start()
    time.sleep(QUIET_S)
    watch.close()
    reader.join(WAIT_S)
    assert not reader.is_alive()
    assert [r.created for r in seen] in ([True], [])
    assert watch.get(0) is None and watch.ended


def test_closing_the_client_closes_its_watches(cluster):
    client = Client(cluster.endpoints)
    watch = client.watch("w11/k")
    _created(watch)
    client.close()
    assert watch.ended and watch.get(0) is None


def test_no_endpoint_raises_after_the_command_timeout():
    started = time.monotonic()
    with Client([DEAD_ENDPOINT], dial_timeout_s=0.2, command_timeout_s=0.5) as client:
        watch = client.watch("k")
        with pytest.raises(EtcdError) as err:
            watch.get(WAIT_S)
    assert time.monotonic() - started < 3
    assert (err.value.code, err.value.message) == (grpc.StatusCode.DEADLINE_EXCEEDED,
                                                   DEADLINE_MESSAGE)
    assert DEAD_ENDPOINT in err.value.detail and watch.ended


def test_resumes_on_another_member_without_gap_or_duplicate(cluster3):
    """The watch's member is stopped mid-stream: the watch goes on from another
    member, and the caller sees each acknowledged put once, in order."""
    with Client(cluster3.endpoints) as probe:
        names = {m.ID: m.name for m in probe.member_list().members}
        leader = names[probe.status().leader]
    # Watch from a follower, so stopping it costs no election and no write fails.
    by_name = dict(zip(cluster3.member_names, cluster3.endpoints))
    follower = next(name for name in cluster3.member_names if name != leader)
    others = [endpoint for name, endpoint in by_name.items() if name != follower]
    with Client([by_name[follower], *others]) as client, Client(others) as writer:
        watch = client.watch("r/", prefix=True)
        assert names[_created(watch).header.member_id] == follower
        revisions = [writer.put(f"r/{i}", str(i)).header.revision for i in range(5)]
        events = _events(watch, 2, exact=False)
        cluster3.stop_member(follower)
        try:
            revisions += [writer.put(f"r/{i}", str(i)).header.revision for i in range(5, 10)]
            responses = []
            while len(events) < len(revisions):
                resp = watch.get(WAIT_S)
                assert resp is not None, f"{len(events)} events, then nothing for {WAIT_S}s"
                responses.append(resp)
                events.extend(resp.events)
            assert [e.kv.mod_revision for e in events] == revisions
            assert any(r.created and names[r.header.member_id] != follower
                       for r in responses)
            assert watch.get(QUIET_S) is None
        finally:
            watch.close()
            cluster3.start_member(follower)


# The resumption arithmetic, pure.

def _response(*revisions: int, fragment: bool = False, created: bool = False,
              header_revision: int = 0) -> pb.WatchResponse:
    events = [kv_pb2.Event(kv=kv_pb2.KeyValue(key=b"k", mod_revision=r)) for r in revisions]
    return pb.WatchResponse(header=pb.ResponseHeader(revision=header_revision),
                            events=events, fragment=fragment, created=created)


def test_resume_point_follows_created_events_and_progress():
    point, _ = advance(ResumePoint(0), _response(created=True, header_revision=10))
    assert point == ResumePoint(11)
    point, _ = advance(point, _response(12, 12, 13, header_revision=13))
    assert point == ResumePoint(14)
    point, _ = advance(point, _response(header_revision=20))  # a progress notification
    assert point == ResumePoint(21)
    point, _ = advance(point, _response(created=True, header_revision=30))  # resumed
    assert point == ResumePoint(21)


def test_a_resumption_inside_a_fragmented_revision_repeats_nothing():
    point, _ = advance(ResumePoint(5), _response(5, 6, 6, fragment=True))
    assert point == ResumePoint(6, seen=2)
    point = point.resumed()  # the new stream starts at 6 and sends its events again
    point, resp = advance(point, _response(6, 6, 6, fragment=True))
    assert [e.kv.mod_revision for e in resp.events] == [6]
    assert point == ResumePoint(6, seen=3)
    point, resp = advance(point, _response(6, 7))
    assert [e.kv.mod_revision for e in resp.events] == [6, 7]
    assert point == ResumePoint(8)
