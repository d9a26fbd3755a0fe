"""petcdctl prints what etcdctl prints: each scenario runs once with etcdctl on a
fresh cluster and once with petcdctl on the same cluster wiped and restarted (same
ports, names and token, hence the same IDs and revisions), and every step's exit
code, stdout and stderr must match byte for byte, except where a step masks what
depends on timing (durations, raft indexes, which member won the election).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from petcd.client import Client
from tests.client.tools import DURATION, TABLE_PADDING, Outcome, masked, run

FORMATS = ["simple", "json", "fields", "table", "protobuf"]
DEAD_ENDPOINT = "127.0.0.1:1"  # nothing listens on port 1: connection refused


@dataclass(frozen=True)
class Step:
    args: list[str]
    stdin: bytes = b""
    masks: tuple = ()
    endpoints: list[str] | None = None  # default: the cluster's
    # Applied to both outcomes before comparing (e.g. sort lines printed in
    # completion order).
    normalize: Callable[[Outcome], Outcome] | None = None
    before: Callable[[list[str]], None] | None = field(default=None, compare=False)


def _outcomes(cluster, tool: str, steps: list[Step]) -> list[Outcome]:
    cluster.reset()
    outcomes = []
    for step in steps:
        if step.before is not None:
            step.before(cluster.endpoints)
        outcome = run(tool, step.endpoints or cluster.endpoints, step.args, step.stdin)
        outcome = masked(outcome, *step.masks)
        outcomes.append(step.normalize(outcome) if step.normalize else outcome)
    return outcomes


def assert_same_output(cluster, steps: list[Step]) -> None:
    expected = _outcomes(cluster, "etcdctl", steps)
    actual = _outcomes(cluster, "petcdctl", steps)
    for step, want, got in zip(steps, expected, actual):
        assert got == want, (f"petcdctl {' '.join(step.args)} differs from etcdctl:\n"
                             + _difference(want, got))


def _difference(want: Outcome, got: Outcome) -> str:
    lines = [f"exit code {want.code} != {got.code}"] if want.code != got.code else []
    for name in ("out", "err"):
        expected, actual = getattr(want, name), getattr(got, name)
        if expected != actual:
            lines += difflib.unified_diff(expected.decode(errors="replace").splitlines(),
                                          actual.decode(errors="replace").splitlines(),
                                          f"etcdctl {name}", f"petcdctl {name}", lineterm="")
    return "\n".join(lines)


def _steps(*lines: list[str]) -> list[Step]:
    return [Step(args) for args in lines]


def _sorted_lines(outcome: Outcome) -> Outcome:
    return Outcome(outcome.code, b"".join(sorted(outcome.out.splitlines(True))),
                   b"".join(sorted(outcome.err.splitlines(True))))


def _json_sorted_by_endpoint(outcome: Outcome) -> Outcome:
    items = sorted(json.loads(outcome.out), key=lambda item: item["endpoint"])
    return Outcome(outcome.code, json.dumps(items).encode(), outcome.err)


def test_put_get_del(cluster):
    steps = _steps(
        ["put", "foo", "bar"], ["put", "foo", "bar2", "--prev-kv"],
        ["put", "foo", "bar3", "--prev-kv", "-w", "json"],
        ["put", "foo", "bar4", "--prev-kv", "-w", "fields"],
        ["put", "foo", "bar5", "-w", "protobuf"],
        ["put", "foo", "bar6", "-w", "table"],  # exit 4, after the put as in etcdctl
        ["put", "foo", "--ignore-value", "--prev-kv"],
        ["put", "a/1", "1"], ["put", "a/2", "22"], ["put", "a/3", "3"], ["put", "b", "x"],
        ["put", "--", "-dash", "value with spaces"],
        ["put", "nl", "line1\nline2"],
        ["put", "binary", "\x01\x7f\u00e9"],
        ["put", "k"], ["put", "k", "v", "--lease", "zz"],
        ["put", "k", "v", "--lease", "0x1f"], ["put", "k", "v", "--lease", "1_f"],
        ["put", "k", "v", "--lease", "8000000000000000"],
        ["put", "k", "v", "w", "--ignore-value"],
    )
    steps.append(Step(["put", "from-stdin"], stdin=b"piped value\n"))
    for fmt in FORMATS:
        steps += _steps(["get", "foo", "-w", fmt], ["get", "a", "--prefix", "-w", fmt])
    steps += _steps(
        ["get", "foo", "--hex"], ["get", "binary", "--hex", "-w", "fields"],
        ["get", "binary", "-w", "fields"], ["get", "nl"], ["get", "--", "-dash"],
        ["get", "a", "--prefix", "--limit", "2", "-w", "json"],
        ["get", "a", "--prefix", "--keys-only"],
        ["get", "a", "--prefix", "--print-value-only"],
        ["get", "a", "--prefix", "--sort-by", "VALUE", "--order", "DESCEND"],
        ["get", "a", "--prefix", "--sort-by", "create", "--order", "descend", "-w", "json"],
        ["get", "a", "--prefix", "--sort-by", "modify"],
        ["get", "a", "--prefix", "--order", "ASCEND", "-w", "json"],
        ["get", "a/2", "--from-key", "--keys-only"], ["get", "a/1", "a/3"],
        ["get", "", "--prefix", "--keys-only"], ["get", "", "--from-key", "-w", "json"],
        ["get", "foo", "--rev", "2"], ["get", "foo", "--rev", "1000"],
        ["get", "foo", "--consistency", "s", "-w", "json"],
        ["get"], ["get", "a", "--prefix", "--from-key"], ["get", "a", "--consistency", "x"],
        ["get", "a", "--sort-by", "x"], ["get", "a", "--order", "x"],
        ["get", "a/1", "a/3", "--prefix"], ["get", "foo", "--print-value-only", "-w", "json"],
        ["get", "foo", "-w", "yaml"],
        ["del", "a/1"], ["del", "a", "--prefix", "--prev-kv"], ["del", "a", "-w", "json"],
        ["del", "zz", "-w", "fields"], ["del", "b", "-w", "protobuf"],
        ["del", "nl", "--prev-kv", "-w", "json"], ["del"], ["del", "x", "y", "--prefix"],
        ["del", "x", "--prefix", "--from-key"],
        ["del", "", "--from-key", "--prev-kv", "-w", "fields"],
        ["get", "", "--prefix"],
    )
    assert_same_output(cluster, steps)


TXN_SUCCESS = (b'mod("k1") > "0"\nvalue("k1") = "v1"\n\n'
               b'put k1 "overwrote k1" --prev-kv\nget k --prefix --limit 1\ndel k2 --prev-kv\n\n'
               b"put k3 created\n\n")
# (Not single quotes: etcdctl 3.4's argify cuts 'quoted' words by the wrong length.)
TXN_FAILURE = b'ver("k1") = "100"\n\nput k1 x\n\nget k1\nput "k 4" "quoted value"\n\n'


def test_txn(cluster):
    steps = _steps(["put", "k1", "v1"], ["put", "k2", "v2"])
    steps.append(Step(["txn"], TXN_SUCCESS))
    for fmt in ("json", "fields", "protobuf"):
        steps.append(Step(["txn", "-w", fmt], TXN_FAILURE))
    steps += [
        Step(["txn", "--interactive"], b'c("k1") < "1000"\nm("k1") != "0"\n\nget k1\n\n\n'),
        Step(["txn", "-i"], b"\n\n\n"),
        Step(["txn"], b'value("k 4") = "quoted value"\n\nget "k 4" --print-value-only\n\n\n'),
        Step(["txn", "-w", "table"], b"\n\nput t 1\n\n"),
        Step(["txn"], b'mod(k1) = "5"\n\n\n\n'),  # malformed comparisons
        Step(["txn"], b'mod("k1") "5"\n\n\n\n'),
        Step(["txn"], b'mod("k1" = "5"\n\n\n\n'),
        Step(["txn"], b'mod("k1")= "5"\n\n\n\n'),
        Step(["txn"], b'size("k1") = "5"\n\n\n\n'),
        Step(["txn"], b'mod("k1") = "x"\n\n\n\n'),
        Step(["txn"], b"\n\nfoo bar\n\n\n"),  # unknown request
        Step(["txn"], b"\n\nput\n\n\n"),
        Step(["txn"], b"\n\nget a --prefix --from-key\n\n\n"),
        Step(["txn"], b'mod("k1") > "0"\n'),  # input ends early: EOF
        Step(["txn"], b""),
        Step(["txn", "extra-argument"], b"\n\n\n"),
        Step(["get", "k", "--prefix", "-w", "json"]),
    ]
    assert_same_output(cluster, steps)


def test_compaction(cluster):
    steps = _steps(*[["put", "c", str(i)] for i in range(6)])
    steps += _steps(
        ["compaction", "3"], ["compaction", "2"], ["get", "c", "--rev", "2"],
        ["get", "c", "--rev", "3"], ["compaction", "1000"], ["compaction", "5", "--physical"],
        ["compaction", "-w", "json", "6"], ["compaction"], ["compaction", "abc"],
        ["endpoint", "hashkv", "--rev", "4"], ["endpoint", "hashkv", "-w", "json"])
    assert_same_output(cluster, steps)


# bbolt's pages in use move with its background commits (and, on a member of three,
# the file's size with when it caught up).
DB_IN_USE = (rb'"dbSizeInUse":\d+', b'"dbSizeInUse":<n>')
DB_SIZE = (rb'"dbSize":\d+', b'"dbSize":<n>')
DB_SIZE_TEXT = (rb"\b\d+(?:\.\d+)? [kMG]?B\b", b"<size>")  # simple and table
DB_SIZE_FIELDS = (rb'("DBSize(?:InUse)?" : )\d+', rb"\1<n>")
STATUS_MASKS = (DB_IN_USE, DB_SIZE, DB_SIZE_TEXT, DB_SIZE_FIELDS, TABLE_PADDING)


def _activate_alarms(endpoints: list[str]) -> None:
    with Client(endpoints) as client:
        member_id = client.status().header.member_id
        client.alarm("activate", member_id, "NOSPACE")


def test_maintenance_one_member(cluster, tmp_path):
    live = cluster.endpoints
    steps = _steps(["put", "m", "1"])
    for fmt in FORMATS:
        steps += _steps(["member", "list", "-w", fmt], ["endpoint", "hashkv", "-w", fmt])
        steps.append(Step(["endpoint", "status", "-w", fmt], masks=STATUS_MASKS))
    for fmt in ("simple", "json", "table", "protobuf"):  # fields: etcdctl 3.4 panics
        steps += _steps(["alarm", "list", "-w", fmt])
    for fmt in FORMATS:
        steps.append(Step(["endpoint", "health", "-w", fmt], masks=(DURATION, TABLE_PADDING)))
    steps.append(Step(["alarm", "list"], before=_activate_alarms))
    steps += _steps(["alarm", "list", "-w", "json"], ["alarm", "list", "-w", "protobuf"],
                    ["alarm", "disarm", "-w", "json"], ["alarm", "disarm"], ["alarm", "list"])
    steps.append(Step(["endpoint", "status", "-w", "table"], before=_activate_alarms,
                      masks=STATUS_MASKS))
    steps.append(Step(["endpoint", "status", "-w", "json"], masks=STATUS_MASKS))
    steps += _steps(["alarm", "disarm"])
    steps += _steps(
        ["defrag"], ["defrag", "--cluster"], ["defrag", "-w", "json"],
        ["snapshot", "save", str(tmp_path / "snap.db")], ["snapshot", "save"],
        ["snapshot", "save", str(tmp_path / "missing-dir" / "snap.db")],
        ["move-leader", "zz"], ["move-leader"], ["move-leader", "12"],
        ["move-leader", "0x12"], ["move-leader", "1_2"], ["move-leader", "+12"],
        ["move-leader", "1ffffffffffffffff"])  # Go's ParseUint: no prefix, sign or _
    steps.append(Step(["endpoint", "status", "--cluster", "-w", "table"], masks=STATUS_MASKS))
    steps += _steps(["endpoint", "hashkv", "--cluster", "-w", "fields"])
    with_dead = [*live, DEAD_ENDPOINT]
    for args in (["endpoint", "status"], ["endpoint", "hashkv"], ["defrag"],
                 ["snapshot", "save", str(tmp_path / "x.db")]):
        steps.append(Step(["--command-timeout", "1s", *args], endpoints=with_dead,
                          masks=STATUS_MASKS))
    steps.append(Step(["--command-timeout", "1s", "endpoint", "health", "-w", "table"],
                      endpoints=with_dead, masks=(DURATION, TABLE_PADDING)))
    steps.append(Step(["get", "m"], endpoints=[DEAD_ENDPOINT, *live]))  # failover
    steps.append(Step(["--dial-timeout", "1s", "--command-timeout", "1s", "get", "m"],
                      endpoints=[DEAD_ENDPOINT]))
    assert_same_output(cluster, steps)


def test_snapshot_file_is_etcds(cluster, tmp_path):
    """Both tools save the same database: etcd's bytes, ending with their SHA-256."""
    cluster.reset()
    run("etcdctl", cluster.endpoints, ["put", "s", "1"])
    a, b = tmp_path / "etcdctl.db", tmp_path / "petcdctl.db"
    assert run("etcdctl", cluster.endpoints, ["snapshot", "save", str(a)]).code == 0
    assert run("petcdctl", cluster.endpoints, ["snapshot", "save", str(b)]).code == 0
    assert a.stat().st_size == b.stat().st_size
    assert not (tmp_path / "petcdctl.db.part").exists()


