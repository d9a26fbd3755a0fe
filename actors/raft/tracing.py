"""The raft actor's part of a traced write (actors/network/trace.py): when the PROPOSE
came, when its entry was handed to the WAL (`appended`), when that save was durable
(`persisted`) and when the entry was handed to apply (`committed`).

A traced proposal is known by its request id until its entry shows up in a save; the
entry is recognised by the request id in its data (an InternalRaftRequest's header),
read only while some traced proposal waits for its entry. On a follower the entry
comes back from the leader; on the leader it is appended at once. Pure but for the
injected clock; bounded: the oldest traces are dropped beyond MAX_TRACED.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TypeVar

from google.protobuf.message import DecodeError

from petcd.api.etcdserverpb import raft_internal_pb2 as rpb
from petcd.storage.raftstate import Entry, EntryType

from .pipeline import SaveRequest

MAX_TRACED = 10_000
Stamps = list[list[object]]  # [[stage, monotonic ns], ...]
_Traced = TypeVar("_Traced")  # what a trace table holds per key


class RaftTraces:
    def __init__(self, clock_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self.clock_ns = clock_ns
        self._waiting: OrderedDict[int, Stamps] = OrderedDict()  # request id -> stamps
        self._by_index: OrderedDict[int, tuple[int, int, Stamps]] = OrderedDict()
        # entry index -> (request id, the seq of the save that carried it, stamps)

    def __bool__(self) -> bool:
        return bool(self._waiting or self._by_index)

    def received(self, request_id: int) -> None:
        self._waiting[request_id] = [["raft_received", self.clock_ns()]]
        _bound(self._waiting)

    def saved(self, save: SaveRequest) -> None:
        """The save left for the WAL: its traced entries are `appended`."""
        if not self._waiting:
            return
        now = self.clock_ns()
        for entry in save.entries:
            request_id = _request_id(entry)
            stamps = self._waiting.pop(request_id, None) if request_id else None
            if stamps is not None:
                stamps.append(["appended", now])
                self._by_index[entry.index] = (request_id, save.seq, stamps)
                _bound(self._by_index)

    def persisted(self, seq: int) -> None:
        """Every save up to `seq` is durable."""
        now = self.clock_ns()
        for _, saved_in, stamps in self._by_index.values():
            if saved_in <= seq and len(stamps) == 2:
                stamps.append(["persisted", now])

    def committed(self, entries: Iterable[Entry]) -> list[list[object]]:
        """Entries handed to apply: their traces, done, as TRACE's payload (without
        `persisted` if the entry was committed before this member's own copy was
        durable: that fsync was not on the answer's way)."""
        if not self._by_index:
            return []
        now = self.clock_ns()
        done = []
        for entry in entries:
            traced = self._by_index.pop(entry.index, None)
            if traced is not None:
                request_id, _, stamps = traced
                stamps.append(["committed", now])
                done.append([request_id, stamps])
        return done


def _request_id(entry: Entry) -> int:
    if entry.type != EntryType.NORMAL or not entry.data:
        return 0  # a conf change, or a new leader's empty entry
    try:
        return int(rpb.InternalRaftRequest.FromString(entry.data).header.ID)
    except DecodeError:
        return 0  # not an InternalRaftRequest


def _bound(table: OrderedDict[int, _Traced]) -> None:
    while len(table) > MAX_TRACED:
        table.popitem(last=False)
