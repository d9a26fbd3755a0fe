"""The bus codec: every Raft value survives msgpack exactly, as a positional array,
enums come back as enums, and garbage is a CodecError rather than anything else."""

from __future__ import annotations


import msgpack
import pytest
from hypothesis import given, settings, strategies as st

from petcd.actors.bus import codec
from petcd.actors.bus.envelope import pack_envelope, unpack_envelope
from petcd.actors.raft.types import Message, MessageType, PersistedState, ReadState, Snapshot
from petcd.storage.raftstate import ConfState, Entry, EntryType, HardState, SnapshotMeta
from petcd.storage.wal import format as wal_format

U64 = st.integers(0, 2**64 - 1)
NODE_IDS = st.integers(1, 2**64 - 1)
BLOBS = st.binary(max_size=64)

entries_st = st.builds(Entry, U64, U64, st.sampled_from(EntryType), BLOBS)
hard_states = st.builds(HardState, U64, U64, U64)


@st.composite
def conf_states(draw: st.DrawFn) -> ConfState:
    nodes = draw(st.lists(NODE_IDS, unique=True, max_size=8))
    split = draw(st.integers(0, len(nodes)))
    return ConfState(frozenset(nodes[:split]), frozenset(nodes[split:]))


snapshot_metas = st.builds(SnapshotMeta, U64, U64, conf_states())
snapshots = st.builds(Snapshot, snapshot_metas, BLOBS)
read_states = st.builds(ReadState, U64, BLOBS)


@st.composite
def persisted_states(draw: st.DrawFn) -> PersistedState:
    start = draw(st.integers(0, 2**63))
    snapshot = draw(st.none() | st.builds(
        Snapshot, st.builds(SnapshotMeta, st.just(start), U64, conf_states()), BLOBS))
    first = (start if snapshot else 0) + 1
    terms = draw(st.lists(U64, max_size=8))
    kinds = draw(st.lists(st.sampled_from(EntryType), min_size=len(terms),
                          max_size=len(terms)))
    entries = tuple(Entry(t, first + i, k, b"e%d" % i)
                    for i, (t, k) in enumerate(zip(terms, kinds)))
    return PersistedState(draw(hard_states), snapshot, entries)


messages = st.builds(
    Message, st.sampled_from(MessageType), U64, U64, term=U64, log_term=U64, index=U64,
    entries=st.lists(entries_st, max_size=6).map(tuple), commit=U64,
    reject=st.booleans(), reject_hint=U64, context=BLOBS,
    snapshot=st.none() | snapshots, target=U64)

PAIRS = [
    (entries_st, codec.encode_entry, codec.decode_entry),
    (hard_states, codec.encode_hard_state, codec.decode_hard_state),
    (conf_states(), codec.encode_conf_state, codec.decode_conf_state),
    (snapshot_metas, codec.encode_snapshot_meta, codec.decode_snapshot_meta),
    (snapshots, codec.encode_snapshot, codec.decode_snapshot),
    (persisted_states(), codec.encode_persisted_state, codec.decode_persisted_state),
    (messages, codec.encode_message, codec.decode_message),
    (read_states, codec.encode_read_state, codec.decode_read_state),
]


def assert_enums(value: object) -> None:
    """Enum fields decode to their enum types, not to the ints that compare equal."""
    if isinstance(value, Entry):
        assert type(value) is Entry and type(value.type) is EntryType
    if isinstance(value, Message):
        assert type(value.type) is MessageType
        assert type(value.entries) is tuple
        for entry in value.entries:
            assert_enums(entry)
    if isinstance(value, PersistedState):
        assert type(value.entries) is tuple
        for entry in value.entries:
            assert_enums(entry)


@pytest.mark.parametrize("strategy,encode,decode", PAIRS,
                         ids=[p[1].__name__[len("encode_"):] for p in PAIRS])
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_round_trip_is_exact(strategy, encode, decode, data):
    value = data.draw(strategy)
    decoded = decode(encode(value))
    assert decoded == value
    assert type(decoded) is type(value)
    assert_enums(decoded)


@settings(max_examples=150, deadline=None)
@given(st.lists(messages, max_size=4))
def test_message_batches_round_trip_inside_an_envelope(batch):
    # The way Raft messages actually travel: wire arrays inside [kind, payload], where
    # msgpack hands back lists rather than tuples.
    kind, payload = unpack_envelope(pack_envelope("send", codec.messages_to_wire(batch)))
    decoded = codec.messages_from_wire(payload)
    assert kind == "send" and decoded == batch
    for m in decoded:
        assert_enums(m)
    assert codec.decode_messages(codec.encode_messages(batch)) == batch


