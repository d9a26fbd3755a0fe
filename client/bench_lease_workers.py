"""The worker processes of `petcd-bench lease-*` and `lock`, and what they share with
the parent.

Each worker publishes counts to its own slots of a shared array (the parent draws its
status line and waits on them), learns when the measured window opened from a shared
value (0 until then) and when to stop from an event, and hands its tally to the parent
through a queue once stopped. Processes are spawned, not forked: grpc must not cross
a fork.
"""

from __future__ import annotations

import multiprocessing
import queue
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

POLL_S = 0.05  # how often a worker publishes its counts and looks at the window and stop
STATUS_EVERY_S = 0.2


@dataclass(frozen=True, slots=True)
class Control:
    """The worker's side: its slots, the window and the stop signal."""
    worker: int
    slots: int
    progress: Any  # multiprocessing.Array("q"), `slots` per worker
    window: Any  # multiprocessing.Value("d"): time.monotonic() it opened at, 0.0 before
    stop: Any  # multiprocessing.Event

    def publish(self, slot: int, value: int) -> None:
        assert 0 <= slot < self.slots
        self.progress[self.worker * self.slots + slot] = value

    def window_opened_s(self) -> float:
        return self.window.value

    def stopping(self) -> bool:
        return self.stop.is_set()


class Workers:
    """The parent's side: start one process per job, count, open the window, collect."""

    def __init__(self, target: Callable[..., None], jobs: list[Any], slots: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.slots = slots
        progress = ctx.Array("q", slots * len(jobs), lock=False)
        window, stop = ctx.Value("d", 0.0, lock=False), ctx.Event()
        self.out: multiprocessing.Queue = ctx.Queue()
        self.controls = [Control(w, slots, progress, window, stop) for w in range(len(jobs))]
        self.procs = [ctx.Process(target=target, daemon=True, args=(job, control, self.out))
                      for job, control in zip(jobs, self.controls)]
        for p in self.procs:
            p.start()

    def count(self, slot: int) -> int:
        progress = self.controls[0].progress
        return sum(progress[w * self.slots + slot] for w in range(len(self.procs)))

    def alive(self) -> bool:
        return all(p.is_alive() for p in self.procs)

    def open_window(self) -> float:
        opened_s = time.monotonic()
        self.controls[0].window.value = opened_s
        return opened_s

    def collect(self, timeout_s: float) -> list[Any]:
        """Stop the workers and take their tallies (a worker that died has none)."""
        self.controls[0].stop.set()
        tallies: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while len(tallies) < len(self.procs) and time.monotonic() < deadline:
            try:
                tallies.append(self.out.get(timeout=STATUS_EVERY_S))
            except queue.Empty:
                if not any(p.is_alive() for p in self.procs) and self.out.empty():
                    break
        for p in self.procs:
            p.join(5)
        return tallies


def status(text: str) -> None:
    sys.stderr.write(f"\r{text}\033[K")
    sys.stderr.flush()
