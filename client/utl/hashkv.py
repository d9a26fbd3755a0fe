"""`petcdutl hashkv FILE [--rev N]`: etcdutl's KV history hash of a store, offline
(etcdutl/etcdutl/hashkv_command.go): the hash, the revision it covers and the
compaction revision, which Maintenance.HashKV answers on a running member.

FILE is what etcd's may be, in petcd's layout: a member's store directory
(<data-dir>/member/snap/db, where etcd has its bolt file; read as any reader of a
running member reads it), or one LMDB file: a snapshot file or a copied data.mdb.
The hash is petcd's (CRC-32 over the history records; storage/mvcc/hashing.py), so it
compares between petcd members and files, never with etcd's.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable

from petcd.client.ctl import flags, table
from petcd.client.ctl.flags import EXIT_ERROR, CtlError, Flag
from petcd.client.utl import status_output
from petcd.storage.mvcc import MvccError, MvccStore, StoreCorruptError, snapfile
from petcd.storage.mvcc.hashing import HashKV

FLAGS = [Flag("rev", "int", 0)]

HELP = """Prints the KV history hash of a given file

Usage:
  petcdutl hashkv <filename> [flags]

Flags:
  -h, --help      help for hashkv
      --rev int   maximum revision to hash (default: latest revision)
"""

HEADERS = ["hash", "hash revision", "compact revision"]


def _row(found: HashKV) -> list[str]:
    return [str(found.hash), str(found.hash_revision), str(found.compact_revision)]


_FORMATS: dict[str, Callable[[HashKV], str]] = {
    "simple": lambda found: ", ".join(_row(found)) + "\n",
    "table": lambda found: table.render(HEADERS, [_row(found)]),
    "json": lambda found: json.dumps(
        {"hash": found.hash, "hashRevision": found.hash_revision,
         "compactRevision": found.compact_revision}, separators=(",", ":")) + "\n",
    "fields": lambda found: (f'"Hash" : {found.hash}\n"Hash revision" : {found.hash_revision}'
                             f'\n"Compact revision" : {found.compact_revision}\n'),
}


def hashkv(parsed: flags.Parsed) -> int:
    if len(parsed.args) != 1:  # cobra's ExactArgs(1)
        raise CtlError(EXIT_ERROR, f"accepts 1 arg(s), received {len(parsed.args)}")
    render = status_output.choose(str(parsed.values["write-out"]), _FORMATS)  # etcdutl's order
    path, revision = parsed.args[0], parsed.values["rev"]
    assert isinstance(revision, int), revision
    if not os.path.exists(path):
        raise CtlError(EXIT_ERROR, f"stat {path}: no such file or directory")
    try:
        found = _hash_kv(path, revision)
    except MvccError as exc:  # etcd's mvcc errors, without the gRPC layer's prefix
        raise CtlError(EXIT_ERROR, str(exc).removeprefix("etcdserver: ")) from None
    except (snapfile.SnapshotFileError, StoreCorruptError, OSError) as exc:
        raise CtlError(EXIT_ERROR, str(exc)) from None
    sys.stdout.write(render(found))
    return 0


def _hash_kv(path: str, revision: int) -> HashKV:
    if os.path.isdir(path):
        with MvccStore.open(path, readonly=True) as store:
            return store.hash_kv(revision)
    return snapfile.hash_kv(path, revision)
