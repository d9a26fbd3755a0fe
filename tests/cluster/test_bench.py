"""petcd-bench against real servers: a single-member petcd over gRPC and the JSON
gateway, and a real etcd (/usr/bin/etcd) over gRPC. Checks the summary a user reads and the keys the
cluster holds afterwards. The lease and lock scenarios run against both kinds of member;
--user against a petcd member with auth enabled."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from petcd.client import Client

from .members import Cluster, Member, b64, free_ports, running, unb64, wait_until

BENCH = str(Path(sys.executable).parent / "petcd-bench")
ETCD = shutil.which("etcd") or "/usr/bin/etcd"
BENCH_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def petcd(tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("bench-petcd"), 1)
    cluster.start()
    yield cluster.wait_leader()
    cluster.stop()


@pytest.fixture(scope="module")
def etcd(tmp_path_factory):
    if not Path(ETCD).exists():
        pytest.skip("no etcd binary")
    root = tmp_path_factory.mktemp("bench-etcd")
    client, peer = free_ports(2)
    member = Member("e1", client, peer, root / "e1.etcd", root / "e1.log")
    member.proc = subprocess.Popen(
        [ETCD, "--name", "e1", "--data-dir", str(member.data_dir),
         "--listen-client-urls", member.client_url, "--advertise-client-urls", member.client_url,
         "--listen-peer-urls", member.peer_url, "--initial-advertise-peer-urls", member.peer_url,
         "--initial-cluster", f"e1={member.peer_url}"],
        stdout=open(member.log_path, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
    assert wait_until(lambda: member.call("/v3/kv/range", {"key": b64("x")}, 1), 30), \
        member.log_text()[-2000:]
    yield member
    member.stop()


def bench(member: Member, protocol: str, *args: str) -> str:
    out = subprocess.run([BENCH, *args, "--endpoints", member.client_url,
                          "--protocol", protocol], capture_output=True, text=True,
                         timeout=BENCH_TIMEOUT_S)
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    return out.stdout


def summary(stdout: str, op: str, protocol: str, requests: int, conns: int) -> str:
    """The details after the elapsed time, once the two summary lines are checked."""
    match = re.search(rf"^{op} \({protocol}\): {requests} requests, {conns} connections, "
                      rf"\d+ workers, [\d.]+s(.*)\n  throughput [\d,]+ req/s   "
                      rf"p50 [\d.]+ ms   p99 [\d.]+ ms   errors 0$", stdout, re.M)
    assert match, stdout
    return match.group(1)


def kvs(member: Member, prefix: str) -> list[dict]:
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return member.call("/v3/kv/range", {"key": b64(prefix), "range_end": b64(end)})["kvs"]


def check_txn(member: Member, protocol: str, prefix: str) -> None:
    # 4 connections x 24 requests over 96 new keys: every compare holds.
    out = bench(member, protocol, "txn", "--conns", "4", "--total", "96", "--key-space", "96",
                "--key-prefix", prefix)
    assert summary(out, "txn", protocol, 96, 4) == ", 0 compare failures"
    first = kvs(member, prefix)
    assert [unb64(kv["key"]) for kv in first] == [f"{prefix}{n:08d}" for n in range(96)]
    assert {kv.get("version") for kv in first} == {"1"}
    assert {unb64(kv["value"]) for kv in first} == {"x" * 256}
    # A new run does not know the keys' mod_revisions: each connection's first compare
    # on a key fails, teaches it, and the retry succeeds; 12 of its 24 keys get written.
    out = bench(member, protocol, "txn", "--conns", "4", "--total", "96", "--key-space", "96",
                "--key-prefix", prefix)
    assert summary(out, "txn", protocol, 96, 4) == ", 48 compare failures"
    versions = [kv["version"] for kv in kvs(member, prefix)]
    assert versions == (["2"] * 12 + ["1"] * 12) * 4


def check_range(member: Member, protocol: str, prefix: str) -> None:
    out = bench(member, protocol, "put", "--conns", "4", "--total", "30", "--txn-ops", "10",
                "--key-space", "300", "--key-prefix", prefix)
    assert summary(out, "put", protocol, 30, 4) == ", 10 keys per request"
    assert member.count(prefix) == 300
    out = bench(member, protocol, "range", "--conns", "4", "--total", "40", "--key-space",
                "300", "--key-prefix", prefix, "--prefix", "--limit", "100")
    assert summary(out, "range", protocol, 40, 4) == ", 100.0 keys per response"
    out = bench(member, protocol, "range", "--conns", "2", "--total", "20", "--key-space",
                "300", "--key-prefix", prefix, "--prefix", "--limit", "1", "--serializable")
    assert summary(out, "range", protocol, 20, 2) == ", 1.0 keys per response"
    out = bench(member, protocol, "range", "--conns", "2", "--total", "20", "--key-space",
                "300", "--key-prefix", prefix, "--prefix", "--limit", "30")
    assert summary(out, "range", protocol, 20, 2) == ", 30.0 keys per response"


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_txn_against_petcd(petcd, protocol):
    check_txn(petcd, protocol, f"t-{protocol}/")


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_put_trace_says_where_each_write_spent_its_time(petcd, protocol):
    out = bench(petcd, protocol, "put", "--trace", "--conns", "2", "--total", "60",
                "--key-prefix", f"trace-{protocol}/")
    assert re.search(r"^  trace of 60 writes \(ms, p50 / p99\)", out, re.M), out
    stages = re.findall(r"^    (\w+) +[\d.]+ / +[\d.]+ +[\d.]+ / +[\d.]+   \S", out, re.M)
    assert stages[:3] == ["proposed", "raft_received", "appended"], out
    assert stages[-3:] == ["applied", "responded", "returned"], out
    assert re.search(r"^    client +round trip [\d.]+ / [\d.]+, of which from arrival to "
                     r"return", out, re.M), out


def test_put_trace_against_etcd_says_it_got_none(etcd):
    out = bench(etcd, "grpc", "put", "--trace", "--conns", "1", "--total", "5")
    assert "trace: no answer carried petcd-trace" in out


def test_trace_is_for_put_only():
    bad = subprocess.run([BENCH, "range", "--trace"], capture_output=True, text=True,
                         timeout=BENCH_TIMEOUT_S)
    assert bad.returncode == 2 and "--trace is for put only" in bad.stderr


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_range_limit_against_petcd(petcd, protocol):
    check_range(petcd, protocol, f"r-{protocol}/")


def test_txn_over_grpc_against_etcd(etcd):
    check_txn(etcd, "grpc", "t/")


def test_range_limit_over_grpc_against_etcd(etcd):
    check_range(etcd, "grpc", "r/")


def server_cpu(stdout: str) -> dict[str, int]:
    match = re.search(r"^  server CPU per request: (.*); total ([\d,]+) us$", stdout, re.M)
    assert match, stdout
    spent = {name: int(us.replace(",", "")) for name, us in
             re.findall(r"([\w-]+) ([\d,]+) us", match.group(1))}
    assert int(match.group(2).replace(",", "")) == pytest.approx(sum(spent.values()), abs=len(spent))
    return spent


def client_cpu_us(stdout: str) -> int:
    match = re.search(r"^  client CPU per request: ([\d,]+) us \(petcd-bench's (\d+) workers\)$",
                      stdout, re.M)
    assert match, stdout
    return int(match.group(1).replace(",", ""))


def test_server_cpu_says_which_process_spent_what_per_request(petcd):
    out = bench(petcd, "grpc", "put", "--conns", "4", "--total", "600", "--server-cpu")
    spent = server_cpu(out)
    actors = {"petcd-network", "petcd-raft", "petcd-apply", "petcd-wal"}
    assert actors <= set(spent), spent
    # Every put crosses all four actors of the member; CPU time counts in 10 ms ticks,
    # and 600 puts cost each of them well above one.
    assert all(spent[a] > 0 for a in actors), spent
    # The tool's own cost: a gRPC call costs a Python client tens to hundreds of
    # microseconds of CPU, never nothing and never ten milliseconds.
    assert 10 <= client_cpu_us(out) < 10_000, out
    assert client_cpu_us(bench(petcd, "http", "put", "--conns", "2", "--total", "200")) >= 10


def test_server_cpu_counts_an_etcd_member(etcd):
    out = bench(etcd, "grpc", "put", "--conns", "4", "--total", "2000", "--server-cpu")
    assert server_cpu(out)["etcd"] > 0


def test_user_runs_with_a_token_from_the_member_and_a_wrong_password_runs_nothing(tmp_path):
    with running(tmp_path, 1, ["--bcrypt-cost", "4"]) as cluster:
        member = cluster.wait_leader()
        with Client([f"127.0.0.1:{member.client_port}"], command_timeout_s=10.0) as client:
            client.user_add("root", "rootpw")
            client.user_grant_role("root", "root")
            client.auth_enable()
        anonymous = subprocess.run([BENCH, "put", "--total", "2", "--endpoints",
                                    member.client_url], capture_output=True, text=True,
                                   timeout=BENCH_TIMEOUT_S)
        assert "error: INVALID_ARGUMENT: etcdserver: user name is empty" in anonymous.stderr
        for protocol in ("grpc", "http"):
            out = bench(member, protocol, "put", "--conns", "2", "--total", "20",
                        "--key-space", "20", "--key-prefix", "auth/", "--user", "root:rootpw")
            assert summary(out, "put", protocol, 20, 2) == ""
        out = bench(member, "grpc", "range", "--conns", "2", "--total", "20", "--key-space",
                    "20", "--key-prefix", "auth/", "--user", "root", "--password", "rootpw")
        assert summary(out, "range", "grpc", 20, 2) == ", 1.0 keys per response"
        refused = subprocess.run([BENCH, "put", "--total", "5", "--endpoints",
                                  member.client_url, "--user", "root:wrong"],
                                 capture_output=True, text=True, timeout=BENCH_TIMEOUT_S)
        assert refused.returncode == 1
        assert refused.stderr == ("petcd-bench: authentication failed: INVALID_ARGUMENT: "
                                  "etcdserver: authentication failed, invalid user ID or "
                                  "password\n")


def test_an_unreachable_member_fails_the_run_with_the_transport_error():
    client, _ = free_ports(2)
    for protocol in ("http", "grpc"):
        out = subprocess.run([BENCH, "put", "--conns", "1", "--total", "2", "--endpoints",
                              f"http://127.0.0.1:{client}", "--protocol", protocol],
                             capture_output=True, text=True, timeout=BENCH_TIMEOUT_S)
        assert out.returncode == 1
        assert "petcd-bench: no request succeeded" in out.stderr
        assert "error: " in out.stderr, out.stderr


def bench_watch(member: Member, *args: str) -> str:
    out = subprocess.run([BENCH, "watch", *args, "--endpoints", member.client_url],
                         capture_output=True, text=True, timeout=BENCH_TIMEOUT_S)
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    return out.stdout


def watch_figures(stdout: str, watches: int, on: str, streams: int, puts: int,
                  events: int) -> list[float]:
    """The figures of `petcd-bench watch`'s summary, once its lines are checked."""
    number = r"([\d,.]+)"
    lines = [
        rf"^watch \(grpc\): {watches} watches on {on}, {streams} streams, \d+ workers, [\d.]+s$",
        rf"^  puts: {puts} of {puts} asked at [\d,]+ writes/s   achieved {number} writes/s   "
        rf"p50 {number} ms   p99 {number} ms   errors 0$",
        rf"^  events: {events} expected, {events} delivered \({number} events/s\)   "
        rf"missing 0   duplicate 0   unexpected 0$",
        rf"^  event latency \(put acknowledged -> event received\): p50 {number} ms   "
        rf"p99 {number} ms   max {number} ms   \d+ before the ack \(counted as 0\)$",
        rf"^  memory of {re.escape('http://127.0.0.1:')}\d+ \((?:etcd, 1 process|petcd, 5 processes)\): "
        rf"RSS [\d.]+ / [\d.]+ / [\d.]+ MiB   PSS [\d.]+ / [\d.]+ / [\d.]+ MiB",
        rf"^  client CPU per put: {number} us \(the writer: [\d.]+ cores\)$"]
    if watches:
        lines.insert(1, rf"^  watches created: {watches} in {number} s$")
        lines.append(rf"^  client CPU per event: {number} us \(\d+ watch workers: "
                     rf"[\d.]+ cores while writing\)$")
    values: list[str] = []
    for line in lines:
        match = re.search(line, stdout, re.M)
        assert match, (line, stdout)
        values += match.groups()
    return [float(v.replace(",", "")) for v in values]


