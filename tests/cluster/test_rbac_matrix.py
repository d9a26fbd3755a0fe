"""Who may make which call, with auth enabled: every service call tried as root, as
users with one role each, as a user with no role and with no token at all, against
etcd's rules (server/etcdserver/apply/auth.go, v3_server.go's checkLease*, v3rpc's
AuthAdmin, server/auth/store.go). A refused call answers etcd's message and changes
nothing a root read can see.

Users: reader (READ on r/), writer (WRITE on w/), prefixed (READWRITE on p/), nobody
(no role). A lease with the key w/leased attached exists throughout; its keys decide
the lease calls (revoke and keep-alive need write on them, time-to-live with keys and
lease listing need read on them).
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

from petcd.api.authpb import auth_pb2
from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.api.v3electionpb import v3election_pb2 as epb
from petcd.api.v3lockpb import v3lock_pb2 as lpb

from tests.ports import free_ports

from .auth_calls import (INVALID_TOKEN, PERMISSION_DENIED, ROOT_PASSWORD, USER_EMPTY, Api,
                         add_role, add_user, authenticate, channel_to, enable_auth, prefix_end,
                         refusal)
from .members import running, wait_until

OK = "ok"
PASSWORDS = {"reader": "readerpw", "writer": "writerpw", "prefixed": "prefixedpw",
             "nobody": "nobodypw", "bystander": "bystanderpw"}
USERS = ("root", "reader", "writer", "prefixed", "nobody", "anonymous")
SEEDED = {b"r/a": b"ra", b"w/a": b"wa", b"p/a": b"pa", b"x/a": b"xa"}
LEASE_TTL_S = 600  # never expires during the module
EVENT_WAIT_S = 5.0
QUIET_S = 0.3  # how long a canceled watch must stay silent after a write it may not see
TOKEN_TTL_S = 2


class Refused(Exception):
    """A refusal that is no gRPC error: a watch created canceled, with its reason."""

    def details(self) -> str:
        return str(self.args[0])


@dataclass
class World:
    """The module's member, the users' tokens (renewed after an auth disable) and the
    long-lived lease under w/."""

    channel: grpc.Channel
    tokens: dict[str, str] = field(default_factory=dict)
    lease: int = 0  # w/leased attached; only refused calls and reads touch it
    attach_lease: int = 0  # w/attached attached; Puts attach more keys to it
    serial: Iterator[int] = field(default_factory=itertools.count)

    def api(self, user: str) -> Api:
        return Api(self.channel, self.tokens.get(user))

    @property
    def root(self) -> Api:
        return self.api("root")

    def log_in_everyone(self) -> None:
        self.tokens["root"] = authenticate(self.channel, "root", ROOT_PASSWORD)
        for user, password in PASSWORDS.items():
            self.tokens[user] = authenticate(self.channel, user, password)

    def lease_with_key(self, key: bytes) -> int:
        lease = self.root.lease.LeaseGrant(pb.LeaseGrantRequest(TTL=LEASE_TTL_S),
                                           **self.root.opts).ID
        self.root.kv.Put(pb.PutRequest(key=key, value=b"v", lease=lease), **self.root.opts)
        return lease

    def fresh(self, prefix: bytes) -> bytes:
        return prefix + str(next(self.serial)).encode()


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    with running(tmp_path_factory.mktemp("rbac"), 1, ["--bcrypt-cost", "4"]) as cluster:
        cluster.wait_leader()
        with channel_to(cluster.members[0]) as channel:
            world = World(channel)
            setup = Api(channel, None)  # auth is off until enable_auth
            for key, value in SEEDED.items():
                setup.kv.Put(pb.PutRequest(key=key, value=value), **setup.opts)
            add_role(setup, "reading", b"r/", auth_pb2.Permission.READ)
            add_role(setup, "writing", b"w/", auth_pb2.Permission.WRITE)
            add_role(setup, "prefixing", b"p/", auth_pb2.Permission.READWRITE)
            add_user(setup, "reader", PASSWORDS["reader"], "reading")
            add_user(setup, "writer", PASSWORDS["writer"], "writing")
            add_user(setup, "prefixed", PASSWORDS["prefixed"], "prefixing")
            add_user(setup, "nobody", PASSWORDS["nobody"])
            add_user(setup, "bystander", PASSWORDS["bystander"])
            world.lease = world.lease_with_key(b"w/leased")
            world.attach_lease = world.lease_with_key(b"w/attached")
            enable_auth(setup)
            world.log_in_everyone()
            yield world


# -- the calls ------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One service call. `prepare` (as root) returns what `run` and `state` get;
    `state` is what a refusal must leave unchanged, read as root."""

    name: str
    allowed: frozenset[str]  # the users it succeeds for; all others are denied
    run: Callable[[World, Api, Any], None]
    prepare: Callable[[World, bool], Any] = lambda world, allowed: None
    state: Callable[[World, Any], Any] = lambda world, prepared: None
    anonymous: str = USER_EMPTY  # what a call without a token gets

    def expected(self, user: str) -> str:
        if user == "anonymous":
            return self.anonymous
        return OK if user in self.allowed else PERMISSION_DENIED


