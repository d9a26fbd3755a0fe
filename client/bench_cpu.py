"""petcd-bench --server-cpu: the CPU time the servers on this machine spent per request.

Throughput and latency on a shared machine move by a quarter between runs; the CPU
time a server spends per request moves less, and says where it goes. Counted: every
local process named as a petcd actor (petcd-network, petcd-raft, petcd-apply,
petcd-wal: the supervisor names them so), a petcd supervisor (petcd) or an etcd
member (etcd), present both before and after the run, whatever cluster it belongs to
(run one cluster at a time). Time is user plus system, all threads.
"""

from __future__ import annotations

from collections import Counter

import psutil

SERVER_NAMES = frozenset({"petcd-network", "petcd-raft", "petcd-apply", "petcd-wal",
                          "petcd", "etcd"})

Sample = dict[int, tuple[str, float]]  # pid -> (name, CPU seconds)


def sample() -> Sample:
    out: Sample = {}
    for proc in psutil.process_iter(["name"]):
        name = proc.info["name"]
        if name not in SERVER_NAMES:
            continue
        try:
            times = proc.cpu_times()
        except psutil.Error:  # exited meanwhile
            continue
        out[proc.pid] = (name, times.user + times.system)
    return out


def per_request_us(before: Sample, after: Sample, requests: int) -> Counter[str]:
    """CPU microseconds per request by process name, over processes in both samples."""
    assert requests > 0
    spent: Counter[str] = Counter()
    for pid, (name, cpu_s) in after.items():
        if pid in before and before[pid][0] == name:
            spent[name] += (cpu_s - before[pid][1]) * 1e6 / requests
    return spent


def report(spent: Counter[str]) -> str:
    if not spent:
        return "  server CPU per request: no petcd or etcd process on this machine"
    parts = ", ".join(f"{name} {us:,.0f} us" for name, us in spent.most_common())
    return f"  server CPU per request: {parts}; total {sum(spent.values()):,.0f} us"
