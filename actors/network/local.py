"""This member's MVCC store, opened read-only, for serving reads from the network actor.

LMDB allows any number of reader processes beside the apply actor's writer. Every
call runs on one worker thread, never on the event loop: a large range takes long
enough to delay peer traffic (heartbeats) and other clients if it ran inline, and one
thread keeps the store object single-threaded (it reopens itself after a defragment).

The store is opened on first use: the apply actor creates it, and announces that it
has (APPLIED), after this actor may have started. Callers wait for APPLIED first.
"""

from __future__ import annotations

import asyncio
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
        self._store: MvccStore | None = None  # touched only on the worker thread
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="petcd-store")

    async def call(self, fn: Callable[[MvccStore], T]) -> T:
        """`fn(store)` on the worker thread; its exceptions propagate."""
        if self._queued >= self._max_queued:
            raise errors.copy(errors.TOO_MANY_REQUESTS)
        self._queued += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, self._run, fn)
        finally:
            self._queued -= 1

    def _run(self, fn: Callable[[MvccStore], T]) -> T:
        if self._store is None:
            self._store = MvccStore.open(self.path, readonly=True, quota_bytes=self._quota_bytes,
                                         max_txn_ops=self._max_txn_ops)
        return fn(self._store)

    def _close_store(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def close(self) -> None:
        """Finish the queued calls (reads: each short), then close LMDB."""
        self._executor.submit(self._close_store)
        self._executor.shutdown(wait=True, cancel_futures=False)
