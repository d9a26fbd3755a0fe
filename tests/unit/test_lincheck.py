"""The linearizability checker (tests/lincheck) on histories whose verdict is known:
hand-written ones for each way a store can go wrong, simulated linearizable ones and
the same with one answer falsified, and small random ones against a brute-force
search of every order."""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.api.mvccpb import kv_pb2
from petcd.client.errors import EtcdError
from tests.lincheck import (
    History, Kind, LinearizabilityError, Op, Outcome, RecordingClient, Status, assert_linearizable, check,
)
from tests.lincheck.register import relevant, step
from tests.lincheck.simulated import simulated


def put(value, start, end=None, *, key="k", client="a", outcome=None, revision=None) -> Op:
    return _op(Kind.PUT, value, None, start, end, key, client, outcome, revision)


def get(result, start, end=None, *, key="k", client="r", outcome=None, revision=None) -> Op:
    return _op(Kind.GET, None, result, start, end, key, client, outcome, revision)


def delete(deleted, start, end, *, key="k", client="d") -> Op:
    return _op(Kind.DELETE, None, deleted, start, end, key, client, None, None)


def cas(expected, new, succeeded, start, end, *, key="k", client="c") -> Op:
    return _op(Kind.CAS, (expected, new), succeeded, start, end, key, client, None, None)


def _op(kind, arg, result, start, end, key, client, outcome, revision) -> Op:
    """No `end`: the answer was lost. A failed op has an end and no result."""
    outcome = outcome or (Outcome.UNKNOWN if end is None else Outcome.OK)
    if outcome is not Outcome.OK:
        result = None
    return Op(client, kind, key, arg, start, end, outcome, result, revision)


def verdict(*ops: Op, **kwargs) -> Status:
    [key] = check(ops, **kwargs).keys
    return key.status


# Histories that can be ordered


def test_a_read_overlapping_a_put_may_see_either_value():
    assert verdict(put("1", 0, 10), get(None, 1, 3), get("1", 5, 6), get("1", 8, 12)) is Status.OK


def test_overlapping_puts_may_take_effect_in_either_order():
    assert verdict(put("1", 0, 10, client="a"), put("2", 1, 9, client="b"), get("1", 11, 12)) is Status.OK
    assert verdict(put("1", 0, 10, client="a"), put("2", 1, 9, client="b"), get("2", 11, 12)) is Status.OK


def test_a_key_that_existed_before_starts_with_its_value():
    assert verdict(get("0", 0, 1), initial={"k": "0"}) is Status.OK
    assert verdict(get("0", 0, 1)) is Status.VIOLATION


def test_delete_and_compare_and_put_follow_the_register():
    assert verdict(put("1", 0, 1), delete(True, 2, 3), get(None, 4, 5), delete(False, 6, 7),
                   cas(None, "2", True, 8, 9), cas(None, "3", False, 10, 11), cas("2", "4", True, 12, 13),
                   get("4", 14, 15)) is Status.OK


# Histories that cannot be ordered, one per way a store goes wrong


def test_a_stale_read_after_an_acknowledged_put_is_caught():
    report = check([put("1", 0, 1), get(None, 2, 3)])
    assert not report.ok
    [key] = report.violations
    assert "get 'k' -> None" in key.explanation and "put 'k'('1')" in key.explanation, key.explanation


def test_a_read_of_a_value_never_written_is_caught():
    assert verdict(put("1", 0, 1), get("7", 2, 3)) is Status.VIOLATION


def test_reads_in_real_time_order_seeing_new_then_old_are_caught():
    # The second put is still in flight: either value may be read, but not 2 then 1.
    assert verdict(put("1", 0, 1), put("2", 2, 10), get("2", 3, 4), get("1", 5, 6)) is Status.VIOLATION


def test_a_lost_acknowledged_put_is_caught():
    assert verdict(put("1", 0, 1, client="a"), put("2", 2, 3, client="b"), get("1", 4, 5)) is Status.VIOLATION


