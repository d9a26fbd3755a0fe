"""WritePipeline: what waits for which save, what leaves at once, what is stepped back.

The rules are numbered as in actors/raft/pipeline.py's docstring; etcd-io/raft states
them in doc.go ("asynchronous storage writes").
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petcd.actors.raft.pipeline import NOTHING, SaveRequest, WritePipeline
from petcd.actors.raft.types import Message, MessageType as T, ReadState, Ready, Snapshot, SoftState
from petcd.storage.raftstate import ConfState, Entry, HardState, SnapshotMeta

ME, PEER = 1, 2


def ready(**fields) -> Ready:
    return Ready(SoftState(), **fields)


def ents(first: int, *terms: int) -> tuple[Entry, ...]:
    return tuple(Entry(t, first + n, 0, b"%d" % (first + n)) for n, t in enumerate(terms))


def app_resp(index: int, term: int = 2) -> Message:
    return Message(T.APP_RESP, ME, PEER, term=term, index=index)


def ack(index: int, term: int = 2) -> Message:
    return Message(T.STORAGE_ACK, ME, ME, term=term, index=index, log_term=term)


def heartbeat() -> Message:
    return Message(T.HEARTBEAT, ME, PEER, term=2)


def pipeline(term: int = 2, vote: int = 0, commit: int = 0, applied: int = 0) -> WritePipeline:
    return WritePipeline(ME, HardState(term, vote, commit), applied)


# -- rules 1-3: send_now at once, after_persist once its save and all before are durable --


def test_a_leaders_appends_leave_before_its_own_fsync_and_its_ack_waits_for_it():
    p = pipeline()
    app = Message(T.APP, ME, PEER, term=2, index=0, entries=ents(1, 2))
    actions = p.accept(ready(entries=ents(1, 2), send_now=(app,), after_persist=(ack(1),)))
    assert actions.send == (app,) and actions.step == ()
    assert actions.save == SaveRequest(1, None, ents(1, 2), None)
    assert p.persisted(1).step == (ack(1),)


def test_one_acknowledgement_covers_every_save_up_to_it_in_order():
    p = pipeline()
    for index in (1, 2, 3):
        actions = p.accept(ready(entries=ents(index, 2),
                                 after_persist=(app_resp(index), ack(index))))
        assert actions.save is not None and actions.save.seq == index
        assert actions.send == actions.step == ()
    assert p.saves_in_flight == 3
    released = p.persisted(2)  # group commit: the WAL answers for a whole batch
    assert released.send == (app_resp(1), app_resp(2))
    assert released.step == (ack(1), ack(2))
    assert p.persisted(3).send == (app_resp(3),)
    assert p.saves_in_flight == 0 and p.durable_seq == p.issued_seq == 3


def test_a_save_with_nothing_to_release_still_answers_nothing():
    p = pipeline()
    p.accept(ready(entries=ents(1, 2)))
    assert p.persisted(1) is NOTHING


def test_an_acknowledgement_of_a_save_never_issued_is_a_bug():
    p = pipeline()
    p.accept(ready(entries=ents(1, 2)))
    with pytest.raises(AssertionError, match="ack 2"):
        p.persisted(2)


def test_an_acknowledgement_repeated_is_a_bug():
    p = pipeline()
    p.accept(ready(entries=ents(1, 2)))
    p.persisted(1)
    with pytest.raises(AssertionError, match="ack 1"):
        p.persisted(1)


# -- rule 4: term and vote are saved before anything that depends on them leaves ---------------


def test_a_vote_alone_is_saved_and_the_response_waits_for_it():
    p = pipeline(term=2)
    grant = Message(T.VOTE_RESP, ME, PEER, term=3)
    actions = p.accept(ready(hard_state=HardState(3, PEER, 0), after_persist=(grant,)))
    assert actions.save == SaveRequest(1, HardState(3, PEER, 0), (), None)
    assert actions.send == ()
    assert p.persisted(1).send == (grant,)


def test_a_candidates_own_vote_counts_only_once_durable():
    p = pipeline(term=2)
    own = Message(T.VOTE_RESP, ME, ME, term=3)
    requests = (Message(T.VOTE, ME, PEER, term=3),)
    actions = p.accept(ready(hard_state=HardState(3, ME, 0), send_now=requests,
                             after_persist=(own,)))
    assert actions.send == requests and actions.step == ()  # requests promise nothing
    assert actions.save is not None and actions.save.hard_state == HardState(3, ME, 0)
    assert p.persisted(1).step == (own,)


def test_a_received_snapshot_is_saved_even_without_a_hard_state_change():
    p = pipeline()
    snap = Snapshot(SnapshotMeta(10, 2, ConfState(frozenset({ME, PEER}))))
    actions = p.accept(ready(snapshot=snap, entries=ents(11, 2), after_persist=(ack(11),)))
    assert actions.save == SaveRequest(1, None, ents(11, 2), snap)


# -- rule 5: a commit index alone costs no save ------------------------------------------------


def test_a_commit_only_change_waits_for_the_last_save_under_way_not_a_save_of_its_own():
    p = pipeline(commit=0)
    p.accept(ready(entries=ents(1, 2), after_persist=(app_resp(1),)))
    p.accept(ready(entries=ents(2, 2), after_persist=(app_resp(2),)))
    beat = Message(T.HEARTBEAT_RESP, ME, PEER, term=2)
    actions = p.accept(ready(hard_state=HardState(2, 0, 2), send_now=(beat,),
                             after_persist=(app_resp(2),)))
    assert actions.save is None and actions.send == (beat,)
    assert p.persisted(1).send == (app_resp(1),)
    assert p.persisted(2).send == (app_resp(2), app_resp(2))  # rides with save 2


def test_a_commit_only_change_with_nothing_under_way_releases_at_once_after_advance():
    p = pipeline()
    actions = p.accept(ready(hard_state=HardState(2, 0, 5), after_persist=(app_resp(5), ack(5))))
    assert actions.save is None
    assert actions.send == (app_resp(5),) and actions.step == (ack(5),)


def test_a_commit_only_hard_state_rides_with_the_next_save():
    p = pipeline(term=2, commit=3)
    assert p.accept(ready(hard_state=HardState(2, 0, 4))).save is None
    assert p.accept(ready(hard_state=HardState(2, 0, 5))).save is None
    save = p.accept(ready(entries=ents(6, 2))).save
    assert save == SaveRequest(1, HardState(2, 0, 5), ents(6, 2), None)
    # Saved now: the next save carries none unless there is a newer one.
    assert p.accept(ready(entries=ents(7, 2))).save == SaveRequest(2, None, ents(7, 2), None)


def test_a_vote_change_after_a_commit_only_one_saves_the_newest_hard_state():
    p = pipeline(term=2, commit=3)
    p.accept(ready(hard_state=HardState(2, 0, 4)))
    save = p.accept(ready(hard_state=HardState(3, PEER, 4))).save
    assert save is not None and save.hard_state == HardState(3, PEER, 4)


def test_a_term_never_goes_back():
    p = pipeline(term=3)
    with pytest.raises(AssertionError, match="term"):
        p.accept(ready(hard_state=HardState(2, 0, 0)))


# -- rule 6: apply in log order ------------------------------------------------------------


def test_apply_hands_out_the_snapshot_then_the_entries_right_after_it():
    p = pipeline(applied=5)
    snap = Snapshot(SnapshotMeta(10, 2))
    reads = (ReadState(12, b"r"),)
    actions = p.accept(ready(snapshot_to_apply=snap, committed=ents(11, 2, 2),
                             read_states=reads))
    assert (actions.snapshot_to_apply, actions.apply, actions.read_states) == \
        (snap, ents(11, 2, 2), reads)
    assert p.accept(ready(committed=ents(13, 2))).apply == ents(13, 2)


@pytest.mark.parametrize("committed", [ents(7, 2), ents(5, 2), ents(6, 2) + ents(8, 2)])
def test_apply_out_of_log_order_is_a_bug(committed):
    p = pipeline(applied=5)
    with pytest.raises(AssertionError):
        p.accept(ready(committed=committed))


def test_a_snapshot_below_what_was_applied_is_a_bug():
    with pytest.raises(AssertionError, match="snapshot"):
        pipeline(applied=10).accept(ready(snapshot_to_apply=Snapshot(SnapshotMeta(10, 2))))


# -- the values ------------------------------------------------------------------------------


def test_a_save_request_holds_contiguous_entries_after_its_snapshot():
    with pytest.raises(AssertionError, match="empty"):
        SaveRequest(1, None, (), None)
    with pytest.raises(AssertionError, match="contiguous"):
        SaveRequest(1, None, ents(1, 2) + ents(3, 2), None)
    with pytest.raises(AssertionError, match="follow"):
        SaveRequest(1, None, ents(12, 2), Snapshot(SnapshotMeta(10, 2)))


def test_send_now_is_never_addressed_to_this_member():
    with pytest.raises(AssertionError, match="peers"):
        pipeline().accept(ready(send_now=(ack(1),)))


# -- the rules against a model, under random Readies and acknowledgements --------------------


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["entries", "vote", "commit", "nothing", "ack"]),
                          st.integers(0, 3)), max_size=40), st.data())
def test_no_message_leaves_before_what_it_depends_on_is_durable(ops, data):
    """Random Readies (each with 0-3 after_persist messages, to a peer or to itself)
    and acknowledgements: every message leaves once, in order, only after every save
    issued up to its Ready is durable; each save carries the newest hard state."""
    p = pipeline(term=2)
    hard_state, unsaved, index = HardState(2, 0, 0), None, 0
    issued = durable = made = 0
    needs: dict[int, int] = {}  # message id (its index field) -> seq durable first
    sent: list[int] = []
    stepped: list[int] = []

    def release(actions) -> None:
        for m in actions.send + actions.step:
            assert needs[m.index] <= durable, f"message {m.index} left before its save"
        sent.extend(m.index for m in actions.send)
        stepped.extend(m.index for m in actions.step)

    for kind, count in ops:
        if kind == "ack":
            if durable < issued:
                durable = data.draw(st.integers(durable + 1, issued))
                release(p.persisted(durable))
            continue
        changed, entries = None, ()
        if kind == "entries":
            index += 1
            entries = ents(index, hard_state.term)
        elif kind == "vote":
            changed = HardState(hard_state.term + 1, PEER, hard_state.commit)
        elif kind == "commit" and hard_state.commit < index:
            changed = HardState(hard_state.term, hard_state.vote, hard_state.commit + 1)
        if changed is not None:
            hard_state = unsaved = changed
        messages = []
        first = made + 1
        for made in range(first, first + count):
            dst = data.draw(st.sampled_from([ME, PEER]))
            messages.append(Message(T.APP_RESP, ME, dst, term=hard_state.term, index=made))
        actions = p.accept(ready(hard_state=changed, entries=entries,
                                 after_persist=tuple(messages)))
        assert (actions.save is not None) == (kind in ("entries", "vote")), kind
        if actions.save is not None:
            issued += 1
            assert actions.save == SaveRequest(issued, unsaved, entries, None)
            unsaved = None
        for m in messages:  # what they describe was handed out up to the last save
            needs[m.index] = issued
        release(actions)
    assert sent == sorted(sent) and stepped == sorted(stepped), "in the order made"
    released = sorted(sent + stepped)
    assert len(set(released)) == len(released), "each message released once"
    if durable == issued:
        assert released == list(range(1, made + 1)), "nothing left behind"
