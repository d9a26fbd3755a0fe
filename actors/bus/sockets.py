"""Inboxes and outboxes between the actors of one member, and the process's context.

How an actor uses them (actors/skeleton.py runs this loop for it):

    process_context()                            # created here, in this process
    inbox = Inbox.for_actor(run_dir, "wal")      # PULL, bound: everyone sends here
    outbox = Outbox(run_dir)                     # PUSH per destination, connected lazily
    with inbox, outbox:
        while not stopping:
            batch = inbox.drain(max_items=4096, timeout_ms=100)
            ...
            outbox.send("raft", "persisted", seq, timeout_ms=1000)
    term_process_context()

Bounds and waits:
- Every socket has a high-water mark in messages (`hwm_msgs`, default 10,000). ZeroMQ
  applies it per connection: one sender can have about its SNDHWM plus the inbox's
  RCVHWM (plus what the kernel buffers) in flight before `send` reports it full, so an
  inbox with four senders holds at most about four times that.
- `Outbox.send` never blocks by default: on a full queue it returns False; `timeout_ms`
  allows a bounded wait. Inside a member a lost message is a bug, so callers treat
  False as "the other actor is stuck" (crash-only: exit and let the supervisor restart
  the member: skeleton.send_or_stop) unless the message is one that is resent anyway.
- Sends to an actor that has not bound yet are queued (ZMQ_IMMEDIATE=0), so actors
  may start in any order.
- LINGER is bounded (`linger_ms`, default 100 ms) so closing or exiting never hangs on
  messages nobody will read.

asyncio (the network actor runs aiohttp and grpc.aio): `AsyncInbox` waits on the
loop (`Readable`: the socket's FD registered with `add_reader`) and then drains the
socket without blocking. Sends from asyncio code may use the plain `Outbox` and
`PeerTransport.send`: they never block. That FD is edge-triggered and only says
"look at EVENTS", not "a message is there"; reading EVENTS re-arms it.

Why not zmq.asyncio: its poll builds a poller, a future and a timer for every wait,
and the network actor waits thousands of times a second under load (a profile showed
about 14% of that actor's CPU there).
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket as stdsocket
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

import zmq

from .addresses import actor_address, ipc_path, prepare_ipc_dir
from .envelope import pack_envelope, unpack_envelope

DEFAULT_HWM_MSGS = 10_000
DEFAULT_LINGER_MS = 100
# pyzmq's constants are enum members: `getsockopt(zmq.EVENTS) & zmq.POLLIN` goes through
# the enum machinery on every call (a sixth of the raft actor's CPU under load); the
# same question with plain ints costs half as much. Asked once per message received.
_EVENTS, _POLLIN, _NOBLOCK = int(zmq.EVENTS), int(zmq.POLLIN), int(zmq.NOBLOCK)

_context: zmq.Context[zmq.Socket[bytes]] | None = None
_context_pid = 0


def process_context() -> zmq.Context[zmq.Socket[bytes]]:
    """The ZeroMQ context of the calling process, created on first use in it.

    A context never crosses a fork: a child that inherited its parent's context gets a
    fresh one here, and the inherited one is left alone (terminating it in the child
    would touch the parent's I/O threads' state, which the child does not have).
    """
    global _context, _context_pid
    pid = os.getpid()
    if _context is None or _context_pid != pid:
        _context = zmq.Context()
        _context.setsockopt(zmq.LINGER, DEFAULT_LINGER_MS)  # default for new sockets
        _context_pid = pid
    return _context


def term_process_context(linger_ms: int = DEFAULT_LINGER_MS) -> None:
    """Close every socket of this process's context (waiting at most `linger_ms` for
    each to flush) and terminate it. A later `process_context()` makes a new one."""
    global _context
    if _context is not None and _context_pid == os.getpid():
        _context.destroy(linger=linger_ms)
    _context = None


def check_drain_args(max_items: int, timeout_ms: int) -> None:
    """Every drain takes at least one item and waits a bounded time."""
    if max_items <= 0:
        raise ValueError(f"max_items must be positive, not {max_items}")
    if timeout_ms < 0:
        raise ValueError(f"timeout_ms must be >= 0 (every wait is bounded), not {timeout_ms}")


def _refuse_live_ipc(address: str) -> None:
    # ZeroMQ unlinks an existing ipc socket file when binding, which would silently
    # steal the inbox of another live process (two members sharing a run dir). A
    # stale file from a crash refuses connections, so only a live one is refused here.
    path = ipc_path(address)
    if path is None or not os.path.exists(path):
        return
    probe = stdsocket.socket(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM)
    try:
        probe.settimeout(0.5)
        probe.connect(path)
    except OSError:
        return
    finally:
        probe.close()
    raise zmq.ZMQError(errno.EADDRINUSE, f"{address} is bound by a live process")


class Inbox:
    """An actor's PULL socket: bound on its address, fed by every other actor."""

    def __init__(self, address: str, *, ctx: zmq.Context[Any] | None = None,
                 hwm_msgs: int = DEFAULT_HWM_MSGS, linger_ms: int = 0) -> None:
        assert hwm_msgs > 0, "every queue is bounded"
        prepare_ipc_dir(address)
        _refuse_live_ipc(address)
        sock = (ctx or process_context()).socket(zmq.PULL)
        try:
            sock.setsockopt(zmq.RCVHWM, hwm_msgs)
            sock.setsockopt(zmq.LINGER, linger_ms)
            sock.bind(address)
        except BaseException:
            sock.close(linger=0)
            raise
        self.address = address
        self.socket: zmq.Socket[bytes] = sock

    @classmethod
    def for_actor(cls, run_dir: str | os.PathLike[str], actor: str,
                  **options: Any) -> Inbox:
        return cls(actor_address(run_dir, actor), **options)

    def drain(self, max_items: int, timeout_ms: int) -> list[tuple[str, Any]]:
        """Wait up to `timeout_ms` for a first message, then take whatever else is
        already queued without waiting, up to `max_items` in all. [] on timeout."""
        check_drain_args(max_items, timeout_ms)
        if not wait_readable(self.socket, timeout_ms):
            return []
        return self.take(max_items)

    def take(self, max_items: int) -> list[tuple[str, Any]]:
        """What is queued now, up to `max_items`, without waiting."""
        # Frames come from this member's own actors: a malformed one is a bug, and
        # EnvelopeError propagates (crash-only) rather than being skipped.
        return [unpack_envelope(frame) for frame in take_frames(self.socket, max_items)]

    def close(self) -> None:
        self.socket.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class Outbox:
    """PUSH sockets to other actors' inboxes (addresses from the member's run dir), one
    per destination, made on first send."""

    def __init__(self, run_dir: str | os.PathLike[str], *, ctx: zmq.Context[Any] | None = None,
                 hwm_msgs: int = DEFAULT_HWM_MSGS, linger_ms: int = DEFAULT_LINGER_MS) -> None:
        assert hwm_msgs > 0, "every queue is bounded"
        self._run_dir = run_dir
        self._ctx = ctx or process_context()
        self._hwm_msgs = hwm_msgs
        self._linger_ms = linger_ms
        self._sockets: dict[str, zmq.Socket[bytes]] = {}

    def socket(self, actor: str) -> zmq.Socket[bytes]:
        sock = self._sockets.get(actor)
        if sock is None:
            address = actor_address(self._run_dir, actor)
            sock = self._ctx.socket(zmq.PUSH)
            sock.setsockopt(zmq.SNDHWM, self._hwm_msgs)
            sock.setsockopt(zmq.LINGER, self._linger_ms)
            sock.connect(address)
            self._sockets[actor] = sock
        return sock

    def send(self, actor: str, kind: str, payload: Any = None, *,
             timeout_ms: int = 0) -> bool:
        """Queue `[kind, payload]` for `actor`. False if its queue stays full for
        `timeout_ms`; never waits longer."""
        return _send_within(self.socket(actor), pack_envelope(kind, payload), timeout_ms)

    def close(self) -> None:
        for sock in self._sockets.values():
            sock.close()
        self._sockets.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _send_within(sock: zmq.Socket[bytes], frame: bytes, timeout_ms: int) -> bool:
    if timeout_ms < 0:
        raise ValueError(f"timeout_ms must be >= 0 (every wait is bounded), not {timeout_ms}")
    try:
        sock.send(frame, zmq.NOBLOCK)
        return True
    except zmq.Again:
        pass
    if timeout_ms and sock.poll(timeout_ms, zmq.POLLOUT):
        try:
            sock.send(frame, zmq.NOBLOCK)
            return True
        except zmq.Again:
            pass
    return False


