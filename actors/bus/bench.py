"""Codec and bus figures: `python -m petcd.actors.bus.bench`.

Prints the best of several runs (the figure least disturbed by other work on the
machine) for the hot path, a Message carrying many Entries packed into an envelope and
back, and for a small message through an Inbox. A measurement, not a test: tests/unit/test_bus_codec.py checks
only what decoding returns, never how fast.
"""

from __future__ import annotations

import os
import tempfile
import time
import timeit
from collections.abc import Callable

from petcd.actors.raft.types import Message, MessageType
from petcd.storage.raftstate import Entry, EntryType

from . import codec
from .envelope import pack_envelope, unpack_envelope
from .sockets import Inbox, Outbox, term_process_context


def app_message(n_entries: int, entry_bytes: int) -> Message:
    entries = tuple(Entry(7, i, EntryType.NORMAL, os.urandom(entry_bytes))
                    for i in range(1, n_entries + 1))
    return Message(MessageType.APP, 1, 2, term=7, log_term=7, index=0, entries=entries,
                   commit=n_entries)


def best_seconds(fn: Callable[[], object], number: int = 50, repeat: int = 7) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number


def codec_figures(n_entries: int = 1000, entry_bytes: int = 100) -> dict[str, float]:
    """A Message as the raft actor sends it to a peer: codec arrays in one envelope."""
    batch = [app_message(n_entries, entry_bytes)]
    frame = pack_envelope("peer", codec.messages_to_wire(batch))
    assert codec.messages_from_wire(unpack_envelope(frame)[1]) == batch
    return {
        "wire_bytes": float(len(frame)),
        "encode_ms": best_seconds(
            lambda: pack_envelope("peer", codec.messages_to_wire(batch))) * 1e3,
        "decode_ms": best_seconds(
            lambda: codec.messages_from_wire(unpack_envelope(frame)[1])) * 1e3,
    }


def inbox_figures(count: int = 20_000) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as run_dir, Inbox.for_actor(run_dir, "raft") as inbox, \
            Outbox(run_dir) as outbox:
        start = time.perf_counter()
        received = 0
        for i in range(count):
            while not outbox.send("raft", "tick", i):
                received += len(inbox.take(4096))  # full: make room
        while received < count:
            received += len(inbox.drain(4096, 1000))
        elapsed = time.perf_counter() - start
    term_process_context()
    return {"msgs": float(count), "msgs_per_s": count / elapsed}


def main() -> None:
    for n, size in ((1, 100), (100, 100), (1000, 100), (1000, 1000)):
        f = codec_figures(n, size)
        print(f"Message with {n:>4} entries of {size:>4} B: {f['wire_bytes']:>9.0f} B, "
              f"encode {f['encode_ms']:.3f} ms, decode {f['decode_ms']:.3f} ms")
    f = inbox_figures()
    print(f"Outbox -> Inbox over ipc, one process: {f['msgs_per_s']:,.0f} small msgs/s")


if __name__ == "__main__":
    main()
