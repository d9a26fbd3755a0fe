"""Watch responses built from bytes (actors/network/watch/wire.py) are what the
protobuf library makes and parses, and fragments follow etcd's sendFragments."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from petcd.actors.network.watch import wire
from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.api.mvccpb.kv_pb2 import Event, KeyValue
from petcd.storage.mvcc import Change

HEADER = pb.ResponseHeader(cluster_id=1, member_id=2, revision=5, raft_term=3)


def _kv(key: bytes, value: bytes, rev: int) -> KeyValue:
    return KeyValue(key=key, value=value, create_revision=2, mod_revision=rev, version=3)


def test_put_event_with_and_without_prev_kv():
    kv, prev = _kv(b"foo", b"new", 7), _kv(b"foo", b"old", 6)
    event = wire.Event.of(Change(7, 0, b"foo", kv.SerializeToString(),
                                 prev.SerializeToString(), False))
    plain = pb.WatchResponse.FromString(wire.response(b"", 0, events=[event.framed(False)]))
    assert list(plain.events) == [Event(type=Event.PUT, kv=kv)]
    with_prev = pb.WatchResponse.FromString(wire.response(b"", 0, events=[event.framed(True)]))
    assert list(with_prev.events) == [Event(type=Event.PUT, kv=kv, prev_kv=prev)]


def test_delete_event_carries_the_deletion_revision():
    tomb = KeyValue(key=b"foo").SerializeToString()  # as the store keeps a tombstone
    event = wire.Event.of(Change(9, 1, b"foo", tomb, None, True))
    got = pb.WatchResponse.FromString(wire.response(b"", 0, events=[event.framed(True)]))
    assert list(got.events) == [Event(type=Event.DELETE, kv=KeyValue(key=b"foo", mod_revision=9))]


@settings(max_examples=200, deadline=None)
@given(watch_id=st.integers(-1, 2**62), created=st.booleans(), canceled=st.booleans(),
       compact=st.integers(0, 2**62), reason=st.text(max_size=40), fragment=st.booleans())
def test_response_fields_match_protobuf(watch_id, created, canceled, compact, reason, fragment):
    header = HEADER.SerializeToString()
    expected = pb.WatchResponse(header=HEADER, watch_id=watch_id, created=created,
                                canceled=canceled, compact_revision=compact,
                                cancel_reason=reason, fragment=fragment)
    got = wire.response(header, watch_id, created=created, canceled=canceled,
                        compact_revision=compact, cancel_reason=reason, fragment=fragment)
    assert got == expected.SerializeToString()
    assert pb.WatchResponse.FromString(got) == expected


def _events(count: int, value_bytes: int) -> list[bytes]:
    return [wire.Event.of(Change(10, i, b"k%d" % i, _kv(b"k%d" % i, b"v" * value_bytes, 10)
                                 .SerializeToString(), None, False)).framed(False)
            for i in range(count)]


def test_small_response_is_not_fragmented():
    [only] = wire.fragments(HEADER.SerializeToString(), 4, _events(3, 10), max_bytes=10_000)
    assert not pb.WatchResponse.FromString(only).fragment


def test_one_large_event_is_never_split():
    [only] = wire.fragments(HEADER.SerializeToString(), 4, _events(1, 5000), max_bytes=100)
    assert len(pb.WatchResponse.FromString(only).events) == 1


def test_fragments_keep_every_event_in_order_under_the_limit():
    events = _events(20, 100)
    pieces = wire.fragments(HEADER.SerializeToString(), 4, events, max_bytes=500)
    parsed = [pb.WatchResponse.FromString(p) for p in pieces]
    assert len(parsed) > 1
    assert [p.fragment for p in parsed] == [True] * (len(parsed) - 1) + [False]
    assert all(len(raw) < 500 or len(p.events) == 1 for raw, p in zip(pieces, parsed))
    assert [e.kv.key for p in parsed for e in p.events] == [b"k%d" % i for i in range(20)]
    assert all(p.watch_id == 4 and p.header == HEADER for p in parsed)