def test_a_failed_put_must_not_be_seen():
    assert verdict(put("1", 0, 1, outcome=Outcome.FAILED), get("1", 2, 3)) is Status.VIOLATION


def test_two_compare_and_puts_on_an_absent_key_cannot_both_succeed():
    assert verdict(cas(None, "1", True, 0, 5, client="a"), cas(None, "2", True, 1, 6, client="b")) \
        is Status.VIOLATION


def test_deleting_a_key_just_written_must_delete_it():
    assert verdict(put("1", 0, 1), delete(False, 2, 3)) is Status.VIOLATION


def test_one_bad_key_is_named_and_the_others_pass():
    report = check([put("1", 0, 1, key="a"), get("1", 2, 3, key="a"),
                    put("1", 0, 1, key="b"), get(None, 2, 3, key="b")])
    assert [v.key for v in report.violations] == ["b"]
    assert {v.key: v.status for v in report.keys} == {"a": Status.OK, "b": Status.VIOLATION}
    with pytest.raises(LinearizabilityError, match="key 'b': not linearizable"):
        assert_linearizable([put("1", 0, 1, key="b"), get(None, 2, 3, key="b")])


# Unanswered ops: taken effect at any time after they were sent, or never


def test_an_unanswered_put_seen_long_after_it_was_sent_took_effect_late():
    assert verdict(put("1", 0), get(None, 50, 60), get("1", 100, 101)) is Status.OK


def test_an_unanswered_put_never_seen_may_never_have_taken_effect():
    assert verdict(put("1", 0), get(None, 100, 101)) is Status.OK


def test_an_unanswered_put_seen_before_it_was_sent_is_caught():
    assert verdict(get("1", 0, 1), put("1", 5)) is Status.VIOLATION


def test_an_unanswered_put_once_seen_stays_until_overwritten():
    assert verdict(put("1", 0), get("1", 5, 6), get(None, 7, 8)) is Status.VIOLATION


def test_an_unanswered_read_constrains_nothing():
    report = check([put("1", 0, 1), get(None, 2, outcome=Outcome.UNKNOWN), get("1", 3, 4)])
    assert report.ok and report.keys[0].ops == 2


def test_too_much_work_is_undecided_not_passed():
    # Twelve overlapping unanswered puts and a read of a value nobody wrote: every
    # subset and order of them would have to be tried to say no.
    ops = [put(f"v{i}", i, client=f"c{i}") for i in range(12)] + [get("never", 20, 21)]
    report = check(ops, max_states_per_key=50)
    assert [v.status for v in report.keys] == [Status.UNDECIDED] and not report.ok
    assert "gave up after 50 states" in report.keys[0].explanation
    with pytest.raises(LinearizabilityError, match="1 undecided"):
        assert_linearizable(ops, max_states_per_key=50)


# Revisions against real time, across keys


def test_revisions_that_follow_real_time_pass():
    report = check([put("1", 0, 1, revision=2), get("1", 2, 3, revision=2),
                    put("x", 4, 5, key="other", revision=3), get("1", 6, 7, revision=3)])
    assert report.ok, report


def test_a_read_at_a_revision_older_than_an_acknowledged_write_is_caught():
    # A different key: the register search alone cannot see this stale member.
    report = check([put("x", 0, 1, key="other", revision=5), get(None, 2, 3, revision=4)])
    assert all(v.status is Status.OK for v in report.keys)
    assert not report.ok and "revision went back in real time" in report.revision_problems[0]


def test_a_later_write_at_the_same_revision_is_caught():
    report = check([put("1", 0, 1, revision=5), put("2", 2, 3, key="other", revision=5)])
    assert [p.split(":")[0] for p in report.revision_problems] == [
        "revision went back in real time", "two writes at revision 5"]


# Simulated histories: linearizable by construction, then with one answer falsified