def users(*names: str) -> frozenset[str]:
    return frozenset(("root", *names))


EVERYONE = users("reader", "writer", "prefixed", "nobody")


def value_of(key: bytes) -> Callable[[World, Any], Any]:
    return lambda world, prepared: world.root.get(key)


# KV: Range, Put, DeleteRange


def range_call(name: str, key: bytes, range_end: bytes, allowed: frozenset[str]) -> Call:
    def run(world: World, api: Api, prepared: Any) -> None:
        request = pb.RangeRequest(key=key, range_end=range_end)
        assert api.kv.Range(request, **api.opts).count == world.root.kv.Range(
            request, **world.root.opts).count
    return Call(name, allowed, run)


def put_call(name: str, key: bytes, allowed: frozenset[str], prev_kv: bool = False,
             lease: Callable[[World], int] = lambda world: 0) -> Call:
    def run(world: World, api: Api, prepared: Any) -> None:
        value = f"by {api.token}".encode()
        api.kv.Put(pb.PutRequest(key=key, value=value, prev_kv=prev_kv, lease=lease(world)),
                   **api.opts)
        assert world.root.get(key) == value

    def state(world: World, prepared: Any) -> Any:
        lease_id = lease(world)
        keys = world.root.lease.LeaseTimeToLive(pb.LeaseTimeToLiveRequest(
            ID=lease_id, keys=True), **world.root.opts).keys if lease_id else []
        return world.root.get(key), sorted(keys)
    return Call(name, allowed, run, state=state)


def delete_call(name: str, key: bytes, range_end: bytes, allowed: frozenset[str],
                prev_kv: bool = False, also: tuple[bytes, ...] = ()) -> Call:
    """Deletes [key, range_end) after root puts `key` and `also` (keys in the range)."""
    def prepare(world: World, allowed: bool) -> None:
        for k in (key, *also):
            world.root.kv.Put(pb.PutRequest(key=k, value=b"d"), **world.root.opts)

    def run(world: World, api: Api, prepared: Any) -> None:
        deleted = api.kv.DeleteRange(pb.DeleteRangeRequest(
            key=key, range_end=range_end, prev_kv=prev_kv), **api.opts).deleted
        assert deleted == 1 + len(also)
        assert world.root.count(key, range_end) == 0

    def state(world: World, prepared: Any) -> Any:
        return world.root.count(key, range_end)
    return Call(name, allowed, run, prepare, state)


# Txn: compares are reads; both branches' ops count, whichever runs


def txn_call(name: str, allowed: frozenset[str], compare: list[pb.Compare],
             success: list[pb.RequestOp], failure: list[pb.RequestOp],
             watched: tuple[bytes, ...] = ()) -> Call:
    def run(world: World, api: Api, prepared: Any) -> None:
        api.kv.Txn(pb.TxnRequest(compare=compare, success=success, failure=failure),
                   **api.opts)

    def state(world: World, prepared: Any) -> Any:
        return [world.root.get(k) for k in watched]
    return Call(name, allowed, run, state=state)


def put_op(key: bytes) -> pb.RequestOp:
    return pb.RequestOp(request_put=pb.PutRequest(key=key, value=str(time.time()).encode()))


def range_op(key: bytes) -> pb.RequestOp:
    return pb.RequestOp(request_range=pb.RangeRequest(key=key))


def value_is(key: bytes, value: bytes) -> pb.Compare:
    return pb.Compare(key=key, target=pb.Compare.VALUE, result=pb.Compare.EQUAL, value=value)


# Compact: admin only in current etcd (v3rpc/key.go)


def compact_prepare(world: World, allowed: bool) -> int:
    """A revision no one compacted yet: a refusal is the check's, not the revision's."""
    return world.root.kv.Put(pb.PutRequest(key=b"w/compact", value=b"v"),
                             **world.root.opts).header.revision


