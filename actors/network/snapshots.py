"""Snapshot streams: the I/O around snapframes.py, on the network actor's event loop.

Sending (the leader's raft core asked, through SEND, for a SNAP message to peer P):

    snapcopy child ──pipe──► reader thread (1 MiB at a time, SHA-256) ──► event loop
        ──snap_chunk──► P, at most WINDOW_CHUNKS unacknowledged ◄──snap_ack── P
    after the last chunk's ack (P has the file durable and its raft the SNAP message):
    SNAPSHOT_STATUS [P, True] to raft; on a refusal, a failed copy, or
    PROGRESS_TIMEOUT_S without an ack: snap_abort, [P, False].
    Chunks unacknowledged for RESEND_S go again (go-back-N: the receiver drops chunks
    out of order and repeats its last ack), since frames queued on a connection that
    broke are lost; a receiver that restarted does not know the transfer and says so at
    once. After a failure, the next transfer to that peer waits FAILURE_BACKOFF_S.

Receiving (from member S):

    snap_chunk ──► bounded queue ──► writer thread: member/snap/<index>.snap.db.<id>.part
    last chunk: size and SHA-256 checked, fsync, the file checked to be a petcd store
    at or after the snapshot's index, renamed to <index:016x>.snap.db
    (actors/apply/snapshot.py), directory fsynced; then the SNAP message goes to raft
    (PEER) and the last ack to S. Nothing for STALL_S: the partial file is removed.

Bounds: one transfer per peer each way (a new SNAP for a peer already being sent to
is dropped: the running transfer's report answers for it; a new chunk 0 from S
replaces S's unfinished transfer); a few chunks in memory per transfer; every wait
bounded. Each transfer has its own single worker thread, so the event loop never
reads the pipe or writes the file, and closing a file never races a write to it.

Part files left by a crash are removed when the network actor starts (`remove_parts`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import random
import subprocess
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from petcd.actors.apply import snapshot as snapshot_files
from petcd.actors.bus.codec import message_from_wire
from petcd.actors.bus.peer import PeerTransport
from petcd.actors.failpoints import crash_here
from petcd.actors.protocol import Kind

from . import snapcopy
from .snapframes import (
    ABORT,
    ACK,
    CHUNK,
    MAX_CHUNK_BYTES,
    WINDOW_CHUNKS,
    Ack,
    Chunk,
    Chunker,
    Reassembly,
    SendWindow,
    StreamError,
    abort_from_wire,
    ack_from_wire,
    chunk_from_wire,
    is_part_name,
    part_name,
    snap_message,
)

PROGRESS_TIMEOUT_S = 60.0  # sender: no ack for this long and the transfer failed
STALL_S = 60.0  # receiver: no chunk for this long and the partial file is dropped
ACK_REPEAT_S = 1.0  # receiver: re-send the last ack while waiting (a dropped ack)
RESEND_S = 2.0  # sender: re-send the unacknowledged chunks after this without an ack
RETRY_SEND_S = 0.02  # the peer's queue is full or it is not connected: try again
FAILURE_BACKOFF_S = 1.0  # after a failed transfer to a peer, wait before the next one
REPORT_RETRIES = 50  # SNAPSHOT_STATUS, PEER or the last ack refused: 100 ms apart
COPY_EXIT_WAIT_S = 10.0
PIPE_BYTES = 1024 * 1024

ToRaft = Callable[[str, Any], bool]


def remove_parts(snap_dir: str | os.PathLike[str]) -> list[str]:
    """Unlink part files of transfers a crash (or a stop) interrupted."""
    directory = Path(snap_dir)
    if not directory.is_dir():
        return []
    removed = []
    for path in directory.iterdir():
        if is_part_name(path.name):
            path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed


class SnapshotStreams:
    """Every snapshot transfer of this member, out and in."""

    def __init__(self, member_id: int, snap_dir: Path, db_dir: Path, transport: PeerTransport,
                 to_raft: ToRaft, log: Any, *, max_size_bytes: int,
                 applied_index: Callable[[], int] = lambda: 0,
                 chunk_bytes: int = MAX_CHUNK_BYTES, window_chunks: int = WINDOW_CHUNKS,
                 progress_timeout_s: float = PROGRESS_TIMEOUT_S,
                 stall_s: float = STALL_S) -> None:
        assert 0 < chunk_bytes <= MAX_CHUNK_BYTES and window_chunks > 0
        self.member_id = member_id
        self.snap_dir, self.db_dir = snap_dir, db_dir
        self.transport = transport
        self.to_raft = to_raft
        self.log = log
        self.max_size_bytes = max_size_bytes
        self.applied_index = applied_index
        self.chunk_bytes, self.window_chunks = chunk_bytes, window_chunks
        self.progress_timeout_s, self.stall_s = progress_timeout_s, stall_s
        self.outgoing: dict[int, Outgoing] = {}  # by peer
        self.incoming: dict[int, Incoming] = {}  # by peer
        self.completed: dict[int, Ack] = {}  # by peer: the last ack of its last transfer
        self._retry_at: dict[int, float] = {}  # by peer: no new transfer before (monotonic)
        self._tasks: set[asyncio.Task[None]] = set()
        self._rng = random.SystemRandom()
        self.closing = False

    # -- out -----------------------------------------------------------------------

    def send(self, dst: int, wire: list[Any]) -> None:
        """Stream a snapshot with this SNAP message (wire array) to `dst`."""
        if dst in self.outgoing:
            self.log.debug("snapshot transfer already running", peer=f"{dst:x}")
            return
        # Raft asks again at the next heartbeat after a failure: do not spin on a peer
        # (or a store) that cannot take a snapshot now.
        not_before = self._retry_at.pop(dst, 0.0)
        out = Outgoing(self, dst, wire, self._rng.getrandbits(64), not_before)
        self.outgoing[dst] = out
        self._spawn(out.run(), f"snapshot-to-{dst:x}")

    def finished_out(self, out: Outgoing, ok: bool) -> None:
        if self.outgoing.get(out.dst) is out:
            del self.outgoing[out.dst]
        if not ok:
            self._retry_at[out.dst] = time.monotonic() + FAILURE_BACKOFF_S
        if not self.closing:
            self._spawn(self._report(out.dst, ok), f"snapshot-status-{out.dst:x}")

    async def _report(self, dst: int, ok: bool) -> None:
        for _ in range(REPORT_RETRIES):
            if self.to_raft(Kind.SNAPSHOT_STATUS.value, [dst, ok]):
                return
            await asyncio.sleep(0.1)
        self.log.error("cannot report the snapshot status to raft", peer=f"{dst:x}", ok=ok)

    # -- in ------------------------------------------------------------------------

    def on_frame(self, src: int, kind: str, payload: Any) -> None:
        """One snap_* frame from a peer; a bad one costs the transfer, never raises."""
        try:
            if kind == CHUNK:
                self._on_chunk(src, chunk_from_wire(payload))
            elif kind == ACK:
                ack = ack_from_wire(payload)
                out = self.outgoing.get(src)
                if out is not None:
                    out.on_ack(ack)
            elif kind == ABORT:
                transfer_id, reason = abort_from_wire(payload)
                inc = self.incoming.get(src)
                if inc is not None and inc.transfer_id == transfer_id:
                    inc.stop(f"the sender aborted: {reason}")
        except StreamError as err:
            self.log.warning("bad snapshot frame", peer=f"{src:x}", kind=kind, error=str(err))

    def _on_chunk(self, src: int, chunk: Chunk) -> None:
        inc = self.incoming.get(src)
        if chunk.seq == 0 and not (inc is not None and inc.transfer_id == chunk.transfer_id):
            try:
                message = snap_message(chunk.message, src, self.member_id)
            except StreamError as err:
                self.send_ack(src, Ack(chunk.transfer_id, 0, str(err)))
                raise
            if inc is not None:
                inc.stop("replaced by a new transfer")
            inc = Incoming(self, src, chunk.transfer_id, message.snapshot.meta.index,  # type: ignore[union-attr]
                           chunk.message)  # type: ignore[arg-type]
            self.incoming[src] = inc
            self._spawn(inc.run(), f"snapshot-from-{src:x}")
        elif inc is None or inc.transfer_id != chunk.transfer_id:
            done = self.completed.get(src)
            if done is not None and done.transfer_id == chunk.transfer_id:
                self.send_ack(src, done)  # a chunk sent again after the last ack was lost
            else:
                self.send_ack(src, Ack(chunk.transfer_id, chunk.seq, "unknown transfer"))
            return
        inc.offer(chunk)

    def finished_in(self, inc: Incoming, last_ack: Ack | None) -> None:
        if self.incoming.get(inc.src) is inc:
            del self.incoming[inc.src]
        if last_ack is not None:
            self.completed[inc.src] = last_ack

    def send_ack(self, src: int, ack: Ack) -> bool:
        return self.transport.send(src, ACK, ack.to_wire())

    # -- lifetime --------------------------------------------------------------------

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self, timeout_s: float = 5.0) -> None:
        """Stop every transfer (partial files removed, copies killed)."""
        self.closing = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)


class Outgoing:
    """One snapshot on its way to a peer."""

    def __init__(self, streams: SnapshotStreams, dst: int, wire: list[Any],
                 transfer_id: int, not_before: float = 0.0) -> None:
        self.streams = streams
        self.not_before = not_before  # time.monotonic(): start no earlier
        self.dst = dst
        self.transfer_id = transfer_id
        snap = message_from_wire(wire).snapshot
        assert snap is not None, "the raft core's SNAP carries its snapshot"
        self.index = snap.meta.index
        self.chunker = Chunker(transfer_id, wire)
        self.window = SendWindow(streams.window_chunks)
        self.unacked: deque[Chunk] = deque()  # sent, not acknowledged: at most the window
        self.changed = asyncio.Event()  # an ack or an error arrived
        self.error: str | None = None
        self.deadline = 0.0
        self.proc: subprocess.Popen[bytes] | None = None
        self.io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="petcd-snap-out")

    async def run(self) -> None:
        s = self.streams
        log = s.log.bind(peer=f"{self.dst:x}", index=self.index)
        ok = False
        try:
            await asyncio.sleep(max(0.0, self.not_before - time.monotonic()))
            started = time.monotonic()
            self._progress()
            log.info("sending snapshot")
            size = await self._stream()
            ok = True
            elapsed = time.monotonic() - started
            log.info("sent snapshot", size_bytes=size, seconds=round(elapsed, 3),
                     mib_per_s=round(size / 2**20 / max(elapsed, 1e-6), 1))
        except (StreamError, TimeoutError, OSError) as err:
            reason = str(err) or "no progress"
            log.warning("snapshot transfer failed", error=reason,
                        timeout_s=s.progress_timeout_s if isinstance(err, TimeoutError) else None)
            s.transport.send(self.dst, ABORT, [self.transfer_id, reason[:200]])
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("snapshot transfer failed by a bug")
        finally:
            self._cleanup()
            s.finished_out(self, ok)

    async def _stream(self) -> int:
        loop = asyncio.get_running_loop()
        self.proc = await loop.run_in_executor(self.io, self._spawn_copy)
        while True:
            chunk = await self._bounded(loop.run_in_executor(self.io, self._read_chunk))
            if chunk is None:
                break
            await self._send(chunk)
        status, reason = await self._bounded(loop.run_in_executor(self.io, self._copy_status))
        if status != 0:
            raise StreamError(f"copying the store failed (exit {status}): {reason}")
        end = self.chunker.end()
        await self._send(end)
        await self._wait(lambda: self.window.acked > end.seq)
        assert end.end is not None
        return end.end.size_bytes

    # worker thread ------------------------------------------------------------------

    def _spawn_copy(self) -> subprocess.Popen[bytes]:
        proc = snapcopy.spawn(self.streams.db_dir, self.index)
        assert proc.stdout is not None
        with contextlib.suppress(OSError):  # larger pipe reads: fewer wakeups
            fcntl.fcntl(proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        return proc

    def _read_chunk(self) -> Chunk | None:
        assert self.proc is not None and self.proc.stdout is not None
        data = self.proc.stdout.read(self.streams.chunk_bytes)
        return self.chunker.chunk(data) if data else None

    def _copy_status(self) -> tuple[int, str]:
        assert self.proc is not None and self.proc.stderr is not None
        reason = self.proc.stderr.read(4096).decode(errors="replace").strip()
        return self.proc.wait(COPY_EXIT_WAIT_S), reason

    def _close_copy(self, proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(COPY_EXIT_WAIT_S)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()

    # event loop ----------------------------------------------------------------------

    async def _send(self, chunk: Chunk) -> None:
        await self._wait(self.window.has_room)
        await self._transmit(chunk)
        self.window.on_sent()
        self.unacked.append(chunk)

    async def _transmit(self, chunk: Chunk) -> None:
        transport = self.streams.transport
        while not transport.send(self.dst, CHUNK, chunk.to_wire()):
            if time.monotonic() > self.deadline:
                raise TimeoutError(f"peer not taking chunks for {self.streams.progress_timeout_s} s")
            await asyncio.sleep(RETRY_SEND_S)  # not connected, or its queue is full

    def on_ack(self, ack: Ack) -> None:
        if ack.transfer_id != self.transfer_id:
            return  # of an earlier transfer to this peer
        if ack.error is not None:
            self.error = ack.error
        else:
            try:
                if self.window.on_ack(ack.seq):
                    self._progress()
                    while self.unacked and self.unacked[0].seq <= ack.seq:
                        self.unacked.popleft()
            except StreamError as err:
                self.error = str(err)
        self.changed.set()

    async def _wait(self, ready: Callable[[], bool]) -> None:
        """Until `ready()`, the receiver's error, or the progress deadline. Without an
        ack for RESEND_S, the unacknowledged chunks go again: frames queued on a
        connection that broke are lost, and a receiver that restarted answers a
        chunk it does not know with an error at once, instead of never."""
        while True:
            if self.error is not None:
                raise StreamError(f"the receiver dropped the transfer: {self.error}")
            if ready():
                return
            self.changed.clear()
            try:
                async with asyncio.timeout(RESEND_S):
                    await self._bounded(self.changed.wait())
            except TimeoutError:
                if time.monotonic() > self.deadline:
                    raise
                for chunk in list(self.unacked):
                    await self._transmit(chunk)

    async def _bounded(self, awaitable: Any) -> Any:
        """Wait until the progress deadline (moved by every ack) at most."""
        async with asyncio.timeout_at(self._loop_deadline()):
            return await awaitable

    def _progress(self) -> None:
        self.deadline = time.monotonic() + self.streams.progress_timeout_s

    def _loop_deadline(self) -> float:
        loop = asyncio.get_running_loop()
        return loop.time() + max(0.0, self.deadline - time.monotonic())

    def _cleanup(self) -> None:
        proc = self.proc
        if proc is not None:
            if proc.poll() is None:
                proc.kill()  # a blocked read in the worker thread then sees EOF
            self.io.submit(self._close_copy, proc)
        self.io.shutdown(wait=False)


class Incoming:
    """One snapshot arriving from a peer."""

    def __init__(self, streams: SnapshotStreams, src: int, transfer_id: int, index: int,
                 message: list[Any]) -> None:
        self.streams = streams
        self.src = src
        self.transfer_id = transfer_id
        self.index = index
        self.message = message
        self.reassembly: Reassembly | None = None
        self.queue: asyncio.Queue[Chunk | None] = asyncio.Queue(streams.window_chunks + 1)
        self.part = streams.snap_dir / part_name(index, transfer_id)
        self.final = snapshot_files.db_file_path(streams.snap_dir, index)
        self.fd: int | None = None
        self.stopped: str | None = None
        self.last_ack: Ack | None = None
        self.next_seq = 0  # the chunk to queue next
        self.io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="petcd-snap-in")

    def offer(self, chunk: Chunk) -> None:
        """Queue a chunk for the writer. Out of order (a chunk sent again because its ack
        was slow or lost, or one after a chunk lost with a broken connection): dropped
        and answered with the last ack, so the sender goes back to the first chunk not
        acknowledged. A sender past its window loses the transfer."""
        if self.stopped is not None:
            return
        if chunk.seq != self.next_seq:
            if self.last_ack is not None:
                self.streams.send_ack(self.src, self.last_ack)
            return
        try:
            self.queue.put_nowait(chunk)
        except asyncio.QueueFull:
            self._refuse(chunk, f"more than {self.streams.window_chunks} chunks unacknowledged")
            return
        self.next_seq += 1

    def _refuse(self, chunk: Chunk, reason: str) -> None:
        self.stop(reason)
        self.streams.send_ack(self.src, Ack(self.transfer_id, chunk.seq, reason))

    def stop(self, reason: str) -> None:
        if self.stopped is None:
            self.stopped = reason
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.put_nowait(None)

    async def run(self) -> None:
        s = self.streams
        log = s.log.bind(peer=f"{self.src:x}", index=self.index)
        started = time.monotonic()
        completed: Ack | None = None
        try:
            await self._in_thread(self._open)
            log.info("receiving snapshot")
            size = await self._receive()
            elapsed = time.monotonic() - started
            log.info("received snapshot", size_bytes=size, seconds=round(elapsed, 3),
                     mib_per_s=round(size / 2**20 / max(elapsed, 1e-6), 1), file=self.final.name)
            completed = self.last_ack
        except TimeoutError:
            log.warning("snapshot transfer stalled; partial file removed", stall_s=s.stall_s)
        except (StreamError, OSError, snapshot_files.SnapshotInstallError) as err:
            log.warning("snapshot transfer failed; partial file removed", error=str(err))
            s.send_ack(self.src, Ack(self.transfer_id, self._acked_seq(), str(err)[:200]))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("snapshot receive failed by a bug")
        finally:
            self.io.submit(self._discard)  # after any write still running in the thread
            self.io.shutdown(wait=False)
            s.finished_in(self, completed)

    async def _receive(self) -> int:
        while True:
            chunk = await self._next_chunk()
            await self._in_thread(self._write, chunk)
            if chunk.end is not None:
                break
            self._ack(Ack(self.transfer_id, chunk.seq))
        await self._in_thread(self._finish)
        crash_here("snapReceiveBeforeRaft")
        assert self.reassembly is not None
        await self._hand_to_raft()
        await self._ack_surely(Ack(self.transfer_id, chunk.seq))
        return self.reassembly.size_bytes

    async def _next_chunk(self) -> Chunk:
        deadline = time.monotonic() + self.streams.stall_s
        while True:
            if self.stopped is not None:
                raise StreamError(self.stopped)
            wait_s = min(ACK_REPEAT_S, deadline - time.monotonic())
            if wait_s <= 0:
                raise TimeoutError
            try:
                chunk = await asyncio.wait_for(self.queue.get(), wait_s)
            except TimeoutError:
                if self.last_ack is not None:  # it may have been dropped on the way
                    self.streams.send_ack(self.src, self.last_ack)
                continue
            if chunk is None:
                raise StreamError(self.stopped or "stopped")
            return chunk

    async def _hand_to_raft(self) -> None:
        for _ in range(REPORT_RETRIES):
            if self.streams.to_raft(Kind.PEER.value, [self.message]):
                return
            await asyncio.sleep(0.1)
        raise StreamError("the raft actor is not reading its inbox")

    def _ack(self, ack: Ack) -> None:
        self.last_ack = ack
        self.streams.send_ack(self.src, ack)

    async def _ack_surely(self, ack: Ack) -> None:
        self.last_ack = ack
        for _ in range(REPORT_RETRIES):
            if self.streams.send_ack(self.src, ack):
                return
            await asyncio.sleep(0.1)

    def _acked_seq(self) -> int:
        return self.last_ack.seq if self.last_ack else 0

    async def _in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.io, fn, *args)

    # worker thread ------------------------------------------------------------------

    def _open(self) -> None:
        # Received files the store has applied since are of no use: free their space.
        snapshot_files.remove_applied_db_files(self.streams.snap_dir,
                                               self.streams.applied_index())
        self.fd = os.open(self.part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)

    def _write(self, chunk: Chunk) -> None:
        if self.reassembly is None:
            self.reassembly = Reassembly(chunk, self.streams.max_size_bytes)
        view = memoryview(self.reassembly.accept(chunk))
        assert self.fd is not None
        while view:
            view = view[os.write(self.fd, view):]
        crash_here("snapReceiveAfterWrite")

    def _finish(self) -> None:
        """Durable under its final name, and a store the apply actor can install."""
        assert self.fd is not None
        os.fsync(self.fd)
        os.close(self.fd)
        self.fd = None
        position = snapshot_files.db_file_position(self.part)
        if position.index < self.index:
            raise StreamError(f"the copy holds applied index {position.index}, below the "
                              f"snapshot's {self.index}")
        os.replace(self.part, self.final)
        fd = os.open(self.streams.snap_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _discard(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.part)
