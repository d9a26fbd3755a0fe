"""`snapshot status` output, as etcdctl 3.4's (etcdctl/ctlv3/command/printer*.go): one
row of hash, revision, total keys, total size in the format -w names. etcdutl 3.5
adds a storage version column that petcd's store does not have."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TypeVar

from petcd.client.ctl import gofmt, table
from petcd.client.ctl.flags import EXIT_BAD_FEATURE, CtlError
from petcd.storage.mvcc.snapfile import SnapshotStatus

HEADERS = ["hash", "revision", "total keys", "total size"]
Render = TypeVar("Render")


def _row(status: SnapshotStatus) -> list[str]:
    return [f"{status.hash:x}", str(status.revision), str(status.total_keys),
            gofmt.human_bytes(status.total_size_bytes)]


def _simple(status: SnapshotStatus) -> str:
    return ", ".join(_row(status)) + "\n"


def _table(status: SnapshotStatus) -> str:
    return table.render(HEADERS, [_row(status)])


def _json(status: SnapshotStatus) -> str:
    return json.dumps({"hash": status.hash, "revision": status.revision,
                       "totalKey": status.total_keys,
                       "totalSize": status.total_size_bytes}, separators=(",", ":")) + "\n"


def _fields(status: SnapshotStatus) -> str:
    return (f'"Hash" : {status.hash}\n"Revision" : {status.revision}\n'
            f'"Keys" : {status.total_keys}\n"Size" : {status.total_size_bytes}\n')


_FORMATS = {"simple": _simple, "table": _table, "json": _json, "fields": _fields}


def formatter(write_out: str) -> Callable[[SnapshotStatus], str]:
    """The format -w names; checked before the file is read, as etcdctl does."""
    return choose(write_out, _FORMATS)


def choose(write_out: str, formats: dict[str, Render]) -> Render:
    """The one of `formats` -w names, or etcdutl's refusal (none prints protobuf)."""
    if write_out == "protobuf":
        raise CtlError(EXIT_BAD_FEATURE, "protobuf not supported as output format")
    if write_out not in formats:
        raise CtlError(EXIT_BAD_FEATURE, "unsupported output format")
    return formats[write_out]
