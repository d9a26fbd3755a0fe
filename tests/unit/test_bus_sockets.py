"""Inbox and Outbox on real ZeroMQ sockets: batching drains, bounded waits, bounded
queues, and two processes talking over ipc the way a member's actors do."""

from __future__ import annotations

import asyncio
import multiprocessing
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest
import zmq

from petcd.actors.bus import sockets
from petcd.actors.bus.envelope import EnvelopeError
from petcd.actors.bus.sockets import AsyncInbox, Inbox, Outbox, process_context

SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture
def run_dir():
    path = tempfile.mkdtemp(prefix="pb-", dir="/tmp")
    yield Path(path)
    shutil.rmtree(path, ignore_errors=True)


def settle(inbox: Inbox, expected: int, timeout_s: float = 2.0) -> None:
    """Wait until `expected` messages are queued at the inbox (ipc is asynchronous)."""
    deadline = time.monotonic() + timeout_s
    while inbox.socket.poll(0, zmq.POLLIN) == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.05)  # the rest of a burst follows the first frame


def test_drain_takes_what_is_queued_in_batches_of_max_items(run_dir):
    with Inbox.for_actor(run_dir, "raft") as inbox, Outbox(run_dir) as outbox:
        for i in range(10):
            assert outbox.send("raft", "prop", i)
        settle(inbox, 10)
        batches = [inbox.drain(max_items=4, timeout_ms=1000) for _ in range(3)]
        assert [len(b) for b in batches] == [4, 4, 2]
        assert [p for b in batches for _, p in b] == list(range(10))  # FIFO


def test_drain_waits_at_most_timeout_ms_when_idle(run_dir):
    with Inbox.for_actor(run_dir, "raft") as inbox:
        start = time.monotonic()
        assert inbox.drain(100, timeout_ms=80) == []
        elapsed = time.monotonic() - start
        assert 0.07 <= elapsed < 1.0
        start = time.monotonic()
        assert inbox.drain(100, timeout_ms=0) == []
        assert time.monotonic() - start < 0.05


def test_drain_returns_as_soon_as_the_first_message_arrives(run_dir):
    def later() -> None:
        time.sleep(0.1)
        with Outbox(run_dir) as outbox:
            outbox.send("raft", "late", None)

    with Inbox.for_actor(run_dir, "raft") as inbox:
        sender = threading.Thread(target=later)
        start = time.monotonic()
        sender.start()
        batch = inbox.drain(100, timeout_ms=5000)
        elapsed = time.monotonic() - start
        sender.join(5)
    assert batch == [("late", None)]
    assert elapsed < 2.0


@pytest.mark.parametrize("max_items,timeout_ms", [(0, 10), (-1, 10), (10, -1)])
def test_drain_refuses_unbounded_or_empty_requests(run_dir, max_items, timeout_ms):
    with Inbox.for_actor(run_dir, "raft") as inbox, pytest.raises(ValueError):
        inbox.drain(max_items, timeout_ms)


def test_a_malformed_frame_from_an_own_actor_is_a_bug_not_a_skip(run_dir):
    with Inbox.for_actor(run_dir, "raft") as inbox, Outbox(run_dir) as outbox:
        outbox.socket("raft").send(b"\xc1")
        settle(inbox, 1)
        with pytest.raises(EnvelopeError):
            inbox.drain(10, 1000)


def test_sending_to_an_absent_inbox_queues_up_to_the_hwm_then_drops(run_dir):
    # Actors start in any order: sends before the inbox binds are kept, up to the HWM.
    with Outbox(run_dir, hwm_msgs=20, linger_ms=0) as outbox:
        start = time.monotonic()
        results = [outbox.send("apply", "x", i) for i in range(2000)]
        assert time.monotonic() - start < 1.0  # never blocked
        kept = results.count(True)
        assert 20 <= kept <= 40 and results[:20] == [True] * 20
        start = time.monotonic()
        assert not outbox.send("apply", "x", -1, timeout_ms=100)  # a bounded wait
        assert 0.09 <= time.monotonic() - start < 1.0
        with Inbox.for_actor(run_dir, "apply") as inbox:  # bound late: still delivered
            got: list[object] = []
            deadline = time.monotonic() + 5
            while len(got) < kept and time.monotonic() < deadline:
                got += [p for _, p in inbox.drain(1000, 200)]
            assert got == list(range(kept))


def test_a_full_inbox_never_blocks_the_sender_and_loses_nothing_it_accepted(run_dir):
    payload = b"x" * 1024
    with Inbox.for_actor(run_dir, "wal", hwm_msgs=10) as inbox, \
            Outbox(run_dir, hwm_msgs=10, linger_ms=0) as outbox:
        start = time.monotonic()
        accepted = [i for i in range(5000) if outbox.send("wal", "save", [i, payload])]
        assert time.monotonic() - start < 2.0
        assert len(accepted) < 5000
        got: list[int] = []
        deadline = time.monotonic() + 5
        while len(got) < len(accepted) and time.monotonic() < deadline:
            got += [p[0] for _, p in inbox.drain(4096, 200)]
        # What a send accepted arrives, in order: the drops are exactly the refusals.
        assert got[:len(accepted)] == accepted[:len(got)] and len(got) == len(accepted)


