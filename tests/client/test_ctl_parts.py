"""petcdctl's pure parts: Go's formats, the table, flags, the txn grammar, key ranges."""

from __future__ import annotations

import pytest

from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.client import requests
from petcd.client.ctl import flags, gofmt, main, table, txn_grammar
from petcd.client.ctl.flags import CtlError, Flag


@pytest.mark.parametrize("seconds, text", [
    (0, "0s"), (1.735498e-3, "1.735498ms"), (850e-6, "850µs"), (42e-9, "42ns"),
    (1.0, "1s"), (5.00119297, "5.00119297s"), (90.5, "1m30.5s"), (3723.004, "1h2m3.004s")])
def test_go_duration_strings(seconds, text):
    assert gofmt.duration(seconds) == text


@pytest.mark.parametrize("text, seconds", [("2s", 2.0), ("500ms", 0.5), ("1m30s", 90.0),
                                           ("1.5h", 5400.0), ("0", 0.0)])
def test_go_duration_parsing(text, seconds):
    assert gofmt.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "x", "1d"])
def test_bad_durations_are_refused_with_gos_message(text):
    with pytest.raises(ValueError, match=f'time: invalid duration "{text}"'):
        gofmt.parse_duration(text)


@pytest.mark.parametrize("size, text", [(0, "0 B"), (9, "9 B"), (20480, "20 kB"),
                                        (1536000, "1.5 MB"), (999999, "1000 kB")])
def test_humanized_sizes(size, text):
    assert gofmt.human_bytes(size) == text


@pytest.mark.parametrize("raw, quoted", [(b"foo", '"foo"'), (b'a"b\\', r'"a\"b\\"'),
                                         (b"\x01\n\xff", r'"\x01\n\xff"'),
                                         ("é".encode(), '"é"')])
def test_go_quoting(raw, quoted):
    assert gofmt.quote(raw) == quoted


def test_json_is_gos_encoding_of_etcds_structs():
    resp = pb.TxnResponse(header=pb.ResponseHeader(revision=7), succeeded=True, responses=[
        pb.ResponseOp(response_put=pb.PutResponse(header=pb.ResponseHeader(revision=7)))])
    assert gofmt.to_json(gofmt.struct(resp)) == (
        '{"header":{"revision":7},"succeeded":true,'
        '"responses":[{"Response":{"ResponsePut":{"header":{"revision":7}}}}]}')
    kv = pb.RangeResponse(kvs=[{"key": b"<k>", "value": b"&", "mod_revision": 2**63 - 1}])
    assert gofmt.to_json(gofmt.struct(kv)) == \
        '{"kvs":[{"key":"PGs+","mod_revision":9223372036854775807,"value":"Jg=="}]}'
    assert gofmt.to_json({"e": "<&>"}) == '{"e":"\\u003c\\u0026\\u003e"}'


def test_table_draws_like_tablewriter():
    assert table.render(["endpoint", "db size"], [["127.0.0.1:2379", "20 kB"]]) == (
        "+----------------+---------+\n"
        "|    ENDPOINT    | DB SIZE |\n"
        "+----------------+---------+\n"
        "| 127.0.0.1:2379 |   20 kB |\n"
        "+----------------+---------+\n")


def test_table_wraps_long_cells_at_spaces():
    text = table.render(["error"], [["rpc error: code = Unavailable desc = connection refused"]])
    assert text.splitlines()[1:5] == ["|             ERROR              |",
                                      "+--------------------------------+",
                                      "|  rpc error: code = Unavailable |",
                                      "|      desc = connection refused |"]


def test_the_command_is_found_among_flags():
    assert main._find(["-w", "json", "--endpoints", "a:1", "check", "perf", "--prefix",
                       "/p/"]).words == ("check", "perf")
    assert main._find(["get", "--prefix", "a"]).words == ("get",)
    assert main._find(["endpoint", "--cluster", "status"]).words == ("endpoint", "status")
    assert main._find(["member"]) is None  # a bare group: usage
    with pytest.raises(CtlError, match='unknown command "nope"'):
        main._find(["nope"])


FLAGS = [Flag("limit", "int", 0), Flag("prefix", "bool", False),
         Flag("write-out", "string", "simple", short="w"),
         Flag("endpoints", "strings", ["127.0.0.1:2379"]),
         Flag("dial-timeout", "duration", 2.0)]


def test_flags_parse_as_pflag_does():
    parsed = flags.parse(FLAGS, ["get", "--limit=3", "k", "-w", "json", "--prefix",
                                 "--endpoints", "a:1,b:2", "--dial-timeout", "500ms",
                                 "--", "--not-a-flag"])
    assert parsed.args == ("get", "k", "--not-a-flag")
    assert parsed.values == {"limit": 3, "prefix": True, "write-out": "json",
                             "endpoints": ["a:1", "b:2"], "dial-timeout": 0.5}
    assert flags.parse(FLAGS, ["-wfields", "--prefix=false"]).values["write-out"] == "fields"


@pytest.mark.parametrize("argv, message", [
    (["--bogus"], "unknown flag: --bogus"),
    (["-x"], "unknown shorthand flag: 'x' in -x"),
    (["--limit"], "flag needs an argument: --limit"),
    (["--limit", "x"], 'invalid argument "x" for "--limit" flag: strconv.ParseInt: '
                       'parsing "x": invalid syntax'),
])
def test_flag_errors_use_pflags_words(argv, message):
    with pytest.raises(CtlError) as err:
        flags.parse(FLAGS, argv)
    assert (err.value.exit_code, err.value.message) == (1, message)


def test_txn_compares_parse_to_etcd_compares():
    parsed = txn_grammar.parse_compare('mod("key1") > "0"')
    assert (parsed.key, parsed.target, parsed.result, parsed.mod_revision) == \
        (b"key1", pb.Compare.MOD, pb.Compare.GREATER, 0)
    value = txn_grammar.parse_compare('val("a b") != "x\\ty"')
    assert (value.key, value.result, value.value) == (b"a b", pb.Compare.NOT_EQUAL, b"x\ty")
    assert txn_grammar.parse_compare('lease("k") = "1f"').lease == 31


def test_txn_request_lines_split_like_argify():
    assert txn_grammar.argify("put k1 \"a \\\"b\\\"\" 'c d' --prev-kv") == \
        ["put", "k1", 'a "b"', "c d", "--prev-kv"]


@pytest.mark.parametrize("key, end", [(b"a", b"b"), (b"a\xff", b"b"), (b"\xff\xff", b"\x00"),
                                      (b"", b"\x00")])
def test_prefix_range_ends(key, end):
    assert requests.key_range(key, prefix=True)[1] == end


def test_a_key_range_takes_one_kind_of_end():
    with pytest.raises(ValueError):
        requests.key_range("a", "b", prefix=True)
