"""The client's recipes (petcd.client.recipes) between real processes on a real
server: a queue hands each item to exactly one consumer, in the order its producer
enqueued them; a barrier holds waiters until released; a read-write lock lets readers
share, serves a waiting writer before later readers, and frees what a killed holder
held when its lease expires; a double barrier lets processes in and out together.
Processes are tests/client/recipe_worker.py; they report each step with its time."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import grpc
import pytest

from petcd.client import Client, EtcdError
from tests.cluster.members import wait_until

REPO = Path(__file__).resolve().parents[2]
TTL_S = 2  # etcd's minimum at its default election timeout
WAIT_S = 15.0  # every wait in these tests is bounded
BLOCKED_S = 1.0  # how long a process must stay blocked to count as blocked
SLACK_S = 3.0  # lease expiry: etcd checks every 0.5 s, a busy host adds more
ITEMS_PER_PRODUCER = 20


class Worker:
    """A recipe_worker process; its stdout lines (split in words) are read by a thread,
    so each read here is bounded."""

    def __init__(self, endpoints: list[str], *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.client.recipe_worker", ",".join(endpoints), *args],
            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._lines: queue.Queue[list[str] | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._lines.put(line.split())
        self._lines.put(None)  # end of output

    def expect(self, what: str, timeout_s: float = WAIT_S) -> float:
        """The time of the next line, which must say `what`."""
        line = self.line(timeout_s)
        assert line and line[0] == what, (what, line)
        return float(line[1])

    def line(self, timeout_s: float = WAIT_S) -> list[str] | None:
        try:
            return self._lines.get(timeout=timeout_s)
        except queue.Empty:
            pytest.fail(f"worker {self.process.args[4:]} said nothing in {timeout_s}s")

    def quiet(self) -> bool:
        """True if the worker has said nothing since the last line read."""
        return self._lines.empty()

    def go_on(self) -> None:
        self.process.stdin.write("\n")
        self.process.stdin.flush()

    def finish(self) -> list[list[str]]:
        """The lines not read yet, once the worker has exited with 0."""
        assert self.process.wait(timeout=WAIT_S) == 0, self.process.args
        lines = []
        while (line := self.line()) is not None:
            lines.append(line)
        return lines


@pytest.fixture
def workers(cluster):
    """start(*args) runs a worker against `cluster`; all are killed after the test."""
    started: list[Worker] = []

    def start(*args: str) -> Worker:
        started.append(Worker(cluster.endpoints, *args))
        return started[-1]

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.process.kill()
        worker.process.wait(timeout=WAIT_S)


def _deleted_values(watch, count: int) -> list[str]:
    """The previous values of the next `count` deletes the watch sees, in order."""
    values: list[str] = []
    deadline = time.monotonic() + WAIT_S
    while len(values) < count and time.monotonic() < deadline:
        resp = watch.get(timeout_s=0.5)
        if resp is not None:
            values.extend(event.prev_kv.value.decode() for event in resp.events)
    return values


# Queue

def test_queue_gives_each_item_to_one_consumer_in_each_producers_order(cluster, client,
                                                                       workers):
    producers, consumers = ("p0", "p1", "p2"), 3
    with client.watch("q1/", prefix=True, no_put=True, prev_kv=True) as deletes:
        eating = [workers("consume", "q1") for _ in range(consumers)]  # waiting, empty
        making = [workers("produce", "q1", name, str(ITEMS_PER_PRODUCER))
                  for name in producers]
        for producer in making:
            producer.expect("done")
            producer.finish()
        for _ in range(consumers):
            client.queue("q1").enqueue("stop")  # after every item: each consumer ends
        got = [" ".join(line[1:]) for consumer in eating for line in consumer.finish()]
        order = _deleted_values(deletes, len(producers) * ITEMS_PER_PRODUCER + consumers)
    items = [f"{name} {sequence}" for name in producers
             for sequence in range(ITEMS_PER_PRODUCER)]
    assert Counter(got) == Counter(items)  # each item once, none lost
    assert order[-consumers:] == ["stop"] * consumers and sorted(order[:-consumers]) == sorted(items)
    for name in producers:
        taken = [int(value.split()[1]) for value in order if value.startswith(name + " ")]
        assert taken == list(range(ITEMS_PER_PRODUCER)), (name, taken)
    assert client.get("q1/", prefix=True).count == 0


def test_dequeue_returns_none_when_the_queue_stays_empty(client):
    jobs = client.queue("q2")
    client.put("q2x/not-an-item", "x")  # a sibling prefix is not part of the queue
    started = time.monotonic()
    assert jobs.dequeue(timeout_s=0.5) is None
    assert 0.5 <= time.monotonic() - started < 0.5 + SLACK_S
    first = jobs.enqueue("a")
    jobs.enqueue("b")
    assert first.startswith(b"q2/")
    assert [jobs.dequeue(timeout_s=0), jobs.dequeue(timeout_s=0)] == [b"a", b"b"]
    assert jobs.dequeue(timeout_s=0) is None
    assert client.get("q2x/not-an-item").count == 1


def test_dequeue_waits_for_an_item_enqueued_meanwhile(client):
    later = threading.Timer(0.5, lambda: client.queue("q3").enqueue("late"))
    later.start()
    started = time.monotonic()
    try:
        assert client.queue("q3").dequeue(timeout_s=WAIT_S) == b"late"
    finally:
        later.join(WAIT_S)
    assert time.monotonic() - started >= 0.5


# Barrier

def test_barrier_holds_waiters_until_it_is_released(workers):
    holder = workers("hold", "b1")
    holder.expect("held")
    waiters = [workers("wait", "b1") for _ in range(2)]
    for waiter in waiters:
        waiter.expect("waiting")
    time.sleep(BLOCKED_S)
    assert all(waiter.quiet() for waiter in waiters), "a waiter passed a barrier still up"
    holder.go_on()
    released_at = holder.expect("releasing")
    for waiter in waiters:
        assert released_at <= waiter.expect("passed") < released_at + SLACK_S
        waiter.finish()
    holder.finish()


def test_barrier_held_twice_fails_and_a_barrier_down_lets_through_at_once(client):
    gate = client.barrier("b2")
    started = time.monotonic()
    assert gate.wait() is True  # never held: no wait at all
    assert time.monotonic() - started < 1.0
    assert gate.hold() > 0
    with pytest.raises(EtcdError, match="key already exists") as raised:
        client.barrier("b2").hold()
    assert raised.value.code == grpc.StatusCode.ALREADY_EXISTS
    started = time.monotonic()
    assert gate.wait(timeout_s=0.3) is False
    assert time.monotonic() - started >= 0.3
    gate.release()
    assert gate.wait(timeout_s=0) is True
    gate.release()  # down already: nothing to do


# Read-write lock

def _asked(client: Client, prefix: str, count: int) -> None:
    """Wait until `count` keys are under `prefix`: the lock's requests are queued."""
    assert wait_until(lambda: client.get(prefix, prefix=True).count == count, WAIT_S), prefix


