"""Coordination recipes built of plain transactions and watches: etcd's clientv3
experimental/recipes (a queue, a barrier, a double barrier, a read-write lock).

    jobs = client.queue("jobs")
    jobs.enqueue("resize img-7")                   # any number of producers
    jobs.dequeue(timeout_s=5.0)                    # b"resize img-7"; None if still empty

    gate = client.barrier("deploy/gate")
    gate.hold()                                    # EtcdError ALREADY_EXISTS if held
    gate.wait(timeout_s=30.0)                      # elsewhere: True once released
    gate.release()

    with client.rwlock("config", ttl=10) as config:
        with config.read():                        # shared with other readers
            ...
        with config.write():                       # alone
            ...

    with client.double_barrier("round", count=3, ttl=10) as round_:
        round_.enter(timeout_s=30.0)               # returns once 3 have entered
        round_.leave(timeout_s=30.0)               # returns once all 3 have left

Keys are laid out as etcd's recipes lay them out, so Go and Python processes can
share a queue or a lock: `<prefix>/<unix ns>` for a queue's item, `<name>/read/<unix
ns>` and `<name>/write/<unix ns>` for a read-write lock, `<key>/waiters/<unix ns>` and
`<key>/ready` for a double barrier. Order is that of create revisions, never of names.

A recipe that must wait watches from the revision after the read that told it to:
nothing that happens in between is missed. If that revision was compacted meanwhile
(the watch is cancelled), it reads again. `timeout_s=None` waits without limit.

What no recipe can promise (nor do etcd's): a write whose answer was lost (its member
died) may have been applied. An enqueue that raised may have enqueued; a dequeue that
raised may have taken an item that nobody then gets.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc

from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.client.concurrency import DEFAULT_TTL_S, SESSION_EXPIRED, Session, SessionOwner
from petcd.client.errors import DEADLINE_MESSAGE, EtcdError
from petcd.client.requests import Bytes, compare, delete_op, put_op, range_request, to_bytes

if TYPE_CHECKING:
    from petcd.client.client import Client

# etcd's texts (recipe.ErrKeyExists, recipe.ErrTooManyClients) for the same failures.
KEY_EXISTS = "key already exists"
TOO_MANY_CLIENTS = "too many clients"
MAX_KEY_TRIES = 16  # unique names tried when each is taken (two writers, one nanosecond)
CLAIM_BATCH = 8  # oldest items read at once: a consumer that loses one tries the next
POLL_S = 0.1  # how often a wait looks at its deadline and session


class _Wake(enum.Enum):
    """Why a wait for an event ended."""
    EVENT = enum.auto()  # the event came
    COMPACTED = enum.auto()  # the start revision is gone: read again
    TIMEOUT = enum.auto()


class Queue:
    """A FIFO queue under `prefix` (etcd's recipe.Queue): each item goes to exactly one
    consumer, in the order the items were enqueued (their create revisions)."""

    def __init__(self, client: Client, prefix: Bytes) -> None:
        self.prefix = to_bytes(prefix)
        self._client = client

    def enqueue(self, value: Bytes) -> bytes:
        """Add an item; returns its key."""
        key, _ = _put_unique(self._client, self.prefix, to_bytes(value))
        return key

    def dequeue(self, timeout_s: float | None = None) -> bytes | None:
        """Take the oldest item and return its value, waiting up to `timeout_s` while
        the queue is empty; None if it stayed empty that long (as Watch.get)."""
        deadline = _deadline(timeout_s)
        while True:
            oldest = self._client.get(self.prefix + b"/", prefix=True, sort_target="create",
                                      sort_order="ascend", limit=CLAIM_BATCH)
            for kv in oldest.kvs:
                # Consumers try items oldest first and skip only those already
                # deleted, so items leave in the order they came.
                if _delete_unchanged(self._client, kv.key, kv.mod_revision):
                    return kv.value
            if oldest.kvs:  # all taken by others meanwhile
                if _remaining_s(deadline) == 0:
                    return None
                continue
            wake = _await(self._client, self.prefix + b"/", prefix=True, wanted="put",
                          start_revision=oldest.header.revision + 1, deadline=deadline)
            if wake is _Wake.TIMEOUT:
                return None


class Barrier:
    """Holds processes back while `key` exists (etcd's recipe.Barrier)."""

    def __init__(self, client: Client, key: Bytes) -> None:
        self.key = to_bytes(key)
        self._client = client

    def hold(self) -> int:
        """Put the barrier up; returns its key's create revision. EtcdError
        ALREADY_EXISTS ("key already exists") if it is up already."""
        revision = _put_new(self._client, self.key, b"")
        if not revision:
            raise EtcdError(grpc.StatusCode.ALREADY_EXISTS, KEY_EXISTS, repr(self.key))
        return revision

    def release(self) -> None:
        """Take the barrier down: every waiter passes."""
        self._client.delete(self.key)

    def wait(self, timeout_s: float | None = None) -> bool:
        """True at once if the barrier is down, else once it is released (even if held
        again right after); False if it was still up after `timeout_s`."""
        deadline = _deadline(timeout_s)
        while True:
            up = self._client.get(self.key, keys_only=True)
            if not up.kvs:
                return True
            wake = _await(self._client, self.key, wanted="delete",
                          start_revision=up.header.revision + 1, deadline=deadline)
            if wake is not _Wake.COMPACTED:
                return wake is _Wake.EVENT


@dataclass(frozen=True, slots=True)
class RWHeld:
    """A read or write lock while it is held."""
    mode: str  # "read" or "write"
    key: bytes  # <name>/<mode>/<unix ns>, on the session's lease; deleted on unlock
    # The key's create revision: readers and writers are served in its order, and a
    # writer can fence its writes with it as with concurrency.Held's.
    revision: int


class RWLock(SessionOwner):
    """Many readers or one writer (etcd's recipe.RWMutex), served in the order they
    asked: a reader that asks while a writer waits comes after that writer. One
    holder's part (not shared between threads): at most one lock at a time, with a
    session of `ttl` seconds granted at the first and revoked by close(); if the
    process dies, what it held or waited for goes with the lease, at the latest one
    TTL later."""

    def __init__(self, client: Client, name: Bytes, ttl: int = DEFAULT_TTL_S) -> None:
        super().__init__(client, ttl)
        self.name = to_bytes(name)
        self.held: RWHeld | None = None

    def rlock(self, timeout_s: float | None = None) -> RWHeld:
        """Wait until no writer that asked earlier holds or waits. After `timeout_s`:
        EtcdError DEADLINE_EXCEEDED, and the request is withdrawn."""
        return self._acquire("read", self.name + b"/write/", timeout_s)

    def lock(self, timeout_s: float | None = None) -> RWHeld:
        """Wait until no reader or writer that asked earlier holds or waits."""
        return self._acquire("write", self.name + b"/", timeout_s)

    def runlock(self) -> None:
        self._release("read")

    def unlock(self) -> None:
        self._release("write")

    def read(self, timeout_s: float | None = None) -> AbstractContextManager[RWHeld]:
        return self._holding(self.rlock(timeout_s))

    def write(self, timeout_s: float | None = None) -> AbstractContextManager[RWHeld]:
        return self._holding(self.lock(timeout_s))

    @contextmanager
    def _holding(self, held: RWHeld) -> Iterator[RWHeld]:
        try:
            yield held
        finally:
            self._release(held.mode)

    def _forget(self) -> None:
        self.held = None

    def _acquire(self, mode: str, blockers: bytes, timeout_s: float | None) -> RWHeld:
        if self.held is not None:
            raise RuntimeError(f"rwlock {self.name!r}: held already (one lock at a time)")
        deadline = _deadline(timeout_s)
        session = self._live_session()
        key, revision = _put_unique(self._client, self.name + b"/" + mode.encode(), b"",
                                    lease=session.lease_id)
        try:
            self._wait_turn(key, revision, blockers, deadline)
        except BaseException:
            _delete_quietly(self._client, key)  # else those behind wait for our lease
            raise
        self.held = RWHeld(mode, key, revision)
        return self.held

    def _wait_turn(self, key: bytes, revision: int, blockers: bytes,
                   deadline: float | None) -> None:
        """Return once no key under `blockers` created before ours is left."""
        while True:
            blocker, read_revision = _newest_before(self._client, key, revision, blockers)
            if blocker is None:
                return
            # Waiting on the newest: the older ones have usually gone by then.
            wake = _await(self._client, blocker, wanted="delete", session=self._session,
                          start_revision=read_revision + 1, deadline=deadline)
            if wake is _Wake.TIMEOUT:
                raise EtcdError(grpc.StatusCode.DEADLINE_EXCEEDED, DEADLINE_MESSAGE)

    def _release(self, mode: str) -> None:
        held = self.held
        if held is None or held.mode != mode:
            raise RuntimeError(f"rwlock {self.name!r}: no {mode} lock held")
        self.held = None
        self._client.delete(held.key)


class DoubleBarrier(SessionOwner):
    """`count` processes enter together and leave together (etcd's
    recipe.DoubleBarrier). Each entry is a key on a session of `ttl` seconds (granted
    at the first enter, revoked by close()): a process that dies has left once its
    lease ends. The count-th to enter puts `<key>/ready`, which lets the others in."""

    def __init__(self, client: Client, key: Bytes, count: int,
                 ttl: int = DEFAULT_TTL_S) -> None:
        assert count > 0, count
        super().__init__(client, ttl)
        self.key = to_bytes(key)
        self.count = count
        self._waiters = self.key + b"/waiters"  # one key under it per process in
        self._ready = self.key + b"/ready"  # put by the count-th to enter
        self._mine: bytes | None = None  # our key under _waiters, while entered

    def enter(self, timeout_s: float | None = None) -> None:
        """Return once `count` processes have entered, this one included. EtcdError
        RESOURCE_EXHAUSTED ("too many clients") if `count` others are in (or got in
        first); DEADLINE_EXCEEDED after `timeout_s`. Either way this one is not in."""
        if self._mine is not None:
            raise RuntimeError(f"double barrier {self.key!r}: entered already")
        deadline = _deadline(timeout_s)
        if self._entered(count_only=True).count >= self.count:
            raise EtcdError(grpc.StatusCode.RESOURCE_EXHAUSTED, TOO_MANY_CLIENTS)
        session = self._live_session()
        key, revision = _put_unique(self._client, self._waiters, b"",
                                    lease=session.lease_id)
        try:
            if not self._all_in(revision, deadline):
                raise EtcdError(grpc.StatusCode.DEADLINE_EXCEEDED, DEADLINE_MESSAGE)
        except BaseException:
            _delete_quietly(self._client, key)
            raise
        self._mine = key

    def leave(self, timeout_s: float | None = None) -> None:
        """Return once every process that entered has left. After `timeout_s`:
        EtcdError DEADLINE_EXCEEDED (this one may have left already; call again)."""
        if self._mine is None:
            raise RuntimeError(f"double barrier {self.key!r}: not entered")
        key = self._mine
        deadline = _deadline(timeout_s)
        while True:
            entered = self._entered()
            if not entered.kvs:
                break
            first, last = entered.kvs[0], entered.kvs[-1]
            if first.key == key and len(entered.kvs) == 1:  # the last one out
                self._client.txn(success=[delete_op(self._ready), delete_op(key)])
                break
            # The first to enter leaves last: it waits for the others one by one,
            # and they for it.
            if first.key == key:
                awaited = last.key
            else:
                if any(kv.key == key for kv in entered.kvs):
                    self._client.delete(key)
                awaited = first.key
            wake = _await(self._client, awaited, wanted="delete",
                          start_revision=entered.header.revision + 1, deadline=deadline)
            if wake is _Wake.TIMEOUT:
                raise EtcdError(grpc.StatusCode.DEADLINE_EXCEEDED, DEADLINE_MESSAGE)
        self._mine = None

    def _forget(self) -> None:
        self._mine = None  # close(): this process leaves without waiting for the others

    def _entered(self, **options) -> pb.RangeResponse:
        """The keys of the processes in, first in first."""
        return self._client.get(self._waiters + b"/", prefix=True, sort_target="create",
                                sort_order="ascend", **options)

    def _all_in(self, revision: int, deadline: float | None) -> bool:
        """Wait until the count-th process has entered; False after `deadline`."""
        entered = self._entered(limit=self.count)
        if len(entered.kvs) == self.count:
            counted = entered.kvs[-1].create_revision
            if revision > counted:
                raise EtcdError(grpc.StatusCode.RESOURCE_EXHAUSTED, TOO_MANY_CLIENTS)
            if revision == counted:
                self._client.put(self._ready, b"")
                return True
        start_revision = revision + 1
        while True:
            wake = _await(self._client, self._ready, wanted="put", session=self._session,
                          start_revision=start_revision, deadline=deadline)
            if wake is not _Wake.COMPACTED:
                return wake is _Wake.EVENT
            ready = self._client.get(self._ready)
            if ready.kvs and ready.kvs[0].mod_revision > revision:
                return True
            start_revision = ready.header.revision + 1


def _deadline(timeout_s: float | None) -> float | None:
    return None if timeout_s is None else time.monotonic() + timeout_s


def _remaining_s(deadline: float | None) -> float | None:
    return None if deadline is None else max(deadline - time.monotonic(), 0.0)


def _put_new(client: Client, key: bytes, value: bytes, lease: int = 0) -> int:
    """Create `key` unless it exists: its create revision, or 0 if it existed."""
    created = client.txn([compare("create", key, "=", 0)], [put_op(key, value, lease=lease)])
    return created.header.revision if created.succeeded else 0


def _put_unique(client: Client, prefix: bytes, value: bytes,
                lease: int = 0) -> tuple[bytes, int]:
    """A new key `prefix`/<unix ns> holding `value`: the key and its create revision."""
    for _ in range(MAX_KEY_TRIES):
        key = prefix + b"/" + str(time.time_ns()).encode()
        revision = _put_new(client, key, value, lease)
        if revision:
            return key, revision
    raise EtcdError(grpc.StatusCode.ALREADY_EXISTS, KEY_EXISTS,
                    f"{MAX_KEY_TRIES} names under {prefix!r} were taken")


def _delete_unchanged(client: Client, key: bytes, mod_revision: int) -> bool:
    """Delete `key` if it is still as read: True if this call deleted it."""
    return client.txn([compare("mod", key, "=", mod_revision)], [delete_op(key)]).succeeded


def _delete_quietly(client: Client, key: bytes) -> None:
    try:
        client.delete(key)
    except EtcdError:
        pass  # the key goes with its session's lease


def _newest_before(client: Client, key: bytes, revision: int,
                   blockers: bytes) -> tuple[bytes | None, int]:
    """The newest key under `blockers` created before revision `revision` (None if
    none is), and the revision read at. Read only while our `key` still exists: if
    its lease expired, waiting on would end in a lock that is not held."""
    newest = range_request(blockers, prefix=True, sort_target="create",
                           sort_order="descend", limit=1, keys_only=True)
    newest.max_create_revision = revision - 1
    read = client.txn([compare("create", key, "=", revision)],
                      [pb.RequestOp(request_range=newest)])
    if not read.succeeded:
        raise EtcdError(grpc.StatusCode.CANCELLED, SESSION_EXPIRED, f"{key!r} is gone")
    kvs = read.responses[0].response_range.kvs
    return (kvs[0].key if kvs else None), read.header.revision


def _await(client: Client, key: bytes, *, wanted: str, start_revision: int,
           deadline: float | None, prefix: bool = False,
           session: Session | None = None) -> _Wake:
    """Wait for a `wanted` ("put" or "delete") event of `key` (with `prefix`, of a key
    under it) at or after `start_revision`, up to `deadline`. EtcdError CANCELLED once
    `session` is lost: what it owned is gone, so there is nothing left to wait for."""
    assert wanted in ("put", "delete"), wanted
    with client.watch(key, prefix=prefix, start_revision=start_revision,
                      no_put=wanted == "delete", no_delete=wanted == "put") as watch:
        while True:
            remaining_s = _remaining_s(deadline)
            if remaining_s == 0:
                return _Wake.TIMEOUT
            resp = watch.get(POLL_S if remaining_s is None else min(remaining_s, POLL_S))
            if resp is not None and resp.canceled:
                if resp.compact_revision:
                    return _Wake.COMPACTED
                raise EtcdError(grpc.StatusCode.CANCELLED, resp.cancel_reason or
                                "watch canceled by the server")
            if resp is not None and resp.events:
                return _Wake.EVENT
            if session is not None and session.lost:
                raise EtcdError(grpc.StatusCode.CANCELLED, SESSION_EXPIRED)
