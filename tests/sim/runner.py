"""One seeded run: random faults and requests, then heal and demand progress.

A seed picks a fault profile (from calm to hostile), then for CHAOS_TICKS drives the
cluster with proposals, reads, crashes (with torn writes), partitions (symmetric,
one-way, isolating the leader), leader transfers, membership changes and log
compaction. Then every fault heals and the cluster must elect a leader and commit
a new proposal within LIVENESS_TICKS. The checker runs throughout.
"""

from __future__ import annotations

import random
import traceback
from dataclasses import dataclass

from petcd.actors.raft.types import ProposalDropped, Role
from petcd.storage.raftstate import ConfChange, ConfChangeType

from .checker import LIVENESS_MARKER, Checker
from .harness import UNITS_PER_TICK, Cluster, SimNode

CHAOS_TICKS = 100
LIVENESS_TICKS = 100
LOG_CHECK_EVERY_UNITS = 40
SIZES = (1, 3, 5, 7)


@dataclass(frozen=True, slots=True)
class Profile:
    drop_rate: float
    dup_rate: float
    slow_rate: float
    crash_per_tick: float
    partition_per_tick: float
    propose_per_unit: float
    read_per_unit: float
    transfer_per_tick: float
    conf_per_tick: float
    compact_threshold: int  # entries beyond the last snapshot before compacting
    persist_delay_units: tuple[int, int]  # how long an fsync takes
    crash_leaders: float  # share of crashes aimed at a leader or candidate

    @classmethod
    def draw(cls, rng: random.Random) -> Profile:
        hostile = rng.random()
        return cls(
            drop_rate=rng.choice((0.0, 0.0, 0.02, 0.1, 0.3)) * (hostile > 0.2),
            dup_rate=rng.choice((0.0, 0.02, 0.1)),
            slow_rate=rng.choice((0.0, 0.01, 0.05)),
            crash_per_tick=rng.choice((0.0, 0.01, 0.03, 0.06)),
            partition_per_tick=rng.choice((0.0, 0.01, 0.03, 0.06)),
            propose_per_unit=rng.choice((0.05, 0.2, 0.5)),
            read_per_unit=rng.choice((0.02, 0.1, 0.3)),
            transfer_per_tick=rng.choice((0.0, 0.005, 0.02)),
            conf_per_tick=rng.choice((0.0, 0.0, 0.01, 0.04)),
            compact_threshold=rng.choice((10, 30, 1000)),
            persist_delay_units=rng.choice(((0, 2), (0, 8), (2, 24))),
            crash_leaders=rng.choice((0.0, 0.5, 0.9)),
        )


@dataclass(frozen=True, slots=True)
class SeedResult:
    seed: int
    members: int
    steps: int
    error: str | None
    acked: int
    reads: int


def members_for(seed: int) -> int:
    return SIZES[seed % len(SIZES)]


