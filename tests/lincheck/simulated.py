"""Linearizable histories by construction, for the checker's own tests.

Clients run one op at a time on random keys, each op lasting a random while; every op
takes effect at a random instant inside its interval, on one sequential register per
key (so the history is linearizable), and its result and header revision are what the
register said then. An unanswered op takes effect somewhere in a long window after it
was sent (its client gave up and moved on meanwhile), or never; a failed one never.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .history import Kind, Op, Outcome

KINDS = (Kind.PUT, Kind.GET, Kind.GET, Kind.DELETE, Kind.CAS)  # reads twice as likely
MAX_DURATION = 60
MAX_GAP = 10
LATE_WINDOW = 500  # how long after it was sent an unanswered op may still take effect


@dataclass(frozen=True, slots=True)
class _Planned:
    client: str
    kind: Kind
    key: str
    value: str  # what a put or compare-and-put writes, unique in the history
    invoke: int
    response: int | None
    outcome: Outcome
    effect: float | None  # when it takes effect; None: never


def simulated(seed: int, ops: int, keys: int, clients: int, unknown_rate: float = 0.0,
              failed_rate: float = 0.0) -> list[Op]:
    rng = random.Random(seed)
    planned = [_plan(rng, n, f"c{n % clients}", f"k{rng.randrange(keys)}", unknown_rate, failed_rate)
               for n in range(ops)]
    planned = _timed(rng, planned, clients)
    return _run(rng, planned)


def _plan(rng: random.Random, n: int, client: str, key: str, unknown_rate: float,
          failed_rate: float) -> _Planned:
    roll = rng.random()
    outcome = Outcome.UNKNOWN if roll < unknown_rate else (
        Outcome.FAILED if roll < unknown_rate + failed_rate else Outcome.OK)
    return _Planned(client, rng.choice(KINDS), key, f"v{n}", 0, None, outcome, None)


def _timed(rng: random.Random, planned: list[_Planned], clients: int) -> list[_Planned]:
    """Each client's ops one after the other, with their instants of effect."""
    clock = {f"c{c}": rng.randrange(MAX_GAP) for c in range(clients)}
    timed = []
    for p in planned:
        invoke = clock[p.client] + rng.randrange(MAX_GAP)
        end = invoke + rng.randrange(MAX_DURATION)
        clock[p.client] = end + 1
        if p.outcome is Outcome.OK:
            effect: float | None = rng.uniform(invoke, end)
        elif p.outcome is Outcome.UNKNOWN and rng.random() < 0.5:
            effect = rng.uniform(invoke, invoke + LATE_WINDOW)
        else:
            effect = None
        response = None if p.outcome is Outcome.UNKNOWN else end
        timed.append(_Planned(p.client, p.kind, p.key, p.value, invoke, response, p.outcome, effect))
    return timed


def _run(rng: random.Random, planned: list[_Planned]) -> list[Op]:
    """Apply the ops in order of effect; record what each was told."""
    state: dict[str, str | None] = {}
    written: dict[str, list[str]] = {}  # per key: compare-and-puts expect a recent one
    revision = 1
    expected: dict[int, str | None] = {}
    told: dict[int, tuple[object, int]] = {}
    for p in sorted((p for p in planned if p.effect is not None), key=lambda p: p.effect or 0.0):
        held = state.get(p.key)
        expected[id(p)] = _expected(rng, written.get(p.key, []))
        result, after = _apply(p, held, expected[id(p)])
        revision += after != held or p.kind is Kind.PUT
        state[p.key] = after
        if after == p.value:
            written.setdefault(p.key, []).append(p.value)
        told[id(p)] = (result, revision)
    return [_op(p, expected.get(id(p), _expected(rng, written.get(p.key, []))), told.get(id(p)))
            for p in planned]


def _expected(rng: random.Random, written: list[str]) -> str | None:
    return rng.choice(written[-3:]) if written and rng.random() < 0.7 else None


def _apply(p: _Planned, held: str | None, expected: str | None) -> tuple[object, str | None]:
    if p.kind is Kind.PUT:
        return None, p.value
    if p.kind is Kind.GET:
        return held, held
    if p.kind is Kind.DELETE:
        return held is not None, None
    return held == expected, p.value if held == expected else held


def _op(p: _Planned, expected: str | None, told: tuple[object, int] | None) -> Op:
    arg = {Kind.PUT: p.value, Kind.CAS: (expected, p.value)}.get(p.kind)
    if p.outcome is not Outcome.OK:
        return Op(p.client, p.kind, p.key, arg, p.invoke, p.response, p.outcome)
    assert told is not None, f"an answered op took effect: {p}"
    result, revision = told
    return Op(p.client, p.kind, p.key, arg, p.invoke, p.response, p.outcome, result, revision)