@pytest.mark.parametrize("kind", ["petcd", "etcd"])
def test_watch_delivers_every_event_and_says_how_late(kind, request):
    member = request.getfixturevalue(kind)
    # 40 watches on 40 keys over 4 streams; 100 puts/s for 2 s: one event per put.
    out = bench_watch(member, "--watches", "40", "--streams", "4", "--rate", "100",
                      "--duration-s", "2", "--key-prefix", "wd/")
    figures = watch_figures(out, 40, "distinct keys", 4, 200, 200)
    created_s, achieved, put_p50, put_p99, per_s, p50, p99, max_ms = figures[:8]
    assert created_s < 10 and 90 <= achieved <= 110 and put_p50 <= put_p99 < 1000, out
    assert 50 <= per_s <= 150 and p50 <= p99 <= max_ms < 1000, out
    assert re.search(r"per watch: RSS -?[\d,]+ B   PSS -?[\d,]+ B \(40 watches\)$", out, re.M), out
    # The tool's own cost per event: a gRPC read, never nothing, never a tenth of a second.
    assert 10 <= figures[-1] < 100_000, out


@pytest.mark.parametrize("kind", ["petcd", "etcd"])
def test_watch_fans_every_put_out_to_every_watch_on_a_prefix(kind, request):
    out = bench_watch(request.getfixturevalue(kind), "--watches", "10", "--streams", "5", "--same-prefix",
                      "--rate", "50", "--duration-s", "2", "--key-prefix", "wp/")
    watch_figures(out, 10, "one prefix", 5, 100, 1000)


