"""The raft actor: a thin loop around RaftCore that never touches the disk.

It ticks the core every --heartbeat-interval, steps what arrives (Raft messages from
peers, proposals, reads, persistence and apply acknowledgements), and hands each Ready
to the write pipeline (pipeline.py), which decides what waits for which save; this
actor only carries its actions out over the sockets:

    send            -> peers (peers.py); SNAPs -> network (SEND_SNAPSHOT), which
                       streams the store
    save            -> wal (SAVE seq); PERSISTED seq -> pipeline.persisted(seq)
    step            -> back into the core (how it learns what is durable)
    snapshot_to_apply, apply -> apply (APPLY_SNAPSHOT, APPLY), in log order
    read_states     -> network (READ_STATES)

Every --snapshot-count entries the apply actor has made durable, the in-memory log is
compacted (keeping --snapshot-catchup-entries) and the WAL told to write a snapshot
marker and release segments below it.

The loop is the skeleton's (actors/skeleton.py): it wakes for the inbox or the peer
ROUTER, or when the next tick is due, and `handle` steps what came, ticks, and routes
the Ready. SIGTERM stops it; SIGINT is ignored: a terminal's Ctrl-C reaches every
process of the member, and the supervisor decides when this one stops. Exit status 0
when stopped (even while starting), 1 when it cannot listen for peers, gets no state
in START_TIMEOUT_S, or another actor stops reading its inbox.
"""

from __future__ import annotations

import random
import signal
import ssl
import time
from collections.abc import Callable
from typing import Any

from petcd.actors.bus import codec, peertls
from petcd.actors.bus.addresses import peer_host_port
from petcd.actors.bus.tlsrelay import TlsRelay, inbound_path
from petcd.actors.member import MemberContext
from petcd.actors.protocol import SUPERVISOR, Kind
from petcd.actors.skeleton import (EXIT_OK, POLL_TIMEOUT_MS, Batch, Runtime, Stop,
                                   run as run_actor, send_or_stop)

from .core import RaftConfig, RaftCore
from .heartbeats import LATE_HEARTBEAT, HeartbeatWatch
from .metrics import RaftMetrics
from .peers import ListenError, RaftPeers, listen
from .pipeline import Actions, WritePipeline
from .tracing import RaftTraces
from petcd.storage.raftstate import NONE, ConfChange

from .types import Message, PersistedState, ProposalDropped, Role, SoftState

NAME = "raft"
START_TIMEOUT_S = 300.0  # replaying a large WAL or opening a large store takes a while
STATUS_EVERY_S = 0.1
MAX_BATCH_MSGS = 4096
ACTIVE_WITHIN_S = 5.0  # etcd's HealthInterval: a peer heard from this recently is active


def _start_relay(runtime: Runtime, listen_urls: list[str]) -> TlsRelay | None:
    """With peer TLS on (https peer URLs), the relay that carries every peer socket
    (actors/bus/tlsrelay.py), accepting on the peer URLs; else None."""
    try:
        tls = peertls.peer_tls(runtime.ctx.settings)
        if tls is None:
            return None
        server, client = peertls.contexts(tls, runtime.log)
        relay = TlsRelay(runtime.ctx.run_dir, client, runtime.log, server_tls=server,
                         check_peer=peertls.check_peer(tls))
        relay.start([peer_host_port(url) for url in listen_urls])
    except (OSError, ssl.SSLError, ValueError) as err:
        raise Stop("raft actor cannot start", error=f"peer TLS: {err}") from err
    return relay


def run(ctx: MemberContext) -> int:
    """Process entry point (forked by the supervisor, nodes/actor_main.py): exit status."""
    return run_actor(ctx, NAME, RaftActor.open, stop_signals=(signal.SIGTERM,))