def wait_readable(sock: zmq.Socket[bytes], timeout_ms: int) -> bool:
    """Wait up to `timeout_ms` for a message. A busy actor finds one queued already:
    asking EVENTS then saves building a poller (Socket.poll makes one per call)."""
    if has_input(sock):
        return True
    return bool(sock.poll(timeout_ms, _POLLIN))


def wait_any(socks: Sequence[zmq.Socket[bytes]], timeout_ms: int) -> bool:
    """`wait_readable` for whichever of several sockets has a message first."""
    for sock in socks:
        if has_input(sock):
            return True
    return bool(zmq.zmq_poll([(sock, _POLLIN) for sock in socks], timeout_ms))


def has_input(sock: zmq.Socket[bytes]) -> bool:
    """A message is queued (asking also processes the socket's pending commands)."""
    # pyzmq types Socket.get as int | bytes for every option; EVENTS is an int. No cast:
    # this runs before every receive.
    return bool(sock.get(_EVENTS) & _POLLIN)  # type: ignore[operator]


def take_frames(sock: zmq.Socket[bytes], max_items: int, multipart: bool = False
                ) -> list[Any]:
    """Up to `max_items` messages queued now (frames, or frame lists if `multipart`),
    without waiting.

    Asks EVENTS before each receive rather than catching zmq.Again at the end: an
    exception per drain cost the raft actor a tenth of its CPU under load.
    """
    frames: list[Any] = []
    get, recv = sock.get, sock.recv_multipart if multipart else sock.recv
    while len(frames) < max_items and get(_EVENTS) & _POLLIN:  # type: ignore[operator]  # as in has_input
        frames.append(recv(_NOBLOCK))
    return frames