SIMULATED = dict(ops=5000, keys=20, clients=10, unknown_rate=0.05, failed_rate=0.02)


def test_a_large_simulated_linearizable_history_passes_quickly():
    ops = simulated(seed=1, **SIMULATED)
    started = time.monotonic()
    report = assert_linearizable(ops)
    elapsed_s = time.monotonic() - started
    assert sum(v.ops for v in report.keys) > 4000 and len(report.keys) == 20
    # The work, not the clock, is asserted (the machine may be busy): a few states an op.
    assert sum(v.states for v in report.keys) < 10 * len(ops), str(report)
    print(f"{len(ops)} ops checked in {elapsed_s:.2f} s")


def test_a_simulated_history_with_one_read_of_a_value_never_written_is_caught():
    ops = simulated(seed=1, **SIMULATED)
    index = next(i for i, op in enumerate(ops)
                 if i > len(ops) // 2 and op.kind is Kind.GET and op.outcome is Outcome.OK)
    ops[index] = dataclasses.replace(ops[index], result="never written")
    report = check(ops)
    assert [v.key for v in report.violations] == [ops[index].key], str(report)
    assert "never written" in report.violations[0].explanation


def test_a_simulated_history_with_one_stale_read_is_caught():
    ops = simulated(seed=2, **SIMULATED)
    index, stale = _stale_answer(ops)
    ops[index] = dataclasses.replace(ops[index], result=stale)
    report = check(ops)
    assert [v.key for v in report.violations] == [ops[index].key], str(report)


def _stale_answer(ops: list[Op]) -> tuple[int, str]:
    """A read, and a value overwritten before it started: put A, then put B, then the
    read, in real time, on one key (each put's value is unique, so A's value is gone)."""
    puts = [op for op in ops if op.kind is Kind.PUT and op.outcome is Outcome.OK]
    for index, read in enumerate(ops):
        if read.kind is not Kind.GET or read.outcome is not Outcome.OK or index < len(ops) // 2:
            continue
        before = [p for p in puts if p.key == read.key and p.response_ns < read.invoke_ns]
        for a, b in itertools.combinations(before, 2):
            if a.response_ns < b.invoke_ns:
                return index, a.arg
    raise AssertionError("the simulation made no such read")


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000))
def test_small_simulated_histories_pass(seed):
    assert check(simulated(seed, ops=60, keys=2, clients=4, unknown_rate=0.1, failed_rate=0.1)).ok


# Against a brute-force search of every order, on small random histories

ANY_OP = st.builds(
    lambda kind, value, expected, start, length, outcome, answer: (kind, value, expected, start, length,
                                                                   outcome, answer),
    st.sampled_from(list(Kind)), st.sampled_from(["1", "2"]), st.sampled_from([None, "1", "2"]),
    st.integers(0, 8), st.integers(0, 4), st.sampled_from([Outcome.OK, Outcome.OK, Outcome.UNKNOWN]),
    st.sampled_from([None, "1", "2", True, False]))


def _random_op(n: int, drawn) -> Op:
    kind, value, expected, start, length, outcome, answer = drawn
    arg = {Kind.PUT: value, Kind.CAS: (expected, value)}.get(kind)
    result = {Kind.PUT: None, Kind.GET: answer if answer in (None, "1", "2") else None,
              Kind.DELETE: bool(answer), Kind.CAS: bool(answer)}[kind]
    if outcome is Outcome.UNKNOWN:
        return Op(f"c{n}", kind, "k", arg, start, None, outcome)
    return Op(f"c{n}", kind, "k", arg, start, start + length, outcome, result)


def _brute_force(ops: list[Op]) -> bool:
    """Some subset of the unanswered ops and all answered ones, in some order that
    respects real time, is legal on the register."""
    ops = [op for op in ops if relevant(op)]
    answered = [op for op in ops if op.outcome is Outcome.OK]
    unanswered = [op for op in ops if op.outcome is not Outcome.OK]
    for size in range(len(unanswered) + 1):
        for chosen in itertools.combinations(unanswered, size):
            for order in itertools.permutations(answered + list(chosen)):
                if _respects_real_time(order) and _legal(order):
                    return True
    return False


