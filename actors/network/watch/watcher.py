"""One watch: what it watches, how far it has been sent, and whether it keeps up."""

from __future__ import annotations

from typing import TYPE_CHECKING

from petcd.api.etcdserverpb import rpc_pb2 as pb

from .wire import Event

if TYPE_CHECKING:
    from .stream import WatchStream


class Watcher:
    """A watch on one stream (etcd's mvcc watcher).

    next_rev is the first revision whose events it has not been given. A synced
    watcher is in the hub's index and gets each batch of changes as it is applied:
    it has everything below hub.feed_rev + 1, so its next revision is
    max(next_rev, feed_rev + 1) and next_rev itself only moves when it leaves the
    index. An unsynced watcher is caught up from the store's history.
    """

    __slots__ = ("stream", "watch_id", "key", "end", "single", "start_rev", "next_rev",
                 "no_put", "no_delete", "prev_kv", "progress_notify", "fragment",
                 "synced", "canceled", "sent_since_tick")

    def __init__(self, stream: WatchStream, watch_id: int, r: pb.WatchCreateRequest,
                 key: bytes, end: bytes | None, single: bool, next_rev: int) -> None:
        assert next_rev > 0, next_rev
        self.stream = stream
        self.watch_id = watch_id
        self.key, self.end, self.single = key, end, single  # end None: every key >= key
        self.start_rev = r.start_revision  # as asked; 0: from now
        self.next_rev = next_rev
        filters = set(r.filters)
        self.no_put = pb.WatchCreateRequest.NOPUT in filters
        self.no_delete = pb.WatchCreateRequest.NODELETE in filters
        self.prev_kv = r.prev_kv
        self.progress_notify = r.progress_notify
        self.fragment = r.fragment
        self.synced = False
        self.canceled = False
        self.sent_since_tick = False  # an event went out since the last progress tick

    def contains(self, key: bytes) -> bool:
        if self.single:
            return key == self.key
        return key >= self.key and (self.end is None or key < self.end)

    def wants(self, event: Event, from_rev: int) -> bool:
        """Whether `event` is one to send, given everything below `from_rev` was sent."""
        if event.main < from_rev:
            return False
        return not (self.no_delete if event.tombstone else self.no_put)
