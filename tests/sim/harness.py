"""Whole Raft clusters in one process: simulated disk, state machine, network and nodes.

Everything is driven by one `random.Random`, so a seed replays exactly. Time is counted
in units; a node ticks every `UNITS_PER_TICK` units. The harness only provides the
mechanics (deliver, persist, crash, partition); runner.py decides what happens when,
and checker.py watches from outside. Each node routes its core's output through the
raft actor's own write pipeline (actors/raft/pipeline.py), so the ordering checked
here is the one production runs.
"""

from __future__ import annotations

import heapq
import random
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from petcd.actors.raft.bootstrap import bootstrap
from petcd.actors.raft.core import RaftConfig, RaftCore
from petcd.actors.raft.pipeline import Actions, SaveRequest, WritePipeline
from petcd.actors.raft.types import (Message, MessageType, PersistedState, ProposalDropped, Ready,
                                     Role, Snapshot)
from petcd.storage.raftstate import ConfChange, Entry, EntryType, HardState

UNITS_PER_TICK = 4


@dataclass
class Disk:
    """The WAL: only what a save carried is on it (a commit-only hard state reaches it
    with the next save, as in production: actors/raft/pipeline.py). A save is durable
    once acknowledged; a crash keeps those, and of the saves still being written a
    prefix that happened to reach the disk, the next one perhaps torn."""

    hard_state: HardState = field(default_factory=HardState)
    snapshot: Snapshot | None = None
    entries: list[Entry] = field(default_factory=list)  # right after the snapshot

    @classmethod
    def from_state(cls, state: PersistedState) -> Disk:
        return cls(state.hard_state, state.snapshot, list(state.entries))

    def state(self) -> PersistedState:
        return PersistedState(self.hard_state, self.snapshot, tuple(self.entries))

    def base(self) -> int:
        return self.snapshot.meta.index if self.snapshot else 0

    def last_index(self) -> int:
        return self.base() + len(self.entries)

    def entry(self, index: int) -> Entry | None:
        if self.base() < index <= self.last_index():
            return self.entries[index - self.base() - 1]
        return None

    def write(self, save: SaveRequest) -> None:
        if save.snapshot:
            self.snapshot, self.entries = save.snapshot, []
        self._append(save.entries)
        if save.hard_state:
            self.hard_state = save.hard_state

    def write_torn(self, save: SaveRequest, entries: int) -> None:
        """A crash in the middle of `save`: only its first `entries` entries got there.
        The WAL writes the hard state last (storage/wal/wal.py), so it is lost; so is a
        snapshot, which start-up does not trust without the commit index after it."""
        if save.snapshot is None:
            self._append(save.entries[:entries])

    def _append(self, entries: tuple[Entry, ...]) -> None:
        if entries:
            first = entries[0].index
            assert self.base() < first <= self.last_index() + 1, "WAL gap"
            del self.entries[first - self.base() - 1:]
            self.entries.extend(entries)

    def compact(self, snapshot: Snapshot) -> None:
        drop = snapshot.meta.index - self.base()
        if drop > 0:
            self.snapshot = snapshot
            del self.entries[:drop]


@dataclass
class StateMachine:
    """Durable, like LMDB with its applied index: a hash chain over applied entries."""

    applied: int = 0
    chain: int = 0

    def apply(self, entry: Entry) -> None:
        assert entry.index == self.applied + 1, f"apply gap: {self.applied} -> {entry.index}"
        self.applied = entry.index
        self.chain = zlib.crc32(entry.data, zlib.crc32(b"%d" % entry.term, self.chain))

    def encode(self) -> bytes:
        return b"%d:%d" % (self.applied, self.chain)

    def restore(self, data: bytes) -> None:
        applied, chain = (int(x) for x in data.split(b":"))
        if applied > self.applied:  # an older copy than ours changes nothing (idempotent)
            self.applied, self.chain = applied, chain


class Observer:
    """Callbacks the harness makes; the checker implements them."""

    def on_ready(self, node: SimNode, rd: Ready) -> None: ...
    def on_persisted(self, node: SimNode) -> None: ...
    def on_send(self, node: SimNode, m: Message) -> None: ...
    def on_apply(self, node: SimNode, entry: Entry) -> None: ...
    def on_snapshot_applied(self, node: SimNode, snapshot: Snapshot) -> None: ...
    def on_read_state(self, node: SimNode, index: int, context: bytes) -> None: ...
    def on_crash(self, node: SimNode) -> None: ...


