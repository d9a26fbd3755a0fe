"""Is one key's history linearizable? Wing & Gong's search with Lowe's memoization.

The answered ops' invocations and responses are laid out in time order in a
doubly-linked list. The ops that may go next are those invoked before the first
response still in the list. The search tries each in turn: it linearizes the op (takes
it out of the list, applying it to the register) and goes on from there; when none
can go next, it undoes its last choice (putting the op back in place: dancing links)
and tries the next one. The history is linearizable once every answered op is taken
out (Wing & Gong 1993; Lowe 2017, "Testing for linearizability").

Memoization (Lowe): the set of ops taken out (a bitmask) and the register's value
say all that matters for the rest of the search; a pair seen before is not explored
again. The number of pairs is the work done, and it is bounded: past `max_states`
the key is UNDECIDED rather than the test hanging.

Two shortcuts, neither losing a linearization:
- a read that may go next and sees the current value is taken at once, not as a
  choice: it changes nothing, so a linearization with it later is one with it now;
- an op with no answer (in a list of its own: it has no response) may take effect at
  any time after its invocation, or never, so it is tried only after the answered
  ops that may go next: most are never needed, and a search that linearizes them
  eagerly wanders through every subset of them.
At equal times an invocation comes before a response: two such ops count as
concurrent, the benefit of the doubt going to the server.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from .history import Kind, Op, Outcome
from .register import State, step, written

CONTEXT_OPS = 3  # of the longest linearized prefix, shown in an explanation


class Status(enum.Enum):
    OK = "linearizable"
    VIOLATION = "not linearizable"
    UNDECIDED = "undecided"


@dataclass(frozen=True, slots=True)
class KeyVerdict:
    key: Hashable
    status: Status
    ops: int  # searched (failed ops and unanswered reads left out)
    states: int  # distinct (linearized set, value) pairs explored
    explanation: str = ""  # why not, for a VIOLATION or UNDECIDED

    def __str__(self) -> str:
        head = f"key {self.key!r}: {self.status.value} ({self.ops} ops, {self.states} states)"
        return head + (f"\n{self.explanation}" if self.explanation else "")


class _Entry:
    """An invocation (match: its response, if answered) or a response (match: None)."""

    __slots__ = ("op", "index", "is_call", "match", "prev", "next")

    def __init__(self, op: Op | None, index: int, is_call: bool) -> None:
        self.op, self.index, self.is_call = op, index, is_call
        self.match: _Entry | None = None
        self.prev: _Entry | None = None
        self.next: _Entry | None = None


@dataclass(slots=True)
class _Frame:
    """One state of the search: the ops that may go next, and how to get back."""

    candidates: list[_Entry]  # empty: a state tried before
    response: _Entry | None  # the first response left: its op must go by then
    base: int  # how many ops were taken out before the choice that led here
    tried: int = 0


def search(key: Hashable, ops: Sequence[Op], initial: State, max_states: int) -> KeyVerdict:
    assert all(op.key == key for op in ops), f"ops of another key than {key!r}"
    walk = _Search(ops, initial)
    frames = [walk.enter(base=0)]
    while walk.remaining:
        if len(walk.seen) > max_states:
            return KeyVerdict(key, Status.UNDECIDED, len(ops), len(walk.seen),
                              f"gave up after {max_states} states; deepest point:\n{walk.stuck}")
        frame = frames[-1]
        if frame.tried == len(frame.candidates):
            walk.stuck.note(frame, walk.taken, walk.state)
            walk.undo(frame.base)
            frames.pop()
            if not frames:
                return KeyVerdict(key, Status.VIOLATION, len(ops), len(walk.seen), str(walk.stuck))
            continue
        entry = frame.candidates[frame.tried]
        frame.tried += 1
        base = len(walk.taken)
        if walk.take(entry):
            frames.append(walk.enter(base))
    return KeyVerdict(key, Status.OK, len(ops), len(walk.seen))


class _Search:
    """The lists, the register's value, the ops taken out (in order, and as a bitmask)."""

    def __init__(self, ops: Sequence[Op], initial: State) -> None:
        self.answered = _linked([op for op in ops if op.outcome is Outcome.OK], ops)
        self.unanswered = _linked([op for op in ops if op.outcome is not Outcome.OK], ops)
        self.remaining = sum(op.outcome is Outcome.OK for op in ops)
        self.state, self.linearized = initial, 0
        self.taken: list[tuple[_Entry, State]] = []  # with the value before each
        self.seen: set[tuple[int, State]] = set()
        self.stuck = _Stuck(initial)

    def take(self, entry: _Entry) -> bool:
        """Linearize `entry`'s op here, unless illegal or leading where the search was."""
        assert entry.op is not None and entry.is_call
        legal, after = step(self.state, entry.op)
        bits = self.linearized | 1 << entry.index
        if not legal or (bits, after) in self.seen:
            return False
        self.seen.add((bits, after))
        self.taken.append((entry, self.state))
        self.state, self.linearized = after, bits
        self.remaining -= _lift(entry)
        return True

    def undo(self, base: int) -> None:
        while len(self.taken) > base:
            entry, self.state = self.taken.pop()
            self.linearized &= ~(1 << entry.index)
            self.remaining += _unlift(entry)

    def enter(self, base: int) -> _Frame:
        """The state just reached, after taking every read that sees its value."""
        while self.remaining:
            candidates, response = self._may_go_next()
            reads = [e for e in candidates if e.op.kind is Kind.GET and e.op.result == self.state]  # type: ignore[union-attr]
            if not reads:
                return _Frame(_promising_first(candidates), response, base)
            if not all(self.take(read) for read in reads):
                return _Frame([], response, base)  # as good as a state tried before
        return _Frame([], None, base)

    def _may_go_next(self) -> tuple[list[_Entry], _Entry]:
        """Answered ops invoked before the first response left, then unanswered ones."""
        candidates = []
        entry = self.answered.next
        while entry is not None and entry.is_call:
            candidates.append(entry)
            entry = entry.next
        assert entry is not None and entry.op is not None and entry.op.response_ns is not None, \
            "an answered op is left, so is its response"
        deadline_ns = entry.op.response_ns
        late = self.unanswered.next
        while late is not None and late.op is not None and late.op.invoke_ns <= deadline_ns:
            candidates.append(late)
            late = late.next
        return candidates, entry


