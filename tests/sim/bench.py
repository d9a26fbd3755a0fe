"""python -m tests.sim.bench [--entries N] [--batch 64] [--members 3]

Throughput of the Raft core alone: a fault-free cluster in the simulator (no network
delay, instant fsync, one process, one core), a leader fed proposals in batches, and
the count of entries committed and applied on every member per second of wall time.
Not a test: it prints a figure for the README.
"""

from __future__ import annotations

import argparse
import random
import time

from .harness import Cluster, Observer


def run(entries: int, batch: int, members: int, window_batches: int = 8) -> float:
    cluster = Cluster(members, 0, random.Random(0), Observer())
    cluster.net.delay_units = (0, 0)
    cluster.persist_delay_units = (0, 0)
    assert cluster.wait_for(lambda: cluster.leader() is not None, 100)
    leader = cluster.leader()
    assert leader is not None
    start_index = leader.sm.applied
    payload = b"v" * 64
    proposed = 0
    started = time.perf_counter()
    while min(n.sm.applied for n in cluster.nodes.values()) - start_index < entries:
        in_flight = proposed - (leader.sm.applied - start_index)
        if proposed < entries and in_flight < window_batches * batch:
            for _ in range(batch):
                leader.core.propose(payload)  # type: ignore[union-attr]
            proposed += batch
        cluster.step()
    return entries / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.sim.bench")
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--members", type=int, default=3)
    args = parser.parse_args()
    rate = run(args.entries, args.batch, args.members)
    print(f"raft core: {args.members} members, batches of {args.batch}: "
          f"{rate:,.0f} committed entries/s")


if __name__ == "__main__":
    main()