class SimNode:
    def __init__(self, node_id: int, cfg: RaftConfig, state: PersistedState,
                 rng: random.Random, observer: Observer) -> None:
        self.id = node_id
        self.cfg = cfg
        self.disk = Disk.from_state(state)
        self.sm = StateMachine()
        self.rng = rng
        self.obs = observer
        self.saving: deque[tuple[int, SaveRequest]] = deque()  # (due time, save), seq order
        self.fsync_stalled = False  # a scenario holds every save back while set
        self.core: RaftCore | None = None
        self.pipeline: WritePipeline | None = None
        self.incarnation = 0
        self.start()

    @property
    def alive(self) -> bool:
        return self.core is not None

    def start(self) -> None:
        self.incarnation += 1
        self.core = RaftCore(self.cfg, random.Random(self.rng.random()), self.disk.state(),
                             applied=min(self.sm.applied, self.disk.last_index()))
        self.pipeline = WritePipeline(self.id, self.disk.hard_state, self.core.log.applied)
        snap = self.disk.snapshot
        if snap is not None and self.sm.applied < snap.meta.index:
            # A received snapshot was saved and the node crashed before its state
            # machine installed it: install it first, as the raft actor has the apply
            # actor do at start (actors/raft/actor.py), or the entries after it follow
            # a gap.
            self.sm.restore(snap.data)
            self.obs.on_snapshot_applied(self, snap)

    def crash(self, tear: bool) -> None:
        """Lose the saves not yet acknowledged, but for a prefix that happened to reach
        the disk (a process crash keeps what was written, a power cut maybe not); maybe
        tear the next one."""
        if self.saving:
            written = self.rng.randint(0, len(self.saving))
            saves = [save for _, save in self.saving]
            for save in saves[:written]:
                self.disk.write(save)
            if tear and written < len(saves) and saves[written].entries:
                torn = saves[written]
                self.disk.write_torn(torn, self.rng.randrange(len(torn.entries)))
        self.saving.clear()
        self.core = self.pipeline = None
        self.obs.on_crash(self)

    def process(self, now: int, net: Network, persist_delay: Callable[[], int]) -> None:
        """Drain the core's Ready queue through the write pipeline: send, save, apply."""
        core, pipeline = self.core, self.pipeline
        assert core is not None and pipeline is not None
        while core.has_ready():
            ready = core.ready()
            self.obs.on_ready(self, ready)
            actions = pipeline.accept(ready)
            if actions.save is not None:
                self.saving.append((now + persist_delay(), actions.save))
            self._apply(actions)
            core.advance(ready)
            self._carry_out(actions, now, net)

    def _apply(self, actions: Actions) -> None:
        if actions.snapshot_to_apply:
            self.sm.restore(actions.snapshot_to_apply.data)
            self.obs.on_snapshot_applied(self, actions.snapshot_to_apply)
        for entry in actions.apply:
            if entry.index > self.sm.applied:
                self.sm.apply(entry)
                self.obs.on_apply(self, entry)
        for rs in actions.read_states:
            self.obs.on_read_state(self, rs.index, rs.context)

    def _carry_out(self, actions: Actions, now: int, net: Network) -> None:
        """Send, then step back what is this node's own (after core.advance)."""
        for m in actions.send:
            net.send(self, m, now)
        for m in actions.step:
            self.core.step(m)  # type: ignore[union-attr]

    def persist_due(self, now: int, net: Network) -> None:
        """Complete, in order, the saves whose fsync is done; release what waited."""
        while (self.saving and self.saving[0][0] <= now and not self.fsync_stalled
               and self.pipeline is not None):
            _, save = self.saving.popleft()
            self.disk.write(save)
            self._carry_out(self.pipeline.persisted(save.seq), now, net)
            self.obs.on_persisted(self)

    def maybe_compact(self, threshold: int, keep: int) -> None:
        core = self.core
        assert core is not None
        applied = min(self.sm.applied, core.log.applied)
        if applied - core.log.offset >= threshold and applied <= core.log.persisted:
            snap = core.compact(applied, self.sm.encode(), keep)
            if snap is not None:
                self.disk.compact(snap)


@dataclass(order=True)
class _InFlight:
    due: int
    seq: int
    msg: Message = field(compare=False)


