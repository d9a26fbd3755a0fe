"""Majority arithmetic (Raft §5.3 commitment, §5.2 elections, §6.2 check-quorum).

An entry is committed once "the leader that created the entry has replicated it on a
majority of the servers" (§5.3); a candidate wins "if it receives votes from a majority
of the servers in the full cluster for the same term" (§5.2). Learners (non-voting
members, thesis §4.2.1) never count towards either.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from petcd.actors.raft.quorum import VoteResult, committed_index, has_quorum, majority, \
    vote_result


@pytest.mark.parametrize(("voters", "want"), [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (6, 4),
                                              (7, 4)])
def test_majority(voters, want):
    assert majority(voters) == want


@pytest.mark.parametrize(("matches", "want"), [
    # One entry per voter: voter n has matched matches[n-1].
    ((5,), 5),
    ((5, 3), 3),              # two voters: both are needed
    ((5, 3, 1), 3),
    ((1, 5, 3), 3),           # order of ids does not matter
    ((4, 4, 1), 4),
    ((7, 2, 9, 4), 4),        # 4 voters: 3 needed -> third largest
    ((10, 9, 8, 7, 6), 8),
    ((0, 0, 0, 0, 6), 0),
    ((6, 6, 6, 0, 0), 6),
    ((6, 6, 0, 0, 0), 0),
    ((1, 2, 3, 4, 5, 6), 3),  # 6 voters: 4 needed
    ((9, 9, 9, 1, 1, 1), 1),
    ((9, 9, 9, 9, 1, 1), 9),
    ((1, 2, 3, 4, 5, 6, 7), 4),  # 7 voters: 4 needed
    ((7, 7, 7, 0, 0, 0, 0), 0),
    ((7, 7, 7, 7, 0, 0, 0), 7),
])
def test_5_3_committed_index_is_what_a_majority_of_voters_has(matches, want):
    voters = range(1, len(matches) + 1)
    match = dict(zip(voters, matches, strict=True))
    assert committed_index(list(voters), match) == want


@pytest.mark.parametrize("count", range(1, 8))
def test_5_3_learners_never_count_towards_commitment(count):
    voters = list(range(1, count + 1))
    # Every voter but a bare minority is stuck at 1; learners 100.. are far ahead.
    ahead = majority(count) - 1
    match = {v: (50 if n < ahead else 1) for n, v in enumerate(voters)}
    without = committed_index(voters, match)
    assert without == 1
    match.update({100 + n: 1000 for n in range(7)})
    assert committed_index(voters, match) == without


@pytest.mark.parametrize("count", range(1, 8))
def test_5_3_a_voter_missing_from_the_match_map_counts_as_zero(count):
    voters = list(range(1, count + 1))
    match = {v: 10 for v in voters[: majority(count) - 1]}  # one short of a majority
    assert committed_index(voters, match) == 0
    match[voters[-1]] = 10
    assert committed_index(voters, match) == 10


def test_committed_index_of_no_voters_is_zero():
    assert committed_index([], {1: 5}) == 0


@given(st.lists(st.integers(0, 50), min_size=1, max_size=7),
       st.lists(st.integers(0, 100), max_size=3))
def test_5_3_committed_index_is_the_largest_index_a_majority_has_reached(matches, learners):
    voters = list(range(1, len(matches) + 1))
    match = dict(zip(voters, matches, strict=True))
    match.update({100 + n: m for n, m in enumerate(learners)})
    got = committed_index(voters, match)
    # Brute force: the largest index that at least a majority of voters have.
    need = majority(len(voters))
    want = max(i for i in [0, *matches] if sum(m >= i for m in matches) >= need)
    assert got == want


# -- §5.2 elections --------------------------------------------------------------------------


W, L, P = VoteResult.WON, VoteResult.LOST, VoteResult.PENDING


@pytest.mark.parametrize(("count", "granted", "rejected", "want"), [
    (1, 0, 0, P), (1, 1, 0, W), (1, 0, 1, L),
    (2, 1, 0, P), (2, 2, 0, W), (2, 1, 1, L),      # two voters need both
    (3, 1, 0, P), (3, 2, 0, W), (3, 1, 1, P), (3, 0, 2, L), (3, 2, 1, W), (3, 1, 2, L),
    (4, 2, 0, P), (4, 3, 0, W), (4, 2, 1, P), (4, 2, 2, L),
    (5, 2, 2, P), (5, 3, 2, W), (5, 2, 3, L), (5, 3, 0, W), (5, 0, 3, L),
    (6, 3, 3, L), (6, 3, 2, P), (6, 4, 0, W),
    (7, 3, 3, P), (7, 4, 3, W), (7, 3, 4, L), (7, 0, 0, P),
])
def test_5_2_vote_result(count, granted, rejected, want):
    voters = list(range(1, count + 1))
    votes = {v: True for v in voters[:granted]}
    votes.update({v: False for v in voters[granted:granted + rejected]})
    assert vote_result(voters, votes) == want


def test_5_2_votes_from_non_voters_do_not_count():
    voters = [1, 2, 3]
    votes = {1: True, 8: True, 9: True}  # 8, 9: learners or removed members
    assert vote_result(voters, votes) == P
    votes = {1: True, 8: False, 9: False}
    assert vote_result(voters, votes) == P
    votes = {1: True, 2: True, 8: False, 9: False}
    assert vote_result(voters, votes) == W


@pytest.mark.parametrize("count", range(1, 8))
def test_5_2_vote_result_is_decided_exactly_when_one_side_has_a_majority(count):
    voters = list(range(1, count + 1))
    need = majority(count)
    for outcome in itertools.product((None, True, False), repeat=count):
        votes = {v: o for v, o in zip(voters, outcome, strict=True) if o is not None}
        granted = sum(o is True for o in outcome)
        rejected = sum(o is False for o in outcome)
        want = W if granted >= need else L if rejected > count - need else P
        assert vote_result(voters, votes) == want, votes


# -- §6.2 check quorum -----------------------------------------------------------------------


@pytest.mark.parametrize(("count", "alive", "want"), [
    (1, {1}, True), (1, set(), False),
    (3, {1, 2}, True), (3, {1}, False), (3, {1, 9}, False),  # 9 is not a voter
    (4, {1, 2}, False), (4, {1, 2, 4}, True),
    (5, {1, 3, 5}, True), (5, {2, 4}, False),
    (7, {1, 2, 3, 4}, True), (7, {1, 2, 3, 8, 9, 10}, False),
])
def test_has_quorum(count, alive, want):
    assert has_quorum(list(range(1, count + 1)), alive) is want
