"""Forked actor processes (nodes/actor_main.py): what a child resets of what it
inherited, and the exit status the supervisor sees.

The actor body is a stand-in: the test puts a module with its own `run` in
sys.modules under the raft actor's name before forking, so the child "imports" it
instead of the real actor. The forks are real processes of this test process.
"""

from __future__ import annotations

import atexit
import gc
import json
import os
import signal
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from petcd.nodes import actor_main
from petcd.nodes.actor_main import ActorProcess

WAIT_S = 10.0
ACTOR_MODULE = "petcd.actors.raft.actor"


@pytest.fixture
def fork_with(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., ActorProcess]]:
    """fork_with(run) forks the "raft" actor with `run` as its body."""
    started: list[ActorProcess] = []

    def fork(run: Callable[[Any], int]) -> ActorProcess:
        module = types.ModuleType(ACTOR_MODULE)
        module.run = run  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, ACTOR_MODULE, module)
        proc = ActorProcess.fork("raft", None)  # type: ignore[arg-type]
        started.append(proc)
        return proc

    yield fork
    gc.unfreeze()  # fork froze this process's objects, as it does the supervisor's
    for proc in started:
        proc.send_signal(signal.SIGKILL)
        proc.wait(WAIT_S)


def _sleep_forever(ctx: object) -> int:
    while True:
        time.sleep(1)


@pytest.mark.parametrize("status", [0, 1, 2])
def test_exit_status_is_what_run_returns(fork_with, status):
    assert fork_with(lambda ctx: status).wait(WAIT_S) == status


def _exit_with(code: object) -> Callable[[object], int]:
    def run(ctx: object) -> int:
        raise SystemExit(code)
    return run


def _fail(ctx: object) -> int:
    raise RuntimeError("boom in the actor")


def test_system_exit_and_uncaught_errors_end_the_actor_as_an_interpreter_would(fork_with, capfd):
    assert fork_with(_exit_with(None)).wait(WAIT_S) == 0
    assert fork_with(_exit_with(2)).wait(WAIT_S) == 2
    assert fork_with(_exit_with("cannot start: reason")).wait(WAIT_S) == 1
    assert fork_with(_fail).wait(WAIT_S) == 1
    assert fork_with(lambda ctx: None).wait(WAIT_S) == 0  # sys.exit(run(ctx)) semantics
    assert fork_with(lambda ctx: "not a status").wait(WAIT_S) == 1
    err = capfd.readouterr().err
    assert "cannot start: reason\n" in err and "not a status\n" in err
    assert "Traceback (most recent call last)" in err and "RuntimeError: boom in the actor" in err


def test_a_signal_that_ends_the_actor_is_reported_as_its_negative(fork_with):
    # The supervisor handles SIGTERM itself; a fresh interpreter would not have, and an
    # actor that has not installed its own handler yet must still die of SIGTERM.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        proc = fork_with(_sleep_forever)
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(WAIT_S) == -signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous)
    proc = fork_with(_sleep_forever)
    assert proc.poll() is None and proc.wait(0.2) is None  # running
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(WAIT_S) == -signal.SIGKILL
    proc.send_signal(signal.SIGTERM)  # reaped: a no-op, never another process's pid


def _check_child_state(ctx: object) -> int:
    devnull = os.stat(os.devnull)
    stdin = os.fstat(0)
    problems = [
        what for what, ok in [
            ("SIGINT handler", signal.getsignal(signal.SIGINT) is signal.default_int_handler),
            ("SIGTERM handler", signal.getsignal(signal.SIGTERM) == signal.SIG_DFL),
            ("stdin", (stdin.st_dev, stdin.st_ino) == (devnull.st_dev, devnull.st_ino)),
            ("name", Path("/proc/self/comm").read_text() == "petcd-raft\n"),
            ("gc thresholds", gc.get_threshold() == actor_main.GC_THRESHOLDS),
            ("gc freeze", gc.get_freeze_count() > 0),
        ] if not ok]
    print("problems:", problems, file=sys.stderr)
    return 3 if problems else 0


def test_the_child_starts_as_a_fresh_actor_process_would(fork_with, capfd):
    previous = signal.signal(signal.SIGINT, lambda signum, frame: None)
    try:
        assert fork_with(_check_child_state).wait(WAIT_S) == 0, capfd.readouterr().err
    finally:
        signal.signal(signal.SIGINT, previous)


def test_the_child_never_runs_the_parents_atexit_handlers(fork_with, tmp_path):
    marker = tmp_path / "atexit-ran"
    atexit.register(marker.write_text, "the parent's handler ran in the child")
    try:
        assert fork_with(lambda ctx: 0).wait(WAIT_S) == 0
        assert not marker.exists()
    finally:
        atexit.unregister(marker.write_text)


def test_fork_refuses_a_process_with_threads(fork_with):
    release = threading.Event()
    thread = threading.Thread(target=release.wait)
    thread.start()
    try:
        with pytest.raises(AssertionError, match="threads"):
            fork_with(lambda ctx: 0)
    finally:
        release.set()
        thread.join()


def test_the_supervisor_forks_from_a_process_safe_to_fork():
    """What the supervisor has imported when it forks: the shared modules and the
    actors but the network's, no ZeroMQ context, no thread, and nothing only the network
    actor needs (gRPC, aiohttp)."""
    code = (
        "import json, sys, threading\n"
        "from petcd.nodes import actor_main, supervisor\n"
        "actor_main.preload()\n"
        "from petcd.actors.bus import sockets\n"
        "print(json.dumps({'threads': threading.active_count(),\n"
        "                  'zmq_context': sockets._context is not None,\n"
        "                  'modules': sorted(m.split('.')[0] for m in sys.modules)}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    state = json.loads(out)
    assert state["threads"] == 1 and not state["zmq_context"]
    modules = set(state["modules"])
    assert {"zmq", "msgpack", "structlog", "lmdb", "google"} <= modules
    assert not modules & {"grpc", "aiohttp", "uvloop", "yaml", "psutil"}
