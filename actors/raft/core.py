"""The Raft consensus core: a pure state machine in the style of etcd's raft library.

Inputs: tick(), step(message), propose(data), propose_conf_change(change),
read_index(context), transfer_leader(to), report_snapshot(to, ok), compact(...).
Output: ready() -> Ready, acknowledged with advance(ready). No clock, no sockets, no
files; randomness only from the injected RNG. See types.Ready for the ordering rules
the caller follows (persist before `after_persist`, step self-addressed messages back).

The role is nothing but which tick and step functions are installed; each message
type has its own handler. Section numbers (§) refer to the Raft paper; "thesis" to
Ongaro's dissertation.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from petcd.storage.raftstate import (NONE, ConfChange, ConfState, Entry, EntryType, HardState,
                                     SnapshotMeta)

from . import quorum
from .log import RaftLog
from .progress import Progress, ProgressState
from .readonly import ReadOnly
from .types import (Message, MessageType as T, PersistedState, ProposalDropped, ReadState, Ready,
                    Role, Snapshot, SoftState)

CAMPAIGN_TRANSFER = b"transfer"  # context of a vote forced by a leader transfer

# Responses that describe the log or the vote: they may leave only once the state
# they describe is durable (etcd raft: "msgsAfterAppend").
_AFTER_PERSIST = frozenset({T.APP_RESP, T.VOTE_RESP, T.PRE_VOTE_RESP})
# Requests forwarded to the leader carry no term: they are local requests, wherever made.
_LOCAL = frozenset({T.PROP, T.READ_INDEX, T.TRANSFER_LEADER})


@dataclass(frozen=True, slots=True)
class RaftConfig:
    id: int  # > 0
    election_ticks: int = 10  # > heartbeat_ticks; timeouts are random in [e, 2e)
    heartbeat_ticks: int = 1
    max_inflight_msgs: int = 256  # unacknowledged appends per follower
    max_msg_entries: int = 4096  # entries per append message
    max_msg_bytes: int = 1 << 20  # entry data per append message (at least one entry)
    max_apply_entries: int = 8192  # committed entries handed out per Ready
    max_pending_reads: int = 4096
    check_quorum: bool = True
    pre_vote: bool = True

    def __post_init__(self) -> None:
        assert self.id > NONE
        assert 0 < self.heartbeat_ticks < self.election_ticks


class RaftCore:
    def __init__(self, config: RaftConfig, rng: random.Random, state: PersistedState,
                 applied: int = 0) -> None:
        """Restore from what was persisted; `applied` is the state machine's own index."""
        self.cfg = config
        self.id = config.id
        self._rng = rng
        self.log = RaftLog(state)
        hs = state.hard_state
        self.term, self.vote = hs.term, hs.vote
        # Entries the state machine applied were committed, even if the hard state
        # carrying that commit index had not reached the disk yet. The caller clamps a
        # state machine that got ahead of our log (it applies committed entries before
        # our own copy of them is durable).
        assert applied <= self.log.last_index, "clamp applied to the persisted log"
        self.log.commit_to(max(applied, self.log.committed))
        self.log.applied = max(applied, self.log.offset)
        self.conf = state.snapshot.meta.conf if state.snapshot else ConfState()
        self._conf_history: list[tuple[int, ConfState]] = [(self.log.offset, self.conf)]
        self.removed = False  # was a member, then applied its own removal (at removal_index)
        self.removal_index = 0
        # A removed leader hands off before it goes quiet: until then it may still lead
        # (without counting itself) so the remaining members learn of the removal.
        self.handed_off = False
        for entry in self.log.entries[:self.log.applied - self.log.offset]:
            if entry.type == EntryType.CONF_CHANGE:
                self._switch_conf(entry.index, ConfChange.decode(entry.data))
        self._prev_hard_state = hs
        self._prev_soft_state = SoftState()
        self._msgs: list[Message] = []
        self._msgs_after_persist: list[Message] = []
        self._read_states: list[ReadState] = []
        self._forward: list[Entry] = []  # proposals waiting to go to the leader
        self._append_to: dict[int, bool] = {}  # peer -> send even if empty
        # Reads queued since the last Ready: one heartbeat round, carrying the newest
        # one's context, confirms them all (ReadOnly.ack releases in arrival order).
        self._reads_to_confirm = False
        self._ready_out = False
        self.prs: dict[int, Progress] = {}
        self.votes: dict[int, bool] = {}
        self.read_only = ReadOnly(config.max_pending_reads)
        self.lead = NONE
        self.lead_transferee = NONE
        self.pending_conf_index = 0
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_ticks = 0
        self.role = Role.FOLLOWER
        self._step: Callable[[Message], None] = self._step_follower
        self._tick: Callable[[], None] = self._tick_election
        self._become_follower(self.term, NONE)

    # -- public inputs -----------------------------------------------------------

    def tick(self) -> None:
        assert not self._ready_out, "advance() the last Ready first"
        self._tick()

    def step(self, m: Message) -> None:
        assert not self._ready_out, "advance() the last Ready first"
        if m.type == T.STORAGE_ACK:
            self._on_storage_ack(m)
            return
        if m.type not in _LOCAL and not self._check_term(m):
            return
        if m.type in (T.VOTE, T.PRE_VOTE):
            self._on_vote_request(m)
        else:
            self._step(m)

    def propose(self, data: bytes) -> None:
        """Propose an entry; raises ProposalDropped when it cannot go anywhere now."""
        self._propose(Entry(0, 0, EntryType.NORMAL, data))

    def propose_conf_change(self, change: ConfChange) -> None:
        if self.role == Role.LEADER and self.pending_conf_index > self.log.applied:
            raise ProposalDropped("a configuration change is already pending")
        self._propose(Entry(0, 0, EntryType.CONF_CHANGE, change.encode()))

    def read_index(self, context: bytes) -> None:
        """Ask for a linearizable read point; answered by a ReadState with `context`."""
        assert not self._ready_out, "advance() the last Ready first"
        if self.role == Role.LEADER:
            self._leader_read_index(context, self.id)
        elif self.lead == NONE:
            raise ProposalDropped("no leader")
        else:
            self._send(Message(T.READ_INDEX, self.id, self.lead, context=context))

    def transfer_leader(self, to: int) -> None:
        assert not self._ready_out, "advance() the last Ready first"
        if self.role == Role.LEADER:
            self._leader_transfer(to)
        elif self.lead == NONE:
            raise ProposalDropped("no leader")
        else:
            self._send(Message(T.TRANSFER_LEADER, self.id, self.lead, target=to))

    def report_snapshot(self, to: int, ok: bool) -> None:
        """The transport finished (ok) or gave up (not ok) sending a snapshot to `to`."""
        pr = self.prs.get(to)
        if self.role != Role.LEADER or pr is None or pr.state != ProgressState.SNAPSHOT:
            return
        if not ok:
            pr.pending_snapshot = 0
        pr.become_probe()
        pr.probe_sent = True  # wait for a heartbeat response before probing again

    def compact(self, index: int, data: bytes, keep_entries: int) -> Snapshot | None:
        """The state machine was snapshotted at `index` (<= applied): keep the snapshot
        for lagging followers and drop log entries up to `index - keep_entries`.
        None if that snapshot would not be newer than the one we hold."""
        meta = SnapshotMeta(index, self.log.term(index) or 0, self._conf_at(index))
        if not self.log.compact(index, meta, data, keep_entries):
            return None
        self._conf_history = [(i, c) for i, c in self._conf_history if i >= index] or \
            [(index, meta.conf)]
        return self.log.snapshot

    # -- output ------------------------------------------------------------------

    def soft_state(self) -> SoftState:
        return SoftState(self.role, self.lead, self.term)

    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.committed)

    def has_ready(self) -> bool:
        log = self.log
        return bool(self._msgs or self._msgs_after_persist or self._read_states
                    or self._forward or self._append_to or self._reads_to_confirm
                    or log.persisting < log.last_index or log.unstable_snapshot
                    or log.snapshot_to_apply
                    or log.apply_limit() > log.applied
                    or self.hard_state() != self._prev_hard_state
                    or self.soft_state() != self._prev_soft_state)

    def ready(self) -> Ready:
        assert not self._ready_out, "advance() the last Ready first"
        self._flush()
        log = self.log
        hs = self.hard_state()
        entries = log.unpersisted_entries()
        snapshot = log.unstable_snapshot
        after = self._msgs_after_persist
        # An ack from before a term change is ignored (_on_storage_ack), so a term change
        # carries a fresh one while anything handed out is unacknowledged; its Ready is
        # always saved (a new term must be durable), so that ack comes back.
        new_term = hs.term != self._prev_hard_state.term
        if entries or snapshot or (new_term and log.unacknowledged()):
            after.append(Message(T.STORAGE_ACK, self.id, self.id, term=self.term,
                                 index=log.last_index, log_term=log.last_term))
        rd = Ready(
            soft_state=self.soft_state(),
            hard_state=hs if hs != self._prev_hard_state else None,
            entries=entries, snapshot=snapshot,
            send_now=tuple(self._msgs), after_persist=tuple(after),
            snapshot_to_apply=log.snapshot_to_apply,
            committed=log.committed_to_apply(self.cfg.max_apply_entries),
            read_states=tuple(self._read_states))
        self._msgs, self._msgs_after_persist, self._read_states = [], [], []
        self._ready_out = True
        return rd

    def advance(self, rd: Ready) -> None:
        """The caller took `rd`: its entries are on their way to disk, its committed
        entries on their way to the state machine."""
        assert self._ready_out, "advance() without ready()"
        self._ready_out = False
        log = self.log
        self._prev_soft_state = rd.soft_state
        if rd.hard_state:
            self._prev_hard_state = rd.hard_state
        if rd.entries:
            log.persisting = rd.entries[-1].index
        if rd.snapshot:
            log.unstable_snapshot, log.persisting_snapshot = None, rd.snapshot
        if rd.snapshot_to_apply:
            log.snapshot_to_apply = None
            log.applied = rd.snapshot_to_apply.meta.index
        for entry in rd.committed:
            log.applied = entry.index
            if entry.type == EntryType.CONF_CHANGE:
                self._apply_conf_change(entry)
        log.check()

    # -- term bookkeeping (§5.1) -------------------------------------------------

    def _check_term(self, m: Message) -> bool:
        """Handle a message's term; False if the message must be ignored."""
        if m.term > self.term:
            if m.type in (T.VOTE, T.PRE_VOTE) and self._in_lease(m):
                return False
            if m.type == T.PRE_VOTE or (m.type == T.PRE_VOTE_RESP and not m.reject):
                return True  # a pre-vote never changes terms; a won one is counted below
            lead = m.src if m.type in (T.APP, T.HEARTBEAT, T.SNAP) else NONE
            self._become_follower(m.term, lead)
            return True
        if m.term < self.term:
            if m.type in (T.APP, T.HEARTBEAT):
                # A stale leader (e.g. back from a partition) learns the new term and
                # steps down; without this, pre-vote and check-quorum could strand it.
                self._send(Message(T.APP_RESP, self.id, m.src, term=self.term))
            elif m.type == T.PRE_VOTE:
                self._send(Message(T.PRE_VOTE_RESP, self.id, m.src, term=self.term,
                                   reject=True))
            return False
        return True

    def _in_lease(self, m: Message) -> bool:
        """Check quorum: ignore votes while we heard from a live leader recently (thesis §4.2.3)."""
        if m.context == CAMPAIGN_TRANSFER:
            return False
        return (self.cfg.check_quorum and self.lead != NONE
                and self.election_elapsed < self.cfg.election_ticks)

    def _on_vote_request(self, m: Message) -> None:
        pre = m.type == T.PRE_VOTE
        resp = T.PRE_VOTE_RESP if pre else T.VOTE_RESP
        can_vote = (self.vote == m.src or (self.vote == NONE and self.lead == NONE)
                    or (pre and m.term > self.term))
        # A learner answers like anyone: it may have been promoted without knowing it
        # yet, and the candidate may need its vote. A candidate counts only the votes
        # of voters in its own configuration (quorum.vote_result), so a learner's vote
        # never elects anyone.
        if can_vote and self.log.is_up_to_date(m.index, m.log_term):
            self._send(Message(resp, self.id, m.src, term=m.term))
            if not pre:
                self.election_elapsed = 0
                self.vote = m.src
        else:
            self._send(Message(resp, self.id, m.src, term=self.term, reject=True))

    # -- roles --------------------------------------------------------------------

    def _reset(self, term: int) -> None:
        if term != self.term:
            self.term, self.vote = term, NONE
        self.lead = NONE
        self.election_elapsed = self.heartbeat_elapsed = 0
        e = self.cfg.election_ticks
        self.randomized_election_ticks = e + self._rng.randrange(e)
        self.lead_transferee = NONE
        self.votes = {}
        self.prs = {}
        self.read_only.clear()
        self._append_to = {}
        self._reads_to_confirm = False

    def _become_follower(self, term: int, lead: int) -> None:
        self._reset(term)
        self.lead = lead
        self.role = Role.FOLLOWER
        self._step, self._tick = self._step_follower, self._tick_election

    def _become_pre_candidate(self) -> None:
        # Term and vote stay: a pre-vote round changes nothing durable (thesis §9.6).
        self.votes, self.lead = {}, NONE
        self.role = Role.PRE_CANDIDATE
        self._step, self._tick = self._step_candidate, self._tick_election

    def _become_candidate(self) -> None:
        self._reset(self.term + 1)
        self.vote = self.id
        self.role = Role.CANDIDATE
        self._step, self._tick = self._step_candidate, self._tick_election

    def _become_leader(self) -> None:
        self._reset(self.term)
        self.lead = self.id
        self.role = Role.LEADER
        self._step, self._tick = self._step_leader, self._tick_heartbeat
        last = self.log.last_index
        for node in self.conf.members():
            self.prs[node] = Progress(last + 1, self.cfg.max_inflight_msgs,
                                      node in self.conf.learners)
        me = self.prs.get(self.id)  # absent while a removed leader hands off
        if me is not None:
            me.maybe_update(self.log.persisted)
            me.become_replicate()
            me.recent_active = True
        # No configuration change until everything before this term is applied
        # (guards the single-server-change bug, raft-dev 2015).
        self.pending_conf_index = last
        # §5.4.2 / §8: commit a no-op of our own term; it commits every earlier entry.
        self._append([Entry(0, 0, EntryType.NORMAL, b"")])

    def _promotable(self) -> bool:
        return self.id in self.conf.voters or (self.removed and not self.handed_off)

    # -- ticks --------------------------------------------------------------------

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self._promotable() and self.election_elapsed >= self.randomized_election_ticks:
            self.election_elapsed = 0
            self._campaign(pre=self.cfg.pre_vote, transfer=False)

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.cfg.election_ticks:
            self.election_elapsed = 0
            if self.cfg.check_quorum and not self._quorum_active():
                self._become_follower(self.term, NONE)  # thesis §6.2: we may be deposed
                return
            self.lead_transferee = NONE  # a transfer must finish within an election timeout
        if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks:
            self.heartbeat_elapsed = 0
            self._bcast_heartbeat(self.read_only.last_context())

    def _quorum_active(self) -> bool:
        alive = {n for n, pr in self.prs.items() if pr.recent_active or n == self.id}
        for node, pr in self.prs.items():
            pr.recent_active = node == self.id
        return quorum.has_quorum(self.conf.voters, alive)

    # -- elections (§5.2) ----------------------------------------------------------

    def _campaign(self, pre: bool, transfer: bool) -> None:
        if pre:
            self._become_pre_candidate()
            kind, term = T.PRE_VOTE, self.term + 1
        else:
            self._become_candidate()
            kind, term = T.VOTE, self.term
        context = CAMPAIGN_TRANSFER if transfer else b""
        for node in sorted(self.conf.voters):
            if node == self.id:
                continue
            self._send(Message(kind, self.id, node, term=term, index=self.log.last_index,
                               log_term=self.log.last_term, context=context))
        if pre:
            self._poll(self.id, True)
        else:
            # Our own vote counts only once it is durable: stepped back after persisting.
            self._msgs_after_persist.append(
                Message(T.VOTE_RESP, self.id, self.id, term=self.term))

    def _poll(self, node: int, granted: bool) -> None:
        self.votes.setdefault(node, granted)
        result = quorum.vote_result(self.conf.voters, self.votes)
        if result == quorum.VoteResult.WON:
            if self.role == Role.PRE_CANDIDATE:
                self._campaign(pre=False, transfer=False)
            else:
                self._become_leader()
        elif result == quorum.VoteResult.LOST:
            self._become_follower(self.term, NONE)

    def _step_candidate(self, m: Message) -> None:
        mine = T.PRE_VOTE_RESP if self.role == Role.PRE_CANDIDATE else T.VOTE_RESP
        if m.type == mine:
            self._poll(m.src, not m.reject)
        elif m.type in (T.APP, T.HEARTBEAT, T.SNAP):
            self._become_follower(m.term, m.src)  # a leader of our term exists
            self._step_follower(m)
        elif m.type == T.READ_INDEX_RESP:
            self._read_states.append(ReadState(m.index, m.context))

    # -- follower -------------------------------------------------------------------

    def _step_follower(self, m: Message) -> None:
        handler = _FOLLOWER_HANDLERS.get(m.type)
        if handler is not None:
            handler(self, m)

    def _follower_from_leader(self, m: Message) -> None:
        self.election_elapsed = 0
        self.lead = m.src
        if m.type == T.APP:
            self._handle_append(m)
        elif m.type == T.HEARTBEAT:
            self._handle_heartbeat(m)
        else:
            self._handle_snapshot(m)

    def _follower_forward(self, m: Message) -> None:
        if self.lead != NONE:
            self._send(Message(m.type, m.src, self.lead, entries=m.entries,
                               context=m.context, target=m.target))

    def _follower_timeout_now(self, m: Message) -> None:
        if self._promotable():
            self._campaign(pre=False, transfer=True)  # thesis §3.10: skip pre-vote

    def _follower_read_index_resp(self, m: Message) -> None:
        self._read_states.append(ReadState(m.index, m.context))

    def _handle_append(self, m: Message) -> None:
        log = self.log
        if m.index < log.committed:
            self._send(Message(T.APP_RESP, self.id, m.src, term=self.term, index=log.committed,
                               commit=log.committed))
            return
        last_new = log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if last_new is not None:
            if not m.commit_only:
                self._send(Message(T.APP_RESP, self.id, m.src, term=self.term,
                                   index=last_new, commit=log.committed))
            return
        # §5.3 optimisation: hint where our log may match, so the leader skips a term.
        hint = log.find_conflict_by_term(min(m.index, log.last_index), m.log_term)
        self._send(Message(T.APP_RESP, self.id, m.src, term=self.term, index=m.index,
                           reject=True, reject_hint=hint, log_term=log.term(hint) or 0))

    def _handle_heartbeat(self, m: Message) -> None:
        self.log.commit_to(m.commit)
        self._send(Message(T.HEARTBEAT_RESP, self.id, m.src, term=self.term,
                           context=m.context, commit=self.log.committed))

    def _handle_snapshot(self, m: Message) -> None:
        snap = m.snapshot
        assert snap is not None
        meta = snap.meta
        log = self.log
        # The snapshot may predate our own addition (the leader's latest snapshot is
        # older than the change that added us): accept it anyway; we stay passive until
        # we apply the later entry that adds us.
        if meta.index > log.committed and log.match_term(meta.index, meta.term):
            log.commit_to(meta.index)  # we already have it: fast-forward the commit
        elif meta.index > log.committed:
            log.restore(snap)
            self.conf = meta.conf
            self._conf_history = [(meta.index, meta.conf)]
        self._send(Message(T.APP_RESP, self.id, m.src, term=self.term, index=log.committed,
                           commit=log.committed))

    # -- leader ---------------------------------------------------------------------

    def _step_leader(self, m: Message) -> None:
        handler = _LEADER_HANDLERS.get(m.type)
        if handler is not None:
            handler(self, m)

    def _leader_prop(self, m: Message) -> None:
        if self.lead_transferee != NONE or self.removed:
            return  # dropped: the proposer retries after the transfer
        entries = []
        for e in m.entries:
            if e.type == EntryType.CONF_CHANGE and self.pending_conf_index > self.log.applied:
                e = Entry(0, 0, EntryType.NORMAL, b"")  # refused: keep the slot, drop the change
            entries.append(e)
        self._append(entries)

    def _append(self, entries: list[Entry]) -> None:
        last, term = self.log.last_index, self.term
        placed = [Entry(term, last + n, e.type, e.data) for n, e in enumerate(entries, 1)]
        for e in placed:
            if e.type == EntryType.CONF_CHANGE:
                self.pending_conf_index = e.index
        self.log.append(placed)
        self._request_bcast()

    def _leader_app_resp(self, m: Message) -> None:
        pr = self.prs.get(m.src)
        if pr is None:
            return
        pr.recent_active = True
        if m.reject:
            hint = m.reject_hint
            if m.log_term > 0:
                hint = self.log.find_conflict_by_term(hint, m.log_term)
            if pr.maybe_decrease_to(m.index, hint):
                if pr.state == ProgressState.REPLICATE:
                    pr.become_probe()
                self._append_to[m.src] = True
            return
        pr.commit = max(pr.commit, m.commit)
        self._maybe_finish_hand_off()
        if self.role != Role.LEADER:
            return
        was_paused = pr.is_paused()
        if not pr.maybe_update(m.index):
            return
        if pr.state == ProgressState.PROBE:
            pr.become_replicate()
        elif pr.state == ProgressState.SNAPSHOT and pr.match >= pr.pending_snapshot:
            pr.become_probe()
            pr.become_replicate()
        else:
            pr.inflights.free_le(m.index)
        if self._maybe_commit():
            self._request_bcast()
        elif was_paused or pr.next <= self.log.last_index:
            self._append_to.setdefault(m.src, False)
        if m.src == self.lead_transferee and pr.match == self.log.last_index:
            self._send(Message(T.TIMEOUT_NOW, self.id, m.src, term=self.term))

    def _leader_heartbeat_resp(self, m: Message) -> None:
        pr = self.prs.get(m.src)
        if pr is None:
            return
        pr.recent_active = True
        pr.probe_sent = False
        pr.commit = max(pr.commit, m.commit)
        self._maybe_finish_hand_off()
        if self.role != Role.LEADER:
            return
        if pr.state == ProgressState.REPLICATE and pr.inflights.full():
            pr.inflights.free_first()  # an append may have been lost: make room to resend
        if pr.match < self.log.last_index:
            self._append_to[m.src] = True
        if m.context:
            for req in self.read_only.ack(m.src, m.context, self.conf.voters):
                self._answer_read(req.src, req.index, req.context)

    def _leader_read_index_msg(self, m: Message) -> None:
        self._leader_read_index(m.context, m.src)

    def _leader_transfer_msg(self, m: Message) -> None:
        self._leader_transfer(m.target)

    def _leader_read_index(self, context: bytes, src: int) -> None:
        # §6.4: the commit index is a safe read point only once an entry of this term
        # is committed; until then requests wait (bounded) for the no-op to commit.
        if not self._committed_in_term():
            ok = self.read_only.add(context, src, 0, self.id, waiting=True)
        elif self.conf.voters == {self.id}:
            self._answer_read(src, self.log.committed, context)
            return
        else:
            ok = self.read_only.add(context, src, self.log.committed, self.id, waiting=False)
            self._reads_to_confirm |= ok
        if not ok and src == self.id:
            raise ProposalDropped("too many pending reads")

    def _committed_in_term(self) -> bool:
        return self.log.term(self.log.committed) == self.term

    def _answer_read(self, src: int, index: int, context: bytes) -> None:
        if src == self.id:
            self._read_states.append(ReadState(index, context))
        else:
            self._send(Message(T.READ_INDEX_RESP, self.id, src, term=self.term,
                               index=index, context=context))

    def _leader_transfer(self, to: int) -> None:
        if to == self.id or to not in self.conf.voters:
            return
        if self.lead_transferee == to:
            return
        self.lead_transferee = to
        self.election_elapsed = 0
        if self.prs[to].match == self.log.last_index:
            self._send(Message(T.TIMEOUT_NOW, self.id, to, term=self.term))
        else:
            self._append_to[to] = True  # bring it up to date first (thesis §3.10)

    def _maybe_commit(self) -> bool:
        """§5.3/§5.4.2: commit what a majority has, if it is of our own term."""
        match = {n: pr.match for n, pr in self.prs.items()}
        index = quorum.committed_index(self.conf.voters, match)
        if index <= self.log.committed or self.log.term(index) != self.term:
            return False
        self.log.commit_to(index)
        if self.read_only.waiting:
            self._release_waiting_reads()
        return True

    def _release_waiting_reads(self) -> None:
        """Our no-op committed: reads that waited for it get the now-safe commit index."""
        for context, src in self.read_only.release_waiting():
            if self.conf.voters == {self.id}:
                self._answer_read(src, self.log.committed, context)
            else:
                self._reads_to_confirm |= self.read_only.add(
                    context, src, self.log.committed, self.id, False)

    def _request_bcast(self) -> None:
        for node in self.prs:
            if node != self.id:
                self._append_to[node] = True

    def _bcast_heartbeat(self, context: bytes) -> None:
        for node, pr in self.prs.items():
            if node != self.id:
                commit = min(pr.match, self.log.committed)
                self._send(Message(T.HEARTBEAT, self.id, node, term=self.term,
                                   commit=commit, context=context))

    def _flush(self) -> None:
        """Send the appends that steps and proposals asked for: one batch per peer."""
        if self._forward:
            if self.lead != NONE and self.role != Role.LEADER:
                self._send(Message(T.PROP, self.id, self.lead, entries=tuple(self._forward)))
            self._forward = []
        if self.role != Role.LEADER:
            self._append_to = {}
            return
        if self._reads_to_confirm:
            self._reads_to_confirm = False
            self._bcast_heartbeat(self.read_only.last_context())
        for node, send_if_empty in self._append_to.items():
            if node in self.prs and self._send_append(node, send_if_empty):
                while self._send_append(node, False):
                    pass
        self._append_to = {}

    def _send_append(self, to: int, send_if_empty: bool) -> bool:
        pr = self.prs[to]
        if pr.is_paused():
            return False
        log = self.log
        prev_index = pr.next - 1
        prev_term = log.term(prev_index)
        if prev_term is None:
            return self._send_snapshot(to, pr)
        entries: tuple[Entry, ...] = ()
        if pr.next <= log.last_index:
            entries = log.slice(pr.next, self.cfg.max_msg_entries, self.cfg.max_msg_bytes)
        if not entries and not send_if_empty:
            return False
        commit_only = (not entries and pr.state == ProgressState.REPLICATE
                       and pr.match == prev_index)
        self._send(Message(T.APP, self.id, to, term=self.term, index=prev_index,
                           log_term=prev_term, entries=entries, commit=log.committed,
                           commit_only=commit_only))
        pr.sent_entries(len(entries), entries[-1].index if entries else prev_index)
        return pr.state == ProgressState.REPLICATE and bool(entries)

    def _send_snapshot(self, to: int, pr: Progress) -> bool:
        snap = self.log.snapshot
        if not pr.recent_active or snap is None:
            return False
        self._send(Message(T.SNAP, self.id, to, term=self.term, snapshot=snap))
        pr.become_snapshot(snap.meta.index)
        return False

    # -- persistence and configuration ---------------------------------------------

    def _on_storage_ack(self, m: Message) -> None:
        """Everything handed out before the ack was issued (in term m.term) is durable.

        An ack of an older term is ignored, as etcd ignores a MsgStorageAppendResp of
        an older term (the "ABA problem", rawnode.go): since it was issued, leaders of
        newer terms may have replaced our tail and then put back the very (index, term)
        it names, with the save of the replacement still to reach the disk after the
        acknowledged one; the match would count entries that save is about to
        overwrite. Only a leader of a newer term replaces our entries (within a term
        the tail only converges on that term's leader's log), so an ack of the current
        term is safe; and every term change's Ready carries a fresh one (ready()).
        """
        assert m.term <= self.term, "an ack from the future"
        if m.term < self.term:
            return
        self.log.stable_to(m.index, m.log_term)
        me = self.prs.get(self.id)
        if self.role == Role.LEADER and me is not None and me.maybe_update(self.log.persisted):
            if self._maybe_commit():
                self._request_bcast()

    def _propose(self, entry: Entry) -> None:
        assert not self._ready_out, "advance() the last Ready first"
        if self.removed:
            raise ProposalDropped("this member was removed from the cluster")
        if self.role == Role.LEADER:
            if self.lead_transferee != NONE:
                raise ProposalDropped("leader transfer in progress")
            self._append([entry])
        elif self.lead == NONE:
            raise ProposalDropped("no leader")
        else:
            self._forward.append(entry)

    def _apply_conf_change(self, entry: Entry) -> None:
        """A configuration change takes effect when applied (thesis §4.1 variant, as etcd)."""
        cc = ConfChange.decode(entry.data)
        self._switch_conf(entry.index, cc)
        if self.role != Role.LEADER:
            return
        self._sync_progress()
        if self.lead_transferee not in self.conf.voters:
            self.lead_transferee = NONE
        if self._maybe_commit():  # the quorum may have shrunk
            self._request_bcast()
        self._maybe_finish_hand_off()

    def _switch_conf(self, index: int, cc: ConfChange) -> None:
        was_member = self.id in self.conf.members()
        self.conf = self.conf.apply(cc)
        self._conf_history.append((index, self.conf))
        if was_member and self.id not in self.conf.members():
            self.removed, self.removal_index = True, index

    def _sync_progress(self) -> None:
        for node in list(self.prs):
            if node not in self.conf.members():
                del self.prs[node]
        for node in self.conf.members():
            pr = self.prs.get(node)
            if pr is None:
                pr = self.prs[node] = Progress(self.log.last_index + 1,
                                               self.cfg.max_inflight_msgs)
                pr.recent_active = True  # give it an election timeout to answer
                self._append_to[node] = True
            pr.is_learner = node in self.conf.learners

    def _maybe_finish_hand_off(self) -> None:
        """A removed leader goes quiet once a majority of the remaining voters know the
        removal is committed: they apply it and elect a leader among themselves. Going
        quiet earlier can strand a voter that still counts us (e.g. the last member of
        a 2-member cluster), since our longer log would refuse it our vote."""
        if self.role != Role.LEADER or not self.removed or self.handed_off:
            return
        informed = [n for n in self.conf.voters
                    if n in self.prs and self.prs[n].commit >= self.removal_index]
        if not quorum.has_quorum(self.conf.voters, informed):
            return
        self.handed_off = True
        best = max(informed, key=lambda n: self.prs[n].match)
        if self.prs[best].match == self.log.last_index:
            self._send(Message(T.TIMEOUT_NOW, self.id, best, term=self.term))
        self._become_follower(self.term, NONE)

    def _conf_at(self, index: int) -> ConfState:
        conf = self._conf_history[0][1]
        for at, c in self._conf_history:
            if at <= index:
                conf = c
        return conf

    def _send(self, m: Message) -> None:
        if m.type in _AFTER_PERSIST:
            self._msgs_after_persist.append(m)
        else:
            self._msgs.append(m)


_FOLLOWER_HANDLERS: dict[T, Callable[[RaftCore, Message], None]] = {
    T.APP: RaftCore._follower_from_leader,
    T.HEARTBEAT: RaftCore._follower_from_leader,
    T.SNAP: RaftCore._follower_from_leader,
    T.PROP: RaftCore._follower_forward,
    T.READ_INDEX: RaftCore._follower_forward,
    T.TRANSFER_LEADER: RaftCore._follower_forward,
    T.TIMEOUT_NOW: RaftCore._follower_timeout_now,
    T.READ_INDEX_RESP: RaftCore._follower_read_index_resp,
}

_LEADER_HANDLERS: dict[T, Callable[[RaftCore, Message], None]] = {
    T.PROP: RaftCore._leader_prop,
    T.APP_RESP: RaftCore._leader_app_resp,
    T.HEARTBEAT_RESP: RaftCore._leader_heartbeat_resp,
    T.READ_INDEX: RaftCore._leader_read_index_msg,
    T.TRANSFER_LEADER: RaftCore._leader_transfer_msg,
}