def test_watch_with_no_watches_runs_the_writer_alone(etcd):
    out = bench_watch(etcd, "--watches", "0", "--rate", "100", "--duration-s", "1",
                      "--key-prefix", "w0/")
    watch_figures(out, 0, "distinct keys", 0, 100, 0)
    assert "watches created:" not in out and "per watch" not in out, out


def bench_scenario(member: Member, scenario: str, *args: str) -> str:
    out = subprocess.run([BENCH, scenario, *args, "--endpoints", member.client_url],
                         capture_output=True, text=True, timeout=BENCH_TIMEOUT_S)
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    return out.stdout


def figures(stdout: str, *lines: str) -> list[float]:
    """The numbers of each summary line (regular expressions, groups for the numbers)."""
    values: list[str] = []
    for line in lines:
        match = re.search(line, stdout, re.M)
        assert match, (line, stdout)
        values += match.groups()
    return [float(v.replace(",", "")) for v in values]


NUMBER = r"([\d,.]+)"


def leases_left(member: Member) -> int:
    return len(member.call("/v3/lease/leases", {}).get("leases", []))


@pytest.mark.parametrize("kind", ["petcd", "etcd"])
def test_lease_keepalive_renews_every_lease_every_third_of_its_ttl(kind, request):
    member = request.getfixturevalue(kind)
    before = leases_left(member)
    # 60 leases of TTL 3 s over 6 streams, each renewed every second, for 3 s.
    out = bench_scenario(member, "lease-keepalive", "--leases", "60", "--streams", "6",
                         "--ttl", "3", "--duration-s", "3", "--server-cpu")
    granted_s, sent, answered, p50, p99, max_ms = figures(
        out,
        r"^lease-keepalive \(grpc\): 60 leases of TTL 3 s, 6 streams, \d+ workers, [\d.]+s, "
        r"each renewed every TTL/3 \(1.00 s\)$",
        rf"^  leases granted: 60 of 60 in {NUMBER} s \([\d,]+ grants/s\)$",
        rf"^  keep-alives: {NUMBER} sent \([\d,]+/s\), {NUMBER} answered \([\d,]+/s\)   "
        r"errors 0$",
        rf"^  keep-alive latency: p50 {NUMBER} ms   p99 {NUMBER} ms   max {NUMBER} ms$")
    assert granted_s < 10 and 120 <= answered <= sent <= 240, out  # 2 to 3 rounds of 60
    assert p50 <= p99 <= max_ms < 1000, out
    assert re.search(r"^  leases lost: 0 \(0 answered with TTL <= 0, 0 with time-to-live -1 "
                     r"at the end, of 60 checked\)$", out, re.M), out
    assert re.search(r"^  leases revoked: 60 of 60$", out, re.M), out
    assert re.search(r"^  server CPU per request: .*; total [\d,]+ us$", out, re.M), out
    assert re.search(r"^  client CPU per keep-alive: [\d,]+ us \(\d+ workers: ", out, re.M), out
    assert leases_left(member) == before  # every lease it granted, revoked