class Run:
    def __init__(self, seed: int, members: int) -> None:
        self.rng = random.Random(seed)
        self.profile = Profile.draw(self.rng)
        self.checker = Checker()
        spares = min(2, 7 - members)
        self.cluster = Cluster(members, spares, self.rng, self.checker,
                               max_msg_entries=self.rng.choice((1, 4, 64)))
        self.removed: set[int] = set()
        self.restarts: list[tuple[int, int]] = []  # (at unit, node)
        self.heal_at = 0
        self.counter = 0
        net = self.cluster.net
        net.drop_rate, net.dup_rate = self.profile.drop_rate, self.profile.dup_rate
        net.slow_rate = self.profile.slow_rate
        self.cluster.persist_delay_units = self.profile.persist_delay_units

    # -- driving ------------------------------------------------------------------------

    def step(self, chaos: bool) -> None:
        c, rng, p = self.cluster, self.rng, self.profile
        c.step()
        if c.now % LOG_CHECK_EVERY_UNITS == 0:
            self.checker.check_logs(c)
        if rng.random() < p.propose_per_unit:
            self.propose(rng.choice(c.live()) if c.live() else None)
        if rng.random() < p.read_per_unit and c.live():
            self.read(rng.choice(c.live()))
        self.restart_due()
        if c.now % UNITS_PER_TICK == 0:
            self.per_tick(chaos)

    def per_tick(self, chaos: bool) -> None:
        c, rng, p = self.cluster, self.rng, self.profile
        for node in c.live():
            node.maybe_compact(p.compact_threshold, keep=5)
        if not chaos:
            return
        if self.heal_at and c.now >= self.heal_at:
            c.net.heal()
            self.heal_at = 0
        if rng.random() < p.crash_per_tick and c.live():
            self.crash(self.crash_victim())
        if rng.random() < p.partition_per_tick and not self.heal_at:
            self.partition()
        if rng.random() < p.transfer_per_tick:
            self.transfer()
        if rng.random() < p.conf_per_tick:
            self.change_membership()

    def propose(self, node: SimNode | None) -> None:
        if node is None:
            return
        self.counter += 1
        data = b"p%d" % self.counter
        if self.cluster.propose(node.id, data):
            self.checker.proposed(node, data)

    def read(self, node: SimNode) -> None:
        self.counter += 1
        context = b"r%d" % self.counter
        try:
            node.core.read_index(context)  # type: ignore[union-attr]
        except ProposalDropped:
            return
        self.checker.read_started(node, context)

    def crash_victim(self) -> SimNode:
        live = self.cluster.live()
        if self.rng.random() < self.profile.crash_leaders:
            campaigning = [n for n in live if n.core.role != Role.FOLLOWER]  # type: ignore[union-attr]
            if campaigning:
                return self.rng.choice(campaigning)
        return self.rng.choice(live)

    def crash(self, node: SimNode) -> None:
        node.crash(tear=self.rng.random() < 0.5)
        down_ticks = self.rng.randint(1, 30)
        self.restarts.append((self.cluster.now + down_ticks * UNITS_PER_TICK, node.id))

    def restart_due(self) -> None:
        due = [r for r in self.restarts if r[0] <= self.cluster.now]
        for r in due:
            self.restarts.remove(r)
            self.cluster.nodes[r[1]].start()

    def partition(self) -> None:
        c, rng = self.cluster, self.rng
        ids = list(c.nodes)
        leader = c.leader()
        kind = rng.randrange(3)
        if kind == 0 and leader is not None:
            c.isolate(leader.id)
        else:
            rng.shuffle(ids)
            cut = rng.randint(1, max(1, len(ids) - 1))
            c.net.cut(ids[:cut], ids[cut:], one_way=kind == 2)
        self.heal_at = c.now + rng.randint(5, 40) * UNITS_PER_TICK

    def transfer(self) -> None:
        leader = self.cluster.leader()
        if leader is None:
            return
        voters = sorted(leader.core.conf.voters)  # type: ignore[union-attr]
        try:
            leader.core.transfer_leader(self.rng.choice(voters))  # type: ignore[union-attr]
        except ProposalDropped:
            pass

    def change_membership(self) -> None:
        leader = self.cluster.leader()
        if leader is None:
            return
        conf = leader.core.conf  # type: ignore[union-attr]
        spares = [n for n in self.cluster.nodes
                  if n not in conf.members() and n not in self.removed
                  and n not in self.cluster.initial]
        choices: list[ConfChange] = []
        choices += [ConfChange(ConfChangeType.ADD_LEARNER, n) for n in spares]
        choices += [ConfChange(ConfChangeType.ADD_VOTER, n) for n in conf.learners]
        if len(conf.voters) < 7:
            choices += [ConfChange(ConfChangeType.ADD_VOTER, n) for n in spares]
        if len(conf.voters) > 1:
            choices += [ConfChange(ConfChangeType.REMOVE, n) for n in conf.members()]
        if not choices:
            return
        cc = self.rng.choice(choices)
        if self.cluster.propose_conf_change(leader.id, cc) and cc.type == ConfChangeType.REMOVE:
            self.removed.add(cc.node_id)  # never re-add an id, as etcd forbids

    # -- phases -----------------------------------------------------------------------

    def heal(self) -> None:
        c = self.cluster
        c.net.heal()
        c.net.drop_rate = c.net.dup_rate = c.net.slow_rate = 0.0
        self.heal_at = 0
        for _, node_id in self.restarts:
            c.nodes[node_id].start()
        self.restarts.clear()

    def await_progress(self) -> str | None:
        """After healing: a leader, and a new proposal applied on it, in bounded time."""
        c = self.cluster
        deadline = c.now + LIVENESS_TICKS * UNITS_PER_TICK
        marker, proposed_by = LIVENESS_MARKER, None
        while c.now < deadline:
            self.step(chaos=False)
            leader = c.leader()
            if leader is None or leader.id not in leader.core.conf.voters:  # type: ignore[union-attr]
                continue
            if proposed_by != (leader.id, leader.incarnation, leader.core.term):  # type: ignore[union-attr]
                if c.propose(leader.id, marker):
                    proposed_by = (leader.id, leader.incarnation, leader.core.term)  # type: ignore[union-attr]
            if self.checker.marker_applied:
                return None
        return f"liveness: no leader committed a proposal within {LIVENESS_TICKS} ticks of healing"


def run_seed(seed: int, members: int | None = None) -> SeedResult:
    members = members or members_for(seed)
    run = Run(seed, members)
    error = None
    try:
        for _ in range(CHAOS_TICKS * UNITS_PER_TICK):
            run.step(chaos=True)
        run.heal()
        error = run.await_progress()
        run.checker.check_logs(run.cluster)
    except AssertionError as exc:
        error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}"
    return SeedResult(seed, members, run.cluster.now, error, run.checker.acked,
                      run.checker.reads_checked)
