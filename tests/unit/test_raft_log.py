"""RaftLog: the log one member holds, what of it is durable, committed and applied.

Section numbers are those of the Raft paper (Ongaro and Ousterhout, "In Search of an
Understandable Consensus Algorithm", extended version). Tables marked "etcd" are taken
from etcd-io/raft's log_test.go, with the same expectations.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from petcd.actors.raft.log import RaftLog
from petcd.actors.raft.types import PersistedState, Snapshot
from petcd.storage.raftstate import ConfState, Entry, EntryType, HardState, SnapshotMeta


def ent(index: int, term: int, size: int = 0) -> Entry:
    """An entry whose data names it, so two entries differ if index or term differ."""
    data = f"{index}@{term}".encode()
    return Entry(term, index, EntryType.NORMAL, data.ljust(size, b".") if size else data)


def ents(first: int, *terms: int) -> tuple[Entry, ...]:
    return tuple(ent(first + n, t) for n, t in enumerate(terms))


def snap(index: int, term: int, data: bytes = b"sm") -> Snapshot:
    return Snapshot(SnapshotMeta(index, term, ConfState(frozenset({1, 2, 3}))), data)


def make_log(*terms: int, commit: int = 0, snapshot: Snapshot | None = None) -> RaftLog:
    """A log read back from disk: everything in it is durable."""
    first = (snapshot.meta.index if snapshot else 0) + 1
    return RaftLog(PersistedState(HardState(term=max(terms, default=1), commit=commit),
                                  snapshot, ents(first, *terms)))


def hand_to_wal(log: RaftLog) -> tuple[Entry, ...]:
    """What RaftCore.ready/advance do with the unstable tail: hand it to the WAL."""
    batch = log.unpersisted_entries()
    if batch:
        log.persisting = batch[-1].index
    if log.unstable_snapshot:
        log.unstable_snapshot, log.persisting_snapshot = None, log.unstable_snapshot
    return batch


def marks(log: RaftLog) -> dict[str, int]:
    return {"offset": log.offset, "applied": log.applied, "committed": log.committed,
            "persisted": log.persisted, "persisting": log.persisting, "last": log.last_index}


# -- construction from what was persisted ------------------------------------------------


def test_an_empty_log_starts_at_index_zero_term_zero():
    log = RaftLog(PersistedState())
    assert marks(log) == {"offset": 0, "applied": 0, "committed": 0, "persisted": 0,
                          "persisting": 0, "last": 0}
    assert (log.first_index, log.last_term, log.term(0)) == (1, 0, 0)
    assert log.snapshot is None and log.entries == []
    assert log.unpersisted_entries() == ()


def test_restart_without_snapshot_everything_read_back_is_durable_nothing_applied():
    log = make_log(1, 1, 2, commit=2)
    assert marks(log) == {"offset": 0, "applied": 0, "committed": 2, "persisted": 3,
                          "persisting": 3, "last": 3}
    assert (log.first_index, log.last_term) == (1, 2)
    assert log.entries == list(ents(1, 1, 1, 2))
    assert log.unpersisted_entries() == ()


def test_restart_clamps_a_commit_index_beyond_the_last_entry():
    # The hard state reached the disk but the tail of the entries did not.
    log = make_log(1, 1, 2, commit=10)
    assert log.committed == 3


def test_restart_from_a_snapshot_with_entries_after_it():
    s = snap(5, 2)
    log = make_log(3, 3, snapshot=s, commit=0)
    # A snapshot only ever holds committed entries: the commit index is at least its
    # index even if the hard state carrying it never made it to the disk.
    assert marks(log) == {"offset": 5, "applied": 5, "committed": 5, "persisted": 7,
                          "persisting": 7, "last": 7}
    assert (log.first_index, log.offset_term, log.last_term) == (6, 2, 3)
    assert log.snapshot is s
    # Read back from disk: not a snapshot to install again.
    assert log.unstable_snapshot is None and log.snapshot_to_apply is None
    assert log.entries == list(ents(6, 3, 3))


def test_restart_from_a_snapshot_alone():
    log = make_log(snapshot=snap(5, 2), commit=3)
    assert marks(log) == {"offset": 5, "applied": 5, "committed": 5, "persisted": 5,
                          "persisting": 5, "last": 5}
    assert (log.first_index, log.last_term) == (6, 2)


# -- term lookups ------------------------------------------------------------------------


@pytest.mark.parametrize(("index", "want"), [
    (3, None),   # compacted away
    (4, None),   # compacted away
    (5, 2),      # the compaction point keeps its term (the snapshot's)
    (6, 3),
    (8, 4),      # last
    (9, None),   # beyond the last entry
    (100, None),
])
def test_term_at_offset_inside_beyond_and_compacted(index, want):
    log = make_log(3, 3, 4, snapshot=snap(5, 2))
    assert log.term(index) == want
    if want is not None:
        assert log.match_term(index, want)
        assert not log.match_term(index, want + 1)
    else:
        # An unknown term matches nothing, not even term 0.
        assert not log.match_term(index, 0)
        assert not log.match_term(index, 2)


# -- §5.4.1 election restriction -----------------------------------------------------------


@pytest.mark.parametrize(("last_index", "last_term", "want"), [
    (1, 4, True),    # a later last term wins whatever the length
    (3, 3, True),    # same last term, same length
    (4, 3, True),    # same last term, longer
    (2, 3, False),   # same last term, shorter
    (10, 2, False),  # an earlier last term loses whatever the length
])
def test_5_4_1_candidate_log_is_at_least_as_up_to_date(last_index, last_term, want):
    log = make_log(1, 2, 3)
    assert log.is_up_to_date(last_index, last_term) is want


def test_5_4_1_up_to_date_check_uses_the_snapshot_term_when_the_log_is_compacted():
    log = make_log(snapshot=snap(5, 2))
    assert log.is_up_to_date(5, 2)
    assert not log.is_up_to_date(4, 2)
    assert log.is_up_to_date(1, 3)
    assert not log.is_up_to_date(9, 1)


# -- slices for appends --------------------------------------------------------------------


def sized_log(count: int = 5, size: int = 10) -> RaftLog:
    return RaftLog(PersistedState(HardState(1), None,
                                  tuple(ent(i, 1, size) for i in range(1, count + 1))))


@pytest.mark.parametrize(("lo", "max_count", "max_bytes", "want"), [
    (1, 10, 1000, [1, 2, 3, 4, 5]),
    (2, 2, 1000, [2, 3]),       # max_count
    (1, 10, 25, [1, 2]),        # 20 bytes fit, 30 do not
    (1, 10, 30, [1, 2, 3]),     # a limit is inclusive
    (3, 10, 29, [3, 4]),
    (1, 10, 0, [1]),            # always at least one entry, however big
    (4, 1, 0, [4]),
    (5, 10, 1000, [5]),
    (6, 10, 1000, []),          # nothing after the last entry
])
def test_slice_honours_max_count_and_max_bytes_but_returns_at_least_one(
        lo, max_count, max_bytes, want):
    log = sized_log()
    got = log.slice(lo, max_count, max_bytes)
    assert isinstance(got, tuple)
    assert [e.index for e in got] == want
    assert all(len(e.data) == 10 for e in got)


def test_slice_of_compacted_entries_is_refused():
    log = make_log(1, 1, 1, 1, 1, commit=5)
    log.applied = 4
    log.compact(4, SnapshotMeta(4, 1), b"", keep=0)
    assert [e.index for e in log.slice(5, 10, 1000)] == [5]
    with pytest.raises(AssertionError):
        log.slice(4, 10, 1000)


# -- §5.3 rejection hints -------------------------------------------------------------------


@pytest.mark.parametrize(("index", "term", "want"), [
    # etcd TestFindConflictByTerm, log starting at index 1: terms 2 2 5 5 5.
    (5, 6, 5),
    (5, 5, 5),
    (5, 4, 2),
    (5, 2, 2),
    (5, 1, 0),
    (1, 2, 1),
    (1, 1, 0),
    (0, 0, 0),
    # Beyond the log: entries we do not have cannot match; walk back from the last one.
    (100, 5, 5),
    (100, 2, 2),
])
def test_5_3_find_conflict_by_term(index, term, want):
    log = make_log(2, 2, 5, 5, 5)
    assert log.find_conflict_by_term(index, term) == want


@pytest.mark.parametrize(("index", "term", "want"), [
    # etcd TestFindConflictByTerm, compacted log: snapshot (10, 3), terms 3 3 3 4 4 4
    # at 10..15 (the first of them is the snapshot's).
    (14, 9, 14),
    (14, 4, 14),
    (14, 3, 12),
    (11, 5, 11),
    (10, 5, 10),
    (10, 3, 10),
    (9, 2, 9),   # compacted: unknown, returned as is
    (4, 2, 4),
    (0, 0, 0),
])
def test_5_3_find_conflict_by_term_in_a_compacted_log(index, term, want):
    log = make_log(3, 3, 4, 4, 4, snapshot=snap(10, 3))
    assert log.find_conflict_by_term(index, term) == want


@pytest.mark.parametrize(("index", "term"), [(14, 2), (10, 2)])
def test_5_3_find_conflict_by_term_never_returns_an_index_with_a_larger_term(index, term):
    log = make_log(3, 3, 4, 4, 4, snapshot=snap(10, 3))
    got = log.find_conflict_by_term(index, term)
    # The docstring: the largest index <= `index` whose term is <= `term`. The snapshot's
    # entry (10, term 3) does not qualify; everything below it is unknown (etcd: 9).
    assert got == 9


# -- leader append --------------------------------------------------------------------------


def test_leader_append_extends_the_unstable_tail():
    log = make_log(1, 1, commit=1)
    log.append(ents(3, 2, 2))
    log.append(())
    assert log.last_index == 4 and log.last_term == 2
    assert log.unpersisted_entries() == ents(3, 2, 2)
    assert (log.persisted, log.persisting, log.committed) == (2, 2, 1)
    log.check()


@pytest.mark.parametrize("first", [2, 4])
def test_leader_append_must_follow_the_last_entry(first):
    log = make_log(1, 1)
    with pytest.raises(AssertionError):
        log.append(ents(first, 2))
    assert log.last_index == 2


# -- §5.3 follower append ---------------------------------------------------------------------

# etcd TestLogMaybeAppend: the log is terms 1 2 3 at 1..3, commit 1.
LAST_INDEX, LAST_TERM, COMMIT = 3, 3, 1


@pytest.mark.parametrize(("prev_term", "prev_index", "commit", "entries", "want_last",
                          "want_commit"), [
    # No match: a different term at prev_index, or prev_index beyond the log.
    (LAST_TERM - 1, LAST_INDEX, LAST_INDEX, ents(4, 4), None, COMMIT),
    (LAST_TERM, LAST_INDEX + 1, LAST_INDEX, ents(5, 4), None, COMMIT),
    # Match at the last entry.
    (LAST_TERM, LAST_INDEX, LAST_INDEX, (), LAST_INDEX, LAST_INDEX),
    (LAST_TERM, LAST_INDEX, LAST_INDEX + 1, (), LAST_INDEX, LAST_INDEX),  # not past last new
    (LAST_TERM, LAST_INDEX, LAST_INDEX - 1, (), LAST_INDEX, LAST_INDEX - 1),
    (LAST_TERM, LAST_INDEX, 0, (), LAST_INDEX, COMMIT),  # commit never goes back
    (0, 0, LAST_INDEX, (), 0, COMMIT),                   # commit never goes back
    (LAST_TERM, LAST_INDEX, LAST_INDEX, ents(4, 4), 4, 3),
    (LAST_TERM, LAST_INDEX, LAST_INDEX + 1, ents(4, 4), 4, 4),
    (LAST_TERM, LAST_INDEX, LAST_INDEX + 2, ents(4, 4), 4, 4),  # not past last new
    (LAST_TERM, LAST_INDEX, LAST_INDEX + 2, ents(4, 4, 4), 5, 5),
    # Match in the middle: the conflicting suffix is replaced.
    (LAST_TERM - 1, LAST_INDEX - 1, LAST_INDEX, ents(3, 4), 3, 3),
    (LAST_TERM - 2, LAST_INDEX - 2, LAST_INDEX, ents(2, 4), 2, 2),
    (LAST_TERM - 2, LAST_INDEX - 2, LAST_INDEX, ents(2, 4, 4), 3, 3),
])
def test_5_3_maybe_append_etcd_table(prev_term, prev_index, commit, entries, want_last,
                                     want_commit):
    log = make_log(1, 2, 3, commit=COMMIT)
    before = list(log.entries)
    assert log.maybe_append(prev_index, prev_term, commit, entries) == want_last
    assert log.committed == want_commit
    if want_last is None:
        assert log.entries == before
    else:
        # Whatever it says, the log now holds exactly the message's entries after prev.
        assert log.entries[prev_index:want_last] == list(entries)
        assert log.last_index >= want_last
    log.check()


def test_5_3_maybe_append_refuses_to_truncate_a_committed_entry():
    log = make_log(1, 2, 3, commit=1)
    with pytest.raises(AssertionError, match="committed"):
        log.maybe_append(0, 0, 3, ents(1, 4))


def test_5_3_a_matching_prefix_is_not_truncated():
    """Log matching: an append whose entries are all already present changes nothing,
    even if the log holds more after them (a delayed, shorter append from the same
    leader must not throw away what a later one brought)."""
    log = make_log(1, 1, 2, 2, 2, commit=1)
    assert log.maybe_append(1, 1, 5, ents(2, 1, 2)) == 3
    assert log.entries == list(ents(1, 1, 1, 2, 2, 2))
    assert (log.last_index, log.persisted, log.persisting) == (5, 5, 5)
    assert log.committed == 3  # min(message commit, last entry the message vouches for)
    assert log.unpersisted_entries() == ()


def test_5_3_duplicate_and_reordered_appends_are_idempotent():
    log = make_log(1)
    long_msg = (1, 1, 0, ents(2, 2, 2, 2))   # entries 2..4
    short_msg = (1, 1, 0, ents(2, 2))        # entries 2..2, sent earlier, delivered later
    assert log.maybe_append(*long_msg) == 4
    after_long = list(log.entries)
    hand_to_wal(log)
    assert log.maybe_append(*short_msg) == 2
    assert log.maybe_append(*long_msg) == 4
    assert log.maybe_append(*short_msg) == 2
    assert log.entries == after_long
    assert (log.persisting, log.unpersisted_entries()) == (4, ())


def test_5_3_a_conflicting_suffix_is_truncated_and_replaced():
    log = make_log(1, 1, 2, 2, 2, commit=2)
    assert log.maybe_append(3, 2, 2, ents(4, 3, 3, 3)) == 6
    assert log.entries == list(ents(1, 1, 1, 2, 3, 3, 3))
    # Entries 4 and 5 on disk are stale: the durable marks fall back below the conflict
    # and the replacement is the new unstable tail.
    assert (log.persisted, log.persisting) == (3, 3)
    assert log.unpersisted_entries() == ents(4, 3, 3, 3)
    log.check()


def test_5_3_a_shorter_conflicting_append_drops_the_rest_of_the_old_tail():
    log = make_log(1, 1, 2, 2, 2)
    assert log.maybe_append(2, 1, 0, ents(3, 3)) == 3
    assert log.entries == list(ents(1, 1, 1, 3))
    assert (log.last_index, log.last_term, log.persisted, log.persisting) == (3, 3, 2, 2)


def test_5_3_conflict_drops_persisting_but_keeps_a_lower_persisted_mark():
    log = make_log(1, commit=1)
    log.maybe_append(1, 1, 0, ents(2, 1, 1, 1, 1))  # 2..5 in memory only
    hand_to_wal(log)
    assert (log.persisted, log.persisting) == (1, 5)
    log.maybe_append(3, 1, 0, ents(4, 2))
    assert (log.persisted, log.persisting) == (1, 3)
    assert log.unpersisted_entries() == ents(4, 2)


def test_5_3_commit_advances_to_min_of_leader_commit_and_last_new_entry():
    log = make_log(1, 1, 1, 1, 1)
    # The leader has committed 5, but this message only vouches for entries up to 3:
    # entries 4 and 5 here might still be from another leader.
    assert log.maybe_append(2, 1, 5, ents(3, 1)) == 3
    assert log.committed == 3
    assert log.maybe_append(0, 0, 4, ()) == 0
    assert log.committed == 3


# -- commit ------------------------------------------------------------------------------------


def test_commit_to_never_goes_back():
    log = make_log(1, 1, 1, commit=2)
    log.commit_to(1)
    assert log.committed == 2
    log.commit_to(3)
    assert log.committed == 3
    log.commit_to(0)
    assert log.committed == 3


def test_commit_to_beyond_the_last_entry_is_refused():
    log = make_log(1, 1, 1)
    with pytest.raises(AssertionError, match=r"out of range \[lastIndex"):
        log.commit_to(4)
    assert log.committed == 0


# -- snapshots: restore, compact ---------------------------------------------------------------


def test_restore_replaces_the_log_and_waits_for_the_snapshot_to_be_durable():
    log = make_log(1, 1, 1, 1, commit=2)
    log.applied = 2
    s = snap(10, 3)
    log.restore(s)
    assert marks(log) == {"offset": 10, "applied": 2, "committed": 10, "persisted": 10,
                          "persisting": 10, "last": 10}
    assert (log.offset_term, log.last_term, log.entries) == (3, 3, [])
    assert log.snapshot is s and log.unstable_snapshot is s
    # Nothing reaches the state machine before the snapshot is durable.
    assert log.apply_limit() == 2 and log.committed_to_apply(100) == ()
    log.check()

    # Entries may follow the snapshot before it is written.
    assert log.maybe_append(10, 3, 12, ents(11, 3, 3)) == 12
    batch = hand_to_wal(log)
    assert batch == ents(11, 3, 3) and log.persisting_snapshot is s
    assert log.unstable_snapshot is None and log.snapshot_to_apply is None
    assert log.committed_to_apply(100) == ()

    log.stable_to(12, 3)  # one ack covers the snapshot and the entries after it
    assert log.snapshot_to_apply is s and log.persisting_snapshot is None
    assert log.persisted == 12
    assert log.committed_to_apply(100) == ()  # the snapshot goes to the state machine first

    log.snapshot_to_apply, log.applied = None, 10  # RaftCore.advance
    assert log.committed_to_apply(100) == ents(11, 3, 3)


def test_a_snapshot_ack_alone_moves_it_to_snapshot_to_apply():
    log = make_log(1, 1)
    s = snap(10, 3)
    log.restore(s)
    hand_to_wal(log)
    log.stable_to(10, 2)  # wrong term: not this snapshot
    assert log.persisting_snapshot is s and log.snapshot_to_apply is None
    log.stable_to(9, 3)   # below the snapshot
    assert log.persisting_snapshot is s and log.snapshot_to_apply is None
    log.stable_to(10, 3)
    assert log.persisting_snapshot is None and log.snapshot_to_apply is s


def test_restore_at_or_below_the_commit_index_is_refused():
    log = make_log(1, 1, 1, commit=3)
    with pytest.raises(AssertionError):
        log.restore(snap(3, 1))
    assert log.offset == 0 and log.last_index == 3


def test_a_second_restore_supersedes_a_snapshot_still_being_written():
    log = make_log(1, 1)
    first, second = snap(10, 3), snap(20, 4)
    log.restore(first)
    hand_to_wal(log)
    log.restore(second)
    assert log.persisting_snapshot is None and log.unstable_snapshot is second
    log.stable_to(10, 3)  # the first one became durable: it is no longer wanted
    assert log.snapshot_to_apply is None
    hand_to_wal(log)
    log.stable_to(20, 4)
    assert log.snapshot_to_apply is second


def test_compact_keeps_keep_entries_before_the_snapshot_index():
    log = make_log(1, 1, 2, 2, 2, 3, 3, 3, 3, 3, commit=9)
    log.applied = 8
    log.compact(8, SnapshotMeta(8, 3), b"state", keep=3)
    assert log.snapshot == Snapshot(SnapshotMeta(8, 3), b"state")
    assert (log.offset, log.offset_term, log.first_index, log.last_index) == (5, 2, 6, 10)
    assert log.entries == list(ents(6, 3, 3, 3, 3, 3))
    assert (log.term(4), log.term(5), log.term(6)) == (None, 2, 3)
    assert (log.applied, log.committed, log.persisted) == (8, 9, 10)
    log.check()


def test_compact_with_keep_zero_drops_everything_up_to_the_snapshot():
    log = make_log(1, 1, 2, 2, commit=4)
    log.applied = 3
    log.compact(3, SnapshotMeta(3, 2), b"", keep=0)
    assert (log.offset, log.offset_term, log.entries) == (3, 2, list(ents(4, 2)))


def test_compact_with_keep_beyond_the_log_drops_nothing_but_records_the_snapshot():
    log = make_log(1, 1, 2, commit=3, snapshot=None)
    log.applied = 2
    log.compact(2, SnapshotMeta(2, 1), b"x", keep=100)
    assert (log.offset, len(log.entries), log.snapshot.meta.index) == (0, 3, 2)


@pytest.mark.parametrize(("applied", "persisted", "index"), [(3, 5, 4), (5, 3, 4)])
def test_compact_of_unapplied_or_non_durable_entries_is_refused(applied, persisted, index):
    log = make_log(1, 1, 1, 1, 1, commit=5)
    log.applied, log.persisted = applied, persisted
    with pytest.raises(AssertionError, match="unapplied"):
        log.compact(index, SnapshotMeta(index, 1), b"", keep=0)
    assert log.offset == 0 and log.snapshot is None


def test_compact_never_replaces_a_snapshot_with_an_older_one():
    newer = snap(10, 3)
    log = make_log(3, 3, snapshot=newer, commit=12)
    log.applied = 12
    try:
        log.compact(7, SnapshotMeta(7, 2), b"older", keep=0)
    except AssertionError:
        pass  # refusing is fine too
    assert log.snapshot is not None and log.snapshot.meta.index >= 10


# -- handing out and acknowledging ---------------------------------------------------------------


def test_unpersisted_entries_are_what_was_not_yet_handed_to_the_wal():
    log = make_log(1, 1)
    log.append(ents(3, 2, 2, 2))
    assert log.unpersisted_entries() == ents(3, 2, 2, 2)
    log.persisting = 4
    assert log.unpersisted_entries() == ents(5, 2)
    log.persisting = 5
    assert log.unpersisted_entries() == ()


def test_stable_to_moves_persisted_forward_only_never_past_persisting():
    log = make_log(1)
    log.append(ents(2, 1, 1, 1, 1))
    log.persisting = 3  # 2..3 handed to the WAL, 4..5 not yet
    log.stable_to(2, 1)
    assert log.persisted == 2
    log.stable_to(5, 1)  # cannot be: 4..5 were never handed out
    assert log.persisted == 3
    log.stable_to(1, 1)
    assert log.persisted == 3
    log.check()


def test_stable_to_ignores_an_ack_whose_entries_were_truncated_since():
    """The WAL acknowledges (5, term 1), but entries 4..5 were replaced by a new leader's
    while the write was in flight: only entries up to 3 are known durable."""
    log = make_log(1, commit=1)
    log.maybe_append(1, 1, 0, ents(2, 1, 1, 1, 1))
    hand_to_wal(log)                               # 2..5 term 1 being written
    log.maybe_append(3, 1, 0, ents(4, 2, 2))       # 4..5 replaced with term 2
    log.stable_to(5, 1)
    assert log.persisted == 1
    log.stable_to(3, 1)                            # the part that was not replaced
    assert log.persisted == 3
    hand_to_wal(log)
    log.stable_to(5, 2)
    assert log.persisted == 5


def test_stable_to_ignores_an_ack_for_entries_that_are_gone():
    log = make_log(1, commit=1)
    log.maybe_append(1, 1, 0, ents(2, 1, 1, 1, 1))
    hand_to_wal(log)
    log.maybe_append(2, 1, 0, ents(3, 2))          # the log is now 1..3
    log.stable_to(5, 1)
    assert log.persisted == 1


def test_committed_to_apply_hands_out_committed_entries_even_before_our_own_fsync():
    log = make_log(1, commit=1)
    log.append(ents(2, 1, 1, 1, 1))
    hand_to_wal(log)
    assert log.apply_limit() == 1                   # 2..5 not committed
    log.commit_to(4)
    # Committed means durable on a quorum: a leader need not wait for its own fsync.
    assert log.apply_limit() == 4 and log.persisted == 1
    assert log.committed_to_apply(100) == ents(1, 1, 1, 1, 1)
    log.stable_to(5, 1)
    assert log.apply_limit() == 4                   # 5 durable but not committed
    assert log.committed_to_apply(2) == ents(1, 1, 1)  # bounded by max_count
    log.applied = 2
    assert log.committed_to_apply(100) == ents(3, 1, 1)
    assert log.committed_to_apply(1) == ents(3, 1)
    assert log.committed_to_apply(0) == ()
    log.applied = 4
    assert log.apply_limit() == 4 and log.committed_to_apply(100) == ()


def test_apply_limit_never_goes_below_applied():
    # A conflict can pull `persisted` back, but never below what was committed, so never
    # below what was applied.
    log = make_log(1, 1, 1, 1, 1, commit=3)
    log.applied = 3
    assert log.maybe_append(3, 1, 3, ents(4, 2)) == 4
    assert log.persisted == 3 and log.apply_limit() == 3
    assert log.committed_to_apply(100) == ()


def test_after_compaction_applying_continues_from_applied():
    log = make_log(1, 1, 1, 1, 1, commit=5)
    log.applied = 3
    log.compact(3, SnapshotMeta(3, 1), b"", keep=1)
    assert log.committed_to_apply(100) == ents(4, 1, 1)


# -- the invariant, against a list model, under random appends, conflicts, acks ----------------


class Model:
    """A follower's log as a plain list plus the WAL's content, written in order."""

    def __init__(self, state: PersistedState) -> None:
        s = state.snapshot
        self.offset = s.meta.index if s else 0
        self.offset_term = s.meta.term if s else 0
        self.log: list[Entry | None] = [None] * self.offset + list(state.entries)
        self.committed = max(self.offset, min(state.hard_state.commit, len(self.log)))
        self.applied = self.offset
        self.disk_offset = self.offset
        self.disk: list[Entry] = list(state.entries)  # entries after disk_offset
        self.disk_snapshot = self.offset
        self.next_term = max([e.term for e in state.entries] + [self.offset_term]) + 1

    @property
    def last(self) -> int:
        return len(self.log)

    def term(self, index: int) -> int | None:
        if index == self.offset:
            return self.offset_term
        if self.offset < index <= self.last:
            return self.log[index - 1].term  # type: ignore[union-attr]
        return None

    def fresh_term(self) -> int:
        self.next_term += 1
        return self.next_term - 1

    def write(self, snapshot: Snapshot | None, batch: tuple[Entry, ...]) -> None:
        if snapshot is not None:
            self.disk_offset, self.disk, self.disk_snapshot = snapshot.meta.index, [], \
                snapshot.meta.index
        if batch:
            keep = batch[0].index - self.disk_offset - 1
            assert 0 <= keep <= len(self.disk), "the WAL would get a gap"
            self.disk = self.disk[:keep] + list(batch)

    def on_disk(self, index: int) -> Entry | None:
        if self.disk_offset < index <= self.disk_offset + len(self.disk):
            return self.disk[index - self.disk_offset - 1]
        return None


def persisted_states():
    @st.composite
    def build(draw):
        snap_index = draw(st.integers(0, 5))
        snap_term = draw(st.integers(1, 3)) if snap_index else 0
        count = draw(st.integers(0, 6))
        steps = draw(st.lists(st.integers(0, 1), min_size=count, max_size=count))
        terms, t = [], max(snap_term, 1)
        for step in steps:
            t += step
            terms.append(t)
        snapshot = snap(snap_index, snap_term) if snap_index else None
        commit = draw(st.integers(0, snap_index + count + 2))
        return PersistedState(HardState(t, 0, commit), snapshot, ents(snap_index + 1, *terms))
    return build()


OPS = ["dup", "conflict", "mismatch", "commit", "ready", "ack", "stale_ack", "apply",
       "restore", "compact"]


def check_against_model(log: RaftLog, m: Model) -> None:
    log.check()
    assert (log.offset, log.offset_term) == (m.offset, m.offset_term)
    assert log.entries == m.log[m.offset:]
    assert (log.committed, log.applied) == (m.committed, m.applied)
    # Only committed entries are ever applied (durable on a quorum, maybe not here).
    assert log.applied <= log.committed
    # `persisted` never claims more than the WAL holds.
    for index in range(log.offset + 1, log.persisted + 1):
        assert m.on_disk(index) == m.log[index - 1], (index, m.disk_offset, m.disk)
    if log.snapshot_to_apply is not None:
        assert m.disk_snapshot == log.snapshot_to_apply.meta.index


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(state=persisted_states(), data=st.data())
def test_invariants_hold_and_content_matches_a_list_model(state, data):
    log, m = RaftLog(state), Model(state)
    in_flight: list[tuple[Snapshot | None, tuple[Entry, ...]]] = []  # handed to the WAL
    written_acks: list[tuple[int, int]] = []
    check_against_model(log, m)
    for _ in range(data.draw(st.integers(1, 40), label="ops")):
        op = data.draw(st.sampled_from(OPS), label="op")
        if op == "dup":  # a retransmitted or delayed append from the current leader
            prev = data.draw(st.integers(m.offset, m.last))
            n = data.draw(st.integers(0, m.last - prev))
            entries = tuple(m.log[prev:prev + n])
            commit = data.draw(st.integers(0, m.last + 2))
            assert log.maybe_append(prev, m.term(prev), commit, entries) == prev + n
            m.committed = max(m.committed, min(commit, prev + n))
        elif op == "conflict":  # a new leader whose log matches ours up to prev
            prev = data.draw(st.integers(m.committed, m.last))
            term = m.fresh_term()
            entries = ents(prev + 1, *[term] * data.draw(st.integers(1, 3)))
            commit = data.draw(st.integers(0, prev + len(entries) + 1))
            got = log.maybe_append(prev, m.term(prev), commit, entries)
            assert got == prev + len(entries)
            m.log = m.log[:prev] + list(entries)
            m.committed = max(m.committed, min(commit, got))
        elif op == "mismatch":
            prev = data.draw(st.integers(m.offset, m.last + 2))
            before = marks(log)
            assert log.maybe_append(prev, 10_000, m.last + 5, ents(prev + 1, 10_000)) is None
            assert marks(log) == before
        elif op == "commit":
            m.committed = max(m.committed, data.draw(st.integers(0, m.last)))
            log.commit_to(m.committed)
        elif op == "ready":
            want = tuple(m.log[log.persisting:])
            snapshot = log.unstable_snapshot
            assert hand_to_wal(log) == want
            if want or snapshot:
                in_flight.append((snapshot, want))
        elif op == "ack" and in_flight:  # the WAL writes and syncs batches in order
            snapshot, batch = in_flight.pop(0)
            m.write(snapshot, batch)
            ack = (batch[-1].index, batch[-1].term) if batch else \
                (snapshot.meta.index, snapshot.meta.term)  # type: ignore[union-attr]
            written_acks.append(ack)
            log.stable_to(*ack)
        elif op == "stale_ack" and written_acks:  # a duplicate of an older ack
            log.stable_to(*data.draw(st.sampled_from(written_acks)))
        elif op == "apply":
            if log.snapshot_to_apply is not None:
                m.applied = log.snapshot_to_apply.meta.index
                log.snapshot_to_apply, log.applied = None, m.applied
            else:
                got = log.committed_to_apply(data.draw(st.integers(1, 4)))
                for e in got:
                    assert e == m.log[e.index - 1]
                    assert e.index <= m.committed
                assert [e.index for e in got] == list(range(m.applied + 1,
                                                            m.applied + 1 + len(got)))
                if got:
                    m.applied = log.applied = got[-1].index
        elif op == "restore":  # a leader of a newer term sends a snapshot
            index = data.draw(st.integers(m.committed + 1, m.last + 3))
            term = m.fresh_term()
            log.restore(snap(index, term))
            m.log, m.offset, m.offset_term = [None] * index, index, term
            m.committed = index
        elif op == "compact" and m.offset <= min(m.applied, log.persisted):
            index = data.draw(st.integers(m.offset, min(m.applied, log.persisted)))
            keep = data.draw(st.integers(0, 3))
            held = log.snapshot.meta.index if log.snapshot else None
            done = log.compact(index, SnapshotMeta(index, m.term(index)), b"", keep)  # type: ignore
            # A snapshot at or behind the one held is refused and changes nothing.
            assert done == (held is None or index > held)
            if done:
                drop_to = max(m.offset, index - keep)
                m.offset, m.offset_term = drop_to, m.term(drop_to)  # type: ignore[assignment]
        check_against_model(log, m)
