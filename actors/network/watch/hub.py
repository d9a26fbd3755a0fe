"""The member's watchers and the changes that reach them (etcd's watchableStore).

    apply actor ──APPLIED [index, revision, changes]──► hub.on_applied
        synced watchers (in `index`): each batch's changes matched by key, one response
        per watcher per batch, into its stream's queue
    unsynced watchers (`unsynced`): caught up by `_catch_up_loop` from the store's
        history (read-only LMDB, the store's worker thread), at most
        MAX_WATCHERS_PER_READ at a time, MAX_REVISIONS_PER_READ revisions (at most
        MAX_CHANGES_PER_READ changes, about MAX_BYTES_PER_READ bytes) per read;
        back in the index once they reach the hub's revision

A watcher starts unsynced when its start revision is in the past, and becomes unsynced
when its stream has no room for a batch (the client reads slowly), or when the store
changed without changes to show (a snapshot was installed): nothing is held for it
meanwhile but its next revision, so memory stays bounded whatever clients do. A watcher
that needs a revision below the store's compaction revision is canceled with
compact_revision, as etcd does.

The hub's revision (`feed_rev`) is the last APPLIED revision: `created` headers,
progress notifications and synced watchers all go by it, so no progress notification
can claim a revision whose events are not yet queued on its stream.

A batch is answered (APPLIED) before the store commits it (VISIBLE follows, and wakes
the hub). A catch-up read from a view without a batch already answered could miss a
compaction a client was told of and send it compacted history, so such a read is
thrown away and made again once the store shows that batch.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from petcd.storage.mvcc import Change, MvccStore, meta
from petcd.storage.mvcc.history import changes_from_wire, read_changes

from .. import errors
from ..local import LocalStore
from . import wire
from .index import WatcherIndex
from .stream import INVALID_WATCH_ID, Permit, WatchStream
from .watcher import Watcher
from .wire import Event

MAX_WATCHERS_PER_READ = 512  # etcd's maxWatchersPerSync
MAX_REVISIONS_PER_READ = 1000  # etcd's watchBatchMaxRevs
MAX_CHANGES_PER_READ = 10_000
MAX_BYTES_PER_READ = 8 * 1024 * 1024  # (a single revision may be larger: it is read whole)
RESYNC_EVERY_S = 0.1  # etcd's watchResyncPeriod
MAX_NO_LEADER_CHECKS = 3  # etcd's maxNoLeaderCnt: election timeouts without a leader


@dataclass(frozen=True, slots=True)
class HistoryRead:
    applied_index: int  # the last Raft entry the view shows applied
    current_rev: int
    compact_rev: int
    changes: list[Change]
    through_rev: int  # the changes cover every revision up to here


def read_history(store: MvccStore, first_rev: int, with_prev_kv: bool) -> HistoryRead:
    """The changes from `first_rev` on, as far as one read goes (store worker thread)."""
    with store.read_txn() as view:
        last = min(view.rev, first_rev + MAX_REVISIONS_PER_READ - 1)
        changes, through = read_changes(view, first_rev, last, max_changes=MAX_CHANGES_PER_READ,
                                        max_bytes=MAX_BYTES_PER_READ, with_prev_kv=with_prev_kv)
        applied = meta.raft_position(view.txn, view.dbs).index
        return HistoryRead(applied, view.rev, view.compact_rev, changes, through)


class WatchHub:
    def __init__(self, store: LocalStore, header: Callable[[int], bytes], *,
                 max_fragment_bytes: int, progress_interval_s: float,
                 election_timeout_s: float, has_leader: Callable[[], bool], log: Any) -> None:
        assert max_fragment_bytes > 0 and progress_interval_s > 0
        self.store = store
        self._header = header  # revision -> encoded ResponseHeader
        self.max_fragment_bytes = max_fragment_bytes
        self.progress_interval_s = progress_interval_s
        self.election_timeout_s = election_timeout_s
        self._has_leader = has_leader
        self.log = log
        self.feed_rev = 0  # the last APPLIED revision; 0 until the first
        self.answered_index = 0  # the last APPLIED Raft index
        # What a catch-up read's view must show: the batches answered when the first
        # read of the catch-up under way began (None: no read made yet). Kept across
        # retries: a target that moved with every APPLIED might never be reached.
        self._must_show_index: int | None = None
        self.index: WatcherIndex[Watcher] = WatcherIndex()
        self.unsynced: dict[Watcher, None] = {}  # insertion order: oldest first
        self.progress_watchers: set[Watcher] = set()
        self.streams: set[WatchStream] = set()
        self._ready = asyncio.Event()
        self._wake = asyncio.Event()

    # -- streams and watchers -----------------------------------------------------------

    def open_stream(self, require_leader: bool, permit: Permit | None = None) -> WatchStream:
        """`permit`: who may create which watch (auth), None: anyone."""
        if require_leader and not self._has_leader():
            raise errors.copy(errors.NO_LEADER)
        stream = WatchStream(self, require_leader, permit)
        self.streams.add(stream)
        return stream

    def close_stream(self, stream: WatchStream) -> None:
        stream.close()
        self.streams.discard(stream)

    async def ready(self) -> None:
        await self._ready.wait()

    def header(self, revision: int | None = None) -> bytes:
        return self._header(self.feed_rev if revision is None else revision)

    def add(self, watcher: Watcher) -> None:
        """etcd's watchableStore.watch: synced if it starts now or in the future."""
        start = watcher.start_rev
        if start == 0 or start > self.feed_rev:
            watcher.next_rev = max(self.feed_rev + 1, start)
            self._index(watcher)
        else:
            watcher.next_rev = start
            self.unsynced[watcher] = None
            watcher.stream.unsynced += 1
            self.wake()
        if watcher.progress_notify:
            self.progress_watchers.add(watcher)

    def remove(self, watcher: Watcher) -> None:
        if watcher.canceled:
            return
        watcher.canceled = True
        if watcher.synced:
            self._unindex(watcher)
        elif watcher in self.unsynced:
            del self.unsynced[watcher]
            watcher.stream.unsynced -= 1
        self.progress_watchers.discard(watcher)
        watcher.stream.forget(watcher)
        self.answer_progress(watcher.stream)

    def _index(self, watcher: Watcher) -> None:
        watcher.synced = True
        self.index.add(watcher, watcher.key, watcher.end, watcher.single)

    def _unindex(self, watcher: Watcher) -> None:
        watcher.synced = False
        self.index.remove(watcher, watcher.key, watcher.end, watcher.single)

    def _demote(self, watcher: Watcher, next_rev: int) -> None:
        """A synced watcher that missed changes from `next_rev` on."""
        self._unindex(watcher)
        watcher.next_rev = next_rev
        self.unsynced[watcher] = None
        watcher.stream.unsynced += 1
        self.wake()

    def _promote(self, watcher: Watcher) -> None:
        del self.unsynced[watcher]
        watcher.stream.unsynced -= 1
        self._index(watcher)
        self.answer_progress(watcher.stream)

    def wake(self) -> None:
        self._wake.set()

    # -- the feed: changes as they are applied -----------------------------------------

    def on_applied(self, payload: Any) -> None:
        """APPLIED from the apply actor: [index, revision, changes or None]."""
        revision, wired = int(payload[1]), payload[2]
        self.answered_index = max(self.answered_index, int(payload[0]))
        if not self._ready.is_set():
            self.feed_rev = revision
            self._ready.set()
            return
        if wired is None:
            if revision != self.feed_rev:
                self._resync_all(revision)
            return
        if wired and len(self.index):  # with no watcher in the index, nothing to decode
            changes = changes_from_wire(wired)
            assert self.feed_rev < changes[0].main <= changes[-1].main <= revision, (
                self.feed_rev, revision)
            self._notify(revision, changes)
        self.feed_rev = max(self.feed_rev, revision)

    def _notify(self, revision: int, changes: list[Change]) -> None:
        """etcd's watchableStore.notify, for a whole batch of revisions at once."""
        matched = _match(self.index, changes)
        from_rev = self.feed_rev + 1
        header = self.header(revision)
        for watcher, got in matched.items():
            first = max(watcher.next_rev, from_rev)
            framed = [e.framed(watcher.prev_kv) for e in got if watcher.wants(e, first)]
            if not framed:
                continue
            if watcher.stream.has_room():
                self._send_events(watcher, header, framed)
            else:
                self._demote(watcher, first)

    def _send_events(self, watcher: Watcher, header: bytes, framed: list[bytes]) -> None:
        if watcher.fragment:
            for piece in wire.fragments(header, watcher.watch_id, framed, self.max_fragment_bytes):
                watcher.stream.push(piece)
        else:
            watcher.stream.push_events(watcher.watch_id, header, framed)
        watcher.sent_since_tick = True

    def _resync_all(self, revision: int) -> None:
        """The store jumped to `revision` without its changes (a snapshot was
        installed): every synced watcher catches up from the new store's history."""
        self.log.info("store replaced; watchers catch up from its history",
                      from_revision=self.feed_rev, to_revision=revision,
                      watchers=len(self.index))
        from_rev = self.feed_rev + 1
        for stream in self.streams:
            for watcher in stream.watchers.values():
                if watcher.synced:
                    self._demote(watcher, max(watcher.next_rev, from_rev))
        self.feed_rev = revision

    # -- progress ------------------------------------------------------------------------

    def answer_progress(self, stream: WatchStream) -> None:
        """A WatchProgressRequest is answered once every watch of its stream is synced."""
        if stream.progress_asked and stream.unsynced == 0:
            stream.progress_asked = False
            stream.push(wire.response(self.header(), INVALID_WATCH_ID))

    def _progress_tick(self) -> None:
        """etcd's progress notifications: to each watch that asked, is synced, has not
        been sent an event since the last tick and does not start in the future."""
        header = self.header()
        for watcher in self.progress_watchers:
            if watcher.sent_since_tick:
                watcher.sent_since_tick = False
            elif watcher.synced and self.feed_rev >= watcher.start_rev:
                watcher.stream.push(wire.response(header, watcher.watch_id))

    # -- loops -------------------------------------------------------------------------

    def start(self) -> list[asyncio.Task[None]]:
        return [asyncio.create_task(self._catch_up_loop(), name="watch catch-up"),
                asyncio.create_task(self._progress_loop(), name="watch progress"),
                asyncio.create_task(self._leader_loop(), name="watch leader")]

    async def _catch_up_loop(self) -> None:
        await self._ready.wait()
        while True:
            try:
                async with asyncio.timeout(RESYNC_EVERY_S):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            while (chosen := self._choose()) and await self._catch_up(chosen):
                pass

    def _choose(self) -> list[Watcher]:
        chosen = []
        for watcher in self.unsynced:
            if watcher.stream.has_room():
                chosen.append(watcher)
                if len(chosen) == MAX_WATCHERS_PER_READ:
                    break
        return chosen

    async def _catch_up(self, chosen: list[Watcher]) -> bool:
        """One read of history for `chosen`; False if it brought nothing new (the
        store is behind what they need, or behind what was answered: try again at the
        next wake-up)."""
        first = min(w.next_rev for w in chosen)
        with_prev = any(w.prev_kv for w in chosen)
        if self._must_show_index is None:
            self._must_show_index = self.answered_index
        read = await self.store.call(lambda s: read_history(s, first, with_prev))
        if read.applied_index < self._must_show_index:
            return False  # VISIBLE wakes the hub once the store shows it
        self._must_show_index = None
        if read.through_rev < first and read.compact_rev < first:
            return False
        index: WatcherIndex[Watcher] = WatcherIndex()
        live = []
        for watcher in chosen:
            if watcher.canceled or watcher.synced:
                continue  # canceled while the store was read
            if watcher.next_rev < read.compact_rev:
                self._cancel_compacted(watcher, read.compact_rev)
                continue
            live.append(watcher)
            index.add(watcher, watcher.key, watcher.end, watcher.single)
        got = _match(index, read.changes)
        header = self.header(read.through_rev)
        for watcher in live:
            framed = [e.framed(watcher.prev_kv) for e in got.get(watcher, ())
                      if watcher.wants(e, watcher.next_rev)]
            if framed:
                self._send_events(watcher, header, framed)
            watcher.next_rev = max(watcher.next_rev, read.through_rev + 1)
            if watcher.next_rev > self.feed_rev:
                self._promote(watcher)
        return True

    def _cancel_compacted(self, watcher: Watcher, compact_rev: int) -> None:
        # etcd's chooseAll: the response carries no header revision (etcd sends 0).
        stream = watcher.stream
        self.remove(watcher)
        stream.push(wire.response(self.header(0), watcher.watch_id, canceled=True,
                                  compact_revision=compact_rev))

    async def _progress_loop(self) -> None:
        while True:
            # etcd's GetProgressReportInterval: the interval plus up to a tenth of jitter.
            await asyncio.sleep(self.progress_interval_s * (1 + random.random() / 10))
            self._progress_tick()

    async def _leader_loop(self) -> None:
        """etcd's monitorLeader: streams that asked for a leader end with "no leader"
        after MAX_NO_LEADER_CHECKS election timeouts in a row without one."""
        without = 0
        while True:
            await asyncio.sleep(self.election_timeout_s)
            without = 0 if self._has_leader() else without + 1
            if without >= MAX_NO_LEADER_CHECKS:
                for stream in list(self.streams):
                    if stream.require_leader:
                        stream.fail(errors.copy(errors.NO_LEADER))


def _match(index: WatcherIndex[Watcher], changes: Iterable[Change]) -> dict[Watcher, list[Event]]:
    got: dict[Watcher, list[Event]] = {}
    for change in changes:
        event: Event | None = None
        for watcher in index.match(change.key):
            event = event or Event.of(change)
            got.setdefault(watcher, []).append(event)
    return got
