"""petcd-bench's arguments and request plan: which keys each request touches, how the
work is split over workers and connections, and which argument mixes are refused."""

from __future__ import annotations

import pytest

from petcd.client import bench
from petcd.client.bench_grpc import target
from petcd.client.bench_http import base_url
from petcd.client.bench_plan import Plan, prefix_end


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
