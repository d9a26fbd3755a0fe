"""`petcdutl defrag --data-dir DIR`: etcdutl's offline defragment of a stopped
member's store (etcdutl/etcdutl/defrag_command.go), done by the defragment the
server runs online (MvccStore.defragment: a compact copy written as the next
generation, made live by renaming CURRENT over the old one; storage/mvcc/env.py).

A running member is refused. Its supervisor holds an flock on the lock file of its
run dir (actors/bus/rundir.py) for as long as any of its processes lives; LMDB itself
lets a second writer in (it only serialises write transactions), so that flock is
the one sign that the member runs. This command takes the same lock for the length
of the defragment, so a member started meanwhile stops at once ("held by another
petcd of the same data dir") instead of opening a store being rewritten.

etcdutl 3.6 instead waits for the running etcd's bbolt flock, printing a hint after
a second; waiting on a member that may run for months helps nobody, so petcdutl
refuses at once with that hint. Like etcdutl it prints nothing on stdout; its log
lines (etcd's "defragmenting" and "finished defragmenting directory", with etcd's
field names) go to stderr, one JSON object each, as petcd's own logs are.
"""

from __future__ import annotations

import time
from pathlib import Path

from petcd.actors.member import default_run_dir
from petcd.client.ctl import flags
from petcd.client.ctl.flags import EXIT_ERROR, CtlError, Flag
from petcd.client.utl import logline
from petcd.actors.bus.rundir import RunDir, RunDirBusy
from petcd.storage.mvcc import MvccStore, StoreCorruptError, env

FLAGS = [Flag("data-dir", "string", "")]

HELP = """Defragments the storage of the etcd

Usage:
  petcdutl defrag [flags]

Flags:
      --data-dir string   Required. Defragments a data directory not in use by etcd.
  -h, --help              help for defrag
"""


class _Refused(Exception):
    """Why this data dir's store cannot be defragmented now."""


def store_dir(data_dir: Path) -> Path:
    """The member's store (config/settings.py: snap_dir / "db", etcd's member/snap/db)."""
    return data_dir / "member" / "snap" / "db"


def defrag(parsed: flags.Parsed) -> int:
    if "data-dir" not in parsed.given:  # cobra's MarkFlagRequired
        raise CtlError(EXIT_ERROR, 'required flag(s) "data-dir" not set')
    data_dir = str(parsed.values["data-dir"])
    try:
        _defrag(Path(data_dir))
    except (_Refused, StoreCorruptError, OSError) as exc:
        raise CtlError(EXIT_ERROR, f"Failed to defragment etcd data[{data_dir}] ({exc})") from None
    return 0


def _defrag(data_dir: Path) -> None:
    root = store_dir(data_dir)
    if not root.exists():
        raise _Refused(f"stat {root}: no such file or directory")  # etcd's validateDataDir
    if not (root / env.CURRENT).exists():
        # A writer's open would start an empty store here: not ours to make.
        raise _Refused(f"{root} is not a petcd store (no {env.CURRENT})")
    try:
        held = RunDir.claim(default_run_dir(data_dir))
    except RunDirBusy:
        raise _Refused(f"{data_dir} is in use by a running petcd member. To defrag a running "
                       "etcd instance, use `etcdctl defrag` instead.") from None
    with held, MvccStore.open(str(root)) as store:
        before_bytes = store.db_size_bytes()
        logline.log("defragmenting", path=store.backend.data_file, **{
            "current-db-size-bytes": before_bytes,
            "current-db-size-in-use-bytes": store.db_size_in_use_bytes()})
        started_s = time.monotonic()
        store.defragment()
        store.sync()
        after_bytes = store.db_size_bytes()
        assert store.db_size_in_use_bytes() <= after_bytes, "in use within the file"
        logline.log("finished defragmenting directory", path=store.backend.data_file, **{
            "current-db-size-bytes-diff": after_bytes - before_bytes,
            "current-db-size-bytes": after_bytes,
            "took": f"{time.monotonic() - started_s:.3f}s"})
