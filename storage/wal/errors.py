"""Errors of the write-ahead log."""

from __future__ import annotations

from pathlib import Path


class WalError(Exception):
    """The WAL cannot be used as asked (missing, locked, wrong snapshot, gap...)."""


class WalCorruptError(WalError):
    """Bytes that were once durable do not read back: refuse to start.

    Raised before anything on disk is modified, so an operator can inspect the files.
    """

    def __init__(self, path: Path, offset_bytes: int, reason: str) -> None:
        super().__init__(f"wal: {reason} in {path} at offset {offset_bytes}")
        self.path = path
        self.offset_bytes = offset_bytes
        self.reason = reason