@given(persisted_states())
@settings(max_examples=50, deadline=None)
def test_wire_helpers_round_trip_through_msgpack(ps):
    wire = msgpack.unpackb(msgpack.packb(codec.persisted_state_to_wire(ps)))
    assert codec.persisted_state_from_wire(wire) == ps
    assert codec.entries_from_wire(msgpack.unpackb(msgpack.packb(
        codec.entries_to_wire(ps.entries)))) == ps.entries


def test_values_are_positional_arrays_not_maps():
    m = Message(MessageType.APP, 1, 2, term=3, entries=(Entry(3, 4, EntryType.NORMAL, b"x"),))
    raw = msgpack.unpackb(codec.encode_message(m))
    assert raw == [1, 1, 2, 3, 0, 0, [[3, 4, 0, b"x"]], 0, False, 0, b"", None, 0]
    assert msgpack.unpackb(codec.encode_hard_state(HardState(5, 2, 9))) == [5, 2, 9]
    assert msgpack.unpackb(codec.encode_conf_state(ConfState(frozenset({3, 1}),
                                                              frozenset({2})))) == [[1, 3], [2]]


def test_entry_layout_matches_the_docstring_and_the_wal_record():
    entry = Entry(1, 2, EntryType.NORMAL, b"hi")
    assert codec.encode_entry(entry) == bytes.fromhex("94010200c4026869")
    assert codec.encode_entry(entry) == wal_format.encode_entry(entry)


def test_wire_layout_follows_the_raft_types():
    codec._check_field_order()  # what the import already ran
    for cls, wire in codec.WIRE_FIELDS.items():
        assert codec._declared_fields(cls) == wire


def test_a_new_field_in_a_raft_type_fails_the_import(monkeypatch):
    monkeypatch.setitem(codec.WIRE_FIELDS, HardState, ("term", "vote"))
    with pytest.raises(ImportError, match="HardState"):
        codec._check_field_order()


MALFORMED = [
    b"",                                                   # nothing
    b"\xc1",                                               # never-used msgpack byte
    msgpack.packb([1, 2, 3]),                              # too short
    msgpack.packb([99, 1, 2, 0, 0, 0, [], 0, False, 0, b"", None, 0]),  # unknown type
    msgpack.packb([1, 1, 2, 0, 0, 0, None, 0, False, 0, b"", None, 0]),  # nil entries
    msgpack.packb([1, 1, 2, 0, 0, 0, [[1, 2, 7, b""]], 0, False, 0, b"", None, 0]),
    msgpack.packb([1, 1, 2, 0, 0, 0, [[1, 2]], 0, False, 0, b"", None, 0]),
    msgpack.packb([1, 1, 2, 0, 0, 0, [], 0, False, 0, b"", [1, b""], 0]),  # bad snapshot
    msgpack.packb([1, 1, 2, 0, 0, 0, [], 0, False, 0, b"", None, 0]) + b"\x00",  # extra
    msgpack.packb({"type": 1}),                            # a map
    b"\x91" * 5000,                                        # nested too deep for anyone
]


@pytest.mark.parametrize("data", MALFORMED)
def test_malformed_messages_raise_codec_error(data):
    with pytest.raises(codec.CodecError):
        codec.decode_message(data)


def test_invariants_of_the_raft_types_are_codec_errors():
    overlapping = msgpack.packb([[1, 2], [2]])  # a node both voter and learner
    with pytest.raises(codec.CodecError):
        codec.decode_conf_state(overlapping)
    gap = codec.persisted_state_to_wire(PersistedState())
    gap[2] = [[1, 5, 0, b""]]  # entries must start right after the snapshot (index 1)
    with pytest.raises(codec.CodecError):
        codec.decode_persisted_state(msgpack.packb(gap))


@given(st.binary(max_size=200))
@settings(max_examples=300, deadline=None)
def test_random_bytes_decode_or_raise_codec_error(data):
    for decode in (codec.decode_message, codec.decode_messages, codec.decode_entries,
                   codec.decode_persisted_state, codec.decode_snapshot):
        try:
            decode(data)
        except codec.CodecError:
            pass
