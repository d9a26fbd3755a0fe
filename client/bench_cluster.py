"""A local cluster that petcd-bench sweep starts, measures and stops: petcd or etcd.

Both take etcd's flags, so one class runs either. Each member is `m<i>` with its own
data dir and log file under the cluster's directory, free loopback ports, and its own
process group (start_new_session): a Ctrl-C in the terminal reaches petcd-bench alone,
which then stops every member itself. A petcd member is a supervisor and its actor
processes; stopping it is SIGTERM to the supervisor, and SIGKILL to the whole group if
it has not gone within STOP_TIMEOUT_S. Every wait here is bounded.

The members' JSON log lines say when each snapshot was made or received: petcd's carry
`event` and `ts` (ISO, UTC); etcd's (with --logger zap) `msg` and `ts`.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

STOP_TIMEOUT_S = 20.0
START_TIMEOUT_S = 120.0
STATUS_TIMEOUT_S = 2.0
POLL_S = 0.05
# Ports below Linux's ephemeral range (32768-): a port bind(0) hands out may be taken
# as the source port of an outgoing connection before the member binds it.
PORT_RANGE = (20_000, 32_000)
PROBE_BODY = {"key": "c3dlZXAtcHJvYmU="}  # "sweep-probe", base64 for the JSON gateway


@dataclass(frozen=True, slots=True)
class System:
    """What differs between petcd and etcd for the sweep."""

    name: str
    binary: str
    extra_args: tuple[str, ...]
    snapshot_saved: str  # log event: this member wrote a snapshot of its own state
    snapshot_received: str  # log event: this member is installing the leader's snapshot

# Both keep the store itself in member/snap/db (etcd a bbolt file, petcd an LMDB
# directory): the data, whatever --snapshot-count is, so not counted as snapshots.
STORE_NAME = "db"
PETCD = System("petcd", str(Path(sys.executable).parent / "petcd"), (),
               "snapshot saved", "received snapshot")
ETCD = System("etcd", shutil.which("etcd") or "/usr/bin/etcd",
              ("--logger", "zap", "--log-outputs", "stderr"),
              "saved snapshot", "applying snapshot")


@dataclass(frozen=True, slots=True)
class LogEvent:
    at_s: float  # wall clock (time.time() scale)
    name: str


def free_ports(count: int) -> list[int]:
    ports: list[int] = []
    for _ in range(100 * count):
        port = random.randint(*PORT_RANGE)
        if port not in ports and _bindable(port):
            ports.append(port)
        if len(ports) == count:
            return ports
    raise RuntimeError(f"found {len(ports)} free ports of {count} in {PORT_RANGE}")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def call(url: str, path: str, body: dict, timeout_s: float) -> dict:
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        return json.loads(resp.read())


def dir_bytes(path: Path, skip: tuple[str, ...] = ()) -> int:
    """Disk space the files under path take, but for its entries named in skip
    (allocated blocks, as du counts them: etcd preallocates each WAL segment, so its
    size on disk is the segment's)."""
    if not path.exists():
        return 0
    files = [p for top in path.iterdir() if top.name not in skip
             for p in (top, *(top.rglob("*") if top.is_dir() else ()))]
    return sum(p.stat().st_blocks * 512 for p in files if p.is_file())


class LocalCluster:
    def __init__(self, system: System, root: Path, size: int, flags: tuple[str, ...]) -> None:
        self.system, self.root, self.size, self.flags = system, root, size, flags
        ports = free_ports(2 * size)
        self.client_urls = [f"http://127.0.0.1:{p}" for p in ports[0::2]]
        self.peer_urls = [f"http://127.0.0.1:{p}" for p in ports[1::2]]
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * size

    def data_dir(self, i: int) -> Path:
        return self.root / f"m{i}"

    def log_path(self, i: int) -> Path:
        return self.root / f"m{i}.log"

    def start(self) -> None:
        for i in range(self.size):
            self.start_member(i)
        for i in range(self.size):
            if not self.wait_serving(i, START_TIMEOUT_S):
                raise RuntimeError(f"{self.system.name} member m{i} not serving after "
                                   f"{START_TIMEOUT_S:.0f} s; see {self.log_path(i)}")

    def start_member(self, i: int) -> None:
        assert not self.alive(i), f"m{i} is already running"
        self.root.mkdir(parents=True, exist_ok=True)
        cluster = ",".join(f"m{j}={u}" for j, u in enumerate(self.peer_urls))
        args = [self.system.binary, "--name", f"m{i}", "--data-dir", str(self.data_dir(i)),
                "--listen-client-urls", self.client_urls[i],
                "--advertise-client-urls", self.client_urls[i],
                "--listen-peer-urls", self.peer_urls[i],
                "--initial-advertise-peer-urls", self.peer_urls[i],
                "--initial-cluster", cluster, "--initial-cluster-token", self.root.name,
                "--initial-cluster-state", "new", *self.system.extra_args, *self.flags]
        with open(self.log_path(i), "ab") as log:  # the child keeps its own copy
            self.procs[i] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                             start_new_session=True)

    def alive(self, i: int) -> bool:
        proc = self.procs[i]
        return proc is not None and proc.poll() is None

    def pid(self, i: int) -> int | None:
        proc = self.procs[i]
        return proc.pid if proc is not None and proc.poll() is None else None

    def signal_stop(self, i: int) -> None:
        """Ask member i to stop (SIGTERM) without waiting for it."""
        if self.alive(i):
            self.procs[i].send_signal(signal.SIGTERM)

    def stop_member(self, i: int) -> None:
        """SIGTERM, then SIGKILL to its whole process group if it lingers."""
        proc = self.procs[i]
        if proc is None:
            return
        self.signal_stop(i)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(STOP_TIMEOUT_S)
        self.procs[i] = None

    def stop(self) -> None:
        for i in range(self.size):
            self.signal_stop(i)  # all at once: a member stopping alone may wait on peers
        for i in range(self.size):
            self.stop_member(i)

    def wait_serving(self, i: int, timeout_s: float) -> bool:
        """Until member i answers a linearizable range (it has a leader and is applied
        up to the read index), or timeout_s passes."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.alive(i):
            try:
                call(self.client_urls[i], "/v3/kv/range", PROBE_BODY, STATUS_TIMEOUT_S)
                return True
            except OSError:
                time.sleep(POLL_S)
        return False

    def status(self, i: int, timeout_s: float = STATUS_TIMEOUT_S) -> dict | None:
        """Member i's /v3/maintenance/status, None if it does not answer."""
        try:
            return call(self.client_urls[i], "/v3/maintenance/status", {}, timeout_s)
        except (OSError, ValueError):
            return None

    def applied_index(self, i: int, timeout_s: float = STATUS_TIMEOUT_S) -> int | None:
        status = self.status(i, timeout_s)
        return None if status is None else int(status.get("raftAppliedIndex", 0))

    def leader(self) -> int | None:
        """The number of the leading member, if every member answering agrees on it."""
        statuses = [self.status(i) for i in range(self.size)]
        ids = [s["header"]["member_id"] if s else None for s in statuses]
        leads = {s.get("leader") for s in statuses if s}
        if len(leads) != 1 or leads & {None, "0"}:
            return None
        [lead] = leads
        return ids.index(lead) if lead in ids else None

    def log_events(self, i: int, names: tuple[str, ...]) -> list[LogEvent]:
        """Member i's log lines whose event is one of names, oldest first."""
        if not self.log_path(i).exists():
            return []
        out = []
        for line in self.log_path(i).read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            name = record.get("event") or record.get("msg")
            if name in names and "ts" in record:
                out.append(LogEvent(datetime.fromisoformat(record["ts"]).timestamp(), name))
        return out

    def wal_bytes(self, i: int) -> int:
        return dir_bytes(self.data_dir(i) / "member" / "wal")

    def snap_bytes(self, i: int) -> int:
        return dir_bytes(self.data_dir(i) / "member" / "snap", (STORE_NAME,))
