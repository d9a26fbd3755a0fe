"""One watch stream's queue (actors/network/watch/stream.py): responses leave in the
order they were decided, a watch's later events join its unsent response, and the
queue says when it is full."""

from __future__ import annotations

import asyncio

from petcd.actors.network.watch import stream as stream_module
from petcd.actors.network.watch import wire
from petcd.actors.network.watch.stream import WatchStream
from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.api.mvccpb.kv_pb2 import KeyValue
from petcd.storage.mvcc import Change


class _Hub:
    def __init__(self) -> None:
        self.woken = 0

    def wake(self) -> None:
        self.woken += 1


def _framed(main: int, key: bytes = b"k") -> bytes:
    kv = KeyValue(key=key, value=b"v", create_revision=main, mod_revision=main, version=1)
    return wire.Event.of(Change(main, 0, key, kv.SerializeToString(), None, False)).framed(False)


def _header(revision: int) -> bytes:
    return pb.ResponseHeader(revision=revision).SerializeToString()


async def _take(stream: WatchStream, count: int) -> list[pb.WatchResponse]:
    responses = stream.responses()
    return [pb.WatchResponse.FromString(await anext(responses)) for _ in range(count)]


def test_unsent_events_of_a_watch_join_and_order_is_kept():
    async def run() -> list[pb.WatchResponse]:
        stream = WatchStream(_Hub(), require_leader=False)  # type: ignore[arg-type]
        stream.push_events(1, _header(2), [_framed(2)])
        stream.push_events(1, _header(3), [_framed(3)])  # joins the first
        stream.push(wire.response(_header(3), 5, canceled=True))
        stream.push_events(1, _header(4), [_framed(4)])  # after the cancel: its own
        stream.push_events(2, _header(4), [_framed(4, b"other")])  # another watch: its own
        return await _take(stream, 4)

    first, cancel, third, fourth = asyncio.run(run())
    assert (first.watch_id, first.header.revision,
            [e.kv.mod_revision for e in first.events]) == (1, 3, [2, 3])
    assert (cancel.watch_id, cancel.canceled) == (5, True)
    assert (third.watch_id, [e.kv.mod_revision for e in third.events]) == (1, [4])
    assert (fourth.watch_id, fourth.events[0].kv.key) == (2, b"other")


def test_the_queue_reports_full_and_the_hub_is_woken_when_it_drains():
    async def run() -> tuple[bool, bool, int]:
        hub = _Hub()
        stream = WatchStream(hub, require_leader=False)  # type: ignore[arg-type]
        stream.unsynced = 1  # a watcher of this stream waits to be caught up
        for i in range(stream_module.MAX_QUEUED_RESPONSES):
            stream.push_events(i, _header(2), [_framed(2)])  # distinct watches: no joining
        full = not stream.has_room()
        await _take(stream, 1)
        return full, stream.has_room(), hub.woken

    full, room_again, woken = asyncio.run(run())
    assert full and room_again and woken == 1
