"""A program that watches with python-etcd3's API (PyPI's python3-etcd3), run by
test_client_library.py in a process of its own: the library registers etcd's protos
under the same names as petcd's, and one process cannot hold both.

    python python_etcd3_watch.py WATCH_PORT WRITE_PORT

It watches through one member while it writes through another, and prints one JSON
object: what each watch saw.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

import etcd3
import etcd3.events
import etcd3.exceptions

PREFIX = "py3w/"
TIMEOUT_S = 10.0


def _event(event: etcd3.events.Event) -> list[object]:
    return [type(event).__name__, event.key.decode(), event.value.decode(),
            event.mod_revision, event.prev_value.decode() if event.prev_value else None]


def _history(watching: etcd3.Etcd3Client, writing: etcd3.Etcd3Client) -> dict[str, Any]:
    first = writing.put(PREFIX + "a", "1").header.revision
    writing.put(PREFIX + "a", "2")
    writing.delete(PREFIX + "a")
    writing.put(PREFIX + "b", "x")
    events, cancel = watching.watch_prefix(PREFIX, start_revision=first, prev_kv=True)
    seen = [_event(e) for _, e in zip(range(4), events)]
    cancel()
    return {"first": first, "history": seen}


def _live(watching: etcd3.Etcd3Client, writing: etcd3.Etcd3Client) -> list[object]:
    """Two watches on the client's one stream; events of the writes made after them."""
    keys, key_cancel = watching.watch(PREFIX + "live")
    prefixed, prefix_cancel = watching.watch_prefix(PREFIX + "li")
    timer = threading.Timer(0.2, lambda: writing.put(PREFIX + "live", "v"))
    timer.start()
    seen = [_event(next(keys)), _event(next(prefixed))]
    timer.join()
    key_cancel()
    prefix_cancel()
    return seen


def _compacted(watching: etcd3.Etcd3Client, writing: etcd3.Etcd3Client, first: int
               ) -> dict[str, object]:
    """A watch from a revision below a compaction: the error the library raises. The
    watching member compacts: another could answer before this one applied it, and
    a member's watches go by what it has applied (in etcd too)."""
    now = writing.put(PREFIX + "c", "1").header.revision
    watching.compact(now)
    events, cancel = watching.watch(PREFIX + "a", start_revision=first)
    try:
        next(events)
    except etcd3.exceptions.RevisionCompactedError as err:
        return {"compacted at": now, "refused with": err.compacted_revision}
    finally:
        cancel()
    return {"compacted at": now, "refused with": None}


def main() -> None:
    watch_port, write_port = int(sys.argv[1]), int(sys.argv[2])
    watching = etcd3.client("127.0.0.1", watch_port, timeout=TIMEOUT_S)
    writing = etcd3.client("127.0.0.1", write_port, timeout=TIMEOUT_S)
    history = _history(watching, writing)
    print(json.dumps({**history, "live": _live(watching, writing),
                      "compacted": _compacted(watching, writing, history["first"])}))


if __name__ == "__main__":
    main()
