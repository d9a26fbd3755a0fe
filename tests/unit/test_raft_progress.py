"""Progress and Inflights: the leader's view of each follower (etcd raft's tracker).

Raft §5.3: "the leader maintains a nextIndex for each follower, which is the index of
the next log entry the leader will send to that follower"; after a rejection it
decrements nextIndex and retries. etcd adds the probe / replicate / snapshot states and
a bounded window of in-flight appends; the tables here follow etcd-io/raft's
tracker/progress_test.go and tracker/inflights_test.go.
"""

from __future__ import annotations

import pytest

from petcd.actors.raft.progress import Inflights, Progress, ProgressState

PROBE, REPLICATE, SNAPSHOT = ProgressState.PROBE, ProgressState.REPLICATE, \
    ProgressState.SNAPSHOT


def progress(state: ProgressState = PROBE, match: int = 0, next_index: int = 1,
             max_inflight: int = 256, pending_snapshot: int = 0) -> Progress:
    pr = Progress(next_index, max_inflight)
    pr.match = match
    pr.state = state
    pr.pending_snapshot = pending_snapshot
    return pr


# -- Inflights ----------------------------------------------------------------------------


def test_inflights_fill_up_to_capacity_then_overflow_is_refused():
    ins = Inflights(3)
    assert (len(ins), ins.full()) == (0, False)
    for n, last in enumerate((5, 10, 15), start=1):
        ins.add(last)
        assert len(ins) == n
    assert ins.full()
    with pytest.raises(AssertionError, match="overflow"):
        ins.add(20)
    assert len(ins) == 3


def test_inflights_last_indexes_never_go_back():
    ins = Inflights(4)
    ins.add(5)
    ins.add(5)  # an empty append repeats the last index: allowed
    with pytest.raises(AssertionError):
        ins.add(4)
    assert len(ins) == 2


def test_inflights_free_le_acknowledges_every_append_up_to_an_index():
    ins = Inflights(10)
    for last in range(1, 11):
        ins.add(last)
    ins.free_le(4)
    assert len(ins) == 6 and not ins.full()
    ins.free_le(4)  # again: nothing more
    assert len(ins) == 6
    ins.free_le(3)  # an older ack: nothing
    assert len(ins) == 6
    ins.free_le(8)
    assert len(ins) == 2
    # Room again: the window is a FIFO of last indexes, not of slots.
    for last in range(11, 19):
        ins.add(last)
    assert ins.full()
    ins.free_le(12)
    assert len(ins) == 6
    ins.free_le(100)
    assert len(ins) == 0


def test_inflights_free_le_between_two_appends_keeps_the_one_not_fully_acked():
    ins = Inflights(4)
    ins.add(10)  # entries 6..10
    ins.add(20)  # entries 11..20
    ins.free_le(15)  # the follower has up to 15: the second append is not done
    assert len(ins) == 1
    ins.free_le(19)
    assert len(ins) == 1
    ins.free_le(20)
    assert len(ins) == 0


def test_inflights_free_first_and_reset():
    ins = Inflights(3)
    ins.free_first()  # empty: no-op
    assert len(ins) == 0
    for last in (1, 2, 3):
        ins.add(last)
    ins.free_first()
    assert len(ins) == 2 and not ins.full()
    ins.free_le(2)  # the oldest left is 2: freed; 3 remains
    assert len(ins) == 1
    ins.add(4)
    ins.reset()
    assert len(ins) == 0
    ins.add(1)  # after a reset the order starts over
    assert len(ins) == 1


def test_inflights_capacity_must_be_positive():
    with pytest.raises(AssertionError):
        Inflights(0)


# -- state transitions -------------------------------------------------------------------------


def test_a_new_progress_probes_from_next():
    pr = Progress(7, max_inflight=4)
    assert (pr.state, pr.match, pr.next, pr.probe_sent, pr.pending_snapshot) == \
        (PROBE, 0, 7, False, 0)
    assert not pr.is_paused() and not pr.is_learner and pr.inflights.capacity == 4