def test_rwlock_readers_share_and_a_waiting_writer_goes_before_later_readers(
        client, workers):
    readers = [workers("rwlock", "read", "rw1", "10") for _ in range(2)]
    read_revisions = []
    for reader in readers:  # both hold at once
        reader.expect("asking")
        line = reader.line()
        assert line[0] == "locked", line
        read_revisions.append(int(line[2]))
    writer = workers("rwlock", "write", "rw1", "10")
    writer.expect("asking")
    _asked(client, "rw1/write/", 1)
    late_reader = workers("rwlock", "read", "rw1", "10")
    late_reader.expect("asking")
    _asked(client, "rw1/read/", 3)
    time.sleep(BLOCKED_S)
    assert writer.quiet() and late_reader.quiet()
    readers[0].go_on()
    first_out = readers[0].expect("unlocking")
    time.sleep(BLOCKED_S / 2)
    assert writer.quiet(), "the writer went while a reader still held the lock"
    readers[1].go_on()
    last_out = readers[1].expect("unlocking")
    line = writer.line()
    assert line[0] == "locked" and float(line[1]) >= max(first_out, last_out), line
    write_revision = int(line[2])
    time.sleep(BLOCKED_S / 2)
    assert late_reader.quiet(), "a reader went while the writer held the lock"
    writer.go_on()
    writer_out = writer.expect("unlocking")
    line = late_reader.line()
    assert line[0] == "locked" and float(line[1]) >= writer_out, line
    assert max(read_revisions) < write_revision < int(line[2])  # served in asking order
    late_reader.go_on()
    for worker in [*readers, writer, late_reader]:
        worker.finish()
    assert client.get("rw1/", prefix=True).count == 0


