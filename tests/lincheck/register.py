"""The sequential specification of one key: a register holding a value or nothing.

`step(state, op)` says whether `op` may take effect on a key in `state` and what the
key holds after it. An op whose answer was lost still changes the register, but any
result it might have had is allowed (nobody saw it).

Which recorded ops constrain the search at all (`relevant`): a failed op changed
nothing, and a read nobody got an answer to says nothing; both are left out.
"""

from __future__ import annotations

from collections.abc import Hashable

from .history import Kind, Op, Outcome

State = Hashable  # the value held; None when the key is absent


def relevant(op: Op) -> bool:
    if op.outcome is Outcome.FAILED:
        return False
    return not (op.outcome is Outcome.UNKNOWN and op.kind is Kind.GET)


def written(op: Op) -> State:
    """What a write leaves in the key when it takes effect (a compare-and-put: if it
    succeeds)."""
    assert op.kind is not Kind.GET, f"a read writes nothing: {op}"
    if op.kind is Kind.CAS:
        return op.arg[1]  # type: ignore[index]
    return op.arg  # a put's value; None for a delete


def step(state: State, op: Op) -> tuple[bool, State]:
    """(legal, state after). `op` is relevant: OK or an unanswered write."""
    seen = op.outcome is Outcome.OK
    if op.kind is Kind.PUT:
        return True, op.arg
    if op.kind is Kind.GET:
        return op.result == state, state
    if op.kind is Kind.DELETE:
        return not seen or op.result == (state is not None), None
    expected, new = op.arg  # type: ignore[misc]
    succeeded = state == expected
    return not seen or op.result == succeeded, new if succeeded else state
