"""petcd-bench's arguments and request plan: which keys each request touches, how the
work is split over workers and connections, and which argument mixes are refused; for
`petcd-bench watch`, who watches what and how events are matched to puts; for
`lease-keepalive`, `lease-expiry` and `lock`, which leases ride which stream, what
counts as lost, and how holds are checked for mutual exclusion."""

from __future__ import annotations

import pytest

from petcd.client import bench, bench_lease, bench_lease_expiry, bench_lock, bench_watch
from petcd.client.bench_grpc import target
from petcd.client.bench_http import base_url
from petcd.client.bench_lease_plan import LeasePlan, next_keepalive_s
from petcd.client.bench_lease_report import Expiry, Window, expiry_line, keepalive_lines
from petcd.client.bench_lease_report import lost_leases, window_latencies_s
from petcd.client.bench_lease_worker import LeaseTally
from petcd.client.bench_lock_check import Hold, check_exclusion, handoffs_s, span_s, waits_s
from petcd.client.bench_lock_report import exclusion_line
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


def test_user_and_password_are_read_as_etcdctl_reads_them(monkeypatch):
    assert bench.credentials(_args("put")) is None
    assert bench.credentials(_args("put", "--user", "root:pw:with:colons")) == (
        "root", "pw:with:colons")
    # With --password, --user is the name whole, colons and all.
    assert bench.credentials(_args("range", "--user", "a:b", "--password", "pw")) == ("a:b", "pw")
    monkeypatch.setattr(bench.getpass, "getpass", lambda prompt: f"typed at {prompt!r}")
    assert bench.credentials(_args("txn", "--user", "root")) == ("root", "typed at 'Password: '")


def test_each_connection_sends_the_token_of_the_member_it_talks_to():
    args = _args("put", "--conns", "5", "--total", "5", "--workers", "2",
                 "--endpoints", "http://a:1,http://b:2")
    work = bench.jobs(args, ("token-a", "token-b"))
    assert {j.tokens for j in work} == {("token-a", "token-b")}
    assert all(j.endpoints == ("http://a:1", "http://b:2") for j in work)
    assert bench.jobs(args)[0].tokens == ()


