"""The entry points: check a recorded run, or assert that it broke nothing."""

from __future__ import annotations

from collections.abc import Iterable

from .contents import content_violations
from .coverage import disagreements, missed
from .events import KV, Event, EventType, KeyValueLike
from .history import Observation, Write, build_history
from .sequence import sequence_violations
from .streams import Stream, Watch
from .violations import Guarantee, Violation, WatchGuaranteeError

FINAL_STATE = "final state"  # the name its findings are reported under


def check(writes: Iterable[Write], watches: Iterable[Watch], *,
          compactions: Iterable[int] = (), initial: Iterable[KeyValueLike] = (),
          final: Iterable[KeyValueLike] = ()) -> list[Violation]:
    """Every violation of etcd's watch guarantees in a recorded run.

    `initial`: the keys that existed before the first recorded write (default: an
    empty store). `final`: the store's keys read after the run, if it was read.
    """
    streams = [Stream.of(watch) for watch in watches]
    names = [stream.name for stream in streams]
    if len(set(names)) != len(names) or FINAL_STATE in names:
        raise ValueError(f"watcher names must be unique and not {FINAL_STATE!r}: {names}")
    final_events = [Event(EventType.PUT, KV.of(kv), None) for kv in final]
    observations = [Observation(stream.name, event)
                    for stream in streams for event in stream.delivered.values()]
    observations += [Observation(FINAL_STATE, event) for event in final_events]
    history = build_history(writes, observations, [KV.of(kv) for kv in initial])
    compacted = frozenset(compactions)
    violations = [Violation(Guarantee.INVENTED, observation.source, observation.event.revision,
                            observation.event.key, f"{observation.event}: {reason}")
                  for observation, reason in history.invented]
    for stream in streams:
        violations += sequence_violations(stream, history, compacted)
        violations += content_violations(stream.name, stream.spec.prev_kv,
                                         stream.delivered.values(), history, compacted)
        violations += missed(stream, history)
    violations += content_violations(FINAL_STATE, False, final_events, history, compacted)
    violations += disagreements(streams)
    return violations


def assert_ok(writes: Iterable[Write], watches: Iterable[Watch], *,
              compactions: Iterable[int] = (), initial: Iterable[KeyValueLike] = (),
              final: Iterable[KeyValueLike] = ()) -> None:
    """Raise WatchGuaranteeError listing every violation, if there is any."""
    violations = check(writes, watches, compactions=compactions, initial=initial, final=final)
    if violations:
        raise WatchGuaranteeError(violations)
