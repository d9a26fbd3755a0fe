"""Which watchers want a key: one dict lookup and one binary search per event, whatever
the number of watchers (etcd's watcherGroup: a map of single keys and an interval tree
of ranges).

Single-key watchers sit in a dict by key. Watchers of a range are grouped by their
exact range (a hundred watchers of one prefix are one range), and the distinct ranges
cut the key space into segments, each the set of ranges that cover it:

    ranges  a=[b"a", b"c")  p=[b"b", INF)
    segments  b"a" -> {a}   b"b" -> {a, p}   b"c" -> {p}

A key's ranges are those of the segment it falls in (the last boundary <= key), found
by bisection. Adding or removing a range touches the segments it covers; lookups, the
hot path (every event), touch one.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

from sortedcontainers import SortedDict

W = TypeVar("W", bound=Hashable)
RangeKey = tuple[bytes, bytes | None]  # [start, end); end None: every key >= start
_EMPTY: frozenset[RangeKey] = frozenset()


class WatcherIndex(Generic[W]):
    def __init__(self) -> None:
        # dicts used as ordered sets: watchers of a key are matched in the order they
        # were added, so a run is reproducible
        self._keys: dict[bytes, dict[W, None]] = {}
        self._ranges: dict[RangeKey, dict[W, None]] = {}
        self._segments: SortedDict = SortedDict()  # boundary -> frozenset[RangeKey]
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, watcher: W, key: bytes, end: bytes | None, single: bool) -> None:
        """Index `watcher` for the single key `key`, or for [key, end) (end None:
        every key >= key). The caller adds a watcher once."""
        self._size += 1
        if single:
            self._keys.setdefault(key, {})[watcher] = None
            return
        assert end is None or key < end, (key, end)
        range_key = (key, end)
        members = self._ranges.get(range_key)
        if members is None:
            members = self._ranges[range_key] = {}
            self._cover(range_key, add=True)
        members[watcher] = None

    def remove(self, watcher: W, key: bytes, end: bytes | None, single: bool) -> None:
        """Undo `add` (same arguments); a watcher not indexed is an error."""
        table = self._keys if single else self._ranges
        index_key: bytes | RangeKey = key if single else (key, end)
        members = table[index_key]  # type: ignore[index]
        del members[watcher]
        self._size -= 1
        if members:
            return
        del table[index_key]  # type: ignore[arg-type]
        if not single:
            self._cover((key, end), add=False)

    def match(self, key: bytes) -> Iterator[W]:
        """Every watcher whose key or range holds `key`."""
        single = self._keys.get(key)
        if single:
            yield from single
        segments = self._segments
        position = segments.bisect_right(key) - 1
        if position >= 0:
            for range_key in segments.values()[position]:
                yield from self._ranges[range_key]

    def _cover(self, range_key: RangeKey, *, add: bool) -> None:
        start, end = range_key
        self._split(start)
        if end is not None:
            self._split(end)
        for boundary in list(self._segments.irange(start, end, inclusive=(True, False))):
            covering = self._segments[boundary]
            self._segments[boundary] = covering | {range_key} if add else covering - {range_key}
        if not add:
            self._merge(start)
            if end is not None:
                self._merge(end)

    def _split(self, boundary: bytes) -> None:
        """Make `boundary` a segment start, covered as the segment it falls in."""
        if boundary in self._segments:
            return
        position = self._segments.bisect_right(boundary) - 1
        self._segments[boundary] = self._segments.values()[position] if position >= 0 else _EMPTY

    def _merge(self, boundary: bytes) -> None:
        """Drop `boundary` if its segment is covered as the one before it."""
        position = self._segments.index(boundary)
        before = self._segments.values()[position - 1] if position > 0 else _EMPTY
        if self._segments[boundary] == before:
            del self._segments[boundary]
