"""Traced writes' stage times: the raft actor's RaftTraces and the network actor's
Traces, on an injected clock, and the petcd-trace text both ends read."""

from __future__ import annotations

import itertools

from petcd.actors.network import trace
from petcd.actors.raft.pipeline import SaveRequest
from petcd.actors.raft.tracing import MAX_TRACED, RaftTraces
from petcd.storage.raftstate import Entry, EntryType, HardState
from petcd.api.etcdserverpb import raft_internal_pb2 as rpb


def _entry(index: int, request_id: int) -> Entry:
    request = rpb.InternalRaftRequest()
    request.header.ID = request_id
    return Entry(2, index, EntryType.NORMAL, request.SerializeToString())


def _save(seq: int, *entries: Entry) -> SaveRequest:
    return SaveRequest(seq, HardState(2, 1, 0), entries, None)


def test_raft_traces_follow_a_traced_entry_from_proposal_to_commit():
    clock = itertools.count(100, 10)
    traces = RaftTraces(lambda: next(clock))
    assert not traces
    traces.received(7)
    traces.saved(_save(1, _entry(5, 6), _entry(6, 7), Entry(2, 7, EntryType.CONF_CHANGE, b"x")))
    traces.persisted(1)
    assert traces.committed([_entry(5, 6)]) == []  # untraced
    [[request_id, stamps]] = traces.committed([_entry(6, 7)])
    assert request_id == 7
    assert stamps == [["raft_received", 100], ["appended", 110], ["persisted", 120],
                      ["committed", 140]]
    assert not traces


def test_raft_traces_leave_out_persisted_when_the_commit_came_first():
    traces = RaftTraces(lambda: 1)
    traces.received(9)
    traces.saved(_save(3, _entry(4, 9)))
    [[_, stamps]] = traces.committed([_entry(4, 9)])
    assert [stage for stage, _ in stamps] == ["raft_received", "appended", "committed"]
    traces.persisted(3)  # the entry is gone: nothing to stamp, nothing kept
    assert not traces


def test_raft_traces_are_bounded():
    traces = RaftTraces(lambda: 1)
    for request_id in range(1, MAX_TRACED + 2):
        traces.received(request_id)
    traces.saved(_save(1, _entry(1, 1), _entry(2, MAX_TRACED + 1)))
    assert [r for r, _ in traces.committed([_entry(1, 1), _entry(2, MAX_TRACED + 1)])] == [
        MAX_TRACED + 1]  # the oldest was dropped


def test_network_traces_join_the_raft_and_apply_times_and_encode_them():
    traces = trace.Traces(max_traces=2)
    traced = trace.Trace()
    start = traced.stamps["arrived"]
    traces.proposed(41, traced)
    traces.sent([41])
    traces.on_raft([[41, [["raft_received", start + 2000], ["committed", start + 5000]]],
                    [99, [["committed", start]]]])  # another member's: ignored
    traces.on_applied([3, 2, [], [], start + 6000, start + 7000, None])
    traces.responded(41)
    stamps = trace.decode(traced.encode())
    assert list(stamps) == ["arrived", "proposed", "raft_received", "committed",
                            "apply_received", "applied", "responded"]
    assert (stamps["raft_received"], stamps["committed"], stamps["apply_received"],
            stamps["applied"]) == (2, 5, 6, 7)
    assert stamps["arrived"] == 0 and stamps["responded"] >= 0


def test_network_traces_are_bounded_and_forget_what_was_not_answered():
    traces = trace.Traces(max_traces=2)
    kept = [trace.Trace() for _ in range(3)]
    for request_id, traced in enumerate(kept):
        traces.proposed(request_id, traced)
    traces.forget(2)
    for request_id in range(3):
        traces.responded(request_id)
    assert "responded" not in kept[0].stamps  # dropped: the table holds two
    assert "responded" in kept[1].stamps
    assert "responded" not in kept[2].stamps  # forgotten (its proposal failed)


def test_decode_keeps_known_stages_only():
    assert trace.decode("arrived=0,applied=12,bogus=3,committed=x,responded=-1") == {
        "arrived": 0, "applied": 12, "responded": -1}
