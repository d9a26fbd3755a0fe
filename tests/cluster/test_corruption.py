"""Corruption checks on real members: one member's store is altered on purpose while
it is stopped (a value rewritten in its LMDB file, the revision unchanged), then
--experimental-initial-corrupt-check refuses to start it, and the leader's periodic
check (--experimental-corrupt-check-time) raises the CORRUPT alarm."""

from __future__ import annotations

import lmdb

from petcd.api.mvccpb import kv_pb2

from .members import Member, running, wait_until

WAIT_S = 30.0


def alter_last_value(m: Member) -> None:
    """Rewrite the value of the newest history record in place (as a bad disk or a
    bug would), leaving revisions and indexes as they are."""
    db = m.data_dir / "member" / "snap" / "db"
    generation = (db / "CURRENT").read_text().strip()
    with lmdb.open(str(db / generation), max_dbs=16, subdir=True) as env:
        history = env.open_db(b"history")
        with env.begin(write=True, db=history) as txn:
            cursor = txn.cursor()
            assert cursor.last()
            kv = kv_pb2.KeyValue.FromString(cursor.value())
            kv.value = b"altered"
            txn.put(cursor.key(), kv.SerializeToString())


def test_a_member_whose_store_differs_from_its_peers_refuses_to_start(tmp_path):
    with running(tmp_path, 3) as c:
        leader = c.wait_leader()
        for i in range(10):
            leader.put(f"k{i}", str(i))
        bad = next(m for m in c.members if m is not leader)
        assert wait_until(lambda: bad.get("k9", serializable=True) == "9", WAIT_S)
        assert bad.stop() == 0
        alter_last_value(bad)
        bad.extra_args.append("--experimental-initial-corrupt-check")
        c.start(bad)
        assert bad.proc is not None and bad.proc.wait(WAIT_S) == 1
        assert "found data inconsistency with peers" in bad.log_text()
        # Unaltered, the same check passes.
        good = next(m for m in c.members if m is not leader and m is not bad)
        assert good.stop() == 0
        good.extra_args.append("--experimental-initial-corrupt-check")
        c.start(good)
        assert wait_until(lambda: good.get("k9", serializable=True) == "9", WAIT_S)
        assert good.log_events("initial corruption checking passed; no corruption")


def test_the_leaders_periodic_check_raises_the_corrupt_alarm(tmp_path):
    with running(tmp_path, 3, extra_args=["--experimental-corrupt-check-time", "1s"]) as c:
        leader = c.wait_leader()
        for i in range(10):
            leader.put(f"k{i}", str(i))
        bad = next(m for m in c.members if m is not leader)
        assert wait_until(lambda: bad.get("k9", serializable=True) == "9", WAIT_S)
        assert bad.stop() == 0
        alter_last_value(bad)
        c.start(bad)

        def corrupt_alarm() -> bool:
            alarms = leader.call("/v3/maintenance/alarm", {"action": "GET"}).get("alarms", [])
            return any(a.get("alarm") == "CORRUPT" for a in alarms)

        assert wait_until(corrupt_alarm, WAIT_S)
        status = leader.call("/v3/maintenance/status", {})
        assert "CORRUPT" in " ".join(status.get("errors", []))
