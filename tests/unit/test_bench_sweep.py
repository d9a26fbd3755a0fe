"""petcd-bench sweep's report and arguments: the table a user reads (a row per run, the
latency spike around snapshots, "-" where nothing was measured), the PNG it writes,
how the load is split over workers, and which --snapshot-count lists are refused."""

from __future__ import annotations

import pytest

from petcd.client import bench_sweep
from petcd.client import bench_sweep_report as report
from petcd.client.bench_plan import Plan
from petcd.client.bench_sweep_load import jobs

MIB = 2 ** 20


def _run(**changes) -> report.Run:
    # 100 puts over 10 s: 10 ms each, but 200 ms for the one sent at 5.0 s, beside the
    # snapshot at 5.2 s; a follower down from 3 to 6 s.
    sent = tuple(i * 0.1 for i in range(100))
    fields = dict(
        system="petcd", snapshot_count=1000, duration_s=10.0, sent_at_s=sent,
        latencies_s=tuple(0.2 if i == 50 else 0.01 for i in range(100)), errors=0,
        snapshots_at_s=(5.2,),
        memory=(report.MemorySample(0.0, 0, 100 * MIB, 40 * MIB),
                report.MemorySample(0.5, 0, 120 * MIB, 50 * MIB),
                report.MemorySample(0.0, 1, 90 * MIB, 45 * MIB)),
        follower_down_s=(3.0, 6.0), catch_up_s=1.5, catch_up_by="log",
        wal_bytes=64 * MIB, snap_bytes=MIB // 2, restart_s=2.25)
    return report.Run(**{**fields, **changes})


def _cells(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()]


def test_table_has_a_row_per_run_under_its_columns():
    header, first, second = _cells(report.table([
        _run(), _run(system="etcd", snapshot_count=100_000, snapshots_at_s=(),
                     catch_up_s=None, catch_up_by="-", restart_s=None, errors=3)]))
    assert " ".join(header).startswith("system snapshot-count snapshots req/s p50 ms")
    # 10 req/s; p99 is the 200 ms put, sent near the snapshot; far from it every put
    # took 10 ms; the memory peaks are the largest member's; WAL and snap in MiB.
    assert first == ["petcd", "1,000", "1", "10", "10.0", "200.0", "200.0", "200.0", "10.0",
                     "120", "50", "64.0", "0.5", "1.50", "log", "2.25", "0"]
    assert second[:3] == ["etcd", "100,000", "0"]
    assert second[7:9] == ["-", "200.0"]  # no snapshot: nothing near one
    assert second[-4:] == ["-", "-", "-", "3"]


def test_spike_is_the_longest_latency_within_a_second_of_a_snapshot():
    assert report.spike_s(_run()) == (0.2, 0.01)
    # Snapshots every half second: no request is far from one.
    assert report.spike_s(_run(snapshots_at_s=tuple(i * 0.5 for i in range(21)))) == (0.2, None)
    assert report.near((1.0, 4.0), 5.0) and not report.near((1.0, 4.0), 2.5)


def test_p99_per_half_second_bin():
    mids, p99s = report.p99_by_bin(_run())
    assert len(mids) == 20 and mids[0] == 0.25
    assert p99s[10] == 0.2 and set(p99s) - {0.2} == {0.01}


def test_plot_writes_a_png(tmp_path):
    path = tmp_path / "sweep.png"
    report.plot([_run(), _run(snapshot_count=10_000), _run(system="etcd"),
                 _run(system="etcd", snapshot_count=10_000)], str(path))
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_load_is_split_over_workers_without_sharing_key_numbers():
    plan = Plan(op="put", key_size=8, key_space=1000)
    work = jobs(plan, ("http://a", "http://b"), conns=5, workers=2, duration_s=3.0)
    assert [(j.first_conn, j.conns, j.all_conns) for j in work] == [(0, 3, 5), (3, 2, 5)]
    assert jobs(plan, ("http://a",), conns=1, workers=4, duration_s=3.0)[0].conns == 1


@pytest.mark.parametrize("text", ["", "1000,x", "0,100", "-5"])
def test_bad_snapshot_counts_are_refused(text, capsys):
    with pytest.raises(SystemExit) as exit_:
        bench_sweep.parser().parse_args(["--snapshot-count", text])
    assert exit_.value.code == 2
    assert "--snapshot-count" in capsys.readouterr().err


def test_snapshot_counts_read_with_separators():
    args = bench_sweep.parser().parse_args(["--snapshot-count", "1_000,10000,100000"])
    assert args.snapshot_count == [1000, 10_000, 100_000]
    assert (args.members, args.duration, args.conns, args.val_size) == (3, 20.0, 16, 256)