def _promising_first(candidates: list[_Entry]) -> list[_Entry]:
    """The order to try them in (any order finds a linearization if there is one):
    first the writes of a value a read waiting here returns, then answered ops in the
    order they were invoked, then the unanswered ones."""
    wanted = {e.op.result for e in candidates if e.op.kind is Kind.GET}  # type: ignore[union-attr]

    def rank(e: _Entry) -> int:
        assert e.op is not None
        return 0 if e.op.kind is not Kind.GET and written(e.op) in wanted else 1 + (e.match is None)

    return sorted(candidates, key=rank)


def _linked(ops: Sequence[Op], indexed: Sequence[Op]) -> _Entry:
    """A list head (a sentinel), then every invocation and response of `ops` in time
    order; an op's bit is its place in `indexed`."""
    index_of = {id(op): i for i, op in enumerate(indexed)}
    timed: list[tuple[int, int, int, _Entry]] = []
    for op in ops:
        call = _Entry(op, index_of[id(op)], is_call=True)
        timed.append((op.invoke_ns, 0, call.index, call))
        if op.outcome is Outcome.OK:
            assert op.response_ns is not None
            call.match = _Entry(op, call.index, is_call=False)
            timed.append((op.response_ns, 1, call.index, call.match))
    timed.sort(key=lambda t: t[:3])
    head = _Entry(None, -1, is_call=False)
    last = head
    for *_, entry in timed:
        last.next, entry.prev = entry, last
        last = entry
    return head


def _lift(call: _Entry) -> int:
    """Take an op out of its list; 1 if it was answered (one fewer to linearize)."""
    for entry in (call, call.match):
        if entry is not None:
            assert entry.prev is not None
            entry.prev.next = entry.next
            if entry.next is not None:
                entry.next.prev = entry.prev
    return int(call.match is not None)


def _unlift(call: _Entry) -> int:
    """Put back what _lift took out, in reverse order (its neighbours still point there)."""
    for entry in (call.match, call):
        if entry is not None:
            assert entry.prev is not None
            entry.prev.next = entry
            if entry.next is not None:
                entry.next.prev = entry
    return int(call.match is not None)


class _Stuck:
    """The furthest the search got: the story of a violation."""

    def __init__(self, initial: State) -> None:
        self.depth = -1
        self.text = f"(nothing linearized; the key held {initial!r})"

    def note(self, frame: _Frame, taken: list[tuple[_Entry, State]], state: State) -> None:
        if len(taken) <= self.depth or not frame.candidates or frame.response is None:
            return
        self.depth = len(taken)
        lines = [f"linearized {len(taken)} ops, the last of them:",
                 *(f"  {entry.op}" for entry, _ in taken[-CONTEXT_OPS:]),
                 f"then the key held {state!r}, and {frame.response.op} had to take effect before its answer;",
                 "no op that could go next can (illegal here, or leading to a state tried before):",
                 *(f"  {entry.op}" for entry in frame.candidates)]
        self.text = "\n".join(lines)

    def __str__(self) -> str:
        return self.text