def compact_run(world: World, api: Api, revision: int) -> None:
    api.kv.Compact(pb.CompactionRequest(revision=revision), **api.opts)
    assert compacted_revision(world, None) == revision


def compacted_revision(world: World, prepared: Any) -> int:
    return world.root.maintenance.HashKV(pb.HashKVRequest(), **world.root.opts).compact_revision


# Leases


def grant_run(world: World, api: Api, prepared: Any) -> None:
    lease = api.lease.LeaseGrant(pb.LeaseGrantRequest(TTL=LEASE_TTL_S), **api.opts).ID
    assert lease in lease_ids(world, None)
    world.root.lease.LeaseRevoke(pb.LeaseRevokeRequest(ID=lease), **world.root.opts)


def lease_ids(world: World, prepared: Any) -> list[int]:
    return sorted(s.ID for s in world.root.lease.LeaseLeases(
        pb.LeaseLeasesRequest(), **world.root.opts).leases)


def time_to_live(world: World, lease: int) -> pb.LeaseTimeToLiveResponse:
    return world.root.lease.LeaseTimeToLive(pb.LeaseTimeToLiveRequest(ID=lease, keys=True),
                                            **world.root.opts)


def fresh_or_shared_lease(world: World, allowed: bool) -> int:
    """A new lease under w/ for a call that may change it, else the module's (then at
    least a second old, so that a renewal would show)."""
    if allowed:
        return world.lease_with_key(world.fresh(b"w/lease"))
    assert wait_until(lambda: time_to_live(world, world.lease).TTL < LEASE_TTL_S, 3.0)
    return world.lease


def lease_state(world: World, lease: int) -> Any:
    """Whether the lease lives, unrenewed since its grant, and its keys (with values)."""
    answer = time_to_live(world, lease)
    return (answer.TTL > 0, answer.TTL < LEASE_TTL_S,
            [(k, world.root.get(k)) for k in sorted(answer.keys)])


def revoke_run(world: World, api: Api, lease: int) -> None:
    [key] = time_to_live(world, lease).keys
    api.lease.LeaseRevoke(pb.LeaseRevokeRequest(ID=lease), **api.opts)
    assert time_to_live(world, lease).TTL == -1 and world.root.get(key) is None


def keep_alive_run(world: World, api: Api, lease: int) -> None:
    [answer] = list(api.lease.LeaseKeepAlive(iter([pb.LeaseKeepAliveRequest(ID=lease)]),
                                             **api.opts))
    assert (answer.ID, answer.TTL) == (lease, LEASE_TTL_S)


def time_to_live_run(keys: bool) -> Callable[[World, Api, Any], None]:
    def run(world: World, api: Api, prepared: Any) -> None:
        answer = api.lease.LeaseTimeToLive(pb.LeaseTimeToLiveRequest(ID=world.lease, keys=keys),
                                           **api.opts)
        assert 0 < answer.TTL <= LEASE_TTL_S
        assert list(answer.keys) == ([b"w/leased"] if keys else [])
    return run


def leases_run(world: World, api: Api, prepared: Any) -> None:
    listed = api.lease.LeaseLeases(pb.LeaseLeasesRequest(), **api.opts).leases
    assert world.lease in {s.ID for s in listed}


# Watch: a watch outside the user's read range is canceled and shows nothing


class WatchStream:
    """One Watch stream opened with a token; answers are read with a bounded wait."""

    def __init__(self, api: Api) -> None:
        self._requests: queue.Queue[pb.WatchRequest | None] = queue.Queue()
        self._answers: queue.Queue[pb.WatchResponse | None] = queue.Queue()
        self._call = api.watch.Watch(iter(self._requests.get, None), **api.opts)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for answer in self._call:
                self._answers.put(answer)
        except grpc.RpcError:
            pass  # canceled by close(), or the server's end: next() says None
        self._answers.put(None)

    def create(self, key: bytes, range_end: bytes) -> None:
        self._requests.put(pb.WatchRequest(create_request=pb.WatchCreateRequest(
            key=key, range_end=range_end)))

    def next(self, timeout_s: float) -> pb.WatchResponse | None:
        try:
            return self._answers.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def close(self) -> None:
        self._requests.put(None)
        self._call.cancel()


