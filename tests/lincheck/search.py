"""Is one key's history linearizable? Wing & Gong's search with Lowe's memoization.

The ops' invocations and responses are laid out in time order in a doubly-linked
list. Walking it from the front, the search tries to linearize (take out of the list,
applying it to the register) each op whose invocation it meets, in turn. Meeting a
response instead means that op had to take effect by then and did not: the last
choice is undone (the op goes back into the list, in place: dancing links) and the
next op after it is tried. The history is linearizable once every answered op is
taken out (Wing & Gong 1993; Lowe 2017, "Testing for linearizability").

Memoization (Lowe): the set of ops taken out (a bitmask) and the register's value
say all that matters for the rest of the search; a pair seen before is not explored
again. The number of pairs is the work done, and it is bounded: past
`max_states` the key is UNDECIDED rather than the test hanging.

An op with no answer has an invocation and no response: it may take effect at any
time after its invocation, or never (it never needs to be taken out).
At equal times an invocation comes before a response: two such ops count as
concurrent, the benefit of the doubt going to the server.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from .history import Op, Outcome
from .register import State, step

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
    """An invocation (match: its response, if any) or a response (match: None)."""

    __slots__ = ("op", "index", "is_call", "match", "prev", "next")

    def __init__(self, op: Op | None, index: int, is_call: bool) -> None:
        self.op, self.index, self.is_call = op, index, is_call
        self.match: _Entry | None = None
        self.prev: _Entry | None = None
        self.next: _Entry | None = None


def search(key: Hashable, ops: Sequence[Op], initial: State, max_states: int) -> KeyVerdict:
    assert all(op.key == key for op in ops), f"ops of another key than {key!r}"
    head = _linked(ops)
    remaining = sum(op.outcome is Outcome.OK for op in ops)
    state, linearized = initial, 0
    stack: list[tuple[_Entry, State]] = []  # taken out, with the value before it
    seen: set[tuple[int, State]] = set()
    stuck = _Stuck(initial)
    entry = head.next
    while remaining:
        assert entry is not None, "an answered op's response is always ahead"
        if entry.is_call:
            assert entry.op is not None
            legal, after = step(state, entry.op)
            bits = linearized | 1 << entry.index
            if legal and (bits, after) not in seen:
                seen.add((bits, after))
                if len(seen) > max_states:
                    return KeyVerdict(key, Status.UNDECIDED, len(ops), len(seen),
                                      f"gave up after {max_states} states; deepest point:\n{stuck}")
                stack.append((entry, state))
                state, linearized = after, bits
                remaining -= _lift(entry)
                entry = head.next
            else:
                entry = entry.next
            continue
        stuck.note(head, entry, stack, state)
        if not stack:
            return KeyVerdict(key, Status.VIOLATION, len(ops), len(seen), str(stuck))
        entry, state = stack.pop()
        linearized &= ~(1 << entry.index)
        remaining += _unlift(entry)
        entry = entry.next
    return KeyVerdict(key, Status.OK, len(ops), len(seen))


def _linked(ops: Sequence[Op]) -> _Entry:
    """The list head (a sentinel), then every invocation and response in time order."""
    timed: list[tuple[int, int, _Entry]] = []
    for index, op in enumerate(ops):
        call = _Entry(op, index, is_call=True)
        timed.append((op.invoke_ns, 0, call))
        if op.outcome is Outcome.OK:
            assert op.response_ns is not None
            call.match = _Entry(op, index, is_call=False)
            timed.append((op.response_ns, 1, call.match))
    timed.sort(key=lambda t: (t[0], t[1], t[2].index))
    head = _Entry(None, -1, is_call=False)
    last = head
    for _, _, entry in timed:
        last.next, entry.prev = entry, last
        last = entry
    return head


def _lift(call: _Entry) -> int:
    """Take an op out of the list; 1 if it had a response (one fewer to linearize)."""
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
    """Where the search got furthest before a response it could not reach: the story
    of a violation."""

    def __init__(self, initial: State) -> None:
        self.depth = -1
        self.text = f"(nothing linearized; the key held {initial!r})"

    def note(self, head: _Entry, response: _Entry, stack: list[tuple[_Entry, State]], state: State) -> None:
        if len(stack) <= self.depth:
            return
        self.depth = len(stack)
        prefix = [entry.op for entry, _ in stack[-CONTEXT_OPS:]]
        candidates = []
        entry = head.next
        while entry is not None and entry is not response:
            if entry.is_call:
                candidates.append(entry.op)
            entry = entry.next
        lines = [f"linearized {len(stack)} ops, the last of them:", *(f"  {op}" for op in prefix),
                 f"the key then held {state!r}; {response.op} had to take effect before its answer,",
                 "but no op that could go next can (each is illegal here, or leads to a state tried before):",
                 *(f"  {op}" for op in candidates)]
        self.text = "\n".join(lines)

    def __str__(self) -> str:
        return self.text
