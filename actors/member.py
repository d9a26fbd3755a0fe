"""Who this member is and where its files live: what every actor process starts from.

The supervisor builds one `MemberContext` from the settings and each actor process it
forks inherits it (nodes/actor_main.py), so every actor agrees on the ids, the paths
and the peers without re-deriving them. It lives with the actors, whose input it is;
the supervisor, above them, builds it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from petcd.config import Settings, ids


@dataclass(frozen=True, slots=True)
class Peer:
    member_id: int
    name: str
    peer_urls: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MemberContext:
    settings: Settings
    member_id: int
    cluster_id: int
    initial_peers: tuple[Peer, ...]  # --initial-cluster, this member included
    run_dir: Path  # ipc sockets of this member's actors

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def wal_dir(self) -> Path:
        return self.settings.wal_dir

    @property
    def snap_dir(self) -> Path:
        return self.settings.snap_dir

    @property
    def db_dir(self) -> Path:
        """The MVCC store (LMDB): member/snap/db, as etcd keeps its bbolt file."""
        return self.settings.snap_dir / "db"

    @classmethod
    def from_settings(cls, settings: Settings) -> MemberContext:
        token = settings.initial_cluster_token
        peers = tuple(
            Peer(ids.member_id([str(u) for u in m.peer_urls], token), m.name,
                 tuple(str(u) for u in m.peer_urls))
            for m in settings.initial_cluster)
        me = next(p for p in peers if p.name == settings.name)
        cluster = ids.cluster_id(p.member_id for p in peers)
        return cls(settings, me.member_id, cluster, peers, default_run_dir(settings.data_dir))


def advise_size(voters: int, log: Any) -> None:
    """The project's guidance, at bootstrap and when the voters change: odd sizes up to
    7 (warned, never refused)."""
    if voters % 2 == 0 or voters > 7:
        log.warning("cluster size not recommended", voting_members=voters,
                    advice="run 3, 5 or 7 voting members: an even count tolerates no more "
                           "failures than one fewer, and more than 7 write slower")


def default_run_dir(data_dir: Path) -> Path:
    """A short per-member directory for ipc sockets (unix socket paths are limited)."""
    digest = hashlib.sha1(str(data_dir.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"petcd-{os.getuid()}-{digest}"
