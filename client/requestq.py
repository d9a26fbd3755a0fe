"""The request side of a client stream on grpcio's synchronous API: a bounded queue
that grpc's sending thread drains through `requests(outbox)`, ended by `close(outbox)`.
Shared by the watch and keep-alive streams."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from typing import Any


def requests(outbox: queue.Queue) -> Iterator[Any]:
    """What grpc sends: every queued request until the None that `close` puts."""
    while (request := outbox.get()) is not None:
        yield request


def close(outbox: queue.Queue) -> None:
    """End `requests` (grpc's sending thread waits on it), dropping what is unsent."""
    while True:
        try:
            outbox.put_nowait(None)
            return
        except queue.Full:
            drain(outbox)


def drain(items: queue.Queue) -> None:
    while True:
        try:
            items.get_nowait()
        except queue.Empty:
            return