def watch_call(name: str, key: bytes, range_end: bytes, allowed: frozenset[str]) -> Call:
    def run(world: World, api: Api, prepared: Any) -> None:
        stream = WatchStream(api)
        try:
            stream.create(key, range_end)
            created = stream.next(EVENT_WAIT_S)
            assert created is not None and created.created and not created.events, created
            world.root.kv.Put(pb.PutRequest(key=key, value=b"seen?"), **world.root.opts)
            if created.canceled:
                assert stream.next(QUIET_S) is None  # no event of a key it may not read
                raise Refused(created.cancel_reason)
            event = stream.next(EVENT_WAIT_S)
            assert event is not None and [e.kv.key for e in event.events] == [key], event
        finally:
            stream.close()
    return Call(name, allowed, run)


# Lock and Election: etcd's recipes run as the caller


def lock_run(world: World, api: Api, prepared: Any) -> None:
    key = api.lock.Lock(lpb.LockRequest(name=b"p/lock"), **api.opts).key
    assert key.startswith(b"p/lock/") and world.root.get(key) is not None
    api.lock.Unlock(lpb.UnlockRequest(key=key), **api.opts)


def campaign_run(world: World, api: Api, prepared: Any) -> None:
    leader = api.election.Campaign(epb.CampaignRequest(name=b"p/elect", value=b"me"),
                                   **api.opts).leader
    assert world.root.get(leader.key) == b"me"
    api.election.Resign(epb.ResignRequest(leader=leader), **api.opts)


def keys_under(prefix: bytes) -> Callable[[World, Any], Any]:
    return lambda world, prepared: world.root.count(prefix, prefix_end(prefix))


# Maintenance and Cluster: etcd's AuthAdmin


def member_id(world: World) -> int:
    return world.root.maintenance.Status(pb.StatusRequest(), **world.root.opts).header.member_id


def alarms(world: World, prepared: Any) -> list[Any]:
    return [(a.memberID, a.alarm) for a in world.root.maintenance.Alarm(
        pb.AlarmRequest(action=pb.AlarmRequest.GET), **world.root.opts).alarms]


def alarm_activate_run(world: World, api: Api, prepared: Any) -> None:
    nospace = pb.AlarmRequest(action=pb.AlarmRequest.ACTIVATE, alarm=pb.NOSPACE,
                              memberID=member_id(world))
    api.maintenance.Alarm(nospace, **api.opts)
    try:
        assert alarms(world, None) == [(nospace.memberID, pb.NOSPACE)]
    finally:
        nospace.action = pb.AlarmRequest.DEACTIVATE
        world.root.maintenance.Alarm(nospace, **world.root.opts)


def members(world: World, prepared: Any) -> list[int]:
    return sorted(m.ID for m in world.root.cluster.MemberList(
        pb.MemberListRequest(), **world.root.opts).members)


def member_add_run(world: World, api: Api, prepared: Any) -> None:
    """A learner (the quorum stays one) with a peer URL no one serves, removed again."""
    url = f"http://127.0.0.1:{free_ports(1)[0]}"
    added = api.cluster.MemberAdd(pb.MemberAddRequest(peerURLs=[url], isLearner=True),
                                  **api.opts).member
    try:
        assert added.ID in members(world, None)
    finally:
        world.root.cluster.MemberRemove(pb.MemberRemoveRequest(ID=added.ID), **world.root.opts)


def maintenance_call(name: str, allowed: frozenset[str],
                     call: Callable[[Api], Any]) -> Call:
    return Call(name, allowed, lambda world, api, prepared: call(api))


# Auth: admin only, but oneself and one's own roles


def user_names(world: World, prepared: Any) -> list[str]:
    return list(world.root.auth.UserList(pb.AuthUserListRequest(), **world.root.opts).users)


def user_add_run(world: World, api: Api, prepared: Any) -> None:
    name = world.fresh(b"added").decode()
    api.auth.UserAdd(pb.AuthUserAddRequest(name=name, password="pw"), **api.opts)
    assert name in user_names(world, None)
    world.root.auth.UserDelete(pb.AuthUserDeleteRequest(name=name), **world.root.opts)


def auth_state(world: World, prepared: Any) -> Any:
    status = world.root.auth.AuthStatus(pb.AuthStatusRequest(), **world.root.opts)
    return status.enabled, status.authRevision


def auth_disable_run(world: World, api: Api, prepared: Any) -> None:
    """Disables auth, then turns it on again (as root, who needs no token for it while
    auth is off) and logs everyone in again: the disable dropped every token."""
    api.auth.AuthDisable(pb.AuthDisableRequest(), **api.opts)
    anyone = Api(world.channel, None)
    assert not anyone.auth.AuthStatus(pb.AuthStatusRequest(), **anyone.opts).enabled
    anyone.auth.AuthEnable(pb.AuthEnableRequest(), **anyone.opts)
    world.log_in_everyone()


