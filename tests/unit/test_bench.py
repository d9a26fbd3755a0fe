"""petcd-bench's arguments and request plan: which keys each request touches, how the
work is split over workers and connections, and which argument mixes are refused; for
`petcd-bench watch`, who watches what and how events are matched to puts."""

from __future__ import annotations

import pytest

from petcd.client import bench, bench_watch
from petcd.client.bench_grpc import target
from petcd.client.bench_http import base_url
from petcd.client.bench_memory import Memory, port
from petcd.client.bench_plan import Plan, prefix_end
from petcd.client.bench_watch_delivery import Events, Puts, deliver, percentile_ms
from petcd.client.bench_watch_plan import WatchPlan
from petcd.client.bench_watch_report import MemberMemory, memory_line


def _args(*argv: str):
    p = bench.parser()
    args = p.parse_args(list(argv))
    bench.check(p, args)
    return args


def _refused(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        _args(*argv)
    assert exit_.value.code == 2  # argparse's usage error, as etcd's tools exit on bad flags
    return capsys.readouterr().err


def test_keys_are_the_prefix_and_the_number_padded_to_key_size():
    plan = Plan("put", key_size=8, key_space=100_000, key_prefix=b"k/")
    assert plan.key(1234) == b"k/00001234"
    assert plan.key(100_000 + 7) == b"k/00000007"  # wraps around the key space
    assert plan.value() == b"x" * 256


def test_a_txn_of_puts_takes_consecutive_keys_per_request():
    plan = Plan("put", key_size=3, key_space=1000, txn_ops=4)
    assert plan.put_keys(0) == [b"000", b"001", b"002", b"003"]
    assert plan.put_keys(2) == [b"008", b"009", b"010", b"011"]


def test_prefix_ranges_cover_at_least_limit_keys():
    one = Plan("range", key_size=8, key_space=2000, prefix=True, limit=1)
    assert one.range_bounds(1234) == (b"00001234", b"00001235")
    hundred = Plan("range", key_size=8, key_space=2000, prefix=True, limit=100)
    assert hundred.range_bounds(1234) == (b"000012", b"000013")  # keys 1200..1299
    assert Plan("range", key_size=8, key_space=2000, prefix=True, limit=101).prefix_digits == 3
    assert Plan("range", key_size=8, key_space=2000, prefix=True, limit=10).prefix_digits == 1
    single = Plan("range", key_size=8, key_space=2000, limit=100)
    assert single.range_bounds(1234) == (b"00001234", b"")  # the key alone, limit or not


def test_prefix_end_is_etcds():
    assert prefix_end(b"a/") == b"a0"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff\xff") == b"\0"  # every key
    assert prefix_end(b"") == b"\0"


@pytest.mark.parametrize("conns,workers", [(1, 1), (7, 2), (64, 2), (5, 8)])
def test_put_total_k_over_key_space_k_writes_every_key_once(conns, workers):
    args = _args("put", "--total", "1000", "--key-space", "1000", "--conns", str(conns),
                 "--workers", str(workers), "--key-size", "4")
    jobs = bench.jobs(args)
    assert len(jobs) == min(conns, workers)
    assert sum(len(j.requests) for j in jobs) == conns
    numbers = [j.first_request + i for j in jobs for i in range(sum(j.requests))]
    keys = [k for n in numbers for k in jobs[0].plan.put_keys(n)]
    assert sorted(keys) == [f"{n:04d}".encode() for n in range(1000)]


def test_connections_take_the_endpoints_round_robin():
    args = _args("range", "--conns", "4", "--total", "8", "--workers", "2",
                 "--endpoints", "http://a:1,b:2")
    jobs = bench.jobs(args)
    assert [(j.first_conn, j.requests) for j in jobs] == [(0, (2, 2)), (2, (2, 2))]
    assert jobs[0].endpoints == ("http://a:1", "b:2") and jobs[0].protocol == "grpc"


def test_endpoints_serve_both_protocols():
    assert target("http://127.0.0.1:2379") == "127.0.0.1:2379"
    assert target("127.0.0.1:2379") == "127.0.0.1:2379"
    assert base_url("127.0.0.1:2379") == "http://127.0.0.1:2379"
    assert base_url("https://h:1") == "https://h:1"


def test_new_options_are_parsed():
    args = _args("txn", "--protocol", "http", "--key-prefix", "t/")
    assert (args.op, args.protocol, bench.plan(args).key(5)) == ("txn", "http", b"t/00000005")
    args = _args("range", "--prefix", "--limit", "100")
    assert bench.plan(args).prefix_digits == 2
    assert _args("put", "--txn-ops", "128").txn_ops == 128


@pytest.mark.parametrize("argv,message", [
    (["txn", "--txn-ops", "2"], "--txn-ops must be >= 1, and is for put only"),
    (["put", "--txn-ops", "0"], "--txn-ops must be >= 1"),
    (["put", "--limit", "5"], "--prefix, --limit and --serializable are for range only"),
    (["txn", "--prefix"], "for range only"),
    (["range", "--limit", "-1"], "--limit >= 0"),
    (["range", "--key-size", "2", "--key-space", "101"], "--key-space must be 1..100"),
    (["range", "--key-size", "2", "--key-space", "100", "--prefix", "--limit", "101"],
     "drops 3 digits of keys that have 2"),
    (["put", "--conns", "10", "--total", "5"], "--total >= --conns"),
    (["put", "--endpoints", "http://a:1,"], "--endpoints must list client URLs"),
    (["put", "--protocol", "quic"], "invalid choice: 'quic'"),
])
def test_bad_arguments_are_refused_with_a_reason(capsys, argv, message):
    assert message in _refused(capsys, *argv)


# ---- petcd-bench watch ------------------------------------------------------------


def _watch_args(*argv: str):
    p = bench_watch.parser()
    args = p.parse_args(list(argv))
    bench_watch.check(p, args)
    return args


def _watch_plan(watches: int, streams: int, same_prefix: bool = False,
                key_space: int = 0) -> WatchPlan:
    puts = Plan("put", key_size=4, key_space=key_space or max(1, watches), key_prefix=b"w/")
    return WatchPlan(puts, watches, streams, same_prefix)


def test_watch_i_watches_key_i_and_put_n_reaches_watch_n_mod_key_space():
    plan = _watch_plan(10, 4, key_space=20)
    assert plan.watch_range(3) == (b"w/0003", b"")  # the key alone
    assert plan.put_key(23) == b"w/0003"
    assert plan.reaches(23, 3) and not plan.reaches(23, 4)
    assert [plan.matches(n) for n in (0, 9, 10, 19, 20)] == [1, 1, 0, 0, 1]  # keys 10..19 unwatched


def test_same_prefix_watches_all_see_every_put():
    plan = _watch_plan(100, 10, same_prefix=True)
    assert {plan.watch_range(i) for i in range(100)} == {(b"w/", b"w0")}
    assert plan.matches(7) == 100 and plan.reaches(7, 99)


def test_watches_go_round_robin_over_streams_and_streams_over_endpoints():
    plan = _watch_plan(10, 4)
    assert [list(plan.stream_watches(s)) for s in range(4)] == [[0, 4, 8], [1, 5, 9],
                                                                [2, 6], [3, 7]]
    assert plan.worker_streams(3) == [range(0, 2), range(2, 3), range(3, 4)]
    assert plan.worker_streams(8) == [range(s, s + 1) for s in range(4)]  # no idle worker
    assert plan.watches_by_endpoint(("a", "b")) == {"a": 5, "b": 5}  # streams 0, 2 | 1, 3
    assert plan.watches_by_endpoint(("a", "b", "c")) == {"a": 5, "b": 3, "c": 2}
    assert _watch_plan(0, 1).watches_by_endpoint(("a",)) == {}


@pytest.mark.parametrize("watches,streams,same_prefix,key_space,message", [
    (10, 11, False, 0, "--streams must be 1..--watches"),
    (10, 0, False, 0, "--streams must be 1..--watches"),
    (10, 2, False, 5, "--key-space must be >= --watches"),
    (-1, 1, False, 1, "--watches must be >= 0"),
])
def test_a_watch_plan_refuses_what_it_cannot_keep(watches, streams, same_prefix, key_space,
                                                  message):
    with pytest.raises(ValueError, match=message):
        _watch_plan(watches, streams, same_prefix, key_space)


def _puts(*rows: tuple[int, int, float]) -> Puts:
    puts = Puts()
    for number, revision, acked_s in rows:
        puts.add(number, revision, acked_s)
    return puts


def _events(*rows: tuple[int, int, float]) -> Events:
    events = Events()
    for watch, revision, received_s in rows:
        events.add(watch, revision, received_s)
    return events


def test_delivery_matches_events_to_acknowledged_puts():
    plan = _watch_plan(2, 1)
    puts = _puts((0, 10, 1.000), (1, 11, 1.010), (2, 12, 1.020))  # watches 0, 1, 0
    events = _events((0, 10, 1.002),   # 2 ms after the ack
                     (1, 11, 1.005),   # before its ack: latency 0
                     (1, 11, 1.006),   # seen twice on watch 1
                     (1, 12, 1.030),   # put 2 was on watch 0's key
                     (0, 99, 1.040))   # no acknowledged put behind it
    d = deliver(plan, puts, events)
    assert (d.expected, d.delivered, d.missing) == (3, 2, 1)  # put 2 never reached watch 0
    assert (d.duplicate, d.unexpected, d.early) == (1, 2, 1)
    assert d.latencies_s == pytest.approx((0.0, 0.002))
    assert d.last_received_s == 1.040


def test_fan_out_owes_one_event_per_watch_per_put():
    plan = _watch_plan(3, 2, same_prefix=True)
    puts = _puts((0, 5, 2.0), (1, 6, 2.1))
    events = _events(*[(w, rev, 2.5) for w in range(3) for rev in (5, 6)])
    d = deliver(plan, puts, events)
    assert (d.expected, d.delivered, d.missing, d.duplicate, d.unexpected) == (6, 6, 0, 0, 0)
    assert percentile_ms(d.latencies_s, 0.5) == pytest.approx(500)
    assert percentile_ms(d.latencies_s, 1.0) == pytest.approx(500)
    assert percentile_ms((), 0.99) == 0.0


def test_memory_per_watch_is_the_growth_while_creating_them_over_the_members_watches():
    mib = 2 ** 20
    line = memory_line(MemberMemory(
        "http://127.0.0.1:2379", 1000, Memory(20 * mib, 10 * mib, 1, "etcd"),
        Memory(21 * mib, 11 * mib, 1, "etcd"), Memory(22 * mib, 11 * mib, 1, "etcd")))
    assert line == ("  memory of http://127.0.0.1:2379 (etcd, 1 process): "
                    "RSS 20.0 / 21.0 / 22.0 MiB   PSS 10.0 / 11.0 / 11.0 MiB "
                    "(before / watches created / end)   per watch: RSS 1,049 B   "
                    "PSS 1,049 B (1000 watches)")
    assert memory_line(MemberMemory("h:1", 5, None, None, None)).endswith(
        "not measured (no process on this machine serves it)")


def test_watch_options_are_parsed_into_a_plan():
    args = _watch_args("--watches", "100", "--streams", "10", "--same-prefix",
                       "--rate", "200", "--duration-s", "20", "--key-prefix", "p/")
    plan = bench_watch.watch_plan(args)
    assert (plan.watches, plan.streams, plan.same_prefix) == (100, 10, True)
    assert plan.puts.key_space == 100 and plan.put_key(7) == b"p/00000007"
    alone = bench_watch.watch_plan(_watch_args("--watches", "0"))  # the writer alone
    assert (alone.watches, alone.puts.key_space, alone.matches(3)) == (0, 1, 0)


@pytest.mark.parametrize("argv,message", [
    (["--rate", "0"], "--rate and --duration-s must be > 0"),
    (["--duration-s", "-1"], "--rate and --duration-s must be > 0"),
    (["--watches", "5", "--streams", "6"], "--streams must be 1..--watches"),
    (["--same-prefix", "--key-prefix", ""], "--same-prefix needs a --key-prefix"),
    (["--watch-endpoints", "a:1,,b:2"], "--watch-endpoints must list client URLs"),
])
def test_bad_watch_arguments_are_refused_with_a_reason(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        _watch_args(*argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_petcd_bench_watch_takes_its_own_flags(capsys):
    with pytest.raises(SystemExit) as exit_:
        bench.main(["watch", "--streams", "0"])
    assert exit_.value.code == 2
    assert "petcd-bench watch: error: --streams must be 1..--watches" in capsys.readouterr().err


def test_a_member_is_found_by_its_port():
    assert port("http://127.0.0.1:2379") == 2379 and port("10.0.0.1:23790") == 23790
