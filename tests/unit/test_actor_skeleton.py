"""The actor skeleton (actors/skeleton.py): the loop hands batches to the actor and
stops only between two of them, a send that must arrive stops the actor when it
cannot, and each way of ending is one exit status with one log line."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import zmq

from petcd.actors import skeleton
from petcd.actors.bus.sockets import Inbox, Outbox, process_context
from petcd.actors.member import MemberContext
from petcd.actors.metrics import ActorMetrics
from petcd.actors.protocol import SUPERVISOR, Kind
from petcd.actors.skeleton import (EXIT_BAD_CONFIG, EXIT_FAILED, EXIT_OK, POLL_TIMEOUT_MS, Batch,
                                   Runtime, Stop, StopFlag)
from petcd.config import load

WAIT_S = 10.0


@pytest.fixture
def run_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="psk-", dir="/tmp"))  # short: ipc paths are limited
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Recorder:
    """An actor that keeps what it is handed and asks for a stop after `stop_after`
    batches with messages."""

    max_batch_msgs = 3

    def __init__(self, stop: StopFlag, stop_after: int = 1_000_000, wait_ms: int = 20,
                 wake_on: Sequence[zmq.Socket[bytes]] = ()) -> None:
        self.stop, self.stop_after, self._wait_ms = stop, stop_after, wait_ms
        self.wake_on = wake_on
        self.batches: list[list[tuple[str, Any]]] = []

    def start(self) -> None:
        pass

    def wait_ms(self) -> int:
        return self._wait_ms

    def handle(self, batch: Batch) -> None:
        self.batches.append(list(batch))
        if sum(1 for b in self.batches if b) >= self.stop_after:
            self.stop.signal_name = "SIGTERM"

    def close(self) -> None:
        pass

    def report(self) -> dict[str, object]:
        return {}


def settled(inbox: Inbox, count: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while inbox.socket.poll(0, zmq.POLLIN) == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.05 + count * 0.001)  # the rest of a burst follows the first frame


def test_batches_reach_the_actor_in_order_and_a_stop_waits_for_the_batch_in_hand(run_dir):
    stop = StopFlag()
    with Inbox.for_actor(run_dir, "wal") as inbox, Outbox(run_dir) as outbox:
        for n in range(7):
            assert outbox.send("wal", "save", n)
        settled(inbox, 7)
        actor = Recorder(stop, stop_after=2)
        skeleton.serve(stop, inbox, actor, ActorMetrics("wal"), outbox)
        # Two batches of at most three, then the stop: the seventh is left for later.
        assert [[p for _, p in b] for b in actor.batches if b] == [[0, 1, 2], [3, 4, 5]]
        assert inbox.drain(10, 0) == [("save", 6)]


def test_an_idle_wait_hands_an_empty_batch_and_a_stop_is_seen_after_it(run_dir):
    stop = StopFlag()
    with Inbox.for_actor(run_dir, "wal") as inbox, Outbox(run_dir) as outbox:
        actor = Recorder(stop, wait_ms=POLL_TIMEOUT_MS)
        actor.handle = lambda batch: (actor.batches.append(list(batch)),  # type: ignore[method-assign]
                                      stop(signal.SIGTERM, None))
        started = time.monotonic()
        skeleton.serve(stop, inbox, actor, ActorMetrics("wal"), outbox)
    assert actor.batches == [[]] and stop.signal_name == "SIGTERM"
    assert POLL_TIMEOUT_MS / 1000 * 0.9 <= time.monotonic() - started < 2.0


def test_a_message_on_another_socket_ends_the_wait(run_dir):
    stop = StopFlag()
    ctx = process_context()
    other = ctx.socket(zmq.PULL)
    pusher = ctx.socket(zmq.PUSH)
    try:
        port = other.bind_to_random_port("tcp://127.0.0.1")
        pusher.connect(f"tcp://127.0.0.1:{port}")
        pusher.send(b"frame")
        deadline = time.monotonic() + WAIT_S
        while not other.poll(0) and time.monotonic() < deadline:
            time.sleep(0.005)
        with Inbox.for_actor(run_dir, "raft") as inbox, Outbox(run_dir) as outbox:
            actor = Recorder(stop, wait_ms=60_000, wake_on=(other,))
            actor.handle = lambda batch: (actor.batches.append(list(batch)),  # type: ignore[method-assign]
                                          other.recv(), stop(signal.SIGTERM, None))
            started = time.monotonic()
            skeleton.serve(stop, inbox, actor, ActorMetrics("raft"), outbox)
        assert actor.batches == [[]] and time.monotonic() - started < 1.0
    finally:
        pusher.close(linger=0)
        other.close(linger=0)


def test_a_peer_actor_that_takes_nothing_stops_the_sender(run_dir):
    with Outbox(run_dir, hwm_msgs=1, linger_ms=0) as outbox:  # "raft" is never bound
        with pytest.raises(Stop) as stopped:
            for n in range(100):
                skeleton.send_or_stop(outbox, "raft", Kind.PERSISTED, n)
    err = stopped.value
    assert err.status == EXIT_FAILED and err.event == "actor not reading its inbox"
    assert err.fields == {"peer_actor": "raft", "kind": "persisted",
                          "timeout_ms": skeleton.SEND_TIMEOUT_MS}


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, object]]] = []

    def __getattr__(self, level: str) -> Any:
        return lambda event, **fields: self.lines.append((level, event, fields))


@pytest.mark.parametrize("err,status,level", [
    (Stop("stopped while starting", EXIT_OK), EXIT_OK, "info"),
    (Stop("bad failpoint", EXIT_BAD_CONFIG, variable="X"), EXIT_BAD_CONFIG, "error"),
    (Stop("actor not reading its inbox"), EXIT_FAILED, "error"),
    (RuntimeError("a bug"), EXIT_FAILED, "exception"),
])
def test_each_way_of_ending_is_one_status_and_one_log_line(err, status, level):
    log = Log()
    try:
        raise err
    except Exception as caught:
        assert skeleton.exit_status(log, "wal", caught) == status  # type: ignore[arg-type]
    expected_event = "wal actor failed" if level == "exception" else err.event
    assert [(lv, event) for lv, event, _ in log.lines] == [(level, expected_event)]


# --- the whole process ------------------------------------------------------------------

class Ready:
    """Says READY, then waits; `handle` may fail on purpose."""

    max_batch_msgs = 16
    wake_on = ()

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.handled = 0

    def start(self) -> None:
        skeleton.send_or_stop(self.runtime.outbox, SUPERVISOR, Kind.READY, self.runtime.name)

    def wait_ms(self) -> int:
        return POLL_TIMEOUT_MS

    def handle(self, batch: Batch) -> None:
        for kind, _ in batch:
            if kind == "fail":
                raise RuntimeError("failing on purpose")
            self.handled += 1

    def close(self) -> None:
        pass

    def report(self) -> dict[str, object]:
        return {"handled": self.handled}


def _refuse(runtime: Runtime) -> Ready:
    raise Stop("refusing to start", EXIT_BAD_CONFIG, error="not our data dir")


def _child(ctx: MemberContext, log_path: str, refuse: bool, sigterm_only: bool) -> None:
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 2)
    stop_signals = (signal.SIGTERM,) if sigterm_only else skeleton.STOP_SIGNALS
    raise SystemExit(skeleton.run(ctx, "wal", _refuse if refuse else Ready,
                                  stop_signals=stop_signals))


class Process:
    def __init__(self, tmp_path: Path, run_dir: Path, refuse: bool = False,
                 sigterm_only: bool = False) -> None:
        settings = load(["--name", "m1", "--data-dir", str(tmp_path / "data"),
                         "--log-level", "info"], {})
        ctx = dataclasses.replace(MemberContext.from_settings(settings), run_dir=run_dir)
        self.log_path = tmp_path / "actor.log"
        self.proc = multiprocessing.get_context("spawn").Process(
            target=_child, args=(ctx, str(self.log_path), refuse, sigterm_only), daemon=True)
        self.proc.start()

    def exit_status(self) -> int:
        self.proc.join(WAIT_S)
        assert self.proc.exitcode is not None, "the actor did not exit in time"
        return self.proc.exitcode

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log_path.read_text().splitlines()]


def ready(supervisor: Inbox, proc: Process) -> None:
    got = supervisor.drain(1, int(WAIT_S * 1000))
    assert got == [(Kind.READY.value, "wal")], proc.log_path.read_text()


def test_a_stop_signal_ends_the_actor_with_status_0_and_its_report(tmp_path, run_dir):
    with Inbox.for_actor(run_dir, SUPERVISOR) as supervisor, Outbox(run_dir) as outbox:
        proc = Process(tmp_path, run_dir)
        ready(supervisor, proc)
        assert outbox.send("wal", "hello", None, timeout_ms=1000)
        time.sleep(0.3)
        os.kill(proc.proc.pid, signal.SIGINT)
        assert proc.exit_status() == EXIT_OK
    last = proc.log_lines()[-1]
    assert (last["event"], last["signal"], last["handled"]) == ("wal actor stopped", "SIGINT", 1)


def test_a_stop_signal_the_actor_leaves_to_the_supervisor_is_ignored(tmp_path, run_dir):
    with Inbox.for_actor(run_dir, SUPERVISOR) as supervisor:
        proc = Process(tmp_path, run_dir, sigterm_only=True)
        ready(supervisor, proc)
        os.kill(proc.proc.pid, signal.SIGINT)
        time.sleep(0.3)
        assert proc.proc.is_alive()
        os.kill(proc.proc.pid, signal.SIGTERM)
        assert proc.exit_status() == EXIT_OK
    assert proc.log_lines()[-1]["signal"] == "SIGTERM"


def test_a_refusal_to_start_is_its_status_and_its_event(tmp_path, run_dir):
    proc = Process(tmp_path, run_dir, refuse=True)
    assert proc.exit_status() == EXIT_BAD_CONFIG
    last = proc.log_lines()[-1]
    assert (last["event"], last["level"], last["error"]) == (
        "refusing to start", "error", "not our data dir")


def test_a_bug_is_status_1_with_its_traceback(tmp_path, run_dir):
    with Inbox.for_actor(run_dir, SUPERVISOR) as supervisor, Outbox(run_dir) as outbox:
        proc = Process(tmp_path, run_dir)
        ready(supervisor, proc)
        assert outbox.send("wal", "fail", None, timeout_ms=1000)
        assert proc.exit_status() == EXIT_FAILED
    last = proc.log_lines()[-1]
    assert last["event"] == "wal actor failed" and "failing on purpose" in last["exception"]


def test_the_loop_exports_the_actors_metrics_to_the_network_actor_every_second(run_dir):
    stop = StopFlag()
    with Inbox.for_actor(run_dir, "network") as network, \
            Inbox.for_actor(run_dir, "wal") as inbox, Outbox(run_dir) as outbox:
        for n in range(5):
            assert outbox.send("wal", "save", n)
        settled(inbox, 5)
        actor = Recorder(stop, wait_ms=POLL_TIMEOUT_MS)
        started = time.monotonic()
        actor.handle = lambda batch: (actor.batches.append(list(batch)),  # type: ignore[method-assign]
                                      time.monotonic() - started > 1.5 and stop(signal.SIGTERM, None))
        skeleton.serve(stop, inbox, actor, ActorMetrics("wal"), outbox)
        exports = [payload for kind, payload in network.drain(10, 1000) if kind == Kind.METRICS.value]
    assert exports and all(name == "wal" for name, _ in exports)
    families = {family[0]: family for family in exports[-1][1]}
    [[_, _, _, samples]] = [families["petcd_actor_messages"]]
    assert [value for name, _, value in samples if name == "petcd_actor_messages_total"] == [5.0]
    assert "process_resident_memory_bytes" in families
