"""A small, obviously-correct model of etcd v3.5's MVCC semantics, for tests.

The store's state at revision r is `revs[r]`, a plain dict key -> KV: no indexes,
no encodings, no compaction of storage (compaction only forbids reads). Each
operation is written the way etcd's documentation and apply.go describe it.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field

from hypothesis import HealthCheck, event, given, settings, strategies as st

from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.api.mvccpb.kv_pb2 import KeyValue
from petcd.storage.mvcc import MvccStore, errors, keyindex, layout
from petcd.storage.mvcc.errors import MvccError

R = pb.RangeRequest
C = pb.Compare


@dataclass(frozen=True)
class KV:
    key: bytes
    create: int
    mod: int
    version: int
    value: bytes
    lease: int

    def pb(self) -> KeyValue:
        return KeyValue(
            key=self.key, create_revision=self.create, mod_revision=self.mod,
            version=self.version, value=self.value, lease=self.lease,
        )


def in_range(k: bytes, key: bytes, end: bytes) -> bool:
    if not end:
        return k == key
    if end == b"\x00":
        return k >= key
    return key <= k < end


def fail(kind: errors.ErrorKind) -> None:
    raise MvccError(kind)


# ---- request checks (etcd's v3rpc/key.go) -----------------------------------------


def check_range(r: pb.RangeRequest) -> None:
    if not r.key:
        fail(errors.EMPTY_KEY)
    if r.sort_order not in (0, 1, 2) or r.sort_target not in (0, 1, 2, 3, 4):
        fail(errors.INVALID_SORT_OPTION)


def check_put(r: pb.PutRequest) -> None:
    if not r.key:
        fail(errors.EMPTY_KEY)
    if r.ignore_value and r.value:
        fail(errors.VALUE_PROVIDED)
    if r.ignore_lease and r.lease:
        fail(errors.LEASE_PROVIDED)


def check_txn(r: pb.TxnRequest, budget: int) -> None:
    n = max(len(r.compare), len(r.success), len(r.failure))
    if n > budget:
        fail(errors.TOO_MANY_OPS)
    if any(not c.key for c in r.compare):
        fail(errors.EMPTY_KEY)
    for op in list(r.success) + list(r.failure):
        kind = op.WhichOneof("request")
        if kind is None:
            fail(errors.KEY_NOT_FOUND)
        elif kind == "request_range":
            check_range(op.request_range)
        elif kind == "request_put":
            check_put(op.request_put)
        elif kind == "request_delete_range":
            if not op.request_delete_range.key:
                fail(errors.EMPTY_KEY)
        else:
            check_txn(op.request_txn, budget - n)


def deleted_by(spans: list[tuple[bytes, bytes]], k: bytes) -> bool:
    # [s, e) with e == b"" unbounded; a point delete is [k, k+"\0"); a from-key
    # delete (range_end "\0") is [k, "\0"), which etcd's check treats as empty.
    return any(s <= k and (e == b"" or k < e) for s, e in spans)


def conflicts(ops: list[pb.RequestOp]) -> tuple[set[bytes], list[tuple[bytes, bytes]]]:
    dels = [
        (op.request_delete_range.key, op.request_delete_range.range_end or op.request_delete_range.key + b"\x00")
        for op in ops
        if op.WhichOneof("request") == "request_delete_range"
    ]
    puts: set[bytes] = set()
    for op in ops:
        if op.WhichOneof("request") != "request_txn":
            continue
        then_puts, then_dels = conflicts(list(op.request_txn.success))
        else_puts, else_dels = conflicts(list(op.request_txn.failure))
        for k in then_puts:
            if k in puts or deleted_by(dels, k):
                fail(errors.DUPLICATE_KEY)
            puts.add(k)
        for k in else_puts:
            if (k in puts and k not in then_puts) or deleted_by(dels, k):
                fail(errors.DUPLICATE_KEY)
            puts.add(k)
        dels += then_dels + else_dels
    for op in ops:
        if op.WhichOneof("request") == "request_put":
            k = op.request_put.key
            if k in puts or deleted_by(dels, k):
                fail(errors.DUPLICATE_KEY)
            puts.add(k)
    return puts, dels


# ---- the model ----------------------------------------------------------------------


def compare_one(c: pb.Compare, kv: KV | None) -> bool:
    which = c.WhichOneof("target_union")
    if c.target == C.VALUE:
        mine, theirs = (kv.value if kv else b""), (c.value if which == "value" else b"")
    else:
        attr = {C.VERSION: "version", C.CREATE: "create", C.MOD: "mod", C.LEASE: "lease"}[c.target]
        field_name = {C.VERSION: "version", C.CREATE: "create_revision", C.MOD: "mod_revision", C.LEASE: "lease"}
        mine = getattr(kv, attr) if kv else 0
        theirs = getattr(c, field_name[c.target]) if which == field_name[c.target] else 0
    return {
        C.EQUAL: mine == theirs, C.NOT_EQUAL: mine != theirs,
        C.GREATER: mine > theirs, C.LESS: mine < theirs,
    }[c.result]


@dataclass
class Model:
    max_txn_ops: int
    revs: list[dict[bytes, KV]] = field(default_factory=lambda: [{}, {}])  # revs[1]: empty store
    compact: int = -1
    changes: list[tuple[int, bytes, bool]] = field(default_factory=list)  # (rev, key, tombstone)
    leases: dict[int, int] = field(default_factory=dict)  # granted lease ID -> TTL

    @property
    def rev(self) -> int:
        return len(self.revs) - 1

    # Reads.

    def range_at(self, state: dict[bytes, KV], r: pb.RangeRequest, header_rev: int) -> pb.RangeResponse:
        kvs = [state[k] for k in sorted(state) if in_range(k, r.key, r.range_end)]
        resp = pb.RangeResponse(count=len(kvs))
        resp.header.revision = header_rev
        if r.count_only:
            return resp
        filtered = r.min_mod_revision or r.max_mod_revision or r.min_create_revision or r.max_create_revision
        if r.sort_order == R.NONE and not filtered and r.limit > 0:
            kvs = kvs[: r.limit + 1]  # etcd reads limit + 1 keys, then sorts only those
        kvs = [
            kv for kv in kvs
            if not (r.max_mod_revision and kv.mod > r.max_mod_revision)
            and not (r.min_mod_revision and kv.mod < r.min_mod_revision)
            and not (r.max_create_revision and kv.create > r.max_create_revision)
            and not (r.min_create_revision and kv.create < r.min_create_revision)
        ]
        target = {R.KEY: "key", R.VERSION: "version", R.CREATE: "create", R.MOD: "mod", R.VALUE: "value"}[r.sort_target]
        if r.sort_order == R.DESCEND:
            kvs.sort(key=lambda kv: getattr(kv, target), reverse=True)
        elif r.sort_order == R.ASCEND or r.sort_target != R.KEY:
            kvs.sort(key=lambda kv: getattr(kv, target))
        if r.limit > 0 and len(kvs) > r.limit:
            kvs, resp.more = kvs[: r.limit], True
        resp.kvs.extend(kv.pb() for kv in kvs)
        if r.keys_only:
            for kv in resp.kvs:
                kv.value = b""
        return resp

    def read(self, r: pb.RangeRequest, work: dict[bytes, KV] | None = None, work_rev: int = 0) -> pb.RangeResponse:
        current = work_rev or self.rev
        if r.revision > current:
            fail(errors.FUTURE_REV)
        rev = current if r.revision <= 0 else r.revision
        if rev < self.compact:
            fail(errors.COMPACTED)
        state = work if (work is not None and rev == current) else self.revs[rev]
        return self.range_at(state, r, current)

    def range(self, r: pb.RangeRequest) -> pb.RangeResponse:
        check_range(r)
        return self.read(r)

    # Writes.

    def commit(self, work: dict[bytes, KV], changes: list[tuple[bytes, bool]]) -> None:
        if changes:
            self.revs.append(work)
            self.changes += [(self.rev, k, t) for k, t in changes]

    def do_put(self, work: dict[bytes, KV], r: pb.PutRequest, rev: int, changes: list) -> pb.PutResponse:
        prev = work.get(r.key)
        if (r.ignore_value or r.ignore_lease) and prev is None:
            fail(errors.KEY_NOT_FOUND)
        resp = pb.PutResponse()
        if r.prev_kv and prev:
            resp.prev_kv.CopyFrom(prev.pb())
        work[r.key] = KV(
            r.key, prev.create if prev else rev, rev, prev.version + 1 if prev else 1,
            prev.value if r.ignore_value else r.value, prev.lease if r.ignore_lease else r.lease,
        )
        changes.append((r.key, False))
        resp.header.revision = rev
        return resp

    def do_delete(self, work: dict[bytes, KV], r: pb.DeleteRangeRequest, rev: int,
                  changes: list) -> pb.DeleteRangeResponse:
        gone = [k for k in sorted(work) if in_range(k, r.key, r.range_end)]
        resp = pb.DeleteRangeResponse(deleted=len(gone))
        if r.prev_kv:
            resp.prev_kvs.extend(work[k].pb() for k in gone)
        for k in gone:
            del work[k]
            changes.append((k, True))
        resp.header.revision = rev if changes else rev - 1
        return resp

    def put(self, r: pb.PutRequest) -> pb.PutResponse:
        check_put(r)
        if r.lease and r.lease not in self.leases:  # looked up first, outside a txn
            fail(errors.LEASE_NOT_FOUND)
        work, changes = dict(self.revs[-1]), []
        resp = self.do_put(work, r, self.rev + 1, changes)
        self.commit(work, changes)
        return resp

    def delete(self, r: pb.DeleteRangeRequest) -> pb.DeleteRangeResponse:
        if not r.key:
            fail(errors.EMPTY_KEY)
        work, changes = dict(self.revs[-1]), []
        resp = self.do_delete(work, r, self.rev + 1, changes)
        self.commit(work, changes)
        return resp

    def compaction(self, rev: int) -> pb.CompactionResponse:
        if rev <= self.compact:
            fail(errors.COMPACTED)
        if rev > self.rev:
            fail(errors.FUTURE_REV)
        self.compact = rev
        resp = pb.CompactionResponse()
        resp.header.revision = self.rev
        return resp

    # Leases (etcd's lessor.Grant and Revoke).

    def grant(self, r: pb.LeaseGrantRequest) -> pb.LeaseGrantResponse:
        if r.ID == 0:
            fail(errors.LEASE_NOT_FOUND)
        if r.TTL > 9_000_000_000:
            fail(errors.LEASE_TTL_TOO_LARGE)
        if r.ID in self.leases:
            fail(errors.LEASE_EXISTS)
        self.leases[r.ID] = max(r.TTL, MIN_LEASE_TTL_S)
        resp = pb.LeaseGrantResponse(ID=r.ID, TTL=self.leases[r.ID])
        resp.header.revision = self.rev
        return resp

    def revoke(self, r: pb.LeaseRevokeRequest) -> pb.LeaseRevokeResponse:
        if r.ID not in self.leases:
            fail(errors.LEASE_NOT_FOUND)
        del self.leases[r.ID]
        work = dict(self.revs[-1])
        gone = [k for k in sorted(work) if work[k].lease == r.ID]
        for k in gone:
            del work[k]
        self.commit(work, [(k, True) for k in gone])
        resp = pb.LeaseRevokeResponse()
        resp.header.revision = self.rev
        return resp

    def lease_keys(self) -> dict[int, list[bytes]]:
        state = self.revs[-1]
        return {lease: [k for k in sorted(state) if state[k].lease == lease] for lease in self.leases}

    # Txn.

    def holds(self, c: pb.Compare) -> bool:
        state = self.revs[-1]
        kvs = [state[k] for k in sorted(state) if in_range(k, c.key, c.range_end)]
        if not kvs:
            return c.target != C.VALUE and compare_one(c, None)
        return all(compare_one(c, kv) for kv in kvs)

    def branch(self, r: pb.TxnRequest) -> tuple[bool, list[pb.RequestOp]]:
        ok = all(self.holds(c) for c in r.compare)
        return ok, list(r.success if ok else r.failure)

    def taken_ops(self, r: pb.TxnRequest) -> list[pb.RequestOp]:
        out = []
        for op in self.branch(r)[1]:
            out += self.taken_ops(op.request_txn) if op.WhichOneof("request") == "request_txn" else [op]
        return out

    def txn(self, r: pb.TxnRequest) -> pb.TxnResponse:
        check_txn(r, self.max_txn_ops)
        conflicts(list(r.success))
        conflicts(list(r.failure))
        taken = self.taken_ops(r)
        state = self.revs[-1]
        for op in taken:  # all put checks before all range checks, as etcd
            p = op.request_put
            if op.WhichOneof("request") != "request_put":
                continue
            if (p.ignore_value or p.ignore_lease) and p.key not in state:
                fail(errors.KEY_NOT_FOUND)
            if p.lease and p.lease not in self.leases:
                fail(errors.LEASE_NOT_FOUND)
        for op in taken:
            rev = op.request_range.revision
            if op.WhichOneof("request") == "request_range" and rev != 0:
                if rev > self.rev:
                    fail(errors.FUTURE_REV)
                if rev < self.compact:
                    fail(errors.COMPACTED)
        work, changes = dict(state), []
        resp = pb.TxnResponse()
        self.run(r, work, changes, resp)
        resp.header.revision = self.rev + 1 if changes else self.rev
        self.commit(work, changes)
        return resp

    def run(self, r: pb.TxnRequest, work: dict, changes: list, resp: pb.TxnResponse) -> None:
        # Branches were decided on the state before the txn (compareToPath).
        resp.succeeded, ops = self.branch(r)
        for op in ops:
            out = resp.responses.add()
            kind = op.WhichOneof("request")
            if kind == "request_range":
                cur = self.rev + 1 if changes else self.rev
                out.response_range.CopyFrom(self.read(op.request_range, work, cur))
            elif kind == "request_put":
                out.response_put.CopyFrom(self.do_put(work, op.request_put, self.rev + 1, changes))
            elif kind == "request_delete_range":
                out.response_delete_range.CopyFrom(self.do_delete(work, op.request_delete_range, self.rev + 1, changes))
            else:
                out.response_txn.header.SetInParent()
                self.run(op.request_txn, work, changes, out.response_txn)

    # What compaction must leave in storage.

    def expected_history(self) -> list[tuple[int, bytes, bool]]:
        latest: dict[bytes, tuple[int, bytes, bool]] = {}
        kept = []
        for change in self.changes:
            if change[0] <= self.compact:
                latest[change[1]] = change
            else:
                kept.append(change)
        return sorted(kept + [c for c in latest.values() if not c[2]])


# ---- property test: random histories give the model's results and errors ---------------

MAX_TXN_OPS = 8  # small, so that random txns can exceed it
LEASES = (5, 7)  # granted at the start; -3 and 9 may be granted later, 0 never
MIN_LEASE_TTL_S = 3
FUTURE = 1000  # revision token: one past the current revision

KEYS = [b"a", b"ab", b"b", b"c", b"c\x00", b"d"]
keys = st.sampled_from(KEYS)
maybe_empty_keys = st.sampled_from(KEYS * 8 + [b""])
range_ends = st.sampled_from([b"", b"", b"\x00", b"b", b"c", b"c\x00", b"e", b"a"])
values = st.sampled_from([b"", b"x", b"y", b"zz"])
rare = st.sampled_from([False] * 5 + [True])
rev_tokens = st.one_of(st.just(0), st.just(-1), st.just(FUTURE), st.integers(1, 60))
small_revs = st.sampled_from([0] * 20 + [1, 2, 3, 4, 5, 6, 7, 8, 9])


@st.composite
def range_requests(draw) -> pb.RangeRequest:  # type: ignore[no-untyped-def]
    return pb.RangeRequest(
        key=draw(maybe_empty_keys), range_end=draw(range_ends), limit=draw(st.sampled_from([0, 0, 1, 2, 3])),
        revision=draw(rev_tokens),
        sort_order=draw(st.sampled_from([0] * 12 + [1] * 6 + [2] * 6 + [7])),
        sort_target=draw(st.sampled_from([0] * 6 + [1, 2, 3, 4] * 4 + [9])),
        keys_only=draw(rare), count_only=draw(rare),
        min_mod_revision=draw(small_revs), max_mod_revision=draw(small_revs),
        min_create_revision=draw(small_revs), max_create_revision=draw(small_revs),
    )


@st.composite
def put_requests(draw) -> pb.PutRequest:  # type: ignore[no-untyped-def]
    ignore_value, ignore_lease = draw(rare), draw(rare)
    return pb.PutRequest(
        key=draw(maybe_empty_keys), value=draw(st.just(b"") if ignore_value and draw(st.booleans()) else values),
        lease=draw(st.sampled_from([0, 0, 0, 5, 7, -3, 9])), prev_kv=draw(st.booleans()),
        ignore_value=ignore_value, ignore_lease=ignore_lease,
    )


@st.composite
def delete_requests(draw) -> pb.DeleteRangeRequest:  # type: ignore[no-untyped-def]
    return pb.DeleteRangeRequest(key=draw(maybe_empty_keys), range_end=draw(range_ends), prev_kv=draw(st.booleans()))


@st.composite
def compares(draw) -> pb.Compare:  # type: ignore[no-untyped-def]
    c = pb.Compare(result=draw(st.integers(0, 3)), target=draw(st.integers(0, 4)), key=draw(keys))
    c.range_end = draw(st.sampled_from([b"", b"", b"\x00", b"c"]))
    union = draw(st.sampled_from(["version", "create_revision", "mod_revision", "value", "lease"] + ["match"] * 10))
    if union == "match":
        union = ["version", "create_revision", "mod_revision", "value", "lease"][c.target]
    if union == "value":
        c.value = draw(values)
    else:
        setattr(c, union, draw(st.integers(0, 6)))
    return c


def request_ops(depth: int):  # type: ignore[no-untyped-def]
    ranges = range_requests().map(lambda r: pb.RequestOp(request_range=r))
    puts = put_requests().map(lambda r: pb.RequestOp(request_put=r))
    deletes = delete_requests().map(lambda r: pb.RequestOp(request_delete_range=r))
    options = [ranges, puts, puts, puts, deletes, deletes]
    if depth > 0:
        nested = txn_requests(depth - 1).map(lambda r: pb.RequestOp(request_txn=r))
        options += [nested, nested]
    # An empty RequestOp is refused (etcd answers "key not found"): keep it rare.
    return st.sampled_from([*range(len(options))] * 10 + [-1]).flatmap(
        lambda i: options[i] if i >= 0 else st.just(pb.RequestOp())
    )


def txn_requests(depth: int = 2):  # type: ignore[no-untyped-def]
    # Sizes shrink with depth so that most txns fit the budget a nested txn gets
    # (what its parent left); one branch in 40 is oversized to hit the limit.
    size = {2: 4, 1: 2, 0: 1}[depth]
    fitting = st.lists(request_ops(depth), max_size=size)
    ops_list = fitting
    if depth == 2:
        oversized = st.lists(request_ops(0), min_size=MAX_TXN_OPS + 1, max_size=MAX_TXN_OPS + 1)
        ops_list = st.sampled_from([False] * 39 + [True]).flatmap(lambda big: oversized if big else fitting)
    return st.builds(
        lambda c, s, f: pb.TxnRequest(compare=c, success=s, failure=f),
        st.lists(compares(), max_size=3), ops_list, ops_list,
    )


commands = st.lists(
    st.one_of(
        st.tuples(st.just("put"), put_requests()),
        st.tuples(st.just("put"), put_requests()),
        st.tuples(st.just("delete"), delete_requests()),
        st.tuples(st.just("txn"), txn_requests()),
        st.tuples(st.just("txn"), txn_requests()),
        st.tuples(st.just("compact"), rev_tokens.map(lambda t: pb.CompactionRequest(revision=t))),
        st.tuples(st.just("compact"), rev_tokens.map(lambda t: pb.CompactionRequest(revision=t))),
        st.tuples(st.just("range"), range_requests()),
        st.tuples(st.just("range"), range_requests()),
        st.tuples(st.just("grant"), st.builds(
            pb.LeaseGrantRequest, ID=st.sampled_from([5, 7, -3, 9, 0]),
            TTL=st.sampled_from([-1, 0, 2, 3, 60, 9_000_000_000, 9_000_000_001]))),
        st.tuples(st.just("revoke"), st.builds(pb.LeaseRevokeRequest,
                                               ID=st.sampled_from([5, 7, -3, 9]))),
        st.tuples(st.sampled_from(["reopen", "defrag", "noop"]), st.none()),
    ),
    min_size=15,
    max_size=60,
)


def concrete(token: int, current: int) -> int:
    """Revision tokens become revisions of the history so far (most of them valid)."""
    if token <= 0:
        return token
    if token == FUTURE:
        return current + 1
    return 1 + (token - 1) % current


def concretise(msg, current: int):  # type: ignore[no-untyped-def]
    msg = type(msg).FromString(msg.SerializeToString())
    if isinstance(msg, (pb.RangeRequest, pb.CompactionRequest)):
        msg.revision = concrete(msg.revision, current)
    elif isinstance(msg, pb.TxnRequest):
        for op in list(msg.success) + list(msg.failure):
            kind = op.WhichOneof("request")
            if kind == "request_range":
                op.request_range.revision = concrete(op.request_range.revision, current)
            elif kind == "request_txn":
                op.request_txn.CopyFrom(concretise(op.request_txn, current))
    return msg


def outcome(fn, msg):  # type: ignore[no-untyped-def]
    try:
        return fn(msg)
    except MvccError as err:
        return err


def audit(store: MvccStore, model: Model) -> None:
    """White box: history and key_revs agree with each other and with the model, and
    so do the lease tables."""
    b = store.backend
    with b.env.begin() as t:
        history = {}
        for hkey, raw in t.cursor(db=b.dbs.history):
            main, sub, tomb = layout.parse_history_key(hkey)
            history[(main, sub)] = (KeyValue.FromString(raw).key, tomb)
        key_revs = {}
        for key, entry in t.cursor(db=b.dbs.key_revs):
            main, sub, tomb = layout.parse_key_rev_entry(entry)
            key_revs[(main, sub)] = (key, tomb)
        everything = keyindex.KeyRange(b"\x00", b"")
        live = {k: layout.Revision.from_bytes(r) for k, r in keyindex.current_entries(t, b.dbs, everything)}
    assert history == key_revs
    assert sorted((m, k, tomb) for (m, _), (k, tomb) in history.items()) == model.expected_history()
    assert set(live) == set(model.revs[-1])
    for key, rev in live.items():
        assert history[(rev.main, rev.sub)] == (key, False)
        assert rev.main == model.revs[-1][key].mod
    assert {lease.lease_id: lease.ttl_s for lease in store.leases()} == model.leases
    attached = model.lease_keys()
    assert {lease: store.lease_keys(lease) for lease in model.leases} == attached
    with b.env.begin() as t:
        assert t.stat(b.dbs.lease_keys)["entries"] == sum(map(len, attached.values()))


def check_all_revisions(store: MvccStore, model: Model) -> None:
    for rev in range(max(model.compact, 1), model.rev + 1):
        r = pb.RangeRequest(key=b"\x00", range_end=b"\x00", revision=rev)
        assert store.range(r) == model.range(r), f"state at revision {rev}"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(commands)
def test_store_matches_model(cmds) -> None:  # type: ignore[no-untyped-def]
    path = tempfile.mkdtemp(prefix="mvcc-model-")
    store = MvccStore.open(path, sync=False, max_txn_ops=MAX_TXN_OPS, quota_bytes=64 * 1024**2,
                           min_lease_ttl_s=MIN_LEASE_TTL_S)
    model = Model(MAX_TXN_OPS)
    index = 0
    for lease in LEASES:
        index += 1
        grant = pb.LeaseGrantRequest(ID=lease, TTL=60)
        assert store.apply(index, 1, grant) == model.grant(grant)
    try:
        for kind, msg in cmds:
            if kind == "reopen":
                store.close()
                store = MvccStore.open(path, sync=False, max_txn_ops=MAX_TXN_OPS,
                                       quota_bytes=64 * 1024**2, min_lease_ttl_s=MIN_LEASE_TTL_S)
                continue
            if kind == "defrag":
                store.defragment()
                continue
            if kind != "range":
                index += 1
            if kind == "noop":
                assert store.apply(index, 1, None) is None
                continue
            msg = concretise(msg, model.rev)
            if kind == "range":
                got, want = outcome(store.range, msg), outcome(model.range, msg)
            else:
                got = outcome(lambda m, store=store, index=index: store.apply(index, 1, m), msg)
                want = outcome({"put": model.put, "delete": model.delete, "txn": model.txn,
                                "compact": lambda m: model.compaction(m.revision),
                                "grant": model.grant, "revoke": model.revoke}[kind], msg)
            assert got == want, f"{kind} {msg}\nstore: {got}\nmodel: {want}"
            event(f"{kind}: {want.message if isinstance(want, MvccError) else 'ok'}")
            if kind in ("compact", "revoke"):
                audit(store, model)
            assert store.current_revision() == model.rev
        assert store.compact_revision() == model.compact
        assert store.applied_index() == index
        check_all_revisions(store, model)
        audit(store, model)
    finally:
        store.close()
        shutil.rmtree(path, ignore_errors=True)
