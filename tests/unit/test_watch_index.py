"""The watcher index (actors/network/watch/index.py) finds exactly the watchers whose
key or range holds a key, as a check of every watcher would, through any sequence of
additions and removals."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from petcd.actors.network.watch.index import WatcherIndex

KEYS = st.binary(min_size=1, max_size=3)


def _holds(spec: tuple[bytes, bytes | None, bool], key: bytes) -> bool:
    start, end, single = spec
    if single:
        return key == start
    return key >= start and (end is None or key < end)


def test_single_keys_prefixes_and_open_ranges():
    index: WatcherIndex[str] = WatcherIndex()
    index.add("one", b"foo", None, True)
    index.add("prefix", b"fo", b"fp", False)
    index.add("from-g", b"g", None, False)
    index.add("prefix-too", b"fo", b"fp", False)
    assert sorted(index.match(b"foo")) == ["one", "prefix", "prefix-too"]
    assert sorted(index.match(b"fox")) == ["prefix", "prefix-too"]
    assert sorted(index.match(b"zzz")) == ["from-g"]
    assert list(index.match(b"a")) == []
    index.remove("prefix", b"fo", b"fp", False)
    index.remove("one", b"foo", None, True)
    assert sorted(index.match(b"foo")) == ["prefix-too"]
    assert len(index) == 2


def test_watchers_of_one_key_match_in_the_order_they_were_added():
    index: WatcherIndex[int] = WatcherIndex()
    for watcher in (5, 3, 9, 1):
        index.add(watcher, b"k", None, True)
    assert list(index.match(b"k")) == [5, 3, 9, 1]


@st.composite
def _spec(draw) -> tuple[bytes, bytes | None, bool]:
    start = draw(KEYS)
    kind = draw(st.sampled_from(["single", "range", "open"]))
    if kind == "single":
        return start, None, True
    if kind == "open":
        return start, None, False
    end = draw(KEYS.filter(lambda e: e > start))
    return start, end, False


@settings(max_examples=150, deadline=None)
@given(specs=st.lists(_spec(), min_size=1, max_size=25), removals=st.data(),
       probes=st.lists(KEYS, min_size=1, max_size=20))
def test_match_is_a_check_of_every_watcher(specs, removals, probes):
    index: WatcherIndex[int] = WatcherIndex()
    live = dict(enumerate(specs))
    for watcher, spec in live.items():
        index.add(watcher, *spec)
    for watcher in removals.draw(st.lists(st.sampled_from(sorted(live)), unique=True)):
        index.remove(watcher, *live.pop(watcher))
    assert len(index) == len(live)
    for key in probes:
        expected = sorted(w for w, spec in live.items() if _holds(spec, key))
        assert sorted(index.match(key)) == expected
    for watcher in list(live):
        index.remove(watcher, *live.pop(watcher))
    assert not index._segments, "an empty index keeps no segments"
