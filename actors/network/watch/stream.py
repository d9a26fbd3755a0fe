"""One client's Watch stream (gRPC or the JSON gateway): its requests in, its
responses out through one bounded queue, in the order they were made.

Requests (etcd's serverWatchStream.recvLoop):
- create: the `created` response (header revision: what the member has applied), then
  the watch joins the hub; a negative start revision, a range_end at or below the key
  and a watch_id already used on this stream are answered `created` and `canceled` with
  watch_id -1 and etcd's reason, and the stream goes on; so is one its user may not
  read while auth is enabled (the stream's `permit`, from actors/network/auth.py);
- cancel: the `canceled` response, and nothing more for that watch (an unknown id is
  ignored, as etcd does);
- progress: one response with watch_id -1 at the hub's revision, queued once every
  watch of the stream has caught up, so it never overtakes an event still to be sent;
- anything else: ignored, as etcd does.

Every response goes through `_queue`, so the order of responses is the order they
were decided in. Events for a watch whose previous response is still last in the queue,
unsent, join it (up to MAX_MERGED_BYTES): a client that falls behind gets fewer, larger
responses instead of a backlog of small ones, each revision still whole in one.

The queue is bounded (MAX_QUEUED_RESPONSES, MAX_QUEUED_BYTES): the hub stops giving
events to a stream without room and catches its watchers up from the store's history
later; requests are read only while the queue is under twice its
bounds. A response larger than the byte bound still goes alone into an empty queue
(a revision's events are never split unless the watch asked for fragments).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from petcd.api.etcdserverpb import rpc_pb2 as pb

from .. import errors
from ..errors import EtcdError
from . import wire
from .watcher import Watcher

if TYPE_CHECKING:
    from .hub import WatchHub

MAX_QUEUED_RESPONSES = 128  # etcd's chanBufLen
MAX_QUEUED_BYTES = 4 * 1024 * 1024
MAX_MERGED_BYTES = 1024 * 1024
INVALID_WATCH_ID = -1
REASON_COMPACTED = "etcdserver: mvcc: required revision has been compacted"
REASON_EMPTY_RANGE = "mvcc: watcher range is empty"
REASON_DUPLICATE_ID = "mvcc: duplicate watch ID provided on the WatchStream"


@dataclass(slots=True)
class _Events:
    """An events response not encoded yet: later events of its watch may join it."""

    watch_id: int
    header: bytes  # the newest batch's
    events: list[bytes]  # framed
    size_bytes: int

    def encode(self) -> bytes:
        return wire.response(self.header, self.watch_id, events=self.events)


# A create request -> the reason to cancel it (auth), None to create it.
Permit = Callable[[pb.WatchCreateRequest], Awaitable[str | None]]


class WatchStream:
    def __init__(self, hub: WatchHub, require_leader: bool, permit: Permit | None = None
                 ) -> None:
        self.hub = hub
        self._permit = permit
        self.require_leader = require_leader
        self.watchers: dict[int, Watcher] = {}
        self.unsynced = 0  # watchers of this stream not in the hub's index
        self.progress_asked = False  # a WatchProgressRequest waits for the watchers
        self._next_id = 0  # etcd's AutoWatchID is 0: the first server-chosen id is 0
        self._queue: deque[bytes | _Events] = deque()
        self._queued_bytes = 0
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._error: EtcdError | None = None

    # -- the queue --------------------------------------------------------------------

    def has_room(self) -> bool:
        return (len(self._queue) < MAX_QUEUED_RESPONSES
                and self._queued_bytes < MAX_QUEUED_BYTES)

    def push(self, response: bytes) -> None:
        self._append(response, len(response))

    def push_events(self, watch_id: int, header: bytes, events: list[bytes]) -> None:
        size = sum(len(e) for e in events)
        last = self._queue[-1] if self._queue else None
        if (isinstance(last, _Events) and last.watch_id == watch_id
                and last.size_bytes + size <= MAX_MERGED_BYTES):
            last.header = header
            last.events.extend(events)
            last.size_bytes += size
            self._grown(size)
            return
        item = _Events(watch_id, header, list(events), size + len(header))
        self._append(item, item.size_bytes)

    def _append(self, item: bytes | _Events, size_bytes: int) -> None:
        self._queue.append(item)
        self._wake.set()
        self._grown(size_bytes)

    def _grown(self, size_bytes: int) -> None:
        self._queued_bytes += size_bytes
        if (len(self._queue) >= 2 * MAX_QUEUED_RESPONSES
                or self._queued_bytes >= 2 * MAX_QUEUED_BYTES):
            self._room.clear()

    async def responses(self) -> AsyncIterator[bytes]:
        """Encoded WatchResponses until the stream fails (raises its EtcdError)."""
        while True:
            while not self._queue:
                if self._error is not None:
                    raise errors.copy(self._error)
                self._wake.clear()
                await self._wake.wait()
            if self._error is not None:
                raise errors.copy(self._error)
            item = self._queue.popleft()
            if isinstance(item, _Events):
                self._queued_bytes -= item.size_bytes
                response = item.encode()
            else:
                self._queued_bytes -= len(item)
                response = item
            if not self._room.is_set() and self.has_room():
                self._room.set()
            if self.unsynced and self.has_room():
                self.hub.wake()
            yield response

    def fail(self, error: EtcdError) -> None:
        """End the stream with `error` (e.g. require-leader without a leader)."""
        self._error = error
        self._wake.set()
        self._room.set()

    # -- requests -----------------------------------------------------------------------

    async def handle(self, request: pb.WatchRequest) -> None:
        await self._room.wait()  # a client that does not read gets no more watches
        if self._error is not None:
            return
        await self.hub.ready()
        kind = request.WhichOneof("request_union")
        if kind == "create_request":
            reason = None if self._permit is None else await self._permit(request.create_request)
            if reason is None:
                self._create(request.create_request)
            else:
                self._refuse(reason)
        elif kind == "cancel_request":
            self._cancel(request.cancel_request.watch_id)
        elif kind == "progress_request":
            self.progress_asked = True
            self.hub.answer_progress(self)

    def _create(self, r: pb.WatchCreateRequest) -> None:
        key = r.key or b"\x00"  # etcd watches key "\0" for an empty key
        single = not r.range_end
        end = None if single or r.range_end == b"\x00" else r.range_end
        if r.start_revision < 0:
            self._refuse(REASON_COMPACTED)
        elif end is not None and key >= end:
            self._refuse(REASON_EMPTY_RANGE)
        elif r.watch_id != 0 and r.watch_id in self.watchers:
            self._refuse(REASON_DUPLICATE_ID)
        else:
            watch_id = r.watch_id or self._auto_id()
            watcher = Watcher(self, watch_id, r, key, end, single, next_rev=1)
            self.watchers[watch_id] = watcher
            self.push(wire.response(self.hub.header(), watch_id, created=True))
            self.hub.add(watcher)

    def _auto_id(self) -> int:
        while self._next_id in self.watchers:
            self._next_id += 1
        self._next_id += 1
        return self._next_id - 1

    def _refuse(self, reason: str) -> None:
        self.push(wire.response(self.hub.header(), INVALID_WATCH_ID, created=True,
                                canceled=True, cancel_reason=reason))

    def _cancel(self, watch_id: int) -> None:
        watcher = self.watchers.get(watch_id)
        if watcher is None:
            return
        self.hub.remove(watcher)
        self.push(wire.response(self.hub.header(), watch_id, canceled=True))

    def forget(self, watcher: Watcher) -> None:
        """The hub dropped `watcher` (canceled by compaction)."""
        self.watchers.pop(watcher.watch_id, None)

    def close(self) -> None:
        """The client went away: drop every watch."""
        for watcher in list(self.watchers.values()):
            self.hub.remove(watcher)
        self.watchers.clear()
        self._queue.clear()
        self._queued_bytes = 0
        self._error = self._error or errors.copy(errors.STOPPED)
        self._room.set()
