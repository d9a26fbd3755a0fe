"""A leader whose raft actor is held up says so in its log, in etcd's words.

SIGSTOP on the leader's raft actor for 0.35 s (less than the 0.5 s election timeout
of the test clusters): heartbeats are due every 50 ms, so the first one after SIGCONT
leaves about 0.25 s later than etcd allows (twice the interval), and a put and a
linearizable get that arrived meanwhile waited that long. The member logs etcd's
warnings, the ones an operator greps for: "leader failed to send out heartbeat on
time ..." with how late, and "apply request took too long" for the read, which etcd
times whole. The put is not logged: etcd times a write's apply alone, and the apply
was quick; only its wait for Raft was long.
"""

from __future__ import annotations

import os
import signal
import threading
import time

from petcd.actors.slow import SLOW_REQUEST
from petcd.actors.raft.heartbeats import LATE_HEARTBEAT

from tests.cluster.members import HEARTBEAT_MS, HttpError, wait_until

STOP_S = 0.35


def test_a_held_up_leader_logs_late_heartbeats_and_slow_requests(three):
    leader = three.wait_leader()
    leader.put("warm-up", "v")
    time.sleep(4 * HEARTBEAT_MS / 1000)  # heartbeats have gone out to every follower
    assert leader.log_events(LATE_HEARTBEAT) == []
    raft_pid = leader.actor_pids()["raft"]

    def put() -> None:
        try:
            leader.put("held-up", "v")
        except HttpError:
            pass  # a leader change would answer an error

    def get() -> None:
        try:
            leader.get("held-up")
        except HttpError:
            pass  # a leader change would answer an error: still a slow request

    os.kill(raft_pid, signal.SIGSTOP)
    try:
        clients = [threading.Thread(target=f, daemon=True) for f in (put, get)]
        for client in clients:
            client.start()
        time.sleep(STOP_S)
    finally:
        os.kill(raft_pid, signal.SIGCONT)
    for client in clients:
        client.join(10)

    assert wait_until(lambda: leader.log_events(LATE_HEARTBEAT), 5)
    late = leader.log_events(LATE_HEARTBEAT)[0]
    assert late["level"] == "warning"
    assert late["heartbeat_interval_ms"] == HEARTBEAT_MS
    assert late["expected_duration_ms"] == 2 * HEARTBEAT_MS
    assert late["exceeded_duration_ms"] >= 100  # 350 ms stopped, 100 ms allowed
    assert late["to"] in {f"{int(m.status()['header']['member_id']):x}"
                          for m in three.members if m is not leader}

    assert wait_until(lambda: leader.log_events(SLOW_REQUEST), 5)
    [slow] = leader.log_events(SLOW_REQUEST)
    assert slow["took_ms"] >= 200 and slow["expected_duration_ms"] == 100
    assert slow["prefix"] == "read-only range " and slow["request"].startswith('key: "held-up"')
    assert slow["response"].startswith("range_response_count:")