@pytest.mark.parametrize("kind", ["petcd", "etcd"])
def test_lease_keepalive_rate_max_renews_as_fast_as_the_streams_go(kind, request):
    # 10 leases of TTL 10 s would be renewed once in 2 s on clientv3's schedule.
    out = bench_scenario(request.getfixturevalue(kind), "lease-keepalive", "--leases", "10",
                         "--streams", "2", "--ttl", "10", "--duration-s", "2", "--rate-max")
    answered, = figures(out, r"flat out \(--rate-max\)$",
                        rf"^  keep-alives: \d+ sent \([\d,]+/s\), {NUMBER} answered")
    assert answered >= 100, out
    assert re.search(r"^  leases lost: 0 ", out, re.M), out


@pytest.mark.parametrize("kind", ["petcd", "etcd"])
def test_lease_expiry_lets_every_key_go_once_the_ttl_runs_out(kind, request):
    member = request.getfixturevalue(kind)
    prefix = f"le-{kind}/"
    out = bench_scenario(member, "lease-expiry", "--leases", "50", "--streams", "5",
                         "--ttl", "3", "--key-prefix", prefix)
    first_s, last_s, took_s = figures(
        out,
        rf"^lease-expiry \(grpc\): 50 leases of TTL 3 s, one key each under '{prefix}', "
        r"5 streams, \d+ workers$",
        r"^  leases granted: 50 of 50 in [\d.]+ s \([\d,]+ grants/s\), keys attached: 50   "
        r"errors 0$",
        r"^  released: every lease renewed once more in [\d.]+ s, then none; their TTLs run "
        r"out 3 s later$",
        rf"^  expiry: keys gone from \+{NUMBER} s to \+{NUMBER} s after the release; all 50 "
        rf"gone {NUMBER} s after the first TTL ran out$")
    # Renewed at the release, no key goes before its TTL ran out (a tick's slack).
    assert 2.5 <= first_s <= last_s < 60 and took_s < 60, out
    assert member.count(prefix) == 0


