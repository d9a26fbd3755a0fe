"""The bus codec: every Raft value the actors send survives an envelope exactly, as a
positional array, enums come back as enums, and garbage is a CodecError rather than
anything else."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings, strategies as st

from petcd.actors.bus import codec
from petcd.actors.bus.envelope import EnvelopeError, pack_envelope, unpack_envelope
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

# What the actors send, each as it travels: (values, to_wire, from_wire).
PAIRS = [
    (st.lists(entries_st, max_size=6).map(tuple), codec.entries_to_wire,
     codec.entries_from_wire),
    (hard_states, codec.hard_state_to_wire, codec.hard_state_from_wire),
    (snapshot_metas, codec.snapshot_meta_to_wire, codec.snapshot_meta_from_wire),
    (persisted_states(), codec.persisted_state_to_wire, codec.persisted_state_from_wire),
    (messages, codec.message_to_wire, codec.message_from_wire),
    (st.lists(messages, max_size=4), codec.messages_to_wire, codec.messages_from_wire),
]


def through_an_envelope(wire: Any) -> Any:
    """The payload as the receiving actor gets it: msgpack hands back lists, not tuples."""
    kind, payload = unpack_envelope(pack_envelope("send", wire))
    assert kind == "send"
    return payload


def assert_enums(value: object) -> None:
    """Enum fields decode to their enum types, not to the ints that compare equal."""
    if isinstance(value, (list, tuple)):
        for item in value:
            assert_enums(item)
    if isinstance(value, Entry):
        assert type(value) is Entry and type(value.type) is EntryType
    if isinstance(value, Message):
        assert type(value.type) is MessageType
        assert type(value.entries) is tuple
        assert_enums(value.entries)
    if isinstance(value, PersistedState):
        assert type(value.entries) is tuple
        assert_enums(value.entries)


@pytest.mark.parametrize("strategy,to_wire,from_wire", PAIRS,
                         ids=[p[1].__name__[:-len("_to_wire")] for p in PAIRS])
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_round_trip_through_an_envelope_is_exact(strategy, to_wire, from_wire, data):
    value = data.draw(strategy)
    decoded = from_wire(through_an_envelope(to_wire(value)))
    assert decoded == value
    assert type(decoded) is type(value)
    assert_enums(decoded)


@given(st.builds(ReadState, U64, BLOBS))
def test_a_read_state_is_the_pair_the_network_actor_reads(read_state):
    index, context = through_an_envelope(codec.read_state_to_wire(read_state))
    assert (index, context) == (read_state.index, read_state.context)


def test_values_are_positional_arrays_not_maps():
    m = Message(MessageType.APP, 1, 2, term=3, entries=(Entry(3, 4, EntryType.NORMAL, b"x"),))
    assert through_an_envelope(codec.message_to_wire(m)) == [
        1, 1, 2, 3, 0, 0, [[3, 4, 0, b"x"]], 0, False, 0, b"", None, 0, False]
    assert through_an_envelope(codec.hard_state_to_wire(HardState(5, 2, 9))) == [5, 2, 9]
    meta = SnapshotMeta(7, 2, ConfState(frozenset({3, 1}), frozenset({2})))
    assert through_an_envelope(codec.snapshot_meta_to_wire(meta)) == [7, 2, [[1, 3], [2]]]


def test_entry_layout_matches_the_docstring_and_the_wal_record():
    entry = Entry(1, 2, EntryType.NORMAL, b"hi")
    packed = msgpack.packb(codec.entries_to_wire([entry]))
    assert packed == b"\x91" + bytes.fromhex("94010200c4026869")  # a list of one
    assert packed[1:] == wal_format.encode_entry(entry)


def test_wire_layout_follows_the_raft_types():
    codec._check_field_order()  # what the import already ran
    for cls, wire in codec.WIRE_FIELDS.items():
        assert codec._declared_fields(cls) == wire


def test_a_new_field_in_a_raft_type_fails_the_import(monkeypatch):
    monkeypatch.setitem(codec.WIRE_FIELDS, HardState, ("term", "vote"))
    with pytest.raises(ImportError, match="HardState"):
        codec._check_field_order()


MALFORMED = [
    None,
    5,
    "a message",
    [1, 2, 3],  # too short
    [99, 1, 2, 0, 0, 0, [], 0, False, 0, b"", None, 0, False],  # unknown type
    [1, 1, 2, 0, 0, 0, None, 0, False, 0, b"", None, 0, False],  # nil entries
    [1, 1, 2, 0, 0, 0, [[1, 2, 7, b""]], 0, False, 0, b"", None, 0, False],  # unknown entry type
    [1, 1, 2, 0, 0, 0, [[1, 2]], 0, False, 0, b"", None, 0, False],  # short entry
    [1, 1, 2, 0, 0, 0, [], 0, False, 0, b"", [1, b""], 0, False],  # bad snapshot
    [1, 1, 2, 0, 0, 0, [], 0, False, 0, b"", None, 0, False, 0],  # one field too many
    {"type": 1},                                                 # a map
    [[[[]]]],  # nested, all wrong
]


@pytest.mark.parametrize("obj", MALFORMED)
def test_malformed_messages_raise_codec_error(obj):
    with pytest.raises(codec.CodecError):
        codec.message_from_wire(obj)
    with pytest.raises(codec.CodecError):
        codec.messages_from_wire([obj])


def test_invariants_of_the_raft_types_are_codec_errors():
    overlapping = [1, 1, [[1, 2], [2]]]  # a node both voter and learner
    with pytest.raises(codec.CodecError):
        codec.snapshot_meta_from_wire(overlapping)
    gap = codec.persisted_state_to_wire(PersistedState())
    gap[2] = [[1, 5, 0, b""]]  # entries must start right after the snapshot (index 1)
    with pytest.raises(codec.CodecError):
        codec.persisted_state_from_wire(gap)


DECODERS = (codec.message_from_wire, codec.messages_from_wire, codec.entries_from_wire,
            codec.hard_state_from_wire, codec.snapshot_meta_from_wire,
            codec.persisted_state_from_wire)


@given(st.binary(max_size=200))
@settings(max_examples=300, deadline=None)
def test_random_frames_from_a_peer_are_envelope_or_codec_errors(frame):
    # What a frame from the network goes through (actors/raft/peers.py).
    try:
        _, payload = unpack_envelope(frame, strict_map_key=True)
    except EnvelopeError:
        return
    for from_wire in DECODERS:
        try:
            from_wire(payload)
        except codec.CodecError:
            pass


msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | BLOBS | st.text(max_size=8),
    lambda children: st.lists(children, max_size=14)
    | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=40)


@given(msgpack_values)
@settings(max_examples=300, deadline=None)
def test_any_decoded_payload_decodes_or_raises_codec_error(obj):
    for from_wire in DECODERS:
        try:
            from_wire(obj)
        except codec.CodecError:
            pass