def test_rwlock_held_by_a_killed_process_goes_with_its_lease(client, workers):
    reader = workers("rwlock", "read", "rw2", str(TTL_S))
    reader.expect("asking")
    reader.expect("locked")
    writer = workers("rwlock", "write", "rw2", str(TTL_S))
    writer.expect("asking")
    _asked(client, "rw2/write/", 1)
    os.kill(reader.process.pid, signal.SIGKILL)
    killed_at = time.time()
    # The lease had 1/3 TTL or less of its keep-alive period used; then it must run out.
    locked_at = writer.expect("locked", timeout_s=TTL_S + SLACK_S)
    assert TTL_S / 2 <= locked_at - killed_at < TTL_S + SLACK_S
    assert client.get("rw2/read/", prefix=True).count == 0
    writer.go_on()
    writer.finish()


def test_rwlock_timeout_withdraws_the_request_and_unlock_needs_a_lock(client):
    with client.rwlock("rw3", ttl=10) as one, client.rwlock("rw3", ttl=10) as two:
        with one.write() as held:
            assert held.mode == "write" and held.key.startswith(b"rw3/write/")
            with pytest.raises(EtcdError) as raised:
                two.rlock(timeout_s=0.3)
            assert raised.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
            assert client.get("rw3/read/", prefix=True).count == 0  # withdrawn
            assert two.held is None
        with one.read(), two.read(timeout_s=WAIT_S):  # readers share
            assert client.get("rw3/read/", prefix=True).count == 2
        with pytest.raises(RuntimeError, match="no write lock held"):
            one.unlock()
        one.rlock()
    assert client.get("rw3/", prefix=True).count == 0  # close() revoked the session


def test_rwlock_waiter_whose_lease_ends_gives_up(client):
    def revoke_the_readers_lease() -> None:
        _asked(client, "rw4/read/", 1)
        client.lease_revoke(client.get("rw4/read/", prefix=True).kvs[0].lease)

    with client.rwlock("rw4", ttl=10) as writer, client.rwlock("rw4", ttl=TTL_S) as reader:
        writer.lock()
        revoking = threading.Thread(target=revoke_the_readers_lease)
        revoking.start()
        started = time.monotonic()
        with pytest.raises(EtcdError, match="session expired"):
            reader.rlock(timeout_s=WAIT_S)  # its key is gone: never a lock without one
        revoking.join(WAIT_S)
        assert time.monotonic() - started < TTL_S + SLACK_S and reader.held is None
        assert reader.lost and not writer.lost


# Double barrier

def test_double_barrier_lets_processes_in_and_out_together(client, workers):
    first_two = [workers("enter", "db1", "3", "10") for _ in range(2)]
    for worker in first_two:
        worker.expect("entering")
    _asked(client, "db1/waiters/", 2)
    time.sleep(BLOCKED_S)
    assert all(worker.quiet() for worker in first_two), "entered before all three came"
    third = workers("enter", "db1", "3", "10")
    third_came = third.expect("entering")
    everyone = [*first_two, third]
    for worker in everyone:
        assert worker.expect("entered") >= third_came
    with pytest.raises(EtcdError, match="too many clients"):
        client.double_barrier("db1", 3).enter(timeout_s=WAIT_S)
    for worker in first_two:
        worker.go_on()
        worker.expect("leaving")
    time.sleep(BLOCKED_S)
    assert all(worker.quiet() for worker in first_two), "left before the third did"
    third.go_on()
    third_leaving = third.expect("leaving")
    for worker in everyone:
        assert worker.expect("left") >= third_leaving
        worker.finish()
    assert client.get("db1/", prefix=True).count == 0
