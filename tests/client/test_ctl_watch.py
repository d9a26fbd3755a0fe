"""petcdctl watch prints what etcdctl watch prints. Each scenario runs once with
etcdctl on a fresh cluster and once with petcdctl on the same cluster wiped and
restarted (same IDs and revisions), and every watch's exit code, stdout and stderr
must match byte for byte.

A watch runs until it is killed: each is started in the background, fed its writes
(or stdin lines), waited for until its output holds a marker (bounded), then
terminated (SIGTERM: both tools die of it, exit -15). Watches that end by themselves
(a compacted --rev, a failing exec command, the end of interactive input) are
waited for (bounded).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable

from petcd.client import Client
from tests.client.test_ctl_compat import _difference
from tests.client.tools import ETCDCTL, PETCDCTL, Outcome, masked

WAIT_S = 10.0  # for a marker to show
EXIT_WAIT_S = 30.0  # for a tool to exit once told (etcdctl elect resigns first: slow under load)
SYNC_INTERVAL_S = 0.1
_GO_LOG_LINE = (rb'(?m)^\{"level":.*\n', b"")
END = "END"  # the value of the last write of a scenario
# The marker in each output format: the value as printed.
END_SIMPLE, END_JSON, END_HEX = b"END", b"RU5E", rb"\x45\x4e\x44"
ECHO_EVENT = 'echo "$ETCD_WATCH_REVISION $ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_KEY ' \
             '$ETCD_WATCH_VALUE"'


class Running:
    """A tool started in the background, its output read as it comes."""

    def __init__(self, tool: str, endpoints: list[str], args: list[str],
                 env: dict[str, str] | None = None) -> None:
        binary = {"etcdctl": ETCDCTL, "petcdctl": PETCDCTL}[tool]
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")},
               "ETCDCTL_API": "3", **(env or {})}
        self.proc = subprocess.Popen([binary, "--endpoints", ",".join(endpoints), *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        self.out, self.err = bytearray(), bytearray()
        self._readers = [threading.Thread(target=_collect, args=(pipe, into), daemon=True)
                         for pipe, into in ((self.proc.stdout, self.out),
                                            (self.proc.stderr, self.err))]
        for reader in self._readers:
            reader.start()

    def wait_for(self, marker: bytes, count: int = 1) -> None:
        """Until stdout holds `marker` `count` times, the tool exits, or WAIT_S pass
        (then the comparison shows what is missing)."""
        deadline = time.monotonic() + WAIT_S
        while (self.out.count(marker) < count and self.proc.poll() is None
               and time.monotonic() < deadline):
            time.sleep(0.02)

    def send(self, line: str) -> None:
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def finish(self, *, terminate: bool) -> Outcome:
        """Terminate the tool (or close its stdin and let it end) and what it did."""
        if terminate:
            self.proc.terminate()
        self.proc.stdin.close()
        try:
            code = self.proc.wait(EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(EXIT_WAIT_S)
        for reader in self._readers:
            reader.join(WAIT_S)
        return masked(Outcome(code, bytes(self.out), bytes(self.err)), _GO_LOG_LINE)


def _collect(pipe, into: bytearray) -> None:
    while chunk := pipe.read1(65536):
        into.extend(chunk)


Scenario = Callable[[str, list[str]], list[Outcome]]


def assert_same_output(cluster, scenario: Scenario) -> None:
    outcomes = {}
    for tool in ("etcdctl", "petcdctl"):
        cluster.reset()
        outcomes[tool] = scenario(tool, cluster.endpoints)
    for number, (want, got) in enumerate(zip(outcomes["etcdctl"], outcomes["petcdctl"])):
        assert got == want, (f"watch {number} of the scenario: petcdctl differs from "
                             f"etcdctl:\n{_difference(want, got)}")


def _history(endpoints: list[str]) -> None:
    """Revisions 2-8 on k, k2 and kk, ending with k=END."""
    with Client(endpoints) as client:
        client.put("k", "v1")
        client.put("k2", "x")
        client.put("k", "v2 with spaces")
        client.delete("k")
        client.put("kk", "two\nlines \x01\xc3\xa9")
        client.put("k2", "y")
        client.put("k", END)


def _watch_until(tool: str, endpoints: list[str], args: list[str], marker: bytes,
                 env: dict[str, str] | None = None) -> Outcome:
    running = Running(tool, endpoints, ["watch", *args], env)
    running.wait_for(marker)
    return running.finish(terminate=True)


def _watch_to_its_end(tool: str, endpoints: list[str], args: list[str],
                      env: dict[str, str] | None = None) -> Outcome:
    return Running(tool, endpoints, ["watch", *args], env).finish(terminate=False)


HISTORY_WATCHES = [
    (["k", "--rev", "1"], END_SIMPLE),
    (["k", "--prefix", "--rev", "1"], END_SIMPLE),
    (["k", "--rev", "1", "--prev-kv"], END_SIMPLE),
    (["k", "kz", "--rev", "1"], END_SIMPLE),  # a range
    (["k", "kz", "k2", "--rev", "1"], END_SIMPLE),  # etcdctl then watches k alone
    (["--rev", "3", "k", "--prev-kv", "-w", "json"], END_JSON),
    (["k", "--prefix", "--rev", "1", "-w", "json"], END_JSON),
    (["k", "--rev", "1", "--prev-kv", "-w", "fields"], END_SIMPLE),
    (["k", "--prefix", "--rev", "1", "-w", "protobuf"], END_SIMPLE),
    (["k", "--rev", "1", "--prev-kv", "--hex"], END_HEX),
    (["", "--prefix", "--rev", "5"], END_SIMPLE),  # every key
]


def test_history_in_every_format(cluster):
    def scenario(tool: str, endpoints: list[str]) -> list[Outcome]:
        _history(endpoints)
        return [_watch_until(tool, endpoints, args, marker)
                for args, marker in HISTORY_WATCHES]
    assert_same_output(cluster, scenario)


def _sync(running: Running, endpoints: list[str]) -> None:
    """Put k=sync until the watch shows it: then it is surely watching."""
    with Client(endpoints) as client:
        deadline = time.monotonic() + WAIT_S
        while b"sync" not in running.out and time.monotonic() < deadline:
            client.put("k", "sync")
            time.sleep(SYNC_INTERVAL_S)


SYNC_EVENTS = (rb"\A(PUT\nk\nsync\n)+", b"")  # as many as it took


def test_live_events_of_a_key_and_a_prefix(cluster):
    def scenario(tool: str, endpoints: list[str]) -> list[Outcome]:
        on_key = Running(tool, endpoints, ["watch", "k"])
        _sync(on_key, endpoints)
        with Client(endpoints) as client:
            revision = client.put("p/0", "before").header.revision
        on_prefix = Running(tool, endpoints, ["watch", "p/", "--prefix", "--prev-kv",
                                              "--rev", str(revision)])
        with Client(endpoints) as client:
            client.put("p/1", "a")
            client.put("k", "live")
            client.put("p/1", "b")
            client.delete("k")
            client.delete("p/", prefix=True)
            client.put("p/2", END)
            client.put("k", END)
        on_key.wait_for(END_SIMPLE)
        on_prefix.wait_for(END_SIMPLE)
        return [masked(on_key.finish(terminate=True), SYNC_EVENTS),
                on_prefix.finish(terminate=True)]
    assert_same_output(cluster, scenario)


def test_a_compacted_revision_cancels_the_watch(cluster):
    def scenario(tool: str, endpoints: list[str]) -> list[Outcome]:
        _history(endpoints)
        with Client(endpoints) as client:
            client.compact(5)
        return [_watch_to_its_end(tool, endpoints, ["k", "--rev", "2", "-w", fmt])
                for fmt in ("simple", "json", "fields", "protobuf")]
    assert_same_output(cluster, scenario)


def test_argument_errors(cluster):
    def scenario(tool: str, endpoints: list[str]) -> list[Outcome]:
        _history(endpoints)
        outcomes = [_watch_to_its_end(tool, endpoints, args) for args in (
            [], ["--prefix"], ["a", "b", "--prefix"], ["a", "--"], ["--", "echo"],
            ["k", "--rev", "1", "-w", "table"])]
        outcomes.append(_watch_to_its_end(tool, endpoints, ["k"],
                                          {"ETCDCTL_WATCH_KEY": "k"}))
        outcomes.append(_watch_to_its_end(tool, endpoints, ["k"],
                                          {"ETCDCTL_WATCH_RANGE_END": "z"}))
        return outcomes
    assert_same_output(cluster, scenario)


def test_exec_form(cluster):
    def scenario(tool: str, endpoints: list[str]) -> list[Outcome]:
        _history(endpoints)
        echo = ["--", "sh", "-c", ECHO_EVENT]
        return [
            _watch_until(tool, endpoints, ["k", "--prefix", "--rev", "1", *echo], b"END\""),
            _watch_until(tool, endpoints, ["--rev", "1", *echo], b"END\"",
                         {"ETCDCTL_WATCH_KEY": "k", "ETCDCTL_WATCH_RANGE_END": "kz"}),
            _watch_to_its_end(tool, endpoints, ["k", "--rev", "1", "--", "sh", "-c",
                                                "echo ran; exit 3"]),
            _watch_to_its_end(tool, endpoints, ["k", "--rev", "1", "--",
                                                "no-such-command-for-watch"]),
        ]
    assert_same_output(cluster, scenario)


def test_interactive(cluster):
    def scenario(tool: str, endpoints: list[str]) -> list[Outcome]:
        _history(endpoints)
        session = Running(tool, endpoints, ["watch", "-i"])
        for line in ("bogus", "", "watch", "watch a b --prefix",
                     "watch k --rev 1 --prev-kv"):
            session.send(line)
        session.wait_for(END_SIMPLE)
        session.send("progress")
        session.wait_for(b"progress notify")
        session.send("watch k2 --rev 1 -- echo event")
        session.wait_for(b"event\n", count=2)
        first = session.finish(terminate=False)  # end of input: exit 3
        bad_flag = Running(tool, endpoints, ["watch", "-i"])
        bad_flag.send("watch k --bogus")
        return [first, bad_flag.finish(terminate=False)]
    assert_same_output(cluster, scenario)


def test_progress_notify_flag_is_accepted(cluster):
    """etcdctl 3.5's --progress-notify (3.4 has none): the watch asks the server for
    periodic progress notifications and prints events as without it."""
    cluster.reset()
    _history(cluster.endpoints)
    outcome = _watch_until("petcdctl", cluster.endpoints,
                           ["k", "--rev", "8", "--progress-notify"], END_SIMPLE)
    assert (outcome.code, outcome.out, outcome.err) == (-15, b"PUT\nk\nEND\n", b"")

