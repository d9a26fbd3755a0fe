"""The watch-guarantee checker (tests/watchcheck): correct runs pass, and each broken
guarantee is caught and named.

The recorded run below, on a store that starts empty (revision 1):

    2  put k/a=1                 (w1)
    3  put k/b=1                 (w2)
    4  put k/a=2                 (w1)
    5  txn: put k/a=3, delete k/b, put k/c=1   (w3)
    6  delete-range [k/a, k/b): deletes k/a   (w2)
    7  put k/a=4: a create after the delete    (w1)
    8  put x=1                   (w4)
    9  put k/b=9: unacknowledged (timed out), yet it happened
   10  put k/c=2                 (w3)
       put k/z=never: unacknowledged, never happened

EVENTS holds what etcd sends for each, written out by hand; correct streams are
selected from it, bad ones are correct ones with one thing broken.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings, strategies as st

from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.api.mvccpb import kv_pb2
from tests.watchcheck import (Guarantee, Violation, Watch, WatchGuaranteeError, WatchSpec,
                              Write, assert_ok, check, delete, put)

PUT, DELETE = kv_pb2.Event.PUT, kv_pb2.Event.DELETE
NOW = 10  # the store's revision when the watchers stopped

WRITES = [
    Write((put(b"k/a", b"1"),), 2, "w1"),
    Write((put(b"k/b", b"1"),), 3, "w2"),
    Write((put(b"k/a", b"2"),), 4, "w1"),
    Write((put(b"k/a", b"3"), delete(b"k/b"), put(b"k/c", b"1")), 5, "w3"),
    Write((delete(b"k/a"),), 6, "w2"),
    Write((put(b"k/a", b"4"),), 7, "w1"),
    Write((put(b"x", b"1"),), 8, "w4"),
    Write((put(b"k/b", b"9"),), None, "w2"),
    Write((put(b"k/c", b"2"),), 10, "w3"),
    Write((put(b"k/z", b"never"),), None, "w4"),
]


def kv(key: bytes, value: bytes, mod: int, create: int, version: int) -> kv_pb2.KeyValue:
    return kv_pb2.KeyValue(key=key, value=value, mod_revision=mod, create_revision=create,
                           version=version)


def put_event(key: bytes, value: bytes, mod: int, create: int, version: int,
              prev: kv_pb2.KeyValue | None = None) -> kv_pb2.Event:
    return kv_pb2.Event(type=PUT, kv=kv(key, value, mod, create, version), prev_kv=prev)


def delete_event(key: bytes, mod: int, prev: kv_pb2.KeyValue | None = None) -> kv_pb2.Event:
    return kv_pb2.Event(type=DELETE, kv=kv_pb2.KeyValue(key=key, mod_revision=mod), prev_kv=prev)


A1, A2, A3 = kv(b"k/a", b"1", 2, 2, 1), kv(b"k/a", b"2", 4, 2, 2), kv(b"k/a", b"3", 5, 2, 3)
B1, C1 = kv(b"k/b", b"1", 3, 3, 1), kv(b"k/c", b"1", 5, 5, 1)
EVENTS = [
    put_event(b"k/a", b"1", 2, 2, 1),
    put_event(b"k/b", b"1", 3, 3, 1),
    put_event(b"k/a", b"2", 4, 2, 2, prev=A1),
    put_event(b"k/a", b"3", 5, 2, 3, prev=A2),
    delete_event(b"k/b", 5, prev=B1),
    put_event(b"k/c", b"1", 5, 5, 1),
    delete_event(b"k/a", 6, prev=A3),
    put_event(b"k/a", b"4", 7, 7, 1),
    put_event(b"x", b"1", 8, 8, 1),
    put_event(b"k/b", b"9", 9, 9, 1),
    put_event(b"k/c", b"2", 10, 5, 2, prev=C1),
]
PREFIX = WatchSpec(b"k/", b"k0", start_revision=2)


# -- building responses -----------------------------------------------------------

def header(revision: int) -> pb.ResponseHeader:
    return pb.ResponseHeader(revision=revision)


def created(revision: int) -> pb.WatchResponse:
    return pb.WatchResponse(header=header(revision), created=True)


def progress(revision: int) -> pb.WatchResponse:
    return pb.WatchResponse(header=header(revision))


def canceled(revision: int, compact_revision: int = 0) -> pb.WatchResponse:
    return pb.WatchResponse(header=header(revision), canceled=True,
                            compact_revision=compact_revision)


def events(*batch: kv_pb2.Event, fragment: bool = False) -> pb.WatchResponse:
    return pb.WatchResponse(header=header(NOW), events=batch, fragment=fragment)


def as_asked(spec: WatchSpec, event: kv_pb2.Event) -> kv_pb2.Event:
    """A copy of `event`, with prev_kv only if the watch asked for it."""
    copy = kv_pb2.Event()
    copy.CopyFrom(event)
    if not spec.prev_kv:
        copy.ClearField("prev_kv")
    return copy


def selected(spec: WatchSpec, revision: int) -> list[kv_pb2.Event]:
    """The events of EVENTS at `revision` that `spec` asks for, as it asks for them."""
    return [as_asked(spec, event) for event in EVENTS
            if event.kv.mod_revision == revision and spec.wants(event.type, event.kv.key)]


def correct(spec: WatchSpec, created_at: int = NOW, upto: int = NOW) -> list[pb.WatchResponse]:
    """created, then one response per revision with events, up to `upto`."""
    start = spec.start_revision or created_at + 1
    batches = (selected(spec, revision) for revision in range(start, upto + 1))
    return [created(created_at), *(events(*batch) for batch in batches if batch)]


def revision_of(response: pb.WatchResponse) -> int:
    return response.events[0].kv.mod_revision


def guarantees(responses: list[pb.WatchResponse], spec: WatchSpec = PREFIX,
               **options: object) -> set[Guarantee]:
    found = check(WRITES, [Watch("w", spec, responses)], **options)
    return {violation.guarantee for violation in found}


def broken(responses: list[pb.WatchResponse], guarantee: Guarantee, spec: WatchSpec = PREFIX,
           **options: object) -> list[Violation]:
    found = check(WRITES, [Watch("w", spec, responses)], **options)
    named = [violation for violation in found if violation.guarantee is guarantee]
    assert named, f"expected a {guarantee.value} violation, got {found}"
    assert all(str(violation).startswith(f"{guarantee.value}: watcher 'w'") for violation in named)
    return named


# -- correct runs ---------------------------------------------------------------

def test_no_write_and_no_watch_is_fine() -> None:
    assert check([], []) == []


def test_prefix_watch_from_the_past() -> None:
    assert_ok(WRITES, [Watch("prefix", PREFIX, correct(PREFIX))])


def test_catch_up_in_one_response_of_many_revisions() -> None:
    # etcd sends an unsynced watcher up to 1000 revisions in one response.
    batch = [event for revision in range(2, NOW + 1) for event in selected(PREFIX, revision)]
    assert_ok(WRITES, [Watch("prefix", PREFIX, [created(NOW), events(*batch)])])


def test_single_key_from_now_with_progress() -> None:
    spec = WatchSpec(b"k/a")
    responses = [*correct(spec, created_at=3), progress(8), progress(NOW)]
    assert_ok(WRITES, [Watch("key", spec, responses)])


def test_start_in_the_future() -> None:
    spec = WatchSpec(b"k/c", start_revision=8)
    assert_ok(WRITES, [Watch("future", spec, correct(spec, created_at=7))])


def test_ranges() -> None:
    from_b = WatchSpec(b"k/b", b"\0", start_revision=2)  # every key >= k/b, x included
    a_to_c = WatchSpec(b"k/a", b"k/c", start_revision=2)
    assert_ok(WRITES, [Watch("from_b", from_b, correct(from_b)),
                       Watch("a_to_c", a_to_c, correct(a_to_c))])


def test_filters_and_prev_kv() -> None:
    specs = {
        "deletes": WatchSpec(b"k/", b"k0", start_revision=2, no_put=True, prev_kv=True),
        "puts": WatchSpec(b"k/", b"k0", start_revision=2, no_delete=True, prev_kv=True),
        "prev_kv": WatchSpec(b"k/", b"k0", start_revision=2, prev_kv=True),
    }
    assert_ok(WRITES, [Watch(name, spec, correct(spec)) for name, spec in specs.items()])


def test_watch_spec_from_the_request() -> None:
    request = pb.WatchCreateRequest(key=b"k/", range_end=b"k0", start_revision=2,
                                    filters=[pb.WatchCreateRequest.NOPUT], prev_kv=True)
    spec = WatchSpec.of(request)
    assert spec == WatchSpec(b"k/", b"k0", start_revision=2, no_put=True, prev_kv=True)
    assert_ok(WRITES, [Watch("deletes", spec, correct(spec))])


def test_progress_between_events() -> None:
    responses = correct(PREFIX)
    responses.insert(3, progress(3))  # after the event at 3
    responses.insert(8, progress(8))  # after the event at 7; 8 changed only x
    assert_ok(WRITES, [Watch("prefix", PREFIX, responses)])


def test_resumed_stream_is_one_logical_stream() -> None:
    first = correct(PREFIX, upto=4)
    resumed = WatchSpec(b"k/", b"k0", start_revision=5)  # last seen 4, + 1
    assert_ok(WRITES, [Watch("resumed", PREFIX, first + correct(resumed, created_at=6))])


def test_fragmented_revision_when_asked() -> None:
    spec = WatchSpec(b"k/", b"k0", start_revision=2, fragment=True)
    responses = correct(spec)
    at_5 = next(i for i, response in enumerate(responses) if response.events
                and revision_of(response) == 5)
    a, b, c = responses[at_5].events
    responses[at_5:at_5 + 1] = [events(a, fragment=True), events(b, fragment=True), events(c)]
    assert_ok(WRITES, [Watch("fragments", spec, responses)])


def test_fragments_cut_by_a_reconnect_never_reached_the_client() -> None:
    spec = WatchSpec(b"k/", b"k0", start_revision=2, fragment=True)
    first_piece = events(selected(spec, 5)[0], fragment=True)
    resumed = WatchSpec(b"k/", b"k0", start_revision=5)
    responses = [*correct(spec, upto=4), first_piece, *correct(resumed, created_at=6)]
    assert_ok(WRITES, [Watch("fragments", spec, responses)])


def test_compaction_cancel_and_missing_prev_kv_below_it() -> None:
    spec = WatchSpec(b"k/a", start_revision=2, prev_kv=True)
    responses = correct(spec, upto=5)
    responses.append(events(*selected(spec, 6)))
    responses[-1].events[0].ClearField("prev_kv")  # its revision 5 was compacted
    old = WatchSpec(b"k/a", start_revision=3)
    assert_ok(WRITES, [Watch("prev", spec, responses),
                       Watch("old", old, [created(NOW), canceled(NOW, compact_revision=6)])],
              compactions=[6])


def test_many_watchers_agree_with_the_final_state() -> None:
    watches = [Watch("prefix", PREFIX, correct(PREFIX)),
               Watch("key", WatchSpec(b"k/b"), correct(WatchSpec(b"k/b"), created_at=4)),
               Watch("all", WatchSpec(b"\0", b"\0", 2), correct(WatchSpec(b"\0", b"\0", 2)))]
    final = [kv(b"k/a", b"4", 7, 7, 1), kv(b"k/b", b"9", 9, 9, 1), kv(b"k/c", b"2", 10, 5, 2),
             kv(b"x", b"1", 8, 8, 1)]
    assert_ok(WRITES, watches, final=final)


def test_unknown_state_after_an_unseen_unacknowledged_write_is_not_asserted() -> None:
    writes = [Write((put(b"a", b"1"),), 2), Write((put(b"a", b"x"),)),
              Write((put(b"a", b"2"),), 4)]
    spec = WatchSpec(b"a", start_revision=4, prev_kv=True)
    # Revision 3 is nobody's: the unacknowledged put may have made it.
    maybe = put_event(b"a", b"2", 4, 2, 3, prev=kv(b"a", b"x", 3, 2, 2))
    assert_ok(writes, [Watch("a", spec, [created(4), events(maybe)])])


def test_initial_keys() -> None:
    writes = [Write((put(b"a", b"2"),), 6)]
    spec = WatchSpec(b"a", start_revision=6, prev_kv=True)
    before = kv(b"a", b"1", 5, 3, 2)
    event = put_event(b"a", b"2", 6, 3, 3, prev=before)
    assert_ok(writes, [Watch("a", spec, [created(6), events(event)])], initial=[before])


# -- each broken guarantee is caught -----------------------------------------------

def without(responses: list[pb.WatchResponse], revision: int) -> list[pb.WatchResponse]:
    return [r for r in responses if not r.events or revision_of(r) != revision]


def test_gap() -> None:
    [violation] = broken(without(correct(PREFIX), 4), Guarantee.RELIABLE)
    assert (violation.revision, violation.key) == (4, b"k/a")
    assert "missed PUT b'k/a'=b'2' (acknowledged to w1)" in str(violation)


def test_gap_is_only_up_to_what_the_watch_reached() -> None:
    assert guarantees(correct(PREFIX, upto=4)) == set()
    assert guarantees(without(correct(PREFIX, upto=4), 4)) == set()
    assert guarantees(without(correct(PREFIX, upto=4), 4) + [progress(4)]) == {Guarantee.RELIABLE}


def test_duplicate() -> None:
    responses = correct(PREFIX)
    responses.insert(3, responses[2])
    [violation] = broken(responses, Guarantee.UNIQUE)
    assert (violation.revision, violation.key) == (3, b"k/b")


def test_duplicate_after_resume() -> None:
    resumed = WatchSpec(b"k/", b"k0", start_revision=4)  # one too early: 4 again
    broken(correct(PREFIX, upto=4) + correct(resumed, created_at=6), Guarantee.UNIQUE)


def test_reordered_revisions() -> None:
    responses = correct(PREFIX)
    responses[2], responses[3] = responses[3], responses[2]
    [violation] = broken(responses, Guarantee.ORDERED)
    assert violation.revision == 3


def test_reordered_within_a_revision() -> None:
    spec = WatchSpec(b"k/", b"k0", start_revision=5)
    a, b, c = selected(spec, 5)
    [violation] = broken([created(NOW), events(c, a, b)], Guarantee.ORDERED, spec)
    assert violation.revision == 5


def test_revision_split_without_fragment() -> None:
    spec = WatchSpec(b"k/", b"k0", start_revision=5)
    a, b, c = selected(spec, 5)
    [violation] = broken([created(NOW), events(a, b), events(c)], Guarantee.ATOMIC, spec)
    assert (violation.revision, violation.key) == (5, b"k/c")


def test_fragments_not_asked_for() -> None:
    spec = WatchSpec(b"k/", b"k0", start_revision=5)
    a, b, c = selected(spec, 5)
    broken([created(NOW), events(a, fragment=True), events(b, c)], Guarantee.ATOMIC, spec)


def prev_kv_stream(revision: int, change: Callable[[kv_pb2.Event], object]
                   ) -> tuple[WatchSpec, list[pb.WatchResponse]]:
    """A prev_kv watch on k/a from `revision`, whose event there `change` alters."""
    spec = WatchSpec(b"k/a", start_revision=revision, prev_kv=True)
    [event] = selected(spec, revision)
    change(event)
    return spec, [created(NOW), events(event)]


def test_wrong_prev_kv() -> None:
    spec, responses = prev_kv_stream(5, lambda event: event.prev_kv.CopyFrom(A1))
    [violation] = broken(responses, Guarantee.PREV_KV, spec)
    assert (violation.revision, violation.key) == (5, b"k/a")


def test_missing_prev_kv() -> None:
    spec, responses = prev_kv_stream(6, lambda event: event.ClearField("prev_kv"))
    broken(responses, Guarantee.PREV_KV, spec)
    broken(responses, Guarantee.PREV_KV, spec, compactions=[5])  # 5 itself is kept
    assert guarantees(responses, spec, compactions=[6]) == set()


def test_prev_kv_on_a_create() -> None:
    spec, responses = prev_kv_stream(7, lambda event: event.prev_kv.CopyFrom(A3))
    broken(responses, Guarantee.PREV_KV, spec)


def test_prev_kv_not_asked_for() -> None:
    spec = WatchSpec(b"k/a", start_revision=4)
    broken([created(NOW), events(EVENTS[2])], Guarantee.PREV_KV, spec)


def test_event_covered_by_an_earlier_progress_notification() -> None:
    responses = correct(PREFIX)
    responses.insert(3, progress(4))  # says 4 is done, before the event at 4
    [violation] = broken(responses, Guarantee.BOOKMARKABLE)
    assert violation.revision == 4


def test_progress_going_back() -> None:
    responses = [*correct(PREFIX, upto=7), progress(8), progress(7)]
    [violation] = broken(responses, Guarantee.BOOKMARKABLE)
    assert "progress went back from 8" in violation.detail


def test_progress_below_a_delivered_event() -> None:
    responses = [*correct(PREFIX), progress(8)]
    [violation] = broken(responses, Guarantee.BOOKMARKABLE)
    assert "below the event at 10 already delivered" in violation.detail


def test_event_after_cancel() -> None:
    responses = correct(PREFIX)
    responses.insert(3, canceled(NOW))
    assert {v.revision for v in broken(responses, Guarantee.CANCELED)} == {4, 5, 6, 7, 9, 10}


def test_compaction_cancel_not_justified() -> None:
    responses = [*correct(PREFIX, upto=4), canceled(NOW, compact_revision=5)]
    broken(responses, Guarantee.CANCELED)  # no compaction recorded
    broken(responses, Guarantee.CANCELED, compactions=[3, 5])  # reached 4: needs 5 on
    old = WatchSpec(b"k/", b"k0", start_revision=2)
    assert guarantees([created(NOW), canceled(NOW, compact_revision=5)], old,
                      compactions=[5]) == set()


def test_invented_events() -> None:
    spec = WatchSpec(b"k/", b"k0", start_revision=2)
    responses = correct(spec)
    responses.append(events(put_event(b"k/q", b"zz", 11, 11, 1)))
    responses[3].events[0].kv.value = b"not 2"
    found = broken(responses, Guarantee.INVENTED, spec)
    assert {(v.revision, v.key) for v in found} == {(4, b"k/a"), (11, b"k/q")}
    assert "made PUT b'k/a'=b'2'" in str(found[0])


def test_unacknowledged_write_at_a_second_revision_is_invented() -> None:
    responses = [*correct(PREFIX), events(put_event(b"k/b", b"9", 11, 11, 1))]
    broken(responses, Guarantee.INVENTED)


def test_event_outside_the_range() -> None:
    spec = WatchSpec(b"k/a", start_revision=2)
    responses = correct(spec)
    responses.insert(2, events(EVENTS[1]))  # k/b at 3
    [violation] = broken(responses, Guarantee.FILTERED, spec)
    assert (violation.revision, violation.key) == (3, b"k/b")
    assert "outside the watched key b'k/a'" in violation.detail


def test_filtered_event_types() -> None:
    no_put = WatchSpec(b"k/b", start_revision=3, no_put=True)
    broken([created(NOW), events(EVENTS[1]), events(delete_event(b"k/b", 5))],
           Guarantee.FILTERED, no_put)
    no_delete = WatchSpec(b"k/b", start_revision=5, no_delete=True)
    broken([created(NOW), events(delete_event(b"k/b", 5))], Guarantee.FILTERED, no_delete)


def test_event_below_the_start() -> None:
    spec = WatchSpec(b"k/a")
    at_4 = put_event(b"k/a", b"2", 4, 2, 2)  # its header said 4 was before the watch
    responses = [created(4), events(at_4), *correct(spec, created_at=4)[1:]]
    [violation] = broken(responses, Guarantee.FILTERED, spec)
    assert "below the start revision 5" in violation.detail


def test_wrong_create_revision_and_version() -> None:
    spec = WatchSpec(b"k/a", start_revision=4)
    wrong_version = put_event(b"k/a", b"2", 4, 2, 1)
    stale_create = put_event(b"k/a", b"4", 7, 2, 4)  # the create after the delete
    found = broken([created(NOW), events(wrong_version), *correct(spec)[2:-1],
                    events(stale_create)], Guarantee.KV, spec)
    assert [v.revision for v in found] == [4, 7]
    assert "a create: the key did not exist" in found[1].detail


def test_delete_must_be_a_tombstone() -> None:
    spec = WatchSpec(b"k/a", start_revision=6)
    bad_delete = delete_event(b"k/a", 6)
    bad_delete.kv.value = b"3"
    broken([created(NOW), events(bad_delete)], Guarantee.KV, spec)


def test_watchers_disagree_about_a_revision() -> None:
    # Revision 9 is the unacknowledged write's: only the watchers say what it was.
    lying = correct(PREFIX)
    lying[-2].events[0].kv.version = 2
    found = check(WRITES, [Watch("honest", PREFIX, correct(PREFIX)), Watch("w", PREFIX, lying)])
    assert [str(v) for v in found if v.guarantee is Guarantee.AGREED] == [
        "agreed: watcher 'w' revision 9 key b'k/b': got PUT b'k/b'=b'9' (mod 9, create 9, "
        "version 2, lease 0), but 'honest' got PUT b'k/b'=b'9' (mod 9, create 9, version 1, "
        "lease 0)"]


def test_watcher_misses_what_another_saw() -> None:
    watches = [Watch("w", PREFIX, without(correct(PREFIX), 9)),
               Watch("other", PREFIX, correct(PREFIX))]
    found = check(WRITES, watches)
    assert [str(v) for v in found] == [
        "reliable: watcher 'w' revision 9 key b'k/b': missed PUT b'k/b'=b'9' (seen by other) "
        "although the watch, from 2, reached 10"]


def test_created_first_and_empty() -> None:
    broken(correct(PREFIX)[1:], Guarantee.CREATED)
    moved = correct(PREFIX)  # the event at 2 moved into the created response
    moved[0].events.append(EVENTS[0])
    broken(moved[:1] + moved[2:], Guarantee.CREATED)


def test_bad_records_are_refused() -> None:
    with pytest.raises(ValueError, match="two writes acknowledged at revision 2"):
        check([Write((put(b"a", b"1"),), 2), Write((put(b"b", b"1"),), 2)], [])
    with pytest.raises(ValueError, match="watcher names must be unique"):
        check([], [Watch("w", PREFIX, []), Watch("w", PREFIX, [])])


def test_assert_ok_lists_every_violation() -> None:
    responses = without(correct(PREFIX), 4)
    responses.insert(3, responses[2])
    try:
        assert_ok(WRITES, [Watch("w", PREFIX, responses)])
    except WatchGuaranteeError as error:
        assert {v.guarantee for v in error.violations} == {Guarantee.RELIABLE, Guarantee.UNIQUE}
        assert "2 watch guarantee violation(s)" in str(error)
    else:
        raise AssertionError("assert_ok passed a broken stream")


# -- random runs against an independent model ------------------------------------------

KEYS = [b"a", b"b", b"c"]
Operation = tuple[str, bytes | list[bytes]]
operation = st.one_of(
    st.tuples(st.just("put"), st.sampled_from(KEYS)),
    st.tuples(st.just("delete"), st.sampled_from(KEYS)),
    st.tuples(st.just("txn"), st.lists(st.sampled_from(KEYS), min_size=1, max_size=3, unique=True)),
)


def run_model(operations: list[Operation]
              ) -> tuple[list[Write], list[kv_pb2.Event], list[kv_pb2.KeyValue]]:
    """Apply operations to a dict the plain way; return the writes, every event (with
    prev_kv) that etcd would send, and the final state."""
    store: dict[bytes, kv_pb2.KeyValue] = {}
    writes, all_events = [], []
    revision = 1
    for number, (kind, keys) in enumerate(operations):
        keys = [keys] if isinstance(keys, bytes) else keys
        # a txn puts its first key and deletes the others (if they exist)
        changes = [(key, kind == "put" or (kind == "txn" and i == 0)) for i, key in enumerate(keys)]
        changes = [(key, is_put) for key, is_put in changes if is_put or key in store]
        if not changes:
            continue  # deleted nothing: no revision
        revision += 1
        made = []
        for key, is_put in changes:
            before = store.get(key)
            if is_put:
                value = b"%d" % number
                create = before.create_revision if before else revision
                store[key] = kv(key, value, revision, create, before.version + 1 if before else 1)
                all_events.append(put_event(key, value, revision, create, store[key].version,
                                            prev=before))
                made.append(put(key, value))
            else:
                del store[key]
                all_events.append(delete_event(key, revision, prev=before))
                made.append(delete(key))
        writes.append(Write(tuple(made), revision))
    return writes, all_events, list(store.values())


def grouped(chosen: list[kv_pb2.Event], revisions_per_response: int) -> list[pb.WatchResponse]:
    revisions = sorted({event.kv.mod_revision for event in chosen})
    return [events(*[event for event in chosen if event.kv.mod_revision in part])
            for part in (revisions[i:i + revisions_per_response]
                         for i in range(0, len(revisions), revisions_per_response))]


def stream_of(spec: WatchSpec, all_events: list[kv_pb2.Event], top: int,
              revisions_per_response: int = 1) -> list[pb.WatchResponse]:
    chosen = [as_asked(spec, event) for event in all_events if spec.wants(event.type, event.kv.key)
              and event.kv.mod_revision >= spec.start_revision]
    return [created(top), *grouped(chosen, revisions_per_response), progress(top)]


def without_event(responses: list[pb.WatchResponse], gone: kv_pb2.Event
                  ) -> list[pb.WatchResponse]:
    kept = []
    for response in responses:
        copy = pb.WatchResponse()
        copy.CopyFrom(response)
        del copy.events[:]
        copy.events.extend(event for event in response.events if event != gone)
        if copy.events or not response.events:
            kept.append(copy)
    return kept


@settings(max_examples=80, deadline=None)
@given(operations=st.lists(operation, min_size=1, max_size=20),
       unacknowledged=st.sets(st.integers(min_value=0, max_value=19)),
       key=st.sampled_from(KEYS), whole_range=st.booleans(), start=st.integers(2, 12),
       prev_kv=st.booleans(), per_response=st.integers(1, 3), all_keys=st.booleans(),
       with_final=st.booleans(), drop=st.integers(min_value=0))
def test_random_runs(operations: list[Operation], unacknowledged: set[int], key: bytes,
                     whole_range: bool, start: int, prev_kv: bool, per_response: int,
                     all_keys: bool, with_final: bool, drop: int) -> None:
    """Correct streams of a random run pass, with some writes unacknowledged and with
    or without a watcher of everything; a dropped event is a gap when known."""
    acknowledged, all_events, final = run_model(operations)
    writes = [Write(write.changes, None if index in unacknowledged else write.revision)
              for index, write in enumerate(acknowledged)]
    top = max([1, *(write.revision for write in acknowledged)])
    spec = WatchSpec(key, b"\0" if whole_range else b"", start_revision=start, prev_kv=prev_kv)
    watches = [Watch("w", spec, stream_of(spec, all_events, top, per_response))]
    if all_keys:
        everything = WatchSpec(b"\0", b"\0", start_revision=2, prev_kv=True)
        watches.append(Watch("all", everything, stream_of(everything, all_events, top)))
    final_kvs = final if with_final else []
    assert check(writes, watches, final=final_kvs) == []
    delivered = [event for response in watches[0].responses for event in response.events]
    if delivered:
        gone = delivered[drop % len(delivered)]
        known = (all_keys or gone.kv.mod_revision in {w.revision for w in writes}
                 or gone.kv in final_kvs)  # the final state saw it too
        gappy = [Watch("w", spec, without_event(watches[0].responses, gone)), *watches[1:]]
        found = {v.guarantee for v in check(writes, gappy, final=final_kvs)}
        assert (Guarantee.RELIABLE in found) == known