def _member_ids(cluster) -> dict[str, str]:
    with Client(cluster.endpoints) as client:
        return {m.name: f"{m.ID:x}" for m in client.member_list().members}


# After an election, raft terms and indexes differ from run to run.
RAFT_NUMBERS = (rb'("(?:raft_term|raftTerm|raftIndex|raftAppliedIndex)":|'
                rb'"(?:RaftTerm|RaftIndex|RaftAppliedIndex)" : )\d+', rb"\1<n>")
# With several endpoints, etcdctl's balancer picks which member answers.
ANSWERING_MEMBER = (rb'("member_id":|"MemberID" : )\d+', rb"\1<id>")
STANDALONE_NUMBER = (rb"(?<![\w:.])\d+(?![\w.:])", b"<n>")


def test_cluster_commands_three_members(cluster3):
    ids = _member_ids(cluster3)
    first = cluster3.member_names[0]
    steps = [Step(["move-leader", ids[first]], masks=((rb"from \w+", b"from <leader>"),))]
    for fmt in ("simple", "json", "fields", "table"):  # protobuf: cannot mask the header
        steps.append(Step(["member", "list", "-w", fmt],
                          masks=(RAFT_NUMBERS, ANSWERING_MEMBER)))
    steps += [
        Step(["endpoint", "status", "--cluster"], masks=(STANDALONE_NUMBER,)),
        Step(["endpoint", "status", "--cluster", "-w", "table"],
             masks=(STANDALONE_NUMBER, TABLE_PADDING)),
        Step(["endpoint", "status", "--cluster", "-w", "json"],
             masks=(RAFT_NUMBERS, DB_SIZE, DB_IN_USE)),
        Step(["endpoint", "health", "--cluster"], masks=(DURATION,), normalize=_sorted_lines),
        Step(["endpoint", "health", "--cluster", "-w", "table"],
             masks=(DURATION, TABLE_PADDING), normalize=_sorted_lines),
        Step(["endpoint", "health", "-w", "json"], masks=(DURATION,),
             normalize=_json_sorted_by_endpoint),
        Step(["put", "k", "v"]),
        Step(["endpoint", "hashkv", "--cluster"]),
        Step(["defrag", "--cluster"]),
        Step(["snapshot", "save", "unused.db"]),  # needs exactly one endpoint
        Step(["move-leader", ids[cluster3.member_names[1]]]),
        Step(["move-leader", ids[cluster3.member_names[1]], "-w", "json"],
             masks=(RAFT_NUMBERS,)),
        Step(["move-leader", "1234"]),
    ]
    assert_same_output(cluster3, steps)