class RaftActor:
    max_batch_msgs = MAX_BATCH_MSGS

    def __init__(self, runtime: Runtime, peers: RaftPeers,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ctx, self.log, self.stop = runtime.ctx, runtime.log, runtime.stop
        self.inbox, self.outbox, self.peers = runtime.inbox, runtime.outbox, peers
        self.clock = clock
        self.wake_on = (peers.transport.router,)
        s = self.ctx.settings
        self.tick_s = s.heartbeat_interval_ms / 1000
        self.next_tick = 0.0  # start() sets it
        self.heartbeats = HeartbeatWatch(max_gap_s=2 * self.tick_s)
        self.metrics = RaftMetrics(runtime.metrics.registry)
        self.config = RaftConfig(self.ctx.member_id,
                                 election_ticks=max(2, s.election_timeout_ms // s.heartbeat_interval_ms))
        self.core: RaftCore | None = None
        self.pipeline: WritePipeline | None = None
        self.traces = RaftTraces()  # proposals a client asked to trace
        self.sm_applied = 0  # what the apply actor has made durable
        self.snapshot_index = 0
        self.soft = SoftState()
        self.status_at = 0.0
        self.heard_at: dict[int, float] = {}  # member id -> when a message last came
        self._handlers: dict[str, Callable[[Any], None]] = {
            Kind.PEER: self._on_peer, Kind.PEERS: self._on_peers,
            Kind.PROPOSE: self._on_propose,
            Kind.PROPOSE_CONF_CHANGE: self._on_propose_conf_change,
            Kind.READ_INDEX: self._on_read_index, Kind.PERSISTED: self._on_persisted,
            Kind.APPLIED: self._on_applied, Kind.TRANSFER: self._on_transfer,
            Kind.SNAPSHOT_STATUS: self._on_snapshot_status,
        }

    @classmethod
    def open(cls, runtime: Runtime) -> RaftActor:
        ctx = runtime.ctx
        urls = [str(u) for u in ctx.settings.listen_peer_urls]
        relay = _start_relay(runtime, urls)
        try:
            transport = listen(ctx.member_id, urls,
                               relayed_at=f"ipc://{inbound_path(ctx.run_dir)}" if relay else None,
                               route=peertls.dealer_route(ctx.run_dir, relay is not None))
        except ListenError as err:
            if relay is not None:
                relay.close()
            raise Stop("raft actor cannot start", error=str(err)) from err
        runtime.log.info("listening for peers", address=transport.listen_address,
                         tls=relay is not None)
        peers = RaftPeers(ctx.member_id, transport, relay)
        peers.connect((p.member_id, p.peer_urls) for p in ctx.initial_peers)
        if ctx.initial_peers:
            peers.cluster_answer = [ctx.cluster_id, [[p.member_id, list(p.peer_urls)]
                                                     for p in ctx.initial_peers], []]
        return cls(runtime, peers)

    @property
    def started_core(self) -> RaftCore:
        """The core, which start() makes."""
        assert self.core is not None, "start() makes the core"
        return self.core

    # -- start-up ------------------------------------------------------------------

    def start(self) -> None:
        """Wait (bounded) for the WAL's state and the state machine's applied index."""
        state: PersistedState | None = None
        applied: int | None = None
        deadline = self.clock() + START_TIMEOUT_S
        while state is None or applied is None:
            if self.stop.requested:
                raise Stop("raft actor stopped while starting", EXIT_OK)
            if self.clock() > deadline:
                raise Stop("no state from the wal and apply actors", timeout_s=START_TIMEOUT_S)
            for kind, payload in self.inbox.drain(MAX_BATCH_MSGS, POLL_TIMEOUT_MS):
                if kind == Kind.STATE:
                    state = codec.persisted_state_from_wire(payload[0])
                elif kind == Kind.APPLIED:
                    applied = payload[0]
        last = (state.snapshot.meta.index if state.snapshot else 0) + len(state.entries)
        # The store may be ahead of the log (a snapshot's db carries later entries):
        # the core hands those out again and the apply actor skips them.
        self.sm_applied = applied
        self.snapshot_index = state.snapshot.meta.index if state.snapshot else 0
        rng = random.Random(self.ctx.member_id ^ time.time_ns())
        self.core = RaftCore(self.config, rng, state, applied=min(applied, last))
        self.pipeline = WritePipeline(self.ctx.member_id, state.hard_state,
                                      self.core.log.applied)
        self.log.info("raft started", term=state.hard_state.term, commit=self.core.log.committed,
                      last_index=last, applied=applied, voters=sorted(self.core.conf.voters))
        if state.snapshot and applied < state.snapshot.meta.index:
            # A snapshot received from the leader was saved, and the member stopped before
            # the apply actor installed its db file (member/snap/<index>.snap.db, still
            # there): install it before the entries after it (as etcd's
            # recoverSnapshotBackend does at start), or they would follow a gap.
            self.log.info("installing the saved snapshot", index=state.snapshot.meta.index)
            send_or_stop(self.outbox, "apply", Kind.APPLY_SNAPSHOT,
                         codec.snapshot_meta_to_wire(state.snapshot.meta))
        send_or_stop(self.outbox, SUPERVISOR, Kind.READY, NAME)
        self.next_tick = self.clock() + self.tick_s

    # -- the loop --------------------------------------------------------------------

    def wait_ms(self) -> int:
        """Until the next tick is due."""
        return max(0, min(POLL_TIMEOUT_MS, int((self.next_tick - self.clock()) * 1000)))

    def handle(self, batch: Batch) -> None:
        """What came (the inbox's batch, the peers' frames), then the tick if it is
        due, then the Ready."""
        handlers = self._handlers
        for kind, payload in batch:
            handler = handlers.get(kind)
            if handler is not None:
                handler(payload)
        messages, others = self.peers.receive(self.peers.transport.take(MAX_BATCH_MSGS))
        core = self.started_core
        now = self.clock()
        heard = self.metrics.heard
        for m in messages:
            self.heard_at[m.src] = now
            heard(m, self.heartbeats, now)
            core.step(m)
        if others:
            self._offer(Kind.PEER_FRAMES, others)
        if now >= self.next_tick:
            self.metrics.tick_lateness.observe(now - self.next_tick)
            core.tick()
            # One tick per interval; after a stall, do not replay missed ticks in a burst.
            self.next_tick = max(self.next_tick + self.tick_s, now)
        self._flush()
        if now - self.status_at >= STATUS_EVERY_S:
            self._send_status()

    def close(self) -> None:
        self.peers.close()

    def report(self) -> dict[str, object]:
        core = self.core
        if core is None:
            return {}
        return {"term": core.term, "committed": core.log.committed, "applied": core.log.applied}

    def _flush(self) -> None:
        core, pipeline = self.started_core, self.pipeline
        assert pipeline is not None
        sends: list[Message] = []  # one send per destination for the whole flush
        while core.has_ready():
            ready = core.ready()
            actions = pipeline.accept(ready)
            sends.extend(actions.send)
            if self.traces:  # stamped before the sends: the others may be faster
                self._trace(actions)
            self._carry_out(actions)
            self._observe(ready.soft_state)
            core.advance(ready)
            for m in actions.step:
                core.step(m)
        if sends:
            self._send_messages(sends)

    def _send_messages(self, messages: list[Message]) -> None:
        snaps = self.peers.send(messages)
        for late in self.heartbeats.observe(messages, self.clock()):
            self.log.warning(LATE_HEARTBEAT, to=f"{late.to:x}",
                             heartbeat_interval_ms=round(self.tick_s * 1000),
                             expected_duration_ms=round(self.heartbeats.max_gap_s * 1000),
                             exceeded_duration_ms=round(late.exceeded_s * 1000, 1))
        if snaps and not self._offer(Kind.SEND_SNAPSHOT, codec.messages_to_wire(snaps)):
            core = self.started_core
            for m in snaps:  # as a failed stream would: Raft tries again later
                core.report_snapshot(m.dst, False)

    def _carry_out(self, actions: Actions) -> None:
        save = actions.save
        if save is not None:
            send_or_stop(self.outbox, "wal", Kind.SAVE, [
                save.seq,
                codec.hard_state_to_wire(save.hard_state) if save.hard_state else None,
                codec.entries_to_wire(save.entries),
                codec.snapshot_meta_to_wire(save.snapshot.meta) if save.snapshot else None])
        if actions.snapshot_to_apply:
            send_or_stop(self.outbox, "apply", Kind.APPLY_SNAPSHOT,
                         codec.snapshot_meta_to_wire(actions.snapshot_to_apply.meta))
        if actions.apply:
            send_or_stop(self.outbox, "apply", Kind.APPLY, codec.entries_to_wire(actions.apply))
        if actions.read_states:
            send_or_stop(self.outbox, "network", Kind.READ_STATES,
                         [codec.read_state_to_wire(r) for r in actions.read_states])

    def _trace(self, actions: Actions) -> None:
        if actions.save is not None:
            self.traces.saved(actions.save)
        done = self.traces.committed(actions.apply)
        if done:  # before the APPLY, so before the batch's RESPONSES
            self._offer(Kind.TRACE, done)

    def _observe(self, soft: SoftState) -> None:
        if soft == self.soft:
            return
        if soft.leader != self.soft.leader:
            self.log.info("leader changed", leader=f"{soft.leader:x}", term=soft.term,
                          role=soft.role.name)
            if soft.leader != NONE:
                self.metrics.leader_changes.inc()
        self.soft = soft
        self.heartbeats.reset()
        self.status_at = 0.0  # tell the network actor now

    # -- handlers --------------------------------------------------------------------

    def _on_peer(self, payload: Any) -> None:
        core = self.started_core
        for m in codec.messages_from_wire(payload):
            if m.dst == self.ctx.member_id:
                core.step(m)

    def _on_peers(self, payload: Any) -> None:
        table, removed = payload
        self.peers.cluster_answer = [self.ctx.cluster_id, table, removed]
        for member_id, error in self.peers.connect(table).items():
            self.log.error("cannot reach member", peer=f"{member_id:x}", error=error)
        for member_id in removed:
            self.peers.transport.remove_peer(member_id)

    def _on_propose(self, payload: Any) -> None:
        core = self.started_core
        dropped = []
        for item in payload:
            request_id, data = item[0], item[1]
            if len(item) > 2:  # traced (actors/network/trace.py)
                self.traces.received(request_id)
            try:
                core.propose(data)
            except ProposalDropped as err:
                dropped.append([request_id, str(err)])
        if dropped:
            send_or_stop(self.outbox, "network", Kind.DROPPED, dropped)

    def _on_propose_conf_change(self, payload: Any) -> None:
        request_id, data = payload
        try:
            self.started_core.propose_conf_change(ConfChange.decode(data))
        except ProposalDropped as err:
            send_or_stop(self.outbox, "network", Kind.DROPPED, [[request_id, str(err)]])

    def _on_read_index(self, payload: Any) -> None:
        core = self.started_core
        dropped = []
        for context in payload:
            try:
                core.read_index(context)
            except ProposalDropped as err:
                dropped.append([context, str(err)])
        if dropped:
            send_or_stop(self.outbox, "network", Kind.DROPPED, dropped)

    def _on_persisted(self, seq: int) -> None:
        core, pipeline = self.started_core, self.pipeline
        assert pipeline is not None
        actions = pipeline.persisted(seq)
        if self.traces:
            self.traces.persisted(seq)
        for m in actions.step:
            core.step(m)
        if actions.send:
            self._send_messages(list(actions.send))

    def _on_applied(self, payload: Any) -> None:
        self.sm_applied = max(self.sm_applied, payload[0])
        self._maybe_snapshot()

    def _on_transfer(self, target: int) -> None:
        core = self.started_core
        try:
            core.transfer_leader(target)
        except ProposalDropped as err:
            self.log.warning("leader transfer refused", target=f"{target:x}", reason=str(err))

    def _on_snapshot_status(self, payload: Any) -> None:
        core = self.started_core
        core.report_snapshot(payload[0], bool(payload[1]))

    def _maybe_snapshot(self) -> None:
        core = self.started_core
        s = self.ctx.settings
        index = min(self.sm_applied, core.log.applied, core.log.persisted)
        if index - self.snapshot_index < s.snapshot_count:
            return
        snap = core.compact(index, b"", s.snapshot_catchup_entries)
        if snap is None:  # a received snapshot is newer: nothing to do
            return
        self.snapshot_index = index
        send_or_stop(self.outbox, "wal", Kind.SAVE_SNAPSHOT, codec.snapshot_meta_to_wire(snap.meta))
        self.log.info("snapshot", index=index, term=snap.meta.term,
                      kept_from=core.log.first_index)

    def _send_status(self) -> None:
        core = self.started_core
        self.status_at = self.clock()
        self._offer(Kind.STATUS, [
            int(core.role), core.term, core.lead, core.log.committed, core.log.last_index,
            self.sm_applied, sorted(core.conf.voters), sorted(core.conf.learners),
            self._progress(core)])

    def _progress(self, core: RaftCore) -> list[list[Any]]:
        """STATUS's progress: on the leader, each member's match and whether it was
        heard from within ACTIVE_WITHIN_S (etcd's transport.ActiveSince, which its
        strict reconfiguration check reads)."""
        if core.role != Role.LEADER:
            return []
        now = self.clock()
        return [[node, pr.match,
                 node == self.ctx.member_id or now - self.heard_at.get(node, -1e9) < ACTIVE_WITHIN_S]
                for node, pr in sorted(core.prs.items())]

    def _offer(self, kind: Kind, payload: Any) -> bool:
        """Send to the network actor without waiting, for what may be lost: snapshot
        traffic (streams resend, Raft retries), status (it repeats) and traces (a
        diagnosis), so a network actor that falls behind cannot delay a tick."""
        if self.outbox.send("network", kind.value, payload):
            return True
        self.log.warning("network actor queue full; message dropped", kind=kind.value)
        return False
