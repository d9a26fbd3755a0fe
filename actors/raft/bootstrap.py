"""The initial state of a brand-new cluster's members.

Every founding member starts with the same committed log: one ADD_VOTER entry per
member at term 1 (as etcd bootstraps). Members that join later start empty and replay
these entries from the leader, so every member derives the configuration the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from petcd.storage.raftstate import ConfChange, ConfChangeType, Entry, EntryType, HardState

from .types import PersistedState


def bootstrap(voters: Iterable[int], contexts: Mapping[int, bytes] | None = None) -> PersistedState:
    contexts = contexts or {}
    entries = tuple(
        Entry(1, index, EntryType.CONF_CHANGE,
              ConfChange(ConfChangeType.ADD_VOTER, node, contexts.get(node, b"")).encode())
        for index, node in enumerate(sorted(voters), 1))
    assert entries, "a cluster needs at least one voter"
    return PersistedState(HardState(term=1, commit=len(entries)), None, entries)
