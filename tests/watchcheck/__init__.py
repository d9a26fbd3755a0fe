"""A checker of etcd's watch guarantees over a recorded run, for cluster tests.

Writers run puts, deletes and txns against a petcd (or etcd) cluster while watchers
watch; afterwards `check(writes, watches)` lists every broken guarantee of
https://etcd.io/docs/v3.5/learning/api_guarantees/#watch-apis and `assert_ok` raises
with all of them.

Inputs
  Write      one put / delete-range / txn: its changes (`put(key, value)`,
             `delete(key)`) and, if acknowledged, its revision (header.revision). A
             txn lists the changes of the branch it took; a delete-range the keys it
             deleted (ask prev_kv=True to learn them); a delete of nothing made no
             revision (leave it out or give no change). An unacknowledged write
             (timeout, lost connection) has revision None and its intended changes.
             Give each put a value unique in the run: an unacknowledged write is
             recognised by what it wrote.
  Watch      a name, the WatchSpec (or `WatchSpec.of(WatchCreateRequest)`), and the
             real rpc_pb2.WatchResponse objects in the order received. A watcher that
             resumed elsewhere (start_revision = last seen + 1) appends to the same
             list; each connection begins with its `created` response.
  compactions  revisions compacted during the run, if any.
  initial    the keys (mvccpb.KeyValue) that existed before the first recorded write;
             by default the store was empty. Every change to the store must come from
             a recorded write (no lease expiry the writers did not record).
  final      the keys read after the run, if read: more evidence of which
             unacknowledged writes happened.

Checks (Guarantee, in the messages)
  ordered       revisions never go back; a revision's events come in the write's order
  unique        no (revision, key) twice on one watch
  atomic        a revision's events in one response; fragments only if asked for
  reliable      no gap: every change it asks for (acknowledged, or seen by anyone)
                from the effective start (start_revision, or the created response's
                header.revision + 1) to the last event or progress revision it got
  agreed        watchers that got an event for (revision, key) got the same one
  invented      every event comes from a recorded write
  filtered      nothing outside the range, of a filtered type, or below the start
  kv            create_revision and version follow the key's history; a DELETE's kv is
                a tombstone (an event's revision is its kv.mod_revision: a wrong one is
                an invented event there and a gap where it belonged)
  prev_kv       when asked: the key's previous value; none for a create; missing only
                below a recorded compaction; never when not asked
  bookmarkable  no event at or below an earlier progress notification; progress never
                goes back, nor below an event already delivered
  canceled      nothing after a cancel; a compaction cancel needs a recorded compaction
                above the next revision the watch wanted
  created       the stream begins with a created response, which carries no events
                (created responses delimit the connections: one each by construction)

Where an unacknowledged write nobody saw may have changed a key, what that key's
next event must carry is unknown and not checked (see history.py). Fragments of a
response cut by a reconnect or by the end of the record are dropped, as a client does.
"""

from .checker import FINAL_STATE, assert_ok, check
from .events import KV, Event, EventType
from .history import Change, Write, delete, put
from .streams import Watch, WatchSpec
from .violations import Guarantee, Violation, WatchGuaranteeError

__all__ = [
    "FINAL_STATE", "KV", "Change", "Event", "EventType", "Guarantee", "Violation", "Watch",
    "WatchGuaranteeError", "WatchSpec", "Write", "assert_ok", "check", "delete", "put",
]
