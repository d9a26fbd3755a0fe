"""The Raft core's values: configuration changes (Raft §6, thesis §4.1 single-server
changes) and what a member reads back from disk."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from petcd.actors.raft.types import PersistedState, Snapshot
from petcd.storage.raftstate import (ConfChange, ConfChangeType, ConfState, Entry, EntryType,
                                     HardState, SnapshotMeta)

ADD_VOTER, REMOVE, ADD_LEARNER = ConfChangeType.ADD_VOTER, ConfChangeType.REMOVE, \
    ConfChangeType.ADD_LEARNER


def cs(voters=(), learners=()) -> ConfState:
    return ConfState(frozenset(voters), frozenset(learners))


# -- ConfChange encoding -----------------------------------------------------------------------


@given(st.sampled_from(ConfChangeType), st.integers(1, 2**64 - 1), st.binary(max_size=64))
def test_conf_change_round_trip(kind, node_id, context):
    cc = ConfChange(kind, node_id, context)
    data = cc.encode()
    assert len(data) == 9 + len(context)
    back = ConfChange.decode(data)
    assert back == cc
    assert type(back.type) is ConfChangeType and type(back.context) is bytes
    assert ConfChange.decode(memoryview(data)) == cc  # decode does not keep a view


def test_conf_change_layout_is_type_byte_then_big_endian_node_id_then_context():
    data = ConfChange(ADD_LEARNER, 0x0102030405060708, b"peer=x").encode()
    assert data == bytes([2, 1, 2, 3, 4, 5, 6, 7, 8]) + b"peer=x"


def test_conf_change_decode_rejects_garbage():
    with pytest.raises(struct.error):
        ConfChange.decode(b"\x00\x00\x01")  # truncated header
    with pytest.raises(ValueError):
        ConfChange.decode(bytes([7]) + (1).to_bytes(8, "big"))  # unknown type


# -- ConfState.apply ------------------------------------------------------------------------


@pytest.mark.parametrize(("before", "change", "after"), [
    (cs({1}), ConfChange(ADD_VOTER, 2), cs({1, 2})),
    (cs({1, 2}), ConfChange(ADD_VOTER, 2), cs({1, 2})),                 # idempotent
    (cs({1}), ConfChange(ADD_LEARNER, 3), cs({1}, {3})),
    (cs({1}, {3}), ConfChange(ADD_LEARNER, 3), cs({1}, {3})),            # idempotent
    (cs({1}, {3}), ConfChange(ADD_VOTER, 3), cs({1, 3})),                # promote
    (cs({1, 2}), ConfChange(ADD_LEARNER, 2), cs({1, 2})),                # no demotion
    (cs({1, 2}, {3}), ConfChange(REMOVE, 2), cs({1}, {3})),
    (cs({1, 2}, {3}), ConfChange(REMOVE, 3), cs({1, 2})),
    (cs({1, 2}, {3}), ConfChange(REMOVE, 9), cs({1, 2}, {3})),           # unknown: no-op
    (cs({1}), ConfChange(REMOVE, 1), cs()),
])
def test_conf_state_apply(before, change, after):
    got = before.apply(change)
    assert got == after
    assert not (got.voters & got.learners)
    assert got.members() == after.voters | after.learners


def test_conf_state_apply_returns_a_new_value():
    before = cs({1}, {2})
    before.apply(ConfChange(ADD_VOTER, 2))
    assert before == cs({1}, {2})


def test_conf_state_survives_a_round_trip_of_its_changes():
    conf = cs({1})
    for cc in (ConfChange(ADD_LEARNER, 2), ConfChange(ADD_VOTER, 3),
               ConfChange(ADD_VOTER, 2), ConfChange(REMOVE, 1), ConfChange(ADD_LEARNER, 4)):
        conf = conf.apply(ConfChange.decode(cc.encode()))
    assert conf == cs({2, 3}, {4})


def test_a_node_is_a_voter_or_a_learner_never_both():
    with pytest.raises(AssertionError):
        cs({1, 2}, {2})


# -- PersistedState ----------------------------------------------------------------------------


def entries(*indexes: int) -> tuple[Entry, ...]:
    return tuple(Entry(1, i) for i in indexes)


def snapshot(index: int) -> Snapshot:
    return Snapshot(SnapshotMeta(index, 1, cs({1})))


@pytest.mark.parametrize(("snap", "indexes"), [
    (None, ()), (None, (1, 2, 3)), (snapshot(5), ()), (snapshot(5), (6, 7)),
])
def test_persisted_state_accepts_contiguous_entries_after_the_snapshot(snap, indexes):
    state = PersistedState(HardState(1, 1, 0), snap, entries(*indexes))
    assert [e.index for e in state.entries] == list(indexes)


@pytest.mark.parametrize(("snap", "indexes"), [
    (None, (2, 3)),          # does not start at 1
    (None, (1, 3)),          # a gap
    (None, (1, 2, 2)),       # a duplicate
    (None, (2, 1)),          # out of order
    (snapshot(5), (5, 6)),   # overlaps the snapshot
    (snapshot(5), (1, 2)),   # the snapshot's entries, not those after it
    (snapshot(5), (7, 8)),   # a gap after the snapshot
])
def test_persisted_state_rejects_non_contiguous_entries(snap, indexes):
    with pytest.raises(AssertionError, match="contiguous"):
        PersistedState(HardState(), snap, entries(*indexes))


# -- small values ----------------------------------------------------------------------------


def test_entry_defaults_to_an_empty_normal_entry():
    e = Entry(3, 7)
    assert (e.term, e.index, e.type, e.data) == (3, 7, EntryType.NORMAL, b"")