def test_closing_with_undelivered_messages_never_hangs(run_dir):
    ctx = zmq.Context()
    outbox = Outbox(run_dir, ctx=ctx)  # default linger: bounded
    for i in range(100):
        outbox.send("network", "x", i)  # nobody will ever bind "network"
    start = time.monotonic()
    outbox.close()
    ctx.term()
    assert time.monotonic() - start < 2.0


def test_the_process_context_is_never_inherited(monkeypatch):
    ctx = process_context()
    assert process_context() is ctx
    monkeypatch.setattr(sockets, "_context", ctx)  # restored by undo()
    monkeypatch.setattr(sockets, "_context_pid", -1)  # as seen from a forked child
    fresh = process_context()
    assert fresh is not ctx and not fresh.closed and not ctx.closed
    fresh.destroy(linger=0)
    monkeypatch.undo()
    assert process_context() is ctx


def test_async_inbox_waits_without_blocking_the_loop(run_dir):
    async def main() -> tuple[list[object], list[object], int]:
        inbox = AsyncInbox.for_actor(run_dir, "network")
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        idle = await inbox.drain(10, timeout_ms=150)
        with Outbox(run_dir) as outbox:
            outbox.send("network", "responses", [[1, True, b"ok"]])
            busy = await inbox.drain(10, timeout_ms=2000)
        task.cancel()
        inbox.close()
        return idle, busy, ticks

    idle, busy, ticks = asyncio.run(asyncio.wait_for(main(), 10))
    assert idle == [] and busy == [("responses", [[1, True, b"ok"]])]
    assert ticks >= 5  # the loop kept running while drain waited


def test_async_inbox_misses_no_wake_up_across_bursts_and_partial_drains(run_dir):
    # The socket's FD only signals an edge: a drain that stops at max_items with
    # messages left, or a message arriving while the waiter re-arms, must not be lost.
    total = 2000

    async def main() -> tuple[list[int], int]:
        inbox = AsyncInbox.for_actor(run_dir, "network")

        async def sender() -> None:
            with Outbox(run_dir) as outbox:
                for n in range(total):
                    assert outbox.send("network", "n", n, timeout_ms=1000)
                    if n % 97 == 0:
                        await asyncio.sleep(0.002)

        task = asyncio.create_task(sender())
        got: list[int] = []
        empty_drains = 0
        while len(got) < total:
            batch = await inbox.drain(7, timeout_ms=1000)
            empty_drains += not batch
            got += [n for _, n in batch]
        await task
        inbox.close()
        return got, empty_drains

    got, empty_drains = asyncio.run(asyncio.wait_for(main(), 20))
    assert got == list(range(total))
    assert empty_drains == 0  # never waited out a timeout with messages queued


# --- two processes over ipc ------------------------------------------------------------

N_MESSAGES = 3000


def wal_actor(run_dir: str) -> None:
    """A child standing in for the WAL actor: answers every `save` with `persisted`."""
    assert sockets._context is None  # spawn: nothing inherited
    with Inbox.for_actor(run_dir, "wal") as inbox, Outbox(run_dir) as outbox:
        outbox.send("raft", "ready", "wal")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            batch = inbox.drain(4096, 100)
            if ("stop", None) in batch:
                return
            seqs = [p[0] for kind, p in batch if kind == "save"]
            if seqs:  # one answer per batch, as every actor does
                assert outbox.send("raft", "persisted", seqs, timeout_ms=1000)
        raise SystemExit("wal actor timed out")


def test_outbox_to_inbox_across_two_spawned_processes(run_dir):
    child = SPAWN.Process(target=wal_actor, args=(str(run_dir),))
    with Inbox.for_actor(run_dir, "raft") as inbox, Outbox(run_dir) as outbox:
        child.start()
        try:
            assert inbox.drain(10, 10_000) == [("ready", "wal")]
            for seq in range(N_MESSAGES):
                assert outbox.send("wal", "save", [seq, None, [[1, seq, 0, b"e"]]],
                                   timeout_ms=1000)
            acked: list[int] = []
            batches = 0
            deadline = time.monotonic() + 10
            while len(acked) < N_MESSAGES and time.monotonic() < deadline:
                for kind, seqs in inbox.drain(4096, 200):
                    assert kind == "persisted"
                    acked += seqs
                    batches += 1
            assert acked == list(range(N_MESSAGES))  # all of them, in order
            assert batches < N_MESSAGES  # and batched on the way back
            outbox.send("wal", "stop")
        finally:
            child.join(10)
            if child.is_alive():
                child.kill()
    assert child.exitcode == 0