def auth_call(name: str, allowed: frozenset[str], call: Callable[[Api], Any],
              anonymous: str = USER_EMPTY) -> Call:
    return Call(name, allowed, lambda world, api, prepared: call(api), anonymous=anonymous)


CALLS = [
    range_call("range r/a", b"r/a", b"", users("reader")),
    range_call("range prefix r/", b"r/", b"r0", users("reader")),
    range_call("range r/ beyond the prefix", b"r/", b"s", users()),
    range_call("range w/a", b"w/a", b"", users()),  # writer may write, not read
    range_call("range prefix p/", b"p/", b"p0", users("prefixed")),
    range_call("range x/a", b"x/a", b"", users()),
    range_call("range every key", b"\0", b"\0", users()),
    put_call("put w/k", b"w/k", users("writer")),
    put_call("put w/k prev_kv", b"w/k", users(), prev_kv=True),  # prev_kv reads
    put_call("put p/k prev_kv", b"p/k", users("prefixed"), prev_kv=True),
    put_call("put r/k", b"r/k", users()),
    put_call("put x/k", b"x/k", users()),
    # Attaching a key to a lease needs write on the lease's keys (checkLeasePuts).
    put_call("put w/ with the w/ lease", b"w/attached2", users("writer"),
             lease=lambda world: world.attach_lease),
    put_call("put p/ with the w/ lease", b"p/attached", users(),
             lease=lambda world: world.attach_lease),
    delete_call("delete w/d", b"w/d", b"", users("writer")),
    delete_call("delete w/d prev_kv", b"w/d", b"", users(), prev_kv=True),
    delete_call("delete w/z beyond the prefix", b"w/z", b"x", users(), also=(b"wz",)),
    delete_call("delete p/d", b"p/d", b"", users("prefixed")),
    txn_call("txn compare r/a then range r/a", users("reader"),
             [value_is(b"r/a", b"ra")], [range_op(b"r/a")], []),
    txn_call("txn compare w/a then put w/t", users(),  # a compare is a read
             [value_is(b"w/a", b"wa")], [put_op(b"w/t")], [], watched=(b"w/t",)),
    txn_call("txn put w/t", users("writer"), [], [put_op(b"w/t")], [], watched=(b"w/t",)),
    txn_call("txn put p/t else put w/t", users(),  # the branch not taken counts too
             [], [put_op(b"p/t")], [put_op(b"w/t")], watched=(b"p/t", b"w/t")),
    txn_call("txn compare p/a fails, else put p/t", users("prefixed"),
             [value_is(b"p/a", b"not it")], [], [put_op(b"p/t")], watched=(b"p/t",)),
    txn_call("txn nested put x/t", users(), [], [pb.RequestOp(request_txn=pb.TxnRequest(
        success=[put_op(b"x/t")]))], [], watched=(b"x/t",)),
    Call("compact", users(), compact_run, compact_prepare, compacted_revision),
    Call("lease grant", EVERYONE, grant_run, state=lease_ids),
    Call("lease revoke of a w/ lease", users("writer"), revoke_run,
         prepare=fresh_or_shared_lease, state=lease_state),
    Call("lease keep-alive of a w/ lease", users("writer"), keep_alive_run,
         prepare=fresh_or_shared_lease, state=lease_state),
    Call("lease time-to-live", EVERYONE, time_to_live_run(keys=False)),
    Call("lease time-to-live with keys", users(), time_to_live_run(keys=True)),  # reads keys
    Call("lease leases", users(), leases_run),  # reads the keys of every lease
    watch_call("watch r/w", b"r/w", b"", users("reader")),
    watch_call("watch prefix p/w/", b"p/w/", b"p/w0", users("prefixed")),
    watch_call("watch w/w", b"w/w", b"", users()),
    watch_call("watch prefix x/w/", b"x/w/", b"x/w0", users()),
    Call("lock p/lock", users("prefixed"), lock_run, state=keys_under(b"p/lock/")),
    Call("campaign p/elect", users("prefixed"), campaign_run, state=keys_under(b"p/elect/")),
    maintenance_call("status", EVERYONE,
                     lambda api: api.maintenance.Status(pb.StatusRequest(), **api.opts)),
    maintenance_call("defragment", users(),
                     lambda api: api.maintenance.Defragment(pb.DefragmentRequest(), **api.opts)),
    maintenance_call("hash", users(), lambda api: api.maintenance.Hash(pb.HashRequest(),
                                                                       **api.opts)),
    maintenance_call("hash kv", users(), lambda api: api.maintenance.HashKV(pb.HashKVRequest(),
                                                                            **api.opts)),
    maintenance_call("snapshot", users(), lambda api: next(api.maintenance.Snapshot(
        pb.SnapshotRequest(), **api.opts))),
    Call("move leader to itself", users(), lambda world, api, prepared: api.maintenance.MoveLeader(
        pb.MoveLeaderRequest(targetID=member_id(world)), **api.opts)),
    Call("alarm activate", users(), alarm_activate_run, state=alarms),
    maintenance_call("alarm get", EVERYONE, lambda api: api.maintenance.Alarm(
        pb.AlarmRequest(action=pb.AlarmRequest.GET), **api.opts)),
    maintenance_call("member list", EVERYONE,
                     lambda api: api.cluster.MemberList(pb.MemberListRequest(), **api.opts)),
    Call("member add", users(), member_add_run, state=members),
    auth_call("auth status", EVERYONE,
              lambda api: api.auth.AuthStatus(pb.AuthStatusRequest(), **api.opts), anonymous=OK),
    auth_call("user list", users(),
              lambda api: api.auth.UserList(pb.AuthUserListRequest(), **api.opts)),
    auth_call("role list", users(),
              lambda api: api.auth.RoleList(pb.AuthRoleListRequest(), **api.opts)),
    Call("user add", users(), user_add_run, state=user_names),
    auth_call("user get reader", users("reader"),
              lambda api: api.auth.UserGet(pb.AuthUserGetRequest(name="reader"), **api.opts)),
    auth_call("user get nobody", users("nobody"),
              lambda api: api.auth.UserGet(pb.AuthUserGetRequest(name="nobody"), **api.opts)),
    auth_call("user get bystander", users(),
              lambda api: api.auth.UserGet(pb.AuthUserGetRequest(name="bystander"), **api.opts)),
    auth_call("role get reading", users("reader"),
              lambda api: api.auth.RoleGet(pb.AuthRoleGetRequest(role="reading"), **api.opts)),
    auth_call("role get writing", users("writer"),
              lambda api: api.auth.RoleGet(pb.AuthRoleGetRequest(role="writing"), **api.opts)),
    Call("auth disable", users(), auth_disable_run, state=auth_state),
]
ROWS = [pytest.param(call, user, id=f"{call.name}-{user}") for call in CALLS for user in USERS]