class Network:
    """Drops, delays, duplicates and reorders messages; symmetric and one-way cuts."""

    def __init__(self, rng: random.Random, observer: Observer) -> None:
        self.rng = rng
        self.obs = observer
        self.queue: list[_InFlight] = []
        self.seq = 0
        self.drop_rate = 0.0
        self.dup_rate = 0.0
        self.delay_units = (1, 3)
        self.slow_rate = 0.0  # chance of a long delay (reordering across heartbeats)
        self.blocked: set[tuple[int, int]] = set()  # (src, dst) links that are cut
        self.link_due: dict[tuple[int, int], int] = {}  # last delivery time per link
        self.snapshot_reports: list[tuple[int, int, int, bool]] = []  # (due, src, dst, ok)

    def cut(self, a: Iterable[int], b: Iterable[int], one_way: bool = False) -> None:
        b = list(b)
        for x in a:
            for y in b:
                if x != y:
                    self.blocked.add((x, y))
                    if not one_way:
                        self.blocked.add((y, x))

    def heal(self) -> None:
        self.blocked.clear()

    def send(self, src: SimNode, m: Message, now: int) -> None:
        self.obs.on_send(src, m)
        copies = 2 if self.rng.random() < self.dup_rate else 1
        link = (m.src, m.dst)
        for _ in range(copies):
            lo, hi = self.delay_units
            # Peer links are streams (TCP): in order, except for the odd straggler.
            due = max(now + self.rng.randint(lo, hi), self.link_due.get(link, 0))
            self.link_due[link] = due
            if self.rng.random() < self.slow_rate:
                due += self.rng.randint(5, 15) * UNITS_PER_TICK
            self.seq += 1
            heapq.heappush(self.queue, _InFlight(due, self.seq, m))

    def deliver_due(self, now: int, nodes: dict[int, SimNode]) -> None:
        while self.queue and self.queue[0].due <= now:
            m = heapq.heappop(self.queue).msg
            dst = nodes.get(m.dst)
            lost = ((m.src, m.dst) in self.blocked or dst is None or not dst.alive
                    or self.rng.random() < self.drop_rate)
            if m.type == MessageType.SNAP:
                # A snapshot is streamed: the sender's transport learns the outcome.
                self.snapshot_reports.append((now + 2, m.src, m.dst, not lost))
            if not lost:
                assert dst is not None and dst.core is not None
                dst.core.step(m)
        while self.snapshot_reports and self.snapshot_reports[0][0] <= now:
            _, src, dst, ok = self.snapshot_reports.pop(0)
            node = nodes.get(src)
            if node is not None and node.core is not None:
                node.core.report_snapshot(dst, ok)


class Cluster:
    """A set of simulated members; `members` bootstrap the cluster, `spares` may join."""

    def __init__(self, members: int, spares: int, rng: random.Random,
                 observer: Observer, election_ticks: int = 10,
                 max_msg_entries: int = 64, pre_vote: bool = True) -> None:
        self.rng = rng
        self.now = 0
        self.obs = observer
        self.net = Network(rng, observer)
        self.persist_delay_units = (0, 2)
        self.initial = list(range(1, members + 1))
        boot = bootstrap(self.initial)
        self.nodes: dict[int, SimNode] = {}
        for node_id in range(1, members + spares + 1):
            cfg = RaftConfig(node_id, election_ticks=election_ticks, heartbeat_ticks=1,
                             max_inflight_msgs=16, max_msg_entries=max_msg_entries,
                             pre_vote=pre_vote)
            state = boot if node_id <= members else PersistedState()
            self.nodes[node_id] = SimNode(node_id, cfg, state, rng, observer)
        self.tick_offset = {n: rng.randrange(UNITS_PER_TICK) for n in self.nodes}

    def persist_delay(self) -> int:
        return self.rng.randint(*self.persist_delay_units)

    def live(self) -> list[SimNode]:
        return [n for n in self.nodes.values() if n.alive]

    def leader(self) -> SimNode | None:
        """The live leader of the highest term, if any."""
        leaders = [n for n in self.live() if n.core.role == Role.LEADER]  # type: ignore[union-attr]
        return max(leaders, key=lambda n: n.core.term, default=None)  # type: ignore[union-attr]

    def step(self) -> None:
        """One unit of time: deliver, persist, tick, then let every node produce output."""
        self.now += 1
        self.net.deliver_due(self.now, self.nodes)
        order = list(self.nodes.values())
        self.rng.shuffle(order)
        for node in order:
            if node.alive:
                node.persist_due(self.now, self.net)
        for node in order:
            if node.alive and (self.now + self.tick_offset[node.id]) % UNITS_PER_TICK == 0:
                node.core.tick()  # type: ignore[union-attr]
        for node in order:
            if node.alive:
                node.process(self.now, self.net, self.persist_delay)

    def run_ticks(self, ticks: int) -> None:
        for _ in range(ticks * UNITS_PER_TICK):
            self.step()

    def propose(self, node_id: int, data: bytes) -> bool:
        node = self.nodes[node_id]
        try:
            node.core.propose(data)  # type: ignore[union-attr]
        except ProposalDropped:
            return False
        return True

    def propose_conf_change(self, node_id: int, cc: ConfChange) -> bool:
        try:
            self.nodes[node_id].core.propose_conf_change(cc)  # type: ignore[union-attr]
        except ProposalDropped:
            return False
        return True

    def wait_for(self, predicate: Callable[[], bool], max_ticks: int) -> bool:
        """Run until `predicate` holds, for at most `max_ticks`."""
        for _ in range(max_ticks * UNITS_PER_TICK):
            if predicate():
                return True
            self.step()
        return predicate()

    def isolate(self, node_id: int) -> None:
        self.net.cut([node_id], [n for n in self.nodes if n != node_id])


def is_conf_entry(entry: Entry) -> bool:
    return entry.type == EntryType.CONF_CHANGE
