"""ReadIndex bookkeeping (Raft thesis §6.4, "Processing read-only queries more
efficiently"; etcd-io/raft read_only.go).

The leader records its commit index when a read arrives, then confirms it is still the
leader by a round of heartbeats acknowledged by a majority; a quorum for a later
request proves leadership at the time of every earlier one as well.
"""

from __future__ import annotations

import pytest

from petcd.actors.raft.readonly import ReadOnly, ReadRequest

LEADER = 1
VOTERS = (1, 2, 3)


def contexts(requests: list[ReadRequest]) -> list[bytes]:
    return [r.context for r in requests]


def queue(*ctxs: bytes, capacity: int = 16) -> ReadOnly:
    ro = ReadOnly(capacity)
    for n, ctx in enumerate(ctxs):
        assert ro.add(ctx, src=LEADER if n % 2 == 0 else 2, index=10 + n, leader=LEADER,
                      waiting=False)
    return ro


def test_a_read_is_confirmed_once_a_quorum_including_the_leader_acks():
    ro = queue(b"a")
    assert ro.last_context() == b"a"
    assert ro.ack(2, b"a", VOTERS) != []  # leader + 2 = 2 of 3
    assert len(ro) == 0 and ro.last_context() == b""


def test_a_read_waits_for_a_majority_in_a_five_node_cluster():
    ro = queue(b"a")
    voters = (1, 2, 3, 4, 5)
    assert ro.ack(2, b"a", voters) == []
    assert ro.ack(2, b"a", voters) == []  # the same follower twice is one ack
    assert len(ro) == 1
    [req] = ro.ack(4, b"a", voters)
    assert (req.context, req.src, req.index, req.acks) == (b"a", LEADER, 10, {1, 2, 4})


def test_requests_are_answered_in_arrival_order_a_later_quorum_confirms_earlier_ones():
    ro = queue(b"a", b"b", b"c", b"d")
    assert ro.last_context() == b"d"
    done = ro.ack(3, b"c", VOTERS)
    assert contexts(done) == [b"a", b"b", b"c"]
    assert [(r.src, r.index) for r in done] == [(LEADER, 10), (2, 11), (LEADER, 12)]
    assert len(ro) == 1 and ro.last_context() == b"d"
    # Acks for contexts already answered are unknown now.
    assert ro.ack(2, b"a", VOTERS) == []
    assert contexts(ro.ack(2, b"d", VOTERS)) == [b"d"]
    assert len(ro) == 0


def test_an_earlier_quorum_leaves_later_requests_waiting():
    ro = queue(b"a", b"b", b"c")
    assert contexts(ro.ack(2, b"a", VOTERS)) == [b"a"]
    assert len(ro) == 2 and ro.last_context() == b"c"
    assert contexts(ro.ack(2, b"c", VOTERS)) == [b"b", b"c"]


def test_acks_for_unknown_contexts_are_ignored():
    ro = queue(b"a")
    voters = (1, 2, 3, 4, 5)
    assert ro.ack(2, b"zzz", voters) == []
    assert ro.ack(3, b"", voters) == []  # a plain heartbeat carries no context
    assert len(ro) == 1
    # Neither counted for b"a": the leader and 4 are not yet a majority of five.
    assert ro.ack(4, b"a", voters) == []
    [req] = ro.ack(2, b"a", voters)
    assert req.acks == {LEADER, 2, 4}


def test_acks_from_non_voters_do_not_make_a_quorum():
    ro = queue(b"a")
    assert ro.ack(9, b"a", VOTERS) == []   # a learner
    assert ro.ack(10, b"a", VOTERS) == []
    assert len(ro) == 1
    assert contexts(ro.ack(3, b"a", VOTERS)) == [b"a"]


def test_capacity_bounds_queued_and_waiting_requests_together():
    ro = ReadOnly(3)
    assert ro.add(b"a", 2, 5, LEADER, waiting=False)
    assert ro.add(b"w1", 2, 0, LEADER, waiting=True)
    assert ro.add(b"b", 3, 5, LEADER, waiting=False)
    assert len(ro) == 3
    assert not ro.add(b"c", 2, 5, LEADER, waiting=False)
    assert not ro.add(b"w2", 2, 0, LEADER, waiting=True)
    assert len(ro) == 3 and ro.last_context() == b"b"
    assert contexts(ro.ack(2, b"b", VOTERS)) == [b"a", b"b"]
    assert ro.add(b"c", 2, 6, LEADER, waiting=False)  # room again
    with pytest.raises(AssertionError):
        ReadOnly(0)


def test_waiting_requests_are_released_in_order_once():
    """Reads that arrive before the new leader committed an entry of its own term
    (thesis §6.4 step 1) wait; they do not take part in heartbeat rounds."""
    ro = ReadOnly(8)
    assert ro.add(b"w1", 2, 0, LEADER, waiting=True)
    assert ro.add(b"w2", LEADER, 0, LEADER, waiting=True)
    assert ro.last_context() == b""
    assert ro.ack(2, b"w1", VOTERS) == []
    assert len(ro) == 2
    assert ro.release_waiting() == [(b"w1", 2), (b"w2", LEADER)]
    assert ro.release_waiting() == []
    assert len(ro) == 0


def test_a_duplicate_context_is_queued_once_and_keeps_the_first_request():
    ro = ReadOnly(8)
    assert ro.add(b"a", 2, 5, LEADER, waiting=False)
    assert ro.add(b"a", 3, 9, LEADER, waiting=False)  # accepted, as in etcd: not queued
    assert len(ro) == 1
    [req] = ro.ack(2, b"a", VOTERS)
    assert (req.src, req.index) == (2, 5)
    assert ro.ack(3, b"a", VOTERS) == []


def test_clear_drops_everything():
    ro = queue(b"a", b"b")
    ro.add(b"w", 2, 0, LEADER, waiting=True)
    ro.clear()
    assert (len(ro), ro.last_context(), ro.release_waiting()) == (0, b"", [])
    assert ro.ack(2, b"a", VOTERS) == []


def test_single_voter_leader_confirms_on_its_own_ack():
    ro = queue(b"a", b"b")
    assert contexts(ro.ack(LEADER, b"b", (LEADER,))) == [b"a", b"b"]
