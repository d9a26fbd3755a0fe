"""etcd's watch guarantees under concurrent writers and a member killed mid-stream, on
a real 3-member cluster, checked by tests/watchcheck.

Three writers (one per member, failing over to the others) put, delete, delete ranges
and run txns over a small key space; every put writes a value unique in the run, and
each writer records what it did and the revision it got (or nothing, when the answer
never came). Watchers on every member (prefix, single key, range, filters, prev_kv,
progress notifications), started before the writes, in the past mid-run and in the
future, record every response through the Python client, which resumes on another
member when its member dies. Mid-run one member is SIGKILLed and restarted, and the
history is compacted. At the end every watcher asks for progress until it has reached
the last revision, and the checker reads the whole record."""

from __future__ import annotations

import random
import threading
import time

import pytest

from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.client import Client
from petcd.client.errors import EtcdError
from tests.cluster.members import running
from tests.faults.observers import Recorder
from tests.watchcheck import Watch, WatchSpec, Write, assert_ok, delete, put

KEYS = [b"g/%d" % i for i in range(8)]
WRITE_FOR_S = 8.0
CATCH_UP_S = 30.0
SEED = 7


def _writer(name: str, client: Client, rng: random.Random, stop: threading.Event,
            writes: list[Write]) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        value = f"{name}-{n}".encode()
        key = rng.choice(KEYS)
        roll = rng.random()
        try:
            if roll < 0.55:
                rev = client.put(key, value).header.revision
                writes.append(Write((put(key, value),), rev, name))
            elif roll < 0.7:
                resp = client.delete(key, prev_kv=True)
                if resp.deleted:
                    writes.append(Write((delete(key),), resp.header.revision, name))
            elif roll < 0.8:
                resp = client.delete(b"g/", prefix=False, range_end=b"g/4", prev_kv=True)
                if resp.deleted:
                    writes.append(Write(tuple(delete(kv.key) for kv in resp.prev_kvs),
                                        resp.header.revision, name))
            else:
                _txn(name, client, rng, value, writes)
        except EtcdError:
            # Unknown outcome: it may have happened, at a revision nobody told us.
            if roll < 0.55:
                writes.append(Write((put(key, value),), None, name))
            elif roll < 0.7:
                writes.append(Write((delete(key),), None, name))
            elif roll < 0.8:
                writes.append(Write(tuple(delete(k) for k in KEYS if k < b"g/4"), None, name))
            time.sleep(0.05)


def _txn(name: str, client: Client, rng: random.Random, value: bytes,
         writes: list[Write]) -> None:
    a, b = rng.sample(KEYS, 2)
    success = [pb.RequestOp(request_put=pb.PutRequest(key=a, value=value + b"a")),
               pb.RequestOp(request_put=pb.PutRequest(key=b, value=value + b"b"))]
    failure = [pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=a, prev_kv=True))]
    request = pb.TxnRequest(compare=[pb.Compare(key=b, target=pb.Compare.VERSION,
                                                result=pb.Compare.GREATER, version=0)],
                            success=success, failure=failure)
    try:
        resp = client.call(request)
    except EtcdError:
        # Either branch: the checker matches what watchers saw to either.
        writes.append(Write((put(a, value + b"a"), put(b, value + b"b")), None, name))
        writes.append(Write((delete(a),), None, name))
        raise
    if resp.succeeded:
        writes.append(Write((put(a, value + b"a"), put(b, value + b"b")), resp.header.revision,
                            name))
    elif resp.responses[0].response_delete_range.deleted:
        writes.append(Write((delete(a),), resp.header.revision, name))


def _specs(now: int) -> list[tuple[str, pb.WatchCreateRequest]]:
    noput, nodelete = pb.WatchCreateRequest.NOPUT, pb.WatchCreateRequest.NODELETE
    return [
        ("prefix", pb.WatchCreateRequest(key=b"g/", range_end=b"g0", start_revision=now)),
        ("prefix-prev", pb.WatchCreateRequest(key=b"g/", range_end=b"g0", prev_kv=True,
                                              start_revision=now)),
        ("one-key", pb.WatchCreateRequest(key=KEYS[3], start_revision=now, prev_kv=True)),
        ("range-noput", pb.WatchCreateRequest(key=b"g/2", range_end=b"g/6", filters=[noput],
                                              start_revision=now)),
        ("all-nodelete", pb.WatchCreateRequest(key=b"\0", range_end=b"\0", filters=[nodelete],
                                               start_revision=now, progress_notify=True)),
        ("from-now", pb.WatchCreateRequest(key=b"g/", range_end=b"g0", prev_kv=True)),
        ("future", pb.WatchCreateRequest(key=b"g/", range_end=b"g0", start_revision=now + 150)),
    ]


@pytest.mark.timeout(240)
def test_watch_guarantees_under_writers_kills_and_compaction(tmp_path):
    rng = random.Random(SEED)
    args = ["--experimental-watch-progress-notify-interval", "500ms"]
    with running(tmp_path, 3, args) as cluster:
        cluster.wait_leader()
        endpoints = [f"127.0.0.1:{m.client_port}" for m in cluster.members]

        def client(first: int) -> Client:
            return Client(endpoints[first:] + endpoints[:first], command_timeout_s=3.0)

        start = client(0).put(b"start", b"").header.revision + 1
        stop_writes, stop_watch = threading.Event(), threading.Event()
        writes: list[Write] = []
        recorders = [Recorder(f"{name}@{i % 3}", client(i % 3), spec)
                     for i, (name, spec) in enumerate(_specs(start))]
        threads = [threading.Thread(target=r.run, args=(stop_watch,)) for r in recorders]
        threads += [threading.Thread(target=_writer, args=(f"w{i}", client(i),
                                                            random.Random(rng.random()),
                                                            stop_writes, writes))
                    for i in range(3)]
        for thread in threads:
            thread.start()
        time.sleep(WRITE_FOR_S / 4)
        late = [Recorder(f"late-{name}@{(i + 1) % 3}", client((i + 1) % 3), spec)
                for i, (name, spec) in enumerate(_specs(start)[:3])]
        late_threads = [threading.Thread(target=r.run, args=(stop_watch,)) for r in late]
        for thread in late_threads:
            thread.start()
        victim = cluster.members[1]
        victim.kill()
        time.sleep(WRITE_FOR_S / 4)
        cluster.start(victim)
        time.sleep(WRITE_FOR_S / 4)
        admin = client(0)
        compacted = admin.get(b"start").header.revision - 20
        admin.compact(compacted)
        time.sleep(WRITE_FOR_S / 4)
        stop_writes.set()
        for thread in threads[len(recorders):]:
            thread.join(30)
        final = admin.get(b"g/", prefix=True)
        last = final.header.revision
        everyone = recorders + late
        deadline = time.monotonic() + CATCH_UP_S
        while time.monotonic() < deadline and not all(
                r.reached >= last or r.canceled for r in everyone):
            for r in everyone:
                if r.watch is not None and r.reached < last:
                    r.watch.request_progress()
            time.sleep(0.5)
        stop_watch.set()
        for thread in threads[:len(recorders)] + late_threads:
            thread.join(30)
        for r in everyone:
            assert r.error is None, (r.name, r.error)
            assert r.reached >= last or r.canceled, (r.name, r.reached, last)
        acknowledged = [w for w in writes if w.revision is not None]
        assert len(acknowledged) > 100, "the writers got little done"
        assert sum(len(r.responses) for r in everyone) > 100
        assert_ok(writes, [Watch(r.name, WatchSpec.of(r.request), r.responses)
                           for r in everyone],
                  compactions=[compacted], final=final.kvs)

