"""Auto-compaction decisions (actors/network/compactor.py) on a fake clock: when etcd's
periodic and revision compactors compact, to which revision, and never on a follower."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from petcd.actors.network import compactor
from petcd.actors.network.compactor import Periodic, Revision
from petcd.actors.network.errors import Code, EtcdError
from petcd.config.load import load

HOUR_S = 3600.0
COMPACTED = EtcdError(Code.OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted")
TIMEOUT = EtcdError(Code.UNAVAILABLE, "etcdserver: request timed out")


class Done(Exception):
    """Ends a run once the scenario has seen what it needs."""


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict]] = []

    def info(self, event: str, **fields: object) -> None:
        self.lines.append(("info", event, fields))

    def warning(self, event: str, **fields: object) -> None:
        self.lines.append(("warning", event, fields))


@dataclass
class Scenario:
    """A member whose revision grows `revisions_per_s`, on a clock that moves only by
    the compactor's own sleeps; records every compaction proposed as (time, revision)."""

    revisions_per_s: float = 1.0
    start_revision: int = 100
    end_s: float = 100.0
    leader_from_s: float = 0.0
    failures: list[EtcdError] = field(default_factory=list)  # answers to the next proposals
    now_s: float = 0.0
    proposed: list[tuple[float, int]] = field(default_factory=list)
    log: Log = field(default_factory=Log)

    def revision(self) -> int:
        return self.start_revision + int(self.now_s * self.revisions_per_s)

    async def sleep(self, seconds: float) -> None:
        self.now_s += seconds
        if self.now_s > self.end_s + 1e-9:
            raise Done

    async def compact(self, revision: int) -> None:
        self.proposed.append((round(self.now_s, 6), revision))
        if self.failures:
            raise self.failures.pop(0)

    def run(self, policy: compactor.Policy) -> list[tuple[float, int]]:
        with pytest.raises(Done):
            asyncio.run(compactor.run(
                policy, log=self.log, is_leader=lambda: self.now_s >= self.leader_from_s,
                current_revision=self.revision, compact=self.compact,
                now=lambda: self.now_s, sleep=self.sleep))
        return self.proposed


# ---- periodic ---------------------------------------------------------------------------


def test_periodic_intervals_follow_etcd() -> None:
    assert Periodic(10.0, 0.0).interval_s == 1.0  # retention / 10
    assert Periodic(2.0, 0.0).interval_s == pytest.approx(0.2)
    assert Periodic(59 * 60.0, 0.0).interval_s == pytest.approx(5.9 * 60)
    assert Periodic(HOUR_S, 0.0).interval_s == 360.0
    assert Periodic(24 * HOUR_S, 0.0).interval_s == 360.0  # capped at an hour / 10


def test_periodic_first_compacts_after_a_retention_then_every_retention():
    s = Scenario(end_s=35.0)
    # At 10 s: the revision sampled at start. Then every 10 s the oldest of the 11
    # samples kept (one a second): the revision of 11 s before.
    assert s.run(Periodic(10.0, 0.0)) == [(10.0, 100), (20.0, 109), (30.0, 119)]
    started = [f for lvl, e, f in s.log.lines if e == "Starting auto-compaction at revision"]
    finished = [f for lvl, e, f in s.log.lines if e == "Finished auto-compaction at revision"]
    assert [f["revision"] for f in started] == [100, 109, 119] == [f["revision"] for f in finished]
    assert started[0]["retention"] == "10s"


def test_periodic_long_retention_compacts_hourly_to_the_revision_of_a_retention_ago():
    s = Scenario(revisions_per_s=0.1, start_revision=1, end_s=26.5 * HOUR_S)
    proposed = s.run(Periodic(24 * HOUR_S, 0.0))
    assert [t / HOUR_S for t, _ in proposed] == [24.0, 25.0, 26.0]
    # 241 samples 6 minutes apart: at 25 h the oldest is from 54 minutes.
    assert [r for _, r in proposed] == [1, 1 + int(0.9 * HOUR_S * 0.1), 1 + int(1.9 * HOUR_S * 0.1)]


def test_periodic_never_compacts_on_a_follower_and_catches_up_when_it_leads():
    s = Scenario(end_s=45.0, leader_from_s=25.0)
    # Samples were kept while following; leading at 25 s it is long past due.
    assert s.run(Periodic(10.0, 0.0)) == [(25.0, 114), (35.0, 124), (45.0, 134)]


def test_periodic_already_compacted_counts_as_done_other_failures_retry():
    s = Scenario(end_s=21.0, failures=[COMPACTED, TIMEOUT])
    # 10 s: compacted already = success, next due at 20 s; 20 s: timeout, retried a
    # sample interval (1 s) later.
    assert s.run(Periodic(10.0, 0.0)) == [(10.0, 100), (20.0, 109), (21.0, 110)]
    warnings = [f for lvl, e, f in s.log.lines if lvl == "warning"]
    assert warnings == [{"revision": 109, "error": TIMEOUT.message, "retry_in_s": 1.0}]


# ---- revision ---------------------------------------------------------------------------


def test_revision_compacts_to_current_minus_retention_every_interval():
    s = Scenario(revisions_per_s=0.1, start_revision=1, end_s=1500.0)
    proposed = s.run(Revision(10))
    # etcd's 5 minutes; at 300 s the revision is 31, so 21; ...
    assert proposed == [(300.0, 21), (600.0, 51), (900.0, 81), (1200.0, 111), (1500.0, 141)]


def test_revision_skips_revisions_not_above_retention_and_unchanged_ones():
    s = Scenario(revisions_per_s=0.0, start_revision=8, end_s=1000.0)
    assert s.run(Revision(10, interval_s=100.0)) == []  # 8 - 10 <= 0
    s = Scenario(revisions_per_s=0.0, start_revision=50, end_s=1000.0)
    assert s.run(Revision(10, interval_s=100.0)) == [(100.0, 40)]  # once: nothing new


def test_revision_retries_a_failure_and_not_on_a_follower():
    s = Scenario(revisions_per_s=0.0, start_revision=50, end_s=400.0, leader_from_s=150.0,
                 failures=[TIMEOUT])
    assert s.run(Revision(10, interval_s=100.0)) == [(200.0, 40), (300.0, 40)]


# ---- flags --------------------------------------------------------------------------------


def test_policy_from_flags():
    def policy(*args: str, env: dict[str, str] | None = None) -> compactor.Policy:
        settings = load(list(args), {})
        assert compactor.enabled(settings)
        return compactor.policy_for(settings, 0.0, env or {})

    assert not compactor.enabled(load([], {}))  # etcd's default: periodic, retention 0
    assert not compactor.enabled(load(["--auto-compaction-mode", "revision"], {}))
    p = policy("--auto-compaction-retention", "2s")
    assert isinstance(p, Periodic) and p.interval_s == pytest.approx(0.2)
    p = policy("--auto-compaction-retention", "1")  # a bare number is hours
    assert isinstance(p, Periodic) and p.interval_s == 360.0
    p = policy("--auto-compaction-mode", "revision", "--auto-compaction-retention", "1000")
    assert isinstance(p, Revision) and p.interval_s == 300.0
    p = policy("--auto-compaction-mode", "revision", "--auto-compaction-retention", "5",
               env={compactor.INTERVAL_ENV: "200"})
    assert isinstance(p, Revision) and p.interval_s == 0.2
