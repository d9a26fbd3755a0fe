"""Maintenance.Snapshot: this member's whole store as a stream, as etcd sends it.

etcd streams its bolt file in 32 KiB messages, each with the bytes still to come
(`remaining_bytes`), and then one last message whose blob is the SHA-256 of everything
before it (remaining 0): `etcdctl snapshot save` writes the blobs one after the other,
and `snapshot restore` checks that trailer. petcd sends a compacted copy of its LMDB
store the same way.

The copy is taken by snapcopy's child process (one read transaction, so it is one
point in time) into a part file beside the store, so that its size - and with it
every `remaining_bytes` - is known before the first message; the part file goes when
the stream ends, however it ends, and at the next start if the member crashed.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from petcd.api.etcdserverpb import rpc_pb2 as pb

from . import snapcopy

CHUNK_BYTES = 32 * 1024  # etcd's snapshotSendBufferSize
READ_BLOCK_BYTES = 1024 * 1024  # read off the event loop this much at a time
PART_PREFIX, PART_SUFFIX = "backup.", ".part"


class BackupError(Exception):
    """The copy of the store failed; the reason is the copy's own."""


async def stream(db_dir: Path, snap_dir: Path) -> AsyncIterator[pb.SnapshotResponse]:
    """SnapshotResponses of a fresh copy of the store; the last carries the SHA-256."""
    fd, name = tempfile.mkstemp(dir=snap_dir, prefix=PART_PREFIX, suffix=PART_SUFFIX)
    try:
        with os.fdopen(fd, "rb+") as part:
            await _copy_into(db_dir, part.fileno())
            size_bytes = os.fstat(part.fileno()).st_size
            part.seek(0)
            async for response in _responses(part, size_bytes):
                yield response
    finally:
        os.unlink(name)


async def _copy_into(db_dir: Path, fd: int) -> None:
    proc = await asyncio.create_subprocess_exec(
        *snapcopy.command(db_dir, 0), stdin=asyncio.subprocess.DEVNULL, stdout=fd,
        stderr=asyncio.subprocess.PIPE)
    try:
        _, stderr = await proc.communicate()
    except BaseException:  # cancelled: the client went away
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if proc.returncode != 0:
        raise BackupError(stderr.decode(errors="replace").strip() or f"exit {proc.returncode}")


async def _responses(part: BinaryIO, size_bytes: int) -> AsyncIterator[pb.SnapshotResponse]:
    loop = asyncio.get_running_loop()
    digest = hashlib.sha256()
    sent = 0
    while sent < size_bytes:
        block = await loop.run_in_executor(None, part.read, READ_BLOCK_BYTES)
        if not block:
            raise BackupError(f"the copy ended at {sent} of {size_bytes} bytes")
        for start in range(0, len(block), CHUNK_BYTES):
            chunk = block[start:start + CHUNK_BYTES]
            digest.update(chunk)
            sent += len(chunk)
            yield pb.SnapshotResponse(remaining_bytes=size_bytes - sent, blob=chunk)
    yield pb.SnapshotResponse(remaining_bytes=0, blob=digest.digest())


def remove_parts(snap_dir: Path) -> list[str]:
    """Part files of streams a crash interrupted."""
    if not snap_dir.is_dir():
        return []
    removed = []
    for path in snap_dir.glob(f"{PART_PREFIX}*{PART_SUFFIX}"):
        path.unlink(missing_ok=True)
        removed.append(path.name)
    return removed
