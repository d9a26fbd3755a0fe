"""Each delivered event against the history: its kv and prev_kv fields.

etcd's rules (mvcc/kvstore_txn.go, v3rpc/watch.go): a PUT of a key that does not
exist creates it (create_revision = mod_revision, version 1); any other PUT keeps
create_revision and adds one to version. A DELETE's kv is a tombstone: the key and
mod_revision only. prev_kv, when asked, is the key's value just before the event,
read at mod_revision - 1: a create has none, and it may be missing only if that
revision was compacted away.
"""

from __future__ import annotations

from collections.abc import Iterable, Set

from .events import KV, Event, EventType
from .history import UNKNOWN, History, Step
from .violations import Guarantee, Violation


def _report(guarantee: Guarantee, watcher: str, event: Event, detail: str) -> Violation:
    return Violation(guarantee, watcher, event.revision, event.key, detail)


def kv_violations(watcher: str, event: Event, step: Step) -> Iterable[Violation]:
    kv = event.kv
    if event.type is EventType.DELETE:
        tombstone = KV(kv.key, b"", 0, kv.mod_revision, 0, 0)
        if kv != tombstone:
            yield _report(Guarantee.KV, watcher, event,
                          f"a DELETE's kv must be the tombstone {tombstone}, got {kv}")
        return
    expected = step.after
    if isinstance(expected, KV) and (kv.create_revision, kv.version) != (
            expected.create_revision, expected.version):
        yield _report(Guarantee.KV, watcher, event,
                      f"create_revision {kv.create_revision} version {kv.version}, expected "
                      f"create_revision {expected.create_revision} version {expected.version} "
                      f"({_before(step)})")


def _before(step: Step) -> str:
    if step.before is None:
        return "a create: the key did not exist"
    return f"the key was {step.before}"


def prev_kv_violations(watcher: str, asked: bool, event: Event, step: Step,
                       compactions: Set[int]) -> Iterable[Violation]:
    prev, before = event.prev_kv, step.before
    if not asked:
        if prev is not None:
            yield _report(Guarantee.PREV_KV, watcher, event, f"prev_kv {prev} not asked for")
        return
    if before is UNKNOWN or (before is None and event.type is EventType.DELETE):
        return  # the history cannot say what the key was
    if before is None:
        if prev is not None:
            yield _report(Guarantee.PREV_KV, watcher, event, f"a create carries prev_kv {prev}")
        return
    if prev is None:
        if not any(compacted > before.mod_revision for compacted in compactions):
            yield _report(Guarantee.PREV_KV, watcher, event,
                          f"prev_kv missing; expected {before}, and no compaction above "
                          f"{before.mod_revision} was recorded")
    elif prev != before:
        yield _report(Guarantee.PREV_KV, watcher, event, f"prev_kv {prev}, expected {before}")


def content_violations(watcher: str, prev_kv_asked: bool, events: Iterable[Event],
                       history: History, compactions: Set[int]) -> list[Violation]:
    """Events the history does not know are reported as invented elsewhere."""
    violations: list[Violation] = []
    for event in events:
        step = history.steps.get((event.revision, event.key))
        if step is None or step.change.type is not event.type:
            continue
        violations.extend(kv_violations(watcher, event, step))
        violations.extend(prev_kv_violations(watcher, prev_kv_asked, event, step, compactions))
    return violations