@pytest.mark.parametrize("argv,message", [
    (["put", "--password", "pw"], "--password is for --user"),
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
    assert plan.worker_streams(3) == [range(2), range(2, 3), range(3, 4)]
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


# ---- petcd-bench lease-keepalive, lease-expiry -------------------------------------


def test_lease_i_rides_stream_i_mod_s_and_workers_grant_their_streams_leases():
    plan = LeasePlan(leases=10, streams=4, ttl_s=10)
    assert [list(plan.stream_leases(s)) for s in range(4)] == [[0, 4, 8], [1, 5, 9],
                                                               [2, 6], [3, 7]]
    assert plan.worker_streams(3) == [range(2), range(2, 3), range(3, 4)]
    assert plan.worker_streams(8) == [range(s, s + 1) for s in range(4)]  # no idle worker
    assert plan.worker_leases(range(2)) == [0, 1, 4, 5, 8, 9]
    every = sorted(lease for run in plan.worker_streams(3) for lease in plan.worker_leases(run))
    assert every == list(range(10))  # each lease granted once, by one worker


def test_a_lease_is_renewed_a_third_of_its_answered_ttl_later_as_clientv3_does():
    assert next_keepalive_s(100.0, 10) == pytest.approx(103.333, abs=1e-3)
    assert next_keepalive_s(100.0, 3) == 101.0
    with pytest.raises(AssertionError):
        next_keepalive_s(100.0, 0)  # a lease answered with TTL 0 is gone


def test_lease_expiry_keys_are_the_prefix_and_the_lease_number():
    assert LeasePlan(20, 2, 5, key_prefix=b"e/").key(7) == b"e/00000007"


@pytest.mark.parametrize("leases,streams,ttl_s,message", [
    (0, 1, 10, "--leases must be >= 1"),
    (10, 11, 10, "--streams must be 1..--leases"),
    (10, 0, 10, "--streams must be 1..--leases"),
    (10, 2, 0, "--ttl must be >= 1"),
])
def test_a_lease_plan_refuses_what_it_cannot_keep(leases, streams, ttl_s, message):
    with pytest.raises(ValueError, match=message):
        LeasePlan(leases, streams, ttl_s)


def _lease_tally(answers: list[tuple[float, float]], sent: list[float] = (),
                 lost: set[int] = frozenset(), expired_at_end: set[int] = frozenset(),
                 granted: tuple[int, ...] = ()) -> LeaseTally:
    tally = LeaseTally()
    for answered_s, latency_s in answers:
        tally.keepalives.answered_s.append(answered_s)
        tally.keepalives.latencies_s.append(latency_s)
    tally.keepalives.sent_s.extend(sent)
    tally.keepalives.lost.update(lost)
    tally.expired_at_end.update(expired_at_end)
    tally.granted.extend(granted)
    tally.checked = tally.revoked = len(granted)
    return tally


def test_keep_alives_count_in_the_window_only_and_a_lost_lease_counts_once():
    window = Window(10.0, 20.0)
    first = _lease_tally([(9.0, 0.5), (10.0, 0.002), (15.0, 0.004)], sent=[9.5, 10.0, 14.9, 20.0],
                         lost={7}, granted=(7, 8))
    second = _lease_tally([(19.9, 0.001), (20.0, 0.3)], sent=[19.8], expired_at_end={7, 9},
                          granted=(9,))
    assert window_latencies_s([first, second], window) == [0.001, 0.002, 0.004]
    assert lost_leases([first, second]) == (2, 1, 2)  # lease 7 both ways, lease 9 at the end
    lines = keepalive_lines(LeasePlan(3, 1, 10), [first, second], window)
    assert lines == [
        "  keep-alives: 3 sent (0/s), 3 answered (0/s)   errors 0",
        "  keep-alive latency: p50 2.00 ms   p99 4.00 ms   max 4.00 ms",
        "  leases lost: 2 (1 answered with TTL <= 0, 2 with time-to-live -1 at the end, "
        "of 3 checked)",
        "  leases revoked: 3 of 3"]


def test_expiry_is_timed_from_the_first_ttl_running_out_to_the_last_key_gone():
    expiry = Expiry(released_s=100.0, first_gone_s=105.2, all_gone_s=114.0, left=0)
    assert expiry_line(expiry, 10_000, 5) == (
        "  expiry: keys gone from +5.20 s to +14.00 s after the release; all 10000 gone "
        "9.00 s after the first TTL ran out")
    stuck = Expiry(released_s=100.0, first_gone_s=None, all_gone_s=None, left=12)
    assert expiry_line(stuck, 12, 5) == ("  expiry: 12 of 12 keys left, first gone never "
                                         "after the release")


def _lease_args(module, *argv: str):
    p = module.parser()
    args = p.parse_args(list(argv))
    module.check(p, args)
    return args


def test_lease_options_are_parsed_into_a_plan():
    args = _lease_args(bench_lease, "--leases", "10000", "--streams", "100", "--ttl", "10",
                       "--duration-s", "20", "--rate-max")
    plan = bench_lease.lease_plan(args)
    assert (plan.leases, plan.streams, plan.ttl_s, plan.rate_max) == (10000, 100, 10, True)
    assert not plan.key_prefix
    expiry = bench_lease_expiry.expiry_plan(_lease_args(bench_lease_expiry, "--leases", "50",
                                                        "--streams", "5"))
    assert (expiry.ttl_s, expiry.key(3)) == (5, b"expiry/00000003")


@pytest.mark.parametrize("module,argv,message", [
    (bench_lease, ["--leases", "5", "--streams", "6"], "--streams must be 1..--leases"),
    (bench_lease, ["--duration-s", "0"], "--duration-s must be > 0"),
    (bench_lease, ["--ttl", "0"], "--ttl must be >= 1"),
    (bench_lease, ["--endpoints", "a:1,"], "--endpoints must list client URLs"),
    (bench_lease_expiry, ["--key-prefix", ""], "--key-prefix not empty"),
    (bench_lock, ["--contenders", "0"], "--contenders, --workers and --ttl must be >= 1"),
    (bench_lock, ["--hold-ms", "-1"], "--hold-ms >= 0"),
    (bench_lock, ["--name", ""], "--name not empty"),
])
def test_bad_lease_and_lock_arguments_are_refused_with_a_reason(capsys, module, argv, message):
    with pytest.raises(SystemExit) as exit_:
        _lease_args(module, *argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("scenario,argv,message", [
    ("lease-keepalive", ["--streams", "0"], "petcd-bench lease-keepalive: error: --streams"),
    ("lease-expiry", ["--leases", "0"], "petcd-bench lease-expiry: error: --leases"),
    ("lock", ["--contenders", "0"], "petcd-bench lock: error: --contenders"),
])
def test_petcd_bench_lease_and_lock_take_their_own_flags(capsys, scenario, argv, message):
    with pytest.raises(SystemExit) as exit_:
        bench.main([scenario, *argv])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


# ---- petcd-bench lock ---------------------------------------------------------------


def _hold(contender: int, sent: float, acquired: float, fence: int, released: float,
          acked: float) -> Hold:
    return Hold(contender, sent, acquired, fence, released, acked)


def test_exclusion_holds_when_fences_rise_and_holds_follow_one_another():
    holds = [_hold(0, 0.990, 1.000, 7, 1.002, 1.004),   # A
             _hold(1, 0.990, 1.005, 9, 1.006, 1.008),   # B was waiting: 1 ms hand-off
             _hold(0, 1.004, 1.007, 11, 1.009, 1.010)]  # A again, before B's ack: early
    e = check_exclusion(holds)
    assert e.kept and (e.holds, e.fence_regressions, e.overlaps, e.keys_lost) == (3, 0, 0, 0)
    latencies, early = handoffs_s(holds)
    assert latencies == pytest.approx([0.0, 0.001]) and early == 1
    assert waits_s(holds) == pytest.approx([0.003, 0.010, 0.015])
    assert span_s(holds) == pytest.approx(0.020)
    assert exclusion_line(e) == ("  mutual exclusion: kept over 3 holds   fencing revisions "
                                 "out of order 0   overlapping holds 0   keys lost 0")


def test_a_contender_that_was_not_waiting_is_not_a_hand_off():
    holds = [_hold(0, 1.0, 1.001, 5, 1.002, 1.003), _hold(1, 1.5, 1.501, 6, 1.502, 1.503)]
    assert handoffs_s(holds) == ([], 0)


def test_overlapping_holds_and_falling_fences_and_lost_keys_violate_exclusion():
    holds = [_hold(0, 0.9, 1.000, 9, 1.010, 1.011),
             _hold(1, 0.9, 1.005, 8, 1.012, 1.013),   # acquired while 0 held; fence fell
             _hold(2, 0.9, 1.020, 0, 1.021, 1.022)]   # its key was gone after Lock
    e = check_exclusion(holds)
    assert (e.fence_regressions, e.overlaps, e.keys_lost, e.kept) == (1, 1, 1, False)
    assert exclusion_line(e).startswith("  mutual exclusion: VIOLATED over 3 holds")


def test_contenders_split_over_workers_in_contiguous_runs():
    args = _lease_args(bench_lock, "--contenders", "5", "--workers", "2", "--hold-ms", "20",
                       "--endpoints", "a:1,b:2")
    work = bench_lock.jobs(args)
    assert [j.contenders for j in work] == [range(3), range(3, 5)]
    assert work[0].hold_s == 0.02 and work[0].name == b"bench-lock"
    assert work[1].endpoints == ("a:1", "b:2")
