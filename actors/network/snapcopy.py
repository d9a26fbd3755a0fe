"""A consistent, compacted copy of this member's store, written to a pipe by a child.

    python -m petcd.actors.network.snapcopy <db_dir> <min_index>   > pipe

Why a child process: LMDB forbids opening one environment twice in a process (closing
the second breaks the first's reader locks), and the network actor's own read-only
store belongs to its one reader thread (local.py), which would be blocked for the
whole transfer. The child opens the store read-only as any reader process does, keeps
one read transaction for the copy (LMDB's mdb_env_copyfd2 with MDB_CP_COMPACT, the
same walk `petcdutl`/defragment use) and streams it to stdout; the pipe makes it
wait for the network actor, which reads it one chunk at a time (bounded memory).

The copy holds the applied index of the moment it starts, which must be at least the
snapshot's (`min_index`): that is what etcd calls a merged snapshot, state at or
after the snapshot's index; apply is idempotent, so the follower skips the entries it
already holds. Exit status: 0 copied, 3 the store is behind `min_index`, 1 other
errors (the reason on stderr). A reader that goes away (EPIPE) ends the copy.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lmdb

BEHIND_EXIT = 3
COPY_NICENESS = 10


def command(db_dir: str | Path, min_index: int) -> list[str]:
    return [sys.executable, "-m", __name__, str(db_dir), str(min_index)]


def spawn(db_dir: str | Path, min_index: int) -> subprocess.Popen[bytes]:
    """Start the copy; its stdout is the data, its stderr the reason of a failure."""
    return subprocess.Popen(command(db_dir, min_index), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, close_fds=True)


def main(argv: list[str]) -> int:
    from petcd.storage.mvcc import MvccStore

    db_dir, min_index = argv[0], int(argv[1])
    # Background work: on a busy machine the member's own actors (heartbeats) go first.
    os.nice(COPY_NICENESS)
    store = MvccStore.open(db_dir, readonly=True)
    try:
        applied = store.applied_index()
        if applied < min_index:
            print(f"store applied index {applied} is below the snapshot's {min_index}",
                  file=sys.stderr)
            return BEHIND_EXIT
        # A later applied index than `applied` is fine: the copy's own transaction
        # starts after this check, and the applied index only grows.
        store.backend.env.copyfd(sys.stdout.fileno(), compact=True)
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (OSError, ValueError, IndexError, AssertionError, lmdb.Error) as err:
        # The parent reads the reason on stderr.
        print(f"{type(err).__name__}: {err}", file=sys.stderr)
        sys.exit(1)
