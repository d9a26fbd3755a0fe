"""Alarms (NOSPACE, CORRUPT) per member, in the `alarm` database.

Alarm requests go through Raft, so every member applies the same activations and
the alarm set survives restarts with the data (etcd's v3alarm.AlarmStore).
"""

from __future__ import annotations

import lmdb

from petcd.api.etcdserverpb import rpc_pb2 as pb

from . import layout
from .env import Databases

_A = pb.AlarmRequest


def _key(member_id: int, alarm: int) -> bytes:
    return layout.ALARM_KEY.pack(alarm, member_id)


def list_alarms(txn: lmdb.Transaction[bytes], dbs: Databases, alarm: int = pb.NONE) -> list[pb.AlarmMember]:
    """Alarms of one type, or all for NONE; ordered by type then member id."""
    found = []
    for raw in txn.cursor(db=dbs.alarm).iternext(keys=True, values=False):
        kind, member = layout.ALARM_KEY.unpack(raw)
        if alarm == pb.NONE or kind == alarm:
            found.append(pb.AlarmMember(memberID=member, alarm=kind))
    return found


def active_kinds(txn: lmdb.Transaction[bytes], dbs: Databases) -> frozenset[int]:
    """The alarm types raised by any member: scans the keys, builds no messages."""
    return frozenset(layout.ALARM_KEY.unpack(raw)[0]
                     for raw in txn.cursor(db=dbs.alarm).iternext(keys=True, values=False))


def apply_alarm(txn: lmdb.Transaction[bytes], dbs: Databases, r: pb.AlarmRequest) -> pb.AlarmResponse:
    """etcd's applierV3backend.Alarm: GET lists, ACTIVATE / DEACTIVATE echo the member."""
    resp = pb.AlarmResponse()
    member = pb.AlarmMember(memberID=r.memberID, alarm=r.alarm)
    if r.action == _A.GET:
        resp.alarms.extend(list_alarms(txn, dbs, r.alarm))
    elif r.action == _A.ACTIVATE and r.alarm != pb.NONE:
        txn.put(_key(r.memberID, r.alarm), b"", db=dbs.alarm)  # already active: same answer
        resp.alarms.append(member)
    elif r.action == _A.DEACTIVATE:
        if txn.delete(_key(r.memberID, r.alarm), db=dbs.alarm):
            resp.alarms.append(member)
    return resp