@pytest.mark.parametrize("kind", ["petcd", "etcd"])
def test_lock_contenders_take_turns_and_never_hold_it_together(kind, request):
    out = bench_scenario(request.getfixturevalue(kind), "lock", "--contenders", "4",
                         "--name", f"lk-{kind}", "--duration-s", "2", "--hold-ms", "5",
                         "--server-cpu")
    acquired, per_s, handoff_p50, handoff_p99, wait_p50, wait_p99 = figures(
        out,
        rf"^lock \(grpc\): 4 contenders on 'lk-{kind}', hold 5 ms, \d+ workers, [\d.]+s$",
        rf"^  acquisitions: {NUMBER} \({NUMBER}/s\)   errors 0$",
        rf"^  hand-off \(unlock acknowledged -> next holder's Lock answered\): p50 {NUMBER} ms"
        rf"   p99 {NUMBER} ms   max [\d.]+ ms   \d+ hand-offs, \d+ before the ack",
        rf"^  acquisition wait \(Lock sent -> answered\): p50 {NUMBER} ms   p99 {NUMBER} ms")
    assert acquired >= 10 and per_s > 0, out  # a turn takes 5 ms and a few round trips
    assert handoff_p50 <= handoff_p99 < 1000 and wait_p50 <= wait_p99 < 10_000, out
    assert re.search(rf"^  mutual exclusion: kept over {acquired:.0f} holds   fencing revisions "
                     r"out of order 0   overlapping holds 0   keys lost 0$", out, re.M), out
    assert re.search(r"^  client CPU per acquisition: [\d,]+ us", out, re.M), out


def test_floors_measures_each_part_of_a_write_alone(tmp_path):
    out = subprocess.run([BENCH, "floors", "--count", "50", "--data-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=BENCH_TIMEOUT_S)
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    figures = re.findall(r"^  (.+?) +p50 +([\d.]+) ms   p99 +([\d.]+) ms$", out.stdout, re.M)
    assert [name.split(" ")[0] for name, _, _ in figures] == ["fdatasync", "ZeroMQ", "gRPC",
                                                             "HTTP"], out.stdout
    assert all(0 < float(p50) <= float(p99) for _, p50, p99 in figures), out.stdout
    assert str(tmp_path) in figures[0][0]
    assert list(tmp_path.iterdir()) == []  # the fdatasync file is gone
    bad = subprocess.run([BENCH, "floors", "--count", "0"], capture_output=True, text=True,
                         timeout=BENCH_TIMEOUT_S)
    assert bad.returncode == 2 and "--count must be >= 1" in bad.stderr
