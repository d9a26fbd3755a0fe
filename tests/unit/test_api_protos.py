"""The etcd v3 API definitions in api/: generated code, names, numbers, JSON shape.

Real etcd clients (etcdctl, Go clientv3, python clients) bring their own generated
code, so what must match etcd v3.5 is what goes on the wire: gRPC method paths,
field numbers and types, enum values, and for the JSON gateway the JSON mapping
with original field names. These tests pin those against etcd's definitions.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor as _d
from google.protobuf import json_format

from petcd.api.authpb import auth_pb2
from petcd.api.etcdserverpb import raft_internal_pb2, rpc_pb2, rpc_pb2_grpc
from petcd.api.membershippb import membership_pb2
from petcd.api.mvccpb import kv_pb2
from petcd.api.v3electionpb import v3election_pb2, v3election_pb2_grpc
from petcd.api.v3lockpb import v3lock_pb2, v3lock_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
API = REPO / "api"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


# ---- (a) committed generated code == what scripts/gen-proto produces now -----


def _generated_files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name.endswith(GENERATED_SUFFIXES)
    }


def _generator_versions(files: dict[str, bytes]) -> tuple[str, str]:
    """(protobuf gencode version, grpc gencode version) recorded in generated code."""
    pb = re.search(rb"# Protobuf Python Version: (\S+)", files["etcdserverpb/rpc_pb2.py"])
    grpc = re.search(rb"GRPC_GENERATED_VERSION = '([^']+)'", files["etcdserverpb/rpc_pb2_grpc.py"])
    assert pb and grpc
    return pb.group(1).decode(), grpc.group(1).decode()


def test_generated_code_matches_protos(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools")
    env = dict(os.environ, PYTHON=sys.executable)
    subprocess.run(
        ["bash", str(REPO / "scripts" / "gen-proto"), str(tmp_path)],
        check=True, env=env, timeout=60,
    )
    fresh = _generated_files(tmp_path / "petcd" / "api")
    committed = _generated_files(API)
    assert fresh, "scripts/gen-proto produced nothing"
    if _generator_versions(fresh) != _generator_versions(committed):
        pytest.skip(
            f"installed grpcio-tools generates {_generator_versions(fresh)}, committed code "
            f"is from {_generator_versions(committed)}: byte comparison not meaningful"
        )
    assert sorted(fresh) == sorted(committed), "run scripts/gen-proto and commit the result"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"generated code is stale, run scripts/gen-proto: {stale}"


def test_every_proto_is_generated() -> None:
    for proto in API.rglob("*.proto"):
        for suffix in GENERATED_SUFFIXES:
            assert proto.with_name(proto.stem + suffix).is_file(), (proto, suffix)
        assert (proto.parent / "__init__.py").is_file(), proto.parent


# ---- (b) services and methods as etcd serves them ----------------------------

UNARY, SERVER_STREAM, BIDI = "unary", "server-stream", "bidi"

ETCD_SERVICES: dict[str, dict[str, str]] = {
    "etcdserverpb.KV": dict.fromkeys(["Range", "Put", "DeleteRange", "Txn", "Compact"], UNARY),
    "etcdserverpb.Watch": {"Watch": BIDI},
    "etcdserverpb.Lease": {
        "LeaseGrant": UNARY, "LeaseRevoke": UNARY, "LeaseKeepAlive": BIDI,
        "LeaseTimeToLive": UNARY, "LeaseLeases": UNARY,
    },
    "etcdserverpb.Cluster": dict.fromkeys(
        ["MemberAdd", "MemberRemove", "MemberUpdate", "MemberList", "MemberPromote"], UNARY
    ),
    "etcdserverpb.Maintenance": {
        "Alarm": UNARY, "Status": UNARY, "Defragment": UNARY, "Hash": UNARY, "HashKV": UNARY,
        "Snapshot": SERVER_STREAM, "MoveLeader": UNARY, "Downgrade": UNARY,
    },
    "etcdserverpb.Auth": dict.fromkeys(
        [
            "AuthEnable", "AuthDisable", "AuthStatus", "Authenticate",
            "UserAdd", "UserGet", "UserList", "UserDelete", "UserChangePassword",
            "UserGrantRole", "UserRevokeRole",
            "RoleAdd", "RoleGet", "RoleList", "RoleDelete",
            "RoleGrantPermission", "RoleRevokePermission",
        ],
        UNARY,
    ),
    "v3lockpb.Lock": {"Lock": UNARY, "Unlock": UNARY},
    "v3electionpb.Election": {
        "Campaign": UNARY, "Proclaim": UNARY, "Leader": UNARY,
        "Observe": SERVER_STREAM, "Resign": UNARY,
    },
}

# Request/response types where they are not simply <Method>Request/<Method>Response.
ETCD_METHOD_TYPES = {
    "etcdserverpb.KV/Compact": ("CompactionRequest", "CompactionResponse"),
    "etcdserverpb.Auth/UserAdd": ("AuthUserAddRequest", "AuthUserAddResponse"),
    "etcdserverpb.Auth/RoleGrantPermission": (
        "AuthRoleGrantPermissionRequest", "AuthRoleGrantPermissionResponse",
    ),
    "v3electionpb.Election/Observe": ("LeaderRequest", "LeaderResponse"),
}


def _all_services() -> dict[str, _d.ServiceDescriptor]:
    out = {}
    for module in (rpc_pb2, v3lock_pb2, v3election_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            out[service.full_name] = service
    return out


def _kind(method: _d.MethodDescriptor) -> str:
    streams = (method.client_streaming, method.server_streaming)
    return {(False, False): UNARY, (False, True): SERVER_STREAM, (True, True): BIDI}[streams]


def test_services_and_methods_match_etcd() -> None:
    services = _all_services()
    assert sorted(services) == sorted(ETCD_SERVICES)
    for name, methods in ETCD_SERVICES.items():
        got = {m.name: _kind(m) for m in services[name].methods}
        assert got == methods, name
    for path, (req, resp) in ETCD_METHOD_TYPES.items():
        service, method = path.split("/")
        m = services[service].methods_by_name[method]
        assert (m.input_type.name, m.output_type.name) == (req, resp), path


class _RecordingChannel:
    """Stands in for grpc.Channel: records the method paths a stub binds."""

    def __init__(self) -> None:
        self.paths: dict[str, str] = {}

    def _record(self, kind: str):
        def bind(path: str, *args: object, **kwargs: object) -> None:
            self.paths[path] = kind
        return bind

    def __getattr__(self, name: str):
        kinds = {"unary_unary": UNARY, "unary_stream": SERVER_STREAM, "stream_stream": BIDI}
        if name in kinds:
            return self._record(kinds[name])
        raise AttributeError(name)


def test_grpc_stubs_use_etcd_method_paths() -> None:
    channel = _RecordingChannel()
    for module in (rpc_pb2_grpc, v3lock_pb2_grpc, v3election_pb2_grpc):
        for attr in dir(module):
            if attr.endswith("Stub"):
                getattr(module, attr)(channel)
    expected = {
        f"/{service}/{method}": kind
        for service, methods in ETCD_SERVICES.items()
        for method, kind in methods.items()
    }
    assert channel.paths == expected


# ---- (c) field numbers and enum values from etcd's .proto files ---------------

# message -> {field: number}; every field of the message is listed (so none is
# missing and none was added), matching etcd v3.5.
ETCD_FIELDS: dict[object, dict[str, int]] = {
    rpc_pb2.ResponseHeader: {"cluster_id": 1, "member_id": 2, "revision": 3, "raft_term": 4},
    rpc_pb2.RangeRequest: {
        "key": 1, "range_end": 2, "limit": 3, "revision": 4, "sort_order": 5,
        "sort_target": 6, "serializable": 7, "keys_only": 8, "count_only": 9,
        "min_mod_revision": 10, "max_mod_revision": 11,
        "min_create_revision": 12, "max_create_revision": 13,
    },
    rpc_pb2.RangeResponse: {"header": 1, "kvs": 2, "more": 3, "count": 4},
    rpc_pb2.PutRequest: {
        "key": 1, "value": 2, "lease": 3, "prev_kv": 4, "ignore_value": 5, "ignore_lease": 6,
    },
    rpc_pb2.PutResponse: {"header": 1, "prev_kv": 2},
    rpc_pb2.DeleteRangeRequest: {"key": 1, "range_end": 2, "prev_kv": 3},
    rpc_pb2.DeleteRangeResponse: {"header": 1, "deleted": 2, "prev_kvs": 3},
    rpc_pb2.RequestOp: {
        "request_range": 1, "request_put": 2, "request_delete_range": 3, "request_txn": 4,
    },
    rpc_pb2.ResponseOp: {
        "response_range": 1, "response_put": 2, "response_delete_range": 3, "response_txn": 4,
    },
    rpc_pb2.Compare: {
        "result": 1, "target": 2, "key": 3, "version": 4, "create_revision": 5,
        "mod_revision": 6, "value": 7, "lease": 8, "range_end": 64,
    },
    rpc_pb2.TxnRequest: {"compare": 1, "success": 2, "failure": 3},
    rpc_pb2.TxnResponse: {"header": 1, "succeeded": 2, "responses": 3},
    rpc_pb2.CompactionRequest: {"revision": 1, "physical": 2},
    rpc_pb2.HashKVResponse: {"header": 1, "hash": 2, "compact_revision": 3},
    rpc_pb2.SnapshotResponse: {"header": 1, "remaining_bytes": 2, "blob": 3},
    rpc_pb2.WatchRequest: {"create_request": 1, "cancel_request": 2, "progress_request": 3},
    rpc_pb2.WatchCreateRequest: {
        "key": 1, "range_end": 2, "start_revision": 3, "progress_notify": 4,
        "filters": 5, "prev_kv": 6, "watch_id": 7, "fragment": 8,
    },
    rpc_pb2.WatchCancelRequest: {"watch_id": 1},
    rpc_pb2.WatchResponse: {
        "header": 1, "watch_id": 2, "created": 3, "canceled": 4, "compact_revision": 5,
        "cancel_reason": 6, "fragment": 7, "events": 11,
    },
    rpc_pb2.LeaseGrantRequest: {"TTL": 1, "ID": 2},
    rpc_pb2.LeaseGrantResponse: {"header": 1, "ID": 2, "TTL": 3, "error": 4},
    rpc_pb2.LeaseCheckpoint: {"ID": 1, "remaining_TTL": 2},
    rpc_pb2.LeaseKeepAliveResponse: {"header": 1, "ID": 2, "TTL": 3},
    rpc_pb2.LeaseTimeToLiveRequest: {"ID": 1, "keys": 2},
    rpc_pb2.LeaseTimeToLiveResponse: {"header": 1, "ID": 2, "TTL": 3, "grantedTTL": 4, "keys": 5},
    rpc_pb2.Member: {"ID": 1, "name": 2, "peerURLs": 3, "clientURLs": 4, "isLearner": 5},
    rpc_pb2.MemberAddRequest: {"peerURLs": 1, "isLearner": 2},
    rpc_pb2.MemberAddResponse: {"header": 1, "member": 2, "members": 3},
    rpc_pb2.MemberListRequest: {"linearizable": 1},
    rpc_pb2.MoveLeaderRequest: {"targetID": 1},
    rpc_pb2.AlarmRequest: {"action": 1, "memberID": 2, "alarm": 3},
    rpc_pb2.AlarmMember: {"memberID": 1, "alarm": 2},
    rpc_pb2.DowngradeRequest: {"action": 1, "version": 2},
    rpc_pb2.StatusResponse: {
        "header": 1, "version": 2, "dbSize": 3, "leader": 4, "raftIndex": 5, "raftTerm": 6,
        "raftAppliedIndex": 7, "errors": 8, "dbSizeInUse": 9, "isLearner": 10,
    },
    rpc_pb2.AuthUserAddRequest: {"name": 1, "password": 2, "options": 3, "hashedPassword": 4},
    rpc_pb2.AuthUserChangePasswordRequest: {"name": 1, "password": 2, "hashedPassword": 3},
    rpc_pb2.AuthUserGrantRoleRequest: {"user": 1, "role": 2},
    rpc_pb2.AuthRoleGrantPermissionRequest: {"name": 1, "perm": 2},
    rpc_pb2.AuthRoleRevokePermissionRequest: {"role": 1, "key": 2, "range_end": 3},
    rpc_pb2.AuthStatusResponse: {"header": 1, "enabled": 2, "authRevision": 3},
    rpc_pb2.AuthRoleGetResponse: {"header": 1, "perm": 2},
    kv_pb2.KeyValue: {
        "key": 1, "create_revision": 2, "mod_revision": 3, "version": 4, "value": 5, "lease": 6,
    },
    kv_pb2.Event: {"type": 1, "kv": 2, "prev_kv": 3},
    auth_pb2.User: {"name": 1, "password": 2, "roles": 3, "options": 4},
    auth_pb2.Permission: {"permType": 1, "key": 2, "range_end": 3},
    auth_pb2.Role: {"name": 1, "keyPermission": 2},
    membership_pb2.Member: {"ID": 1, "raft_attributes": 2, "member_attributes": 3},
    membership_pb2.ClusterMemberAttrSetRequest: {"member_ID": 1, "member_attributes": 2},
    raft_internal_pb2.RequestHeader: {"ID": 1, "username": 2, "auth_revision": 3},
    raft_internal_pb2.InternalRaftRequest: {
        "header": 100, "ID": 1, "range": 3, "put": 4, "delete_range": 5, "txn": 6,
        "compaction": 7, "lease_grant": 8, "lease_revoke": 9, "alarm": 10,
        "lease_checkpoint": 11, "auth_enable": 1000, "auth_disable": 1011,
        "auth_status": 1013, "authenticate": 1012,
        "auth_user_add": 1100, "auth_user_delete": 1101, "auth_user_get": 1102,
        "auth_user_change_password": 1103, "auth_user_grant_role": 1104,
        "auth_user_revoke_role": 1105, "auth_user_list": 1106, "auth_role_list": 1107,
        "auth_role_add": 1200, "auth_role_delete": 1201, "auth_role_get": 1202,
        "auth_role_grant_permission": 1203, "auth_role_revoke_permission": 1204,
        "cluster_version_set": 1300, "cluster_member_attr_set": 1301,
        "downgrade_info_set": 1302,
    },
    raft_internal_pb2.InternalAuthenticateRequest: {"name": 1, "password": 2, "simple_token": 3},
    v3lock_pb2.LockRequest: {"name": 1, "lease": 2},
    v3lock_pb2.LockResponse: {"header": 1, "key": 2},
    v3election_pb2.CampaignRequest: {"name": 1, "lease": 2, "value": 3},
    v3election_pb2.LeaderKey: {"name": 1, "key": 2, "rev": 3, "lease": 4},
    v3election_pb2.ProclaimRequest: {"leader": 1, "value": 2},
}


@pytest.mark.parametrize("message", ETCD_FIELDS, ids=lambda m: m.DESCRIPTOR.full_name)
def test_field_numbers_match_etcd(message) -> None:
    got = {f.name: f.number for f in message.DESCRIPTOR.fields}
    assert got == ETCD_FIELDS[message]


def test_field_types_sample() -> None:
    t = _d.FieldDescriptor
    kv = kv_pb2.KeyValue.DESCRIPTOR.fields_by_name
    assert kv["key"].type == t.TYPE_BYTES and kv["value"].type == t.TYPE_BYTES
    assert kv["create_revision"].type == t.TYPE_INT64 and kv["lease"].type == t.TYPE_INT64
    header = rpc_pb2.ResponseHeader.DESCRIPTOR.fields_by_name
    assert [header[n].type for n in ("cluster_id", "member_id", "revision", "raft_term")] == [
        t.TYPE_UINT64, t.TYPE_UINT64, t.TYPE_INT64, t.TYPE_UINT64,
    ]
    assert rpc_pb2.HashKVResponse.DESCRIPTOR.fields_by_name["hash"].type == t.TYPE_UINT32
    assert rpc_pb2.Member.DESCRIPTOR.fields_by_name["ID"].type == t.TYPE_UINT64
    assert rpc_pb2.LeaseGrantRequest.DESCRIPTOR.fields_by_name["ID"].type == t.TYPE_INT64
    watch_events = rpc_pb2.WatchResponse.DESCRIPTOR.fields_by_name["events"]
    assert watch_events.message_type.full_name == "mvccpb.Event"
    range_kvs = rpc_pb2.RangeResponse.DESCRIPTOR.fields_by_name["kvs"]
    assert range_kvs.message_type.full_name == "mvccpb.KeyValue"


def test_oneofs_match_etcd() -> None:
    def oneof_fields(message, name: str) -> list[str]:
        return [f.name for f in message.DESCRIPTOR.oneofs_by_name[name].fields]

    assert oneof_fields(rpc_pb2.Compare, "target_union") == [
        "version", "create_revision", "mod_revision", "value", "lease",
    ]
    assert oneof_fields(rpc_pb2.RequestOp, "request") == [
        "request_range", "request_put", "request_delete_range", "request_txn",
    ]
    assert oneof_fields(rpc_pb2.ResponseOp, "response") == [
        "response_range", "response_put", "response_delete_range", "response_txn",
    ]
    assert oneof_fields(rpc_pb2.WatchRequest, "request_union") == [
        "create_request", "cancel_request", "progress_request",
    ]
    # Compare.range_end is outside the oneof.
    assert rpc_pb2.Compare.DESCRIPTOR.fields_by_name["range_end"].containing_oneof is None


ETCD_ENUMS = {
    rpc_pb2.RangeRequest.SortOrder: {"NONE": 0, "ASCEND": 1, "DESCEND": 2},
    rpc_pb2.RangeRequest.SortTarget: {"KEY": 0, "VERSION": 1, "CREATE": 2, "MOD": 3, "VALUE": 4},
    rpc_pb2.Compare.CompareResult: {"EQUAL": 0, "GREATER": 1, "LESS": 2, "NOT_EQUAL": 3},
    rpc_pb2.Compare.CompareTarget: {"VERSION": 0, "CREATE": 1, "MOD": 2, "VALUE": 3, "LEASE": 4},
    rpc_pb2.WatchCreateRequest.FilterType: {"NOPUT": 0, "NODELETE": 1},
    rpc_pb2.AlarmType: {"NONE": 0, "NOSPACE": 1, "CORRUPT": 2},
    rpc_pb2.AlarmRequest.AlarmAction: {"GET": 0, "ACTIVATE": 1, "DEACTIVATE": 2},
    rpc_pb2.DowngradeRequest.DowngradeAction: {"VALIDATE": 0, "ENABLE": 1, "CANCEL": 2},
    kv_pb2.Event.EventType: {"PUT": 0, "DELETE": 1},
    auth_pb2.Permission.Type: {"READ": 0, "WRITE": 1, "READWRITE": 2},
}


@pytest.mark.parametrize("enum", ETCD_ENUMS, ids=lambda e: e.DESCRIPTOR.full_name)
def test_enum_values_match_etcd(enum) -> None:
    assert dict(enum.items()) == ETCD_ENUMS[enum]


def test_package_names_match_etcd() -> None:
    assert rpc_pb2.DESCRIPTOR.package == "etcdserverpb"
    assert raft_internal_pb2.DESCRIPTOR.package == "etcdserverpb"
    assert kv_pb2.DESCRIPTOR.package == "mvccpb"
    assert auth_pb2.DESCRIPTOR.package == "authpb"
    assert membership_pb2.DESCRIPTOR.package == "membershippb"
    assert v3lock_pb2.DESCRIPTOR.package == "v3lockpb"
    assert v3election_pb2.DESCRIPTOR.package == "v3electionpb"


# ---- (d) JSON shape of etcd's gateway -----------------------------------------


def _gateway_json(message) -> dict:
    # etcd's grpc-gateway marshals with OrigName: proto field names, defaults omitted.
    return json.loads(json_format.MessageToJson(message, preserving_proto_field_name=True))


def test_range_response_json_shape() -> None:
    resp = rpc_pb2.RangeResponse(
        header=rpc_pb2.ResponseHeader(cluster_id=1, member_id=2, revision=3, raft_term=4),
        kvs=[kv_pb2.KeyValue(key=b"foo", create_revision=2, mod_revision=3, version=1, value=b"bar")],
        count=1,
    )
    assert _gateway_json(resp) == {
        "header": {"cluster_id": "1", "member_id": "2", "revision": "3", "raft_term": "4"},
        "kvs": [{
            "key": "Zm9v", "create_revision": "2", "mod_revision": "3",
            "version": "1", "value": "YmFy",
        }],
        "count": "1",
    }


def test_json_keeps_etcd_field_spelling_and_enum_names() -> None:
    status = rpc_pb2.StatusResponse(
        version="3.5.0", dbSize=20480, leader=10, raftIndex=5, raftTerm=2,
        raftAppliedIndex=5, dbSizeInUse=16384, isLearner=True,
    )
    assert _gateway_json(status) == {
        "version": "3.5.0", "dbSize": "20480", "leader": "10", "raftIndex": "5",
        "raftTerm": "2", "raftAppliedIndex": "5", "dbSizeInUse": "16384", "isLearner": True,
    }
    event = kv_pb2.Event(type=kv_pb2.Event.DELETE, kv=kv_pb2.KeyValue(key=b"k", mod_revision=9))
    assert _gateway_json(event) == {"type": "DELETE", "kv": {"key": "aw==", "mod_revision": "9"}}
    grant = rpc_pb2.LeaseGrantResponse(ID=7587862072907264050, TTL=60)
    assert _gateway_json(grant) == {"ID": "7587862072907264050", "TTL": "60"}


def test_gateway_request_json_parses() -> None:
    # What `curl -d '{"key": "Zm9v", "value": "YmFy"}' /v3/kv/put` sends; etcd's gateway
    # also accepts int64 as JSON numbers.
    put = json_format.Parse('{"key": "Zm9v", "value": "YmFy", "lease": 5}', rpc_pb2.PutRequest())
    assert (put.key, put.value, put.lease) == (b"foo", b"bar", 5)
    rng = json_format.Parse(
        '{"key": "AA==", "range_end": "AA==", "sort_order": "DESCEND", "limit": "10"}',
        rpc_pb2.RangeRequest(),
    )
    assert rng.range_end == b"\0" and rng.sort_order == rpc_pb2.RangeRequest.DESCEND
    assert rng.limit == 10


# ---- (e) wire round trip -------------------------------------------------------


def test_put_request_wire_round_trip() -> None:
    put = rpc_pb2.PutRequest(key=b"foo", value=b"bar", lease=7, prev_kv=True)
    wire = put.SerializeToString()
    # The bytes any etcd client produces: tag (number << 3 | wire type), payload.
    assert wire == b"\x0a\x03foo" + b"\x12\x03bar" + b"\x18\x07" + b"\x20\x01"
    back = rpc_pb2.PutRequest.FromString(wire)
    assert back == put
    assert (back.key, back.value, back.lease, back.prev_kv) == (b"foo", b"bar", 7, True)


def test_txn_and_raft_entry_round_trip() -> None:
    txn = rpc_pb2.TxnRequest(
        compare=[rpc_pb2.Compare(
            result=rpc_pb2.Compare.EQUAL, target=rpc_pb2.Compare.MOD, key=b"k", mod_revision=0,
        )],
        success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"k", value=b"v"))],
        failure=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"k"))],
    )
    entry = raft_internal_pb2.InternalRaftRequest(
        header=raft_internal_pb2.RequestHeader(ID=42, username="root"), txn=txn,
    )
    back = raft_internal_pb2.InternalRaftRequest.FromString(entry.SerializeToString())
    assert back == entry
    compare = back.txn.compare[0]
    # An explicitly set zero in a oneof survives the round trip (it is how "key absent"
    # is tested: mod_revision == 0).
    assert compare.WhichOneof("target_union") == "mod_revision"
    assert back.txn.success[0].WhichOneof("request") == "request_put"
    # Field 100 (header) is encoded with a two-byte varint tag: 100 << 3 | 2 = 802.
    header_only = raft_internal_pb2.InternalRaftRequest(
        header=raft_internal_pb2.RequestHeader(ID=1),
    )
    assert header_only.SerializeToString() == b"\xa2\x06\x02\x08\x01"


def test_unknown_fields_from_newer_etcd_are_kept() -> None:
    # etcd 3.6 clients may send/receive fields petcd does not define (e.g.
    # StatusResponse.dbSizeQuota = 12); they must pass through unharmed.
    wire = rpc_pb2.StatusResponse(version="3.5.0").SerializeToString() + b"\x60\x80\x08"
    status = rpc_pb2.StatusResponse.FromString(wire)
    assert status.version == "3.5.0"
    assert status.SerializeToString() == wire


def test_base64_matches_go_std_encoding() -> None:
    # Go's encoding/json uses standard base64 with padding for []byte.
    msg = kv_pb2.KeyValue(key=b"\xfb\xff", value=b"a")
    assert _gateway_json(msg) == {
        "key": base64.b64encode(b"\xfb\xff").decode(), "value": "YQ==",
    }
    assert _gateway_json(msg)["key"] == "+/8="