@pytest.mark.parametrize("args", [["check", "perf", "--load", "huge"]])
def test_check_perf_errors(cluster, args):
    assert_same_output(cluster, [Step(args)])


def test_check_perf_refuses_a_used_prefix(cluster):
    steps = _steps(["put", "/etcdctl-check-perf/x", "1"], ["check", "perf"])
    assert_same_output(cluster, steps)


def test_check_perf_passes_on_an_idle_etcd_and_cleans_up(cluster):
    """A shortened run (etcdctl's takes 60 s): the small load's 150 writes/s are met
    on an idle single member, the verdict lines are etcdctl's, the keys are gone."""
    cluster.reset()
    env = {"PETCDCTL_CHECK_PERF_SECONDS": "3"}
    outcome = run("petcdctl", cluster.endpoints, ["check", "perf", "--load", "s",
                                                  "--auto-compact"], env=env)
    lines = outcome.out.decode().splitlines()
    assert outcome.code == 0, outcome
    assert lines[0].startswith("Compacting with revision ")
    assert re.fullmatch(r"PASS: Throughput is 1[3-6]\d writes/s", lines[2])
    assert re.fullmatch(r"PASS: Slowest request took 0\.\d{6}s", lines[3])
    assert re.fullmatch(r"PASS: Stddev is 0\.\d{6}s", lines[4])
    assert lines[5:] == ["PASS"]
    assert run("etcdctl", cluster.endpoints, ["get", "/etcdctl-check-perf/", "--prefix",
                                              "--keys-only"]).out == b""
