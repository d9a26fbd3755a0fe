"""The one frame every message between actors (and between members) travels in.

    frame = msgpack [kind: str, payload: any msgpack value]

`kind` names what the payload is; the actors define their kinds, the bus only frames.
A payload comes back as msgpack decodes it: arrays as lists, bin as bytes, str as str;
Raft values travel as their codec arrays (`codec.message_to_wire` ...) and are rebuilt
by the receiver (`codec.message_from_wire`), so nothing is encoded twice.

Example: pack_envelope("tick", 5) == b"\\x92\\xa4tick\\x05".
"""

from __future__ import annotations

from typing import Any

import msgpack

Buffer = bytes | bytearray | memoryview


class EnvelopeError(ValueError):
    """A frame that is not a msgpack [kind: str, payload] pair."""


_packer = msgpack.Packer(use_bin_type=True)  # reused: one per process, one thread


def pack_envelope(kind: str, payload: Any = None) -> bytes:
    """One frame for `[kind, payload]`. A `str` enum member is packed as its value."""
    if not isinstance(kind, str) or not kind:
        raise EnvelopeError(f"envelope kind must be a non-empty str, not {kind!r}")
    frame: bytes = _packer.pack((kind, payload))
    return frame


def unpack_envelope(frame: Buffer, *, strict_map_key: bool = False) -> tuple[str, Any]:
    """`(kind, payload)` of a frame; `strict_map_key=True` for frames from outside the
    member (only str and bytes map keys, msgpack's guard against hash flooding)."""
    try:
        obj = msgpack.unpackb(frame, raw=False, strict_map_key=strict_map_key)
    except (ValueError, TypeError, msgpack.exceptions.UnpackException) as err:
        raise EnvelopeError(f"frame is not msgpack: {err!r}") from err
    if type(obj) is not list or len(obj) != 2 or type(obj[0]) is not str or not obj[0]:
        raise EnvelopeError(f"frame is not a [kind, payload] pair: {_preview(obj)}")
    return obj[0], obj[1]


def _preview(obj: Any, limit: int = 80) -> str:
    text = repr(obj)
    return text if len(text) <= limit else text[:limit] + "..."
