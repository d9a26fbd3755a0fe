"""Frozen views of mvccpb.KeyValue and mvccpb.Event, so the checker can hash,
compare and print them (protobuf messages are mutable and unhashable)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from petcd.api.mvccpb import kv_pb2


class EventType(enum.IntEnum):
    PUT = kv_pb2.Event.PUT
    DELETE = kv_pb2.Event.DELETE


class KeyValueLike(Protocol):
    """mvccpb.KeyValue, or a KV: both spell the fields alike."""

    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int


@dataclass(frozen=True, slots=True)
class KV:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int = 0

    @classmethod
    def of(cls, kv: KeyValueLike) -> KV:
        return cls(kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease)

    def __str__(self) -> str:
        return (f"{self.key!r}={self.value!r} (mod {self.mod_revision}, create "
                f"{self.create_revision}, version {self.version}, lease {self.lease})")


@dataclass(frozen=True, slots=True)
class Event:
    type: EventType
    kv: KV
    prev_kv: KV | None  # only when the watch asked prev_kv, and never for a create

    @classmethod
    def of(cls, event: kv_pb2.Event) -> Event:
        prev = KV.of(event.prev_kv) if event.HasField("prev_kv") else None
        return cls(EventType(event.type), KV.of(event.kv), prev)

    @property
    def revision(self) -> int:
        return self.kv.mod_revision

    @property
    def key(self) -> bytes:
        return self.kv.key

    def __str__(self) -> str:
        if self.type is EventType.DELETE:
            return f"DELETE {self.key!r} at {self.revision}"
        return f"PUT {self.kv}"