@pytest.mark.parametrize(("state", "match", "next_index", "pending", "want_next"), [
    # etcd TestProgressBecomeProbe.
    (REPLICATE, 1, 5, 0, 2),
    (SNAPSHOT, 1, 5, 10, 11),  # the follower has the snapshot: probe right after it
    (SNAPSHOT, 1, 5, 0, 2),    # the snapshot failed (pending cleared): back to match+1
    (SNAPSHOT, 12, 13, 10, 13),  # the follower got further than the snapshot
    (PROBE, 3, 9, 0, 4),
])
def test_become_probe_sets_next_as_etcd_does(state, match, next_index, pending, want_next):
    pr = progress(state, match, next_index, pending_snapshot=pending)
    pr.probe_sent = True
    pr.inflights.add(4)
    pr.become_probe()
    assert (pr.state, pr.match, pr.next) == (PROBE, match, want_next)
    assert (pr.probe_sent, pr.pending_snapshot, len(pr.inflights)) == (False, 0, 0)


def test_become_replicate_streams_from_match_plus_one():
    pr = progress(PROBE, match=1, next_index=5)
    pr.probe_sent = True
    pr.become_replicate()
    assert (pr.state, pr.match, pr.next, pr.probe_sent) == (REPLICATE, 1, 2, False)


def test_become_snapshot_records_the_pending_snapshot_and_clears_the_window():
    pr = progress(REPLICATE, match=1, next_index=5)
    pr.inflights.add(3)
    pr.become_snapshot(10)
    assert (pr.state, pr.match, pr.next, pr.pending_snapshot) == (SNAPSHOT, 1, 5, 10)
    assert len(pr.inflights) == 0
    with pytest.raises(AssertionError):
        progress().become_snapshot(0)


def test_probe_replicate_snapshot_probe_round_trip():
    pr = Progress(11, max_inflight=2)           # a new leader with last index 10
    assert pr.maybe_decrease_to(10, 4)          # rejected at 10; the follower hints 4
    assert pr.next == 5
    assert pr.maybe_update(4)                   # accepted (4 matches)
    pr.become_replicate()
    assert (pr.state, pr.match, pr.next) == (REPLICATE, 4, 5)
    pr.sent_entries(6, 10)
    assert (pr.next, len(pr.inflights)) == (11, 1)
    # Entries 5.. are compacted on the leader meanwhile; the follower falls behind.
    pr.become_snapshot(20)
    assert pr.is_paused()
    assert pr.maybe_update(20)                  # the follower applied the snapshot
    assert (pr.match, pr.next) == (20, 21)
    pr.become_probe()
    assert (pr.state, pr.next) == (PROBE, 21)
    pr.become_replicate()
    assert (pr.state, pr.next) == (REPLICATE, 21)


# -- is_paused ----------------------------------------------------------------------------------


def test_is_paused_per_state():
    # etcd TestProgressIsPaused.
    pr = progress(PROBE)
    assert not pr.is_paused()
    pr.probe_sent = True
    assert pr.is_paused()

    pr = progress(REPLICATE, max_inflight=2)
    pr.probe_sent = True  # irrelevant when replicating
    assert not pr.is_paused()
    pr.inflights.add(1)
    assert not pr.is_paused()
    pr.inflights.add(2)
    assert pr.is_paused()
    pr.inflights.free_le(1)
    assert not pr.is_paused()

    pr = progress(SNAPSHOT, pending_snapshot=5)
    assert pr.is_paused()


def test_an_accepted_or_rejected_probe_resumes_sending():
    # etcd TestProgressResume.
    pr = progress(PROBE, next_index=2)
    pr.probe_sent = True
    pr.maybe_decrease_to(1, 1)
    assert not pr.probe_sent
    pr.probe_sent = True
    pr.maybe_update(2)
    assert not pr.probe_sent


# -- maybe_update --------------------------------------------------------------------------------


@pytest.mark.parametrize(("update", "want_match", "want_next", "want"), [
    # etcd TestProgressUpdate: match 3, next 5.
    (2, 3, 5, False),  # old news
    (3, 3, 5, False),  # old news
    (4, 4, 5, True),
    (5, 5, 6, True),
    (7, 7, 8, True),
])
def test_maybe_update(update, want_match, want_next, want):
    pr = progress(REPLICATE, match=3, next_index=5)
    assert pr.maybe_update(update) is want
    assert (pr.match, pr.next) == (want_match, want_next)