def _respects_real_time(order) -> bool:
    return not any(later.response_ns is not None and later.response_ns < earlier.invoke_ns
                   for i, earlier in enumerate(order) for later in order[i + 1:])


def _legal(order) -> bool:
    state = None
    for op in order:
        legal, state = step(state, op)
        if not legal:
            return False
    return True


@settings(max_examples=300, deadline=None)
@given(st.lists(ANY_OP, min_size=1, max_size=6))
def test_the_search_agrees_with_trying_every_order(drawn):
    ops = [_random_op(n, d) for n, d in enumerate(drawn)]
    statuses = [v.status for v in check(ops).keys]  # none if every op was left out
    assert statuses in ([Status.OK], []) if _brute_force(ops) else statuses == [Status.VIOLATION]


# Recording from threads, and through petcd's client


def test_recording_from_many_threads_keeps_every_op_and_pending_ones_are_unknown():
    history = History()

    def client(name: str) -> None:
        for i in range(500):
            history.invoke(name, Kind.PUT, f"k{i % 5}", f"{name}.{i}").ok(revision=None)

    threads = [threading.Thread(target=client, args=(f"t{n}",)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    history.invoke("late", Kind.GET, "k0")
    ops = history.ops()
    assert len(ops) == len(history) == 8 * 500 + 1
    assert ops[-1].outcome is Outcome.UNKNOWN and ops[-1].client == "late"
    assert all(op.outcome is Outcome.OK for op in ops[:-1])


def test_a_call_finishes_once():
    call = History().invoke("a", Kind.PUT, "k", "v")
    call.ok()
    with pytest.raises(AssertionError, match="finished twice"):
        call.failed()


class FakeClient:
    """Answers like petcd's Client, or raises the error it is given."""

    def __init__(self) -> None:
        self.error: Exception | None = None

    def _answer(self, response):
        if self.error is not None:
            raise self.error
        return response

    def put(self, key, value):
        return self._answer(pb.PutResponse(header=pb.ResponseHeader(revision=7)))

    def get(self, key):
        kv = kv_pb2.KeyValue(key=key.encode(), value=b"v1")
        return self._answer(pb.RangeResponse(header=pb.ResponseHeader(revision=8), kvs=[kv], count=1))


@pytest.mark.parametrize("error, outcome", [
    (EtcdError(grpc.StatusCode.DEADLINE_EXCEEDED, "context deadline exceeded"), Outcome.UNKNOWN),
    (EtcdError(grpc.StatusCode.UNAVAILABLE, "etcdserver: leader changed"), Outcome.UNKNOWN),
    (EtcdError(grpc.StatusCode.UNAVAILABLE, "etcdserver: no leader"), Outcome.UNKNOWN),
    (EtcdError(grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: request is too large"), Outcome.FAILED),
    (EtcdError(grpc.StatusCode.RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded"),
     Outcome.FAILED),
    (ConnectionResetError("lost"), Outcome.UNKNOWN),
])
def test_the_recording_client_classifies_errors(error, outcome):
    fake, history = FakeClient(), History()
    fake.error = error
    with pytest.raises(type(error)):
        RecordingClient(fake, history, "w").put("k", "v")
    [op] = history.ops()
    assert op.outcome is outcome and (op.response_ns is None) == (outcome is Outcome.UNKNOWN)


def test_the_recording_client_records_answers_with_their_revisions():
    history = History()
    recorder = RecordingClient(FakeClient(), history, "w")
    recorder.put("k", "v1")
    recorder.get("k")
    assert [(op.kind, op.result, op.revision) for op in history.ops()] == [
        (Kind.PUT, None, 7), (Kind.GET, "v1", 8)]
    assert_linearizable(history)
