"""A server stream followed by a worker thread, for one consumer: the base of a watch
(petcd.client.watch) and an election's observation (petcd.client.concurrency).

The worker (`_follow`, in the subclass) opens the stream, on another endpoint when it
breaks, and passes each response on through a bounded inbox; while the inbox is full
it waits, so a consumer that stops reading stops the worker, and grpc's flow control
then holds the server back. The consumer takes responses with get(timeout_s) or by
iterating; the last item is an EtcdError (raised to the consumer) or the end.
close() ends the stream (`_stop`, in the subclass) and wakes a consumer waiting in
another thread.
"""

from __future__ import annotations

import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, Self

from petcd.client import requestq
from petcd.client.errors import EtcdError

POLL_S = 0.1  # how often a worker waiting on a full inbox checks for close()
JOIN_TIMEOUT_S = 5.0
_END = object()  # the inbox's last item


class StreamReader(ABC):
    def __init__(self, inbox_size: int, thread_name: str) -> None:
        self._closed = threading.Event()
        self._ended = False  # the consumer has had the last item
        self._inbox: queue.Queue = queue.Queue(inbox_size)
        self._worker = threading.Thread(target=self._run, name=thread_name, daemon=True)

    # The consumer's side

    def get(self, timeout_s: float | None = None) -> Any | None:
        """The next response; None if none came within `timeout_s` (None: no limit)
        or the stream is over (see `ended`). Raises the EtcdError it failed with."""
        if self._ended or self._closed.is_set():
            return None
        try:
            item = self._inbox.get(timeout=timeout_s)
        except queue.Empty:
            return None
        if item is _END or isinstance(item, EtcdError):
            self._ended = True
            if item is not _END:
                raise item
            return None
        self._ended = self._is_last(item)
        return item

    @property
    def ended(self) -> bool:
        """True once the last response was had (or close() was called)."""
        return self._ended or self._closed.is_set()

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        item = self.get()
        if item is None:
            raise StopIteration
        return item

    def close(self) -> None:
        """Stop at once: the stream is dropped, the iterator ends."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._stop()
        self._worker.join(JOIN_TIMEOUT_S)
        requestq.drain(self._inbox)
        self._inbox.put_nowait(_END)  # wakes a get() waiting in another thread

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # What a subclass provides

    @abstractmethod
    def _follow(self) -> None:
        """The worker: one stream after another until the stream is over (returns) or
        failed (raises EtcdError)."""

    @abstractmethod
    def _stop(self) -> None:
        """Called by close(), from the consumer's thread: end the current stream."""

    def _is_last(self, item: Any) -> bool:
        """True if nothing can come after `item` (a watch's `canceled`)."""
        return False

    # The worker's side

    def _start(self) -> None:
        self._worker.start()

    def _run(self) -> None:
        try:
            self._follow()
        except EtcdError as exc:
            self._deliver(exc)
        finally:  # even after a bug (threading reports it): the consumer must not hang
            self._deliver(_END)

    def _deliver(self, item: Any) -> bool:
        """Queue `item` for the consumer, waiting while the inbox is full; False if the
        stream was closed meanwhile."""
        while not self._closed.is_set():
            try:
                self._inbox.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False