class Readable:
    """Waits on the asyncio loop until a ZeroMQ socket has a message to read.

    Create it inside the running loop; `close` before closing the socket. One waiter
    at a time (each socket has one reading loop).
    """

    def __init__(self, sock: zmq.Socket[bytes]) -> None:
        self._sock = sock
        fd = sock.getsockopt(zmq.FD)
        assert isinstance(fd, int), f"ZMQ_FD is a file descriptor, not {fd!r} (pyzmq types it int | bytes)"
        self._fd = fd
        self._loop = asyncio.get_running_loop()
        self._waiter: asyncio.Future[bool] | None = None
        self._loop.add_reader(self._fd, self._wake)

    def _wake(self, result: bool = True) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(result)

    def _has_input(self) -> bool:
        return has_input(self._sock)  # re-arms the FD

    async def wait(self, timeout_ms: int) -> bool:
        """True once a message is queued; False after `timeout_ms` without one."""
        if self._has_input():
            return True
        assert self._waiter is None, "one waiter at a time"
        # A plain future and timer: asyncio.timeout() costs several times more, and
        # the network actor waits thousands of times a second under load.
        self._waiter = self._loop.create_future()
        timer = self._loop.call_later(timeout_ms / 1000, self._wake, False)
        try:
            while not self._has_input():  # (re-checked: the FD signals edges only)
                if not await self._waiter:
                    return self._has_input()  # timed out
                self._waiter = self._loop.create_future()
            return True
        finally:
            timer.cancel()
            self._waiter = None

    def close(self) -> None:
        self._loop.remove_reader(self._fd)


class AsyncInbox:
    """An `Inbox` whose wait runs on the asyncio loop (for the network actor).

    Create it inside the running loop. Only the wait is asynchronous; reading stays
    on the inbox's socket, without blocking.
    """

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox
        self._readable = Readable(inbox.socket)

    @classmethod
    def for_actor(cls, run_dir: str | os.PathLike[str], actor: str,
                  **options: Any) -> AsyncInbox:
        return cls(Inbox.for_actor(run_dir, actor, **options))

    async def drain(self, max_items: int, timeout_ms: int) -> list[tuple[str, Any]]:
        check_drain_args(max_items, timeout_ms)
        if not await self._readable.wait(timeout_ms):
            return []
        return self.inbox.take(max_items)

    def close(self) -> None:
        self._readable.close()  # unregisters the FD from the loop first
        self.inbox.close()
