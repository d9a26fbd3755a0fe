"""One watcher's side: what it asked for, and what it received as one logical stream.

A watcher that lost its connection and resumed elsewhere appends the new
connection's responses, `created` first, to the same list: reconnects are
delimited by `created` responses and the whole list is checked as one stream.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from petcd.api.etcdserverpb import rpc_pb2

from .events import Event, EventType

_NOPUT = rpc_pb2.WatchCreateRequest.NOPUT
_NODELETE = rpc_pb2.WatchCreateRequest.NODELETE


@dataclass(frozen=True, slots=True)
class WatchSpec:
    """The WatchCreateRequest of a watch, as its first connection sent it."""

    key: bytes
    range_end: bytes = b""  # b"" = `key` alone; b"\0" = every key >= `key`
    start_revision: int = 0  # 0 = from the revision after the created response's header
    no_put: bool = False
    no_delete: bool = False
    prev_kv: bool = False
    progress_notify: bool = False  # kept for the record: RequestProgress answers come either way
    fragment: bool = False

    def __post_init__(self) -> None:
        assert self.start_revision >= 0, f"negative start revision {self.start_revision}"

    @classmethod
    def of(cls, request: rpc_pb2.WatchCreateRequest) -> WatchSpec:
        return cls(
            key=request.key, range_end=request.range_end,
            start_revision=request.start_revision,
            no_put=_NOPUT in request.filters, no_delete=_NODELETE in request.filters,
            prev_kv=request.prev_kv, progress_notify=request.progress_notify,
            fragment=request.fragment,
        )

    def covers(self, key: bytes) -> bool:
        if not self.range_end:
            return key == self.key
        if self.range_end == b"\0":
            return key >= self.key
        return self.key <= key < self.range_end

    @property
    def watched(self) -> str:
        if not self.range_end:
            return f"key {self.key!r}"
        if self.range_end == b"\0":
            return f"keys >= {self.key!r}"
        return f"range [{self.key!r}, {self.range_end!r})"

    def filters(self, kind: EventType) -> bool:
        return self.no_put if kind == EventType.PUT else self.no_delete  # a protobuf int works too

    def wants(self, kind: EventType, key: bytes) -> bool:
        return self.covers(key) and not self.filters(kind)


@dataclass(frozen=True, slots=True)
class Watch:
    """A watcher's record: its request and every WatchResponse it got, in order."""

    name: str
    spec: WatchSpec
    responses: Sequence[rpc_pb2.WatchResponse]


@dataclass(frozen=True, slots=True)
class Response:
    """One logical WatchResponse: fragments already joined."""

    index: int  # of its first piece in Watch.responses, to point at it in messages
    revision: int  # header.revision
    created: bool
    canceled: bool
    compact_revision: int
    events: tuple[Event, ...]
    fragmented: bool  # joined from pieces sent with fragment=True

    @property
    def is_progress(self) -> bool:
        return not (self.events or self.created or self.canceled)

    @property
    def label(self) -> str:
        return f"response #{self.index}"


def _response(index: int, pieces: list[rpc_pb2.WatchResponse]) -> Response:
    last = pieces[-1]
    events = tuple(Event.of(event) for piece in pieces for event in piece.events)
    return Response(index, last.header.revision, last.created, last.canceled,
                    last.compact_revision, events, fragmented=len(pieces) > 1)


def reassemble(responses: Sequence[rpc_pb2.WatchResponse]) -> tuple[Response, ...]:
    """Join fragments as a client does: pieces with fragment=True, then the last piece
    with fragment=False. A run cut by a reconnect or by the end of the record never
    reached the application (the client resumes after its last whole revision), so it
    is dropped."""
    joined: list[Response] = []
    pieces: list[rpc_pb2.WatchResponse] = []
    start = 0
    for index, piece in enumerate(responses):
        if piece.created:
            pieces = []
        if not pieces:
            start = index
        pieces.append(piece)
        if not piece.fragment:
            joined.append(_response(start, pieces))
            pieces = []
    return tuple(joined)


@dataclass(frozen=True, slots=True)
class Stream:
    """A watch's logical stream and what it tells about the watch's progress."""

    name: str
    spec: WatchSpec
    responses: tuple[Response, ...]
    start: int | None  # effective start revision; None if no created response says it
    reached: int  # every event up to here was delivered: last event or progress revision
    delivered: Mapping[tuple[int, bytes], Event]  # first delivery of each (revision, key)

    @classmethod
    def of(cls, watch: Watch) -> Stream:
        responses = reassemble(watch.responses)
        delivered: dict[tuple[int, bytes], Event] = {}
        reached = 0
        for response in responses:
            for event in response.events:
                delivered.setdefault((event.revision, event.key), event)
                reached = max(reached, event.revision)
            if response.is_progress:
                reached = max(reached, response.revision)
        return cls(watch.name, watch.spec, responses, _start(watch.spec, responses),
                   reached, delivered)


def _start(spec: WatchSpec, responses: tuple[Response, ...]) -> int | None:
    if spec.start_revision:
        return spec.start_revision
    first_created = next((response for response in responses if response.created), None)
    return None if first_created is None else first_created.revision + 1