@pytest.mark.parametrize(("call", "user"), ROWS)
def test_call_as_user(world: World, call: Call, user: str) -> None:
    expected = call.expected(user)
    prepared = call.prepare(world, expected == OK)
    before = call.state(world, prepared)
    api = world.api(user)
    if expected == OK:
        call.run(world, api, prepared)
        return
    with pytest.raises((grpc.RpcError, Refused)) as refused:
        call.run(world, api, prepared)
    assert refused.value.details() == expected
    assert call.state(world, prepared) == before  # a refusal changes nothing


def test_seeded_keys_survive_the_matrix(world: World) -> None:
    """No refused call, of any row, removed or changed a key it may not touch."""
    assert {key: world.root.get(key) for key in SEEDED} == SEEDED


def test_a_token_idle_past_its_ttl_is_refused(tmp_path) -> None:
    """--auth-token-ttl counts from a token's last use: one used every half TTL lives
    on, one left idle past the TTL is dead."""
    args = ["--bcrypt-cost", "4", "--auth-token-ttl", str(TOKEN_TTL_S)]
    with running(tmp_path, 1, args) as cluster:
        cluster.wait_leader()
        with channel_to(cluster.members[0]) as channel:
            enable_auth(Api(channel, None))
            busy = Api(channel, authenticate(channel, "root", ROOT_PASSWORD))
            idle = Api(channel, authenticate(channel, "root", ROOT_PASSWORD))
            idle.get(b"k")
            started = time.monotonic()
            while time.monotonic() - started < TOKEN_TTL_S + 1.5:
                busy.get(b"k")  # kept alive past the TTL by use
                time.sleep(TOKEN_TTL_S / 2)
            assert refusal(lambda: idle.get(b"k")) == INVALID_TOKEN
            assert busy.get(b"k") is None
