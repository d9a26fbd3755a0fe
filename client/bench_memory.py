"""A member's memory, found from its client endpoint: RSS and PSS over its processes.

The process listening on the endpoint's TCP port is an etcd member itself (`etcd`) or a
petcd member's network actor, whose parent is the `petcd` supervisor of the member's
actors (petcd-network, petcd-raft, petcd-apply, petcd-wal): the member is the
supervisor and all its descendants. RSS counts every shared page in full in each
process (an interpreter's pages in all five); PSS splits each shared page among the
processes that map it, so summed over a member it is what the member costs.
Only members on this machine can be measured: a remote endpoint has no local process.
"""

from __future__ import annotations

from dataclasses import dataclass

import psutil

from .bench_grpc import target

SUPERVISOR_NAME = "petcd"


@dataclass(frozen=True, slots=True)
class Memory:
    rss_bytes: int
    pss_bytes: int
    processes: int
    name: str  # of the member's root process: "etcd" or "petcd"


def port(endpoint: str) -> int:
    return int(target(endpoint).rsplit(":", 1)[1])


def listener(tcp_port: int) -> psutil.Process | None:
    """The process listening on tcp_port (any local address), if this machine has one."""
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == tcp_port and conn.pid:
            return psutil.Process(conn.pid)
    return None


def member_root(proc: psutil.Process) -> psutil.Process:
    """The petcd supervisor above a listening actor, or the listener itself (etcd)."""
    for parent in proc.parents():
        if parent.name() == SUPERVISOR_NAME:
            return parent
    return proc


def member_memory(endpoint: str) -> Memory | None:
    """The memory of the member serving endpoint; None if no local process serves it."""
    proc = listener(port(endpoint))
    if proc is None:
        return None
    return tree_memory(member_root(proc))


def tree_memory(root: psutil.Process) -> Memory | None:
    """The memory of root and all its descendants; None if root has stopped."""
    try:
        procs = (root, *root.children(recursive=True))
        infos = [p.memory_full_info() for p in procs]
        return Memory(sum(i.rss for i in infos), sum(i.pss for i in infos), len(infos),
                      root.name())
    except psutil.Error:  # the member stopped meanwhile
        return None