def test_maybe_update_with_old_news_keeps_probe_paused():
    pr = progress(PROBE, match=3, next_index=4)
    pr.probe_sent = True
    assert not pr.maybe_update(2)
    assert pr.probe_sent


# -- maybe_decrease_to (§5.3: "decrement nextIndex and retry") ---------------------------------------


@pytest.mark.parametrize(("state", "match", "next_index", "rejected", "hint", "want",
                          "want_next"), [
    # etcd TestProgressMaybeDecr.
    (REPLICATE, 5, 10, 5, 5, False, 10),  # rejected <= match: stale
    (REPLICATE, 5, 10, 4, 4, False, 10),  # rejected <= match: stale
    (REPLICATE, 5, 10, 9, 9, True, 6),    # straight back to match + 1
    (PROBE, 0, 10, 5, 5, False, 10),      # not the probe in flight (next-1): stale
    (PROBE, 0, 10, 9, 9, True, 9),        # decrement by one
    (PROBE, 0, 2, 1, 1, True, 1),
    (PROBE, 0, 1, 0, 0, True, 1),         # never below 1
    (PROBE, 0, 10, 9, 2, True, 3),        # jump to the follower's hint + 1
    (PROBE, 0, 10, 9, 0, True, 1),
    # Beyond etcd's table: never below match + 1, and never up from a hint.
    (PROBE, 4, 10, 9, 2, True, 5),
    (PROBE, 4, 10, 9, 20, True, 9),
])
def test_maybe_decrease_to(state, match, next_index, rejected, hint, want, want_next):
    pr = progress(state, match, next_index)
    pr.probe_sent = True
    assert pr.maybe_decrease_to(rejected, hint) is want
    assert (pr.state, pr.match, pr.next) == (state, match, want_next)
    if state == PROBE:
        assert pr.probe_sent is (not want)  # a fresh rejection lets the next probe go


def test_stale_rejection_after_the_follower_caught_up_in_replicate_is_ignored():
    pr = progress(REPLICATE, match=0, next_index=1)
    pr.sent_entries(5, 5)
    pr.sent_entries(5, 10)
    assert pr.maybe_update(10)
    pr.inflights.free_le(10)
    # A rejection of an older append (prev index 3) arrives late.
    assert not pr.maybe_decrease_to(3, 2)
    assert (pr.state, pr.match, pr.next) == (REPLICATE, 10, 11)


def test_a_rejection_while_sending_a_snapshot_is_stale_unless_it_answers_next_minus_one():
    pr = progress(PROBE, match=2, next_index=6)
    pr.become_snapshot(20)
    assert not pr.maybe_decrease_to(3, 1)
    assert (pr.state, pr.next, pr.pending_snapshot) == (SNAPSHOT, 6, 20)


# -- sent_entries --------------------------------------------------------------------------------


def test_sent_entries_in_replicate_moves_next_optimistically_and_fills_the_window():
    pr = progress(REPLICATE, match=4, next_index=5, max_inflight=2)
    pr.sent_entries(3, 7)
    assert (pr.next, len(pr.inflights), pr.is_paused()) == (8, 1, False)
    pr.sent_entries(0, 7)  # an empty append (commit only) takes no slot
    assert (pr.next, len(pr.inflights)) == (8, 1)
    pr.sent_entries(2, 9)
    assert (pr.next, len(pr.inflights), pr.is_paused()) == (10, 2, True)
    assert pr.match == 4
    assert pr.maybe_update(7)
    pr.inflights.free_le(7)
    assert (pr.match, pr.next, len(pr.inflights), pr.is_paused()) == (7, 10, 1, False)


def test_sent_entries_in_probe_waits_for_the_answer():
    pr = progress(PROBE, match=4, next_index=5)
    pr.sent_entries(3, 7)
    # A probe does not move next: the follower might reject it.
    assert (pr.next, pr.probe_sent, len(pr.inflights), pr.is_paused()) == (5, True, 0, True)


def test_sent_entries_in_snapshot_changes_nothing():
    pr = progress(SNAPSHOT, match=4, next_index=5, pending_snapshot=9)
    pr.sent_entries(3, 7)
    assert (pr.next, pr.probe_sent, len(pr.inflights)) == (5, False, 0)
