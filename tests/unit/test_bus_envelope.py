"""Envelopes: one msgpack frame `[kind, payload]`, and nothing else gets through."""

from __future__ import annotations

import enum

import msgpack
import pytest
from hypothesis import given, settings, strategies as st

from petcd.actors.bus.envelope import EnvelopeError, pack_envelope, unpack_envelope

# What actors put in payloads: msgpack's own types as Python gives them back.
scalars = (st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1)
           | st.floats(allow_nan=False) | st.text(max_size=20) | st.binary(max_size=20))
payloads = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(st.text(max_size=8) | st.integers(0, 2**32), inner, max_size=5),
    max_leaves=20)


@given(st.text(min_size=1, max_size=20), payloads)
@settings(max_examples=200, deadline=None)
def test_round_trip(kind, payload):
    assert unpack_envelope(pack_envelope(kind, payload)) == (kind, payload)


def test_layout_is_a_two_element_array():
    assert pack_envelope("tick", 5) == b"\x92\xa4tick\x05"
    assert msgpack.unpackb(pack_envelope("save", [1, None, b"x"])) == ["save", [1, None, b"x"]]


def test_tuples_come_back_as_lists_and_bytes_as_bytes():
    assert unpack_envelope(pack_envelope("k", (1, (2, b"b"), "s"))) == ("k", [1, [2, b"b"], "s"])


def test_a_str_enum_kind_travels_as_its_value():
    class Kind(str, enum.Enum):
        SEND = "send"

    assert unpack_envelope(pack_envelope(Kind.SEND, 1)) == ("send", 1)


@pytest.mark.parametrize("kind", ["", b"send", 3, None])
def test_kind_must_be_a_non_empty_str(kind):
    with pytest.raises(EnvelopeError):
        pack_envelope(kind, 1)


@pytest.mark.parametrize("frame", [
    b"", b"\xc1", b"\x92\xa4tick",                     # not msgpack, truncated
    msgpack.packb("tick"), msgpack.packb(["tick"]),     # not a pair
    msgpack.packb(["tick", 1, 2]), msgpack.packb([7, 1]), msgpack.packb(["", 1]),
    msgpack.packb({"tick": 1}), msgpack.packb(["tick", 1]) + b"\x00",
])
def test_malformed_frames_raise_envelope_error(frame):
    with pytest.raises(EnvelopeError):
        unpack_envelope(frame)


def test_frames_from_outside_may_not_use_int_map_keys():
    frame = pack_envelope("k", {1: "x"})
    assert unpack_envelope(frame) == ("k", {1: "x"})  # between our own actors: fine
    with pytest.raises(EnvelopeError):
        unpack_envelope(frame, strict_map_key=True)
