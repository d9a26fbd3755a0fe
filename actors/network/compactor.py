"""Auto-compaction: etcd's v3compactor, --auto-compaction-mode periodic | revision.

Only the leader compacts, by proposing Compaction through Raft like any client (every
member applies it); on a follower the compactor is paused, as etcd pauses it when this
member loses the lead. A compaction that finds the revision already compacted counts
as done (etcd's ErrCompacted check); any other failure is logged and retried at the
next check.

periodic, retention R (a duration; a bare number is hours):
    every R/10 (R capped at 1 h, so every 6 min for R >= 1 h) record the current
    revision, keeping the last ones covering R (R/interval + 1 samples); the oldest
    sample is the revision of R ago. The first compaction waits R after start, the
    next ones min(R, 1 h) after the last success, each to that oldest sample.
        R = 10s:  samples every 1 s, compacts every 10 s to the revision of 10 s ago
        R = 24h:  samples every 6 min, compacts every hour to the revision of 24 h ago

revision, retention N (revisions):
    every 5 minutes (etcd's revInterval) compact to current - N, unless that is <= 0
    or the revision compacted last time.

The policies (`Periodic`, `Revision`) are pure: the caller passes time and revisions
in. `run` is the loop around one, with the clock, sleep, leadership, revision and the
proposal injected, so tests drive it on a fake clock.

Test-only: PETCD_COMPACTOR_INTERVAL_MS=<ms> replaces revision mode's 5 minutes
between checks (periodic mode needs none: a short retention such as "2s" is valid).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from petcd.actors.raft.types import Role
from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.config.settings import Settings
from petcd.storage.mvcc.errors import COMPACTED

from .errors import EtcdError
from .server import Server

NS_PER_S = 1_000_000_000
MAX_COMPACT_INTERVAL_NS = 3600 * NS_PER_S  # etcd: compact at least hourly
RETRY_DIVISOR = 10                         # etcd's retryDivisor
REVISION_INTERVAL_S = 300.0                # etcd's revInterval
INTERVAL_ENV = "PETCD_COMPACTOR_INTERVAL_MS"


class Policy(Protocol):
    interval_s: float   # time between two checks
    retention: str      # for logs

    def observe(self, revision: int) -> None:
        """The current revision, at the start of every check interval."""

    def due(self, now_s: float, revision: int) -> int | None:
        """The revision to compact to now, or None; asked on the leader only."""

    def compacted(self, now_s: float, revision: int) -> None:
        """The compaction `due` asked for succeeded (or was already done)."""


class Periodic:
    """etcd's Periodic compactor (v3compactor/periodic.go)."""

    def __init__(self, retention_s: float, now_s: float) -> None:
        assert retention_s > 0, retention_s
        # Integer nanoseconds, as Go's durations: the sample count must not depend
        # on float rounding.
        period_ns = round(retention_s * NS_PER_S)
        compact_interval_ns = min(period_ns, MAX_COMPACT_INTERVAL_NS)
        interval_ns = max(compact_interval_ns // RETRY_DIVISOR, 1)
        self.interval_s = interval_ns / NS_PER_S
        self.retention = f"{retention_s:g}s"
        self._compact_interval_s = compact_interval_ns / NS_PER_S
        self._revisions: deque[int] = deque(maxlen=period_ns // interval_ns + 1)
        self._last_success_s = now_s
        self._wait_s = retention_s  # before the first compaction: a whole retention

    def observe(self, revision: int) -> None:
        self._revisions.append(revision)  # [0] is the revision of a retention ago

    def due(self, now_s: float, revision: int) -> int | None:
        if now_s - self._last_success_s < self._wait_s:
            return None
        self._wait_s = self._compact_interval_s
        return self._revisions[0]

    def compacted(self, now_s: float, revision: int) -> None:
        self._last_success_s = now_s


class Revision:
    """etcd's Revision compactor (v3compactor/revision.go)."""

    def __init__(self, retention_revisions: int, interval_s: float = REVISION_INTERVAL_S) -> None:
        assert retention_revisions > 0 and interval_s > 0, (retention_revisions, interval_s)
        self.interval_s = interval_s
        self.retention = f"{retention_revisions} revisions"
        self._retention_revisions = retention_revisions
        self._last_revision = 0

    def observe(self, revision: int) -> None:
        pass

    def due(self, now_s: float, revision: int) -> int | None:
        target = revision - self._retention_revisions
        if target <= 0 or target == self._last_revision:
            return None
        return target

    def compacted(self, now_s: float, revision: int) -> None:
        self._last_revision = revision


def enabled(settings: Settings) -> bool:
    """etcd's retention 0 (the default) turns auto-compaction off."""
    if settings.auto_compaction_mode == "periodic":
        return settings.auto_compaction_retention_seconds > 0
    return settings.auto_compaction_retention_revisions > 0


def policy_for(settings: Settings, now_s: float, env: dict[str, str] | None = None) -> Policy:
    """The policy the flags ask for (auto-compaction `enabled`)."""
    assert enabled(settings), "auto-compaction is off"
    env = os.environ if env is None else env
    if settings.auto_compaction_mode == "periodic":
        return Periodic(settings.auto_compaction_retention_seconds, now_s)
    interval_ms = env.get(INTERVAL_ENV)
    interval_s = int(interval_ms) / 1000 if interval_ms else REVISION_INTERVAL_S
    return Revision(settings.auto_compaction_retention_revisions, interval_s)


async def run(policy: Policy, *, log: Any,
              is_leader: Callable[[], bool],
              current_revision: Callable[[], int],
              compact: Callable[[int], Awaitable[object]],
              now: Callable[[], float] = time.monotonic,
              sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
    """Check every `policy.interval_s` until cancelled; compact when due and leader."""
    while True:
        policy.observe(current_revision())
        await sleep(policy.interval_s)
        if not is_leader():
            continue
        revision = policy.due(now(), current_revision())
        if revision is None:
            continue
        log.info("Starting auto-compaction at revision", revision=revision,
                 retention=policy.retention)
        try:
            await compact(revision)
        except EtcdError as err:
            if err.message != COMPACTED.message:
                log.warning("Failed auto-compaction at revision", revision=revision,
                            error=err.message, retry_in_s=policy.interval_s)
                continue
        policy.compacted(now(), revision)
        log.info("Finished auto-compaction at revision", revision=revision)


def start(settings: Settings, server: Server, log: Any) -> list[asyncio.Task[None]]:
    """The compactor task for this member's flags, if any."""
    if not enabled(settings):
        return []
    return [asyncio.create_task(_serve(settings, server, log), name="compactor")]


async def _serve(settings: Settings, server: Server, log: Any) -> None:
    tracker = server.tracker
    # As etcd starts its compactor with the open store: the first periodic sample is
    # the store's revision, not a 0 from before the apply actor reported.
    await tracker.applied_known.wait()
    await run(policy_for(settings, time.monotonic()), log=log,
              is_leader=lambda: tracker.status.role == Role.LEADER,
              current_revision=lambda: tracker.applied.revision,
              compact=lambda revision: server.compact_as_member(
                  pb.CompactionRequest(revision=revision)))
