"""This member's MVCC store, opened read-only, for serving reads from the network actor.

LMDB allows any number of reader processes beside the apply actor's writer. Calls
run on one worker thread: a large range takes long enough to delay other clients
if it ran on the event loop. A call known to be short (one key) runs on the loop
when the worker is idle: handing it to a thread and back would cost more than the
read. A lock keeps the store object used by one thread at a time (it reopens itself
after a defragment).

The store is opened on first use: the apply actor creates it, and announces that it
has (APPLIED), after this actor may have started. Callers wait for APPLIED first.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from petcd.storage.mvcc import MvccStore

from . import errors

T = TypeVar("T")
DEFAULT_MAX_QUEUED_CALLS = 10_000  # as many as requests in flight (gateway)


class LocalStore:
    def __init__(self, path: str, *, quota_bytes: int, max_txn_ops: int,
                 max_queued_calls: int = DEFAULT_MAX_QUEUED_CALLS) -> None:
        assert max_queued_calls > 0, "every queue is bounded"
        self.path = path
        self._quota_bytes = quota_bytes
        self._max_txn_ops = max_txn_ops
        self._max_queued = max_queued_calls
        self._queued = 0
        self._store: MvccStore | None = None  # touched only while holding _lock
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="petcd-store")

    async def call(self, fn: Callable[[MvccStore], T], *, short: bool = False) -> T:
        """`fn(store)` on the worker thread, or inline if `short` and the worker is
        idle; its exceptions propagate."""
        if short and self._lock.acquire(blocking=False):
            try:
                return self._use(fn)
            finally:
                self._lock.release()
        if self._queued >= self._max_queued:
            raise errors.copy(errors.TOO_MANY_REQUESTS)
        self._queued += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, self._run, fn)
        finally:
            self._queued -= 1

    def _run(self, fn: Callable[[MvccStore], T]) -> T:
        with self._lock:
            return self._use(fn)

    def _use(self, fn: Callable[[MvccStore], T]) -> T:
        if self._store is None:
            self._store = MvccStore.open(self.path, readonly=True, quota_bytes=self._quota_bytes,
                                         max_txn_ops=self._max_txn_ops)
        return fn(self._store)

    def _close_store(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    def close(self) -> None:
        """Finish the queued calls (reads: each short), then close LMDB."""
        self._executor.submit(self._close_store)
        self._executor.shutdown(wait=True, cancel_futures=False)
