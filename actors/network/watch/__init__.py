"""Watch: every change, in order, to every watcher (etcd's Watch service).

Where events come from. The apply actor records each change as it writes it (the new
KeyValue and the one it replaced: storage/mvcc/history.py) and sends a batch's changes
with the APPLIED message that follows the batch, before answering the batch's requests.
So the network actor learns of revision R before any client of this member does, and
a watcher that keeps up never touches the store.

Where watchers live. All in the network actor's event loop, which holds the client
streams (gRPC in rpc.py, the JSON gateway's POST /v3/watch in gateway.py):

    hub.py      the member's watchers (etcd's watchableStore): synced ones indexed by
                key and range (index.py) and fed each APPLIED batch; unsynced ones
                caught up from the store's history (read-only LMDB, on the store's
                worker thread), 512 at a time, 1,000 revisions per read; compaction
                cancels, progress notifications, require-leader
    stream.py   one client stream: create / cancel / progress requests, and one bounded
                queue of responses in the order they were decided
    watcher.py  one watch: range, filters, options, the next revision it needs
    index.py    key -> watchers in one dict lookup and one bisection (not one check
                per watch)
    wire.py     WatchResponse bytes from events encoded once (a put watched a hundred
                times is encoded once, framed a hundred times)

Slow clients. A stream's queue is bounded (128 responses, 4 MiB). A synced watcher
whose stream has no room when a batch arrives leaves the index and keeps only its next
revision; once the client reads again it is caught up from history, or canceled with
compact_revision if history was compacted past it, as etcd's victims and unsynced
watchers are. Nothing else is buffered, so memory per member stays bounded and a
watcher that stops reading slows neither writes nor other watchers.

Guarantees (etcd's api_guarantees): per watch, events are in revision order, each
once, with no gap from the start revision; all the events of one revision are in one
response unless the watch asked for fragments and the response is over
--max-request-bytes plus gRPC's overhead; a progress notification (watch_id -1 for a
WatchProgressRequest, the watch's id for progress_notify) carries the hub's revision
and is queued only after every event at or below it.
"""

from .hub import WatchHub
from .stream import WatchStream

__all__ = ["WatchHub", "WatchStream"]
