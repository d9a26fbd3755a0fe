"""The write pipeline: where each part of a Ready goes, and when. Pure: no sockets, no
clock, no files.

The raft actor (actor.py) and the simulator (tests/sim/harness.py) both drive this one
object, so the ordering production runs is the ordering the seeded simulation checks:

    ready = core.ready()
    actions = pipeline.accept(ready)
        send actions.send; hand actions.save (if any) to storage;
        apply actions.snapshot_to_apply, then actions.apply; answer actions.read_states
    core.advance(ready)
    step actions.step back into the core
    ...
    storage: every save up to seq is durable
    actions = pipeline.persisted(seq)
        step actions.step back into the core; send actions.send

The rules, from etcd's raft (doc.go "asynchronous storage writes", rawnode.go) and the
Raft thesis (§10.2.1):

1. `send_now` leaves at once. A leader's appends go out before its own fsync: it counts
   itself towards a quorum only when its own STORAGE_ACK comes back, so sending early
   costs no safety and overlaps the followers' fsyncs with its own.
2. Saves are numbered 1, 2, ... and storage makes them durable in that order (the WAL
   is one append-only stream with group commit): one acknowledgement of seq n covers
   every save up to n.
3. `after_persist` waits until the save issued with its Ready, and so every save before
   it, is durable: votes and append responses promise that the state they describe
   survives a crash. Those addressed to this member (STORAGE_ACK, a candidate's own
   vote) are how the core learns what is durable: they are stepped back, not sent.
4. A Ready is saved when it carries entries, a snapshot, or a new term or vote
   (raftstate.must_sync). A term or vote is never announced ahead of the disk: a member
   restarted with an older term or no vote could vote twice in one term.
5. A Ready whose only durable change is the commit index is not saved on its own: a
   commit index may be lost (a restarted member learns it again from the leader, and
   counts what its store applied as committed), so a heartbeat's commit costs no WAL
   round trip. Its hard state rides with the next save; its `after_persist` waits for
   the last save under way (everything those messages describe was handed out in it or
   before it), or leaves at once when no save is under way.
6. Apply: `snapshot_to_apply` first, then committed entries in log order, contiguous
   (asserted). They may reach the state machine before this member's own copy is
   durable: committed means durable on a quorum.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from petcd.storage.raftstate import NONE, Entry, HardState, must_sync

from .types import Message, ReadState, Ready, Snapshot

# A backstop, not the working limit: the WAL actor's inbox fills first (actors/bus/
# sockets.py: about 2 x 10,000 messages in flight before a send fails, and then the raft
# actor stops, crash-only). The simulator keeps a few dozen in flight.
MAX_SAVES_IN_FLIGHT = 1 << 16


@dataclass(frozen=True, slots=True)
class SaveRequest:
    """Make this durable after every earlier save, then acknowledge `seq`."""

    seq: int  # > 0, one more than the save before
    hard_state: HardState | None  # the newest: commit-only changes of earlier Readies included
    entries: tuple[Entry, ...]  # contiguous; may overwrite a conflicting tail from entries[0].index
    snapshot: Snapshot | None  # received from the leader; replaces the log before `entries`

    def __post_init__(self) -> None:
        assert self.seq > 0
        assert self.hard_state is not None or self.entries or self.snapshot, "an empty save"
        if self.entries:
            first, last = self.entries[0].index, self.entries[-1].index
            assert last - first == len(self.entries) - 1, "entries are contiguous"
            assert self.snapshot is None or first == self.snapshot.meta.index + 1, \
                "entries follow the snapshot they come with"


@dataclass(frozen=True, slots=True)
class Actions:
    """What the driver does now; each field in the order given in the module docstring."""

    save: SaveRequest | None = None
    send: tuple[Message, ...] = ()  # to other members (m.dst), in this order
    step: tuple[Message, ...] = ()  # back into the core, after core.advance(ready)
    snapshot_to_apply: Snapshot | None = None
    apply: tuple[Entry, ...] = ()  # committed entries, in log order, after the snapshot
    read_states: tuple[ReadState, ...] = ()


NOTHING = Actions()


class WritePipeline:
    """Orders one member's Ready output around its storage (rules in the module docstring)."""

    def __init__(self, node_id: int, hard_state: HardState, applied: int) -> None:
        """`hard_state`: what storage holds at start; `applied`: the core's applied index
        (the last one it will not hand out to apply again)."""
        assert node_id > NONE
        self.node_id = node_id
        self._issued_seq = 0  # the last save handed out
        self._durable_seq = 0  # invariant: _durable_seq <= _issued_seq
        self._saved = hard_state  # the last hard state handed to storage
        self._unsaved: HardState | None = None  # newer than _saved in its commit index only
        # (seq, after_persist waiting for it): one per save in flight, seqs increasing.
        self._held: deque[tuple[int, list[Message]]] = deque()
        self._applied = applied  # the last index handed out to apply

    @property
    def issued_seq(self) -> int:
        return self._issued_seq

    @property
    def durable_seq(self) -> int:
        return self._durable_seq

    @property
    def saves_in_flight(self) -> int:
        return self._issued_seq - self._durable_seq

    def accept(self, ready: Ready) -> Actions:
        """What to do with `ready` (just taken from core.ready(), not yet advanced)."""
        assert all(m.dst != self.node_id for m in ready.send_now), "send_now is for peers"
        self._check_apply_order(ready)
        save = self._save(ready)
        send: list[Message] = list(ready.send_now)
        step: list[Message] = []
        if save is not None:
            self._held.append((save.seq, list(ready.after_persist)))
        elif self._held:
            self._held[-1][1].extend(ready.after_persist)  # rule 5: the last save under way
        else:
            self._release(ready.after_persist, send, step)  # nothing under way: all durable
        self._check()
        return Actions(save, tuple(send), tuple(step), ready.snapshot_to_apply,
                       ready.committed, ready.read_states)

    def persisted(self, seq: int) -> Actions:
        """Storage made every save up to `seq` durable: release what waited for them."""
        assert self._durable_seq < seq <= self._issued_seq, (
            f"ack {seq}: acknowledged {self._durable_seq}, issued {self._issued_seq}")
        self._durable_seq = seq
        send: list[Message] = []
        step: list[Message] = []
        while self._held and self._held[0][0] <= seq:
            self._release(self._held.popleft()[1], send, step)
        self._check()
        return Actions(send=tuple(send), step=tuple(step)) if send or step else NOTHING

    # -- the rules -------------------------------------------------------------------

    def _needs_save(self, ready: Ready) -> bool:
        """Rule 4: entries, a snapshot, a new term or vote; not a commit index alone."""
        return ready.snapshot is not None or must_sync(self._saved, ready.hard_state,
                                                       len(ready.entries))

    def _save(self, ready: Ready) -> SaveRequest | None:
        hard_state = ready.hard_state
        if hard_state is not None:
            assert hard_state.term >= self._saved.term, "a term never goes back"
        if not self._needs_save(ready):
            if hard_state is not None:
                self._unsaved = hard_state  # rule 5: rides with the next save
            return None
        hard_state = hard_state or self._unsaved
        self._issued_seq += 1
        assert self.saves_in_flight <= MAX_SAVES_IN_FLIGHT, "storage stopped acknowledging"
        if hard_state is not None:
            self._saved = hard_state
        self._unsaved = None
        return SaveRequest(self._issued_seq, hard_state, ready.entries, ready.snapshot)

    def _release(self, messages: list[Message] | tuple[Message, ...], send: list[Message],
                 step: list[Message]) -> None:
        """Everything `messages` depend on is durable: step back ours, send the rest."""
        for m in messages:
            (step if m.dst == self.node_id else send).append(m)

    def _check_apply_order(self, ready: Ready) -> None:
        """Rule 6: a snapshot, then the entries right after what was handed out before."""
        if ready.snapshot_to_apply is not None:
            index = ready.snapshot_to_apply.meta.index
            assert index > self._applied, f"snapshot {index} at or below applied {self._applied}"
            self._applied = index
        if ready.committed:
            first, last = ready.committed[0].index, ready.committed[-1].index
            assert first == self._applied + 1, f"apply {first} after {self._applied}"
            assert last - first == len(ready.committed) - 1, "committed entries are contiguous"
            self._applied = last

    def _check(self) -> None:
        assert 0 <= self._durable_seq <= self._issued_seq
        assert len(self._held) == self.saves_in_flight, "one held list per save in flight"
        unsaved = self._unsaved
        assert unsaved is None or (unsaved.term, unsaved.vote) == (self._saved.term,
                                                                   self._saved.vote)
