"""What one sweep run measured, and how petcd-bench sweep shows it: a table and a plot.

Pure but for plot(), which writes the PNG (matplotlib, imported there: it costs
petcd-bench's other commands half a second of start-up). Times are seconds since the
run's load started; latencies in seconds, sizes in bytes, shown in ms and MiB.

The snapshot spike: the longest latency of the requests sent within SPIKE_WINDOW_S of
a snapshot (made by any member), beside the longest of those sent farther from every
snapshot. With a small --snapshot-count snapshots come every fraction of a second and
no request is far from one: that column is then "-".
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

SPIKE_WINDOW_S = 1.0
MIB = 2 ** 20
LATENCY_BIN_S = 0.5  # the plot's p99 line: one point per bin
LEGEND_HEIGHT_IN = 0.7
GAP_S = 1.5  # memory samples farther apart than this: the member was down between


@dataclass(frozen=True, slots=True)
class MemorySample:
    at_s: float
    member: int
    rss_bytes: int
    pss_bytes: int


@dataclass(frozen=True, slots=True)
class Run:
    system: str  # "petcd" or "etcd"
    snapshot_count: int
    duration_s: float
    sent_at_s: tuple[float, ...]  # each successful request, in the order of latencies_s
    latencies_s: tuple[float, ...]
    errors: int
    snapshots_at_s: tuple[float, ...]  # every member's, sorted
    memory: tuple[MemorySample, ...]
    follower_down_s: tuple[float, float] | None  # stopped at, restarted at; None: 1 member
    catch_up_s: float | None  # from the follower's restart to its applied index reaching
                              # the leader's; None: it did not within the bound, or 1 member
    catch_up_by: str  # "snapshot", "log", or "-"
    wal_bytes: int  # the largest member's, after the load
    snap_bytes: int
    restart_s: float | None  # process start until it answers a linearizable range

    def __post_init__(self) -> None:
        assert len(self.sent_at_s) == len(self.latencies_s), "one send time per latency"
        assert list(self.snapshots_at_s) == sorted(self.snapshots_at_s), "sorted snapshots"


def percentile_s(sorted_s: Sequence[float], q: float) -> float:
    """Nearest rank, as petcd-bench put reports it."""
    assert sorted_s, "no latencies"
    return sorted_s[min(len(sorted_s) - 1, int(q * len(sorted_s)))]


def near(snapshots_at_s: Sequence[float], at_s: float, window_s: float = SPIKE_WINDOW_S) -> bool:
    """Whether a snapshot was made within window_s of at_s (snapshots sorted)."""
    i = bisect.bisect_left(snapshots_at_s, at_s - window_s)
    return i < len(snapshots_at_s) and snapshots_at_s[i] <= at_s + window_s


def spike_s(run: Run) -> tuple[float | None, float | None]:
    """The longest latency near a snapshot, and the longest far from every snapshot."""
    close, far = [], []
    for at_s, latency_s in zip(run.sent_at_s, run.latencies_s):
        (close if near(run.snapshots_at_s, at_s) else far).append(latency_s)
    return max(close, default=None), max(far, default=None)


COLUMNS = (("system", 6), ("snapshot-count", 14), ("snapshots", 9), ("req/s", 7),
           ("p50 ms", 7), ("p99 ms", 7), ("p99.9 ms", 8), ("max near snap ms", 16),
           ("max away ms", 11), ("RSS peak MiB", 12), ("PSS peak MiB", 12), ("WAL MiB", 7),
           ("snap MiB", 8), ("catch-up s", 10), ("by", 8), ("restart s", 9), ("errors", 6))


def _ms(value_s: float | None) -> str:
    return "-" if value_s is None else f"{value_s * 1000:.1f}"


def _s(value_s: float | None) -> str:
    return "-" if value_s is None else f"{value_s:.2f}"


def row(run: Run) -> list[str]:
    latencies = sorted(run.latencies_s)
    close_s, far_s = spike_s(run)
    rss = max((m.rss_bytes for m in run.memory), default=0)
    pss = max((m.pss_bytes for m in run.memory), default=0)
    return [run.system, f"{run.snapshot_count:,}", str(len(run.snapshots_at_s)),
            f"{len(latencies) / run.duration_s:,.0f}",
            *(_ms(percentile_s(latencies, q)) for q in (0.50, 0.99, 0.999)),
            _ms(close_s), _ms(far_s), f"{rss / MIB:.0f}", f"{pss / MIB:.0f}",
            f"{run.wal_bytes / MIB:.1f}", f"{run.snap_bytes / MIB:.1f}", _s(run.catch_up_s),
            run.catch_up_by, _s(run.restart_s), str(run.errors)]


def table(runs: Sequence[Run]) -> str:
    lines = ["  ".join(name.rjust(width) for name, width in COLUMNS)]
    for run in runs:
        lines.append("  ".join(cell.rjust(width) for cell, (_, width) in zip(row(run), COLUMNS)))
    return "\n".join(lines)


def p99_by_bin(run: Run, bin_s: float = LATENCY_BIN_S) -> tuple[list[float], list[float]]:
    """Mid-times of the bins that hold requests, and each bin's p99 latency."""
    bins: dict[int, list[float]] = {}
    for at_s, latency_s in zip(run.sent_at_s, run.latencies_s):
        bins.setdefault(int(at_s // bin_s), []).append(latency_s)
    keys = sorted(bins)
    return ([(k + 0.5) * bin_s for k in keys],
            [percentile_s(sorted(bins[k]), 0.99) for k in keys])


def plot(runs: Sequence[Run], path: str) -> None:
    """Latency (top) and memory (below) over time: a column per --snapshot-count value,
    a pair of rows per system."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    systems = list(dict.fromkeys(r.system for r in runs))
    counts = list(dict.fromkeys(r.snapshot_count for r in runs))
    fig, axes = plt.subplots(2 * len(systems), len(counts), squeeze=False, sharex=True,
                             figsize=(max(7.0, 4.5 * len(counts)),
                                      5.5 * len(systems) + LEGEND_HEIGHT_IN))
    for run in runs:
        top = 2 * systems.index(run.system)
        column = counts.index(run.snapshot_count)
        _latency_panel(axes[top][column], run)
        _memory_panel(axes[top + 1][column], run)
    # One scale for all latency panels and one for all memory panels: the values (and
    # the systems) compare at a glance. Memory from 0, latency in plain milliseconds.
    latency_axes = [ax for row_axes in axes[0::2] for ax in row_axes]
    memory_axes = [ax for row_axes in axes[1::2] for ax in row_axes]
    _share_y(latency_axes)
    _share_y(memory_axes, low=0.0)
    for ax in latency_axes:
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    # One legend below the panels, where it hides no data.
    handles = dict(zip(*reversed(axes[0][0].get_legend_handles_labels())))
    handles.update(zip(*reversed(axes[1][0].get_legend_handles_labels())))
    fig.legend(handles.values(), handles.keys(), loc="lower center", fontsize="small",
               ncol=(len(handles) + 1) // 2, frameon=False)
    fig.tight_layout(rect=(0.0, LEGEND_HEIGHT_IN / fig.get_figheight(), 1.0, 1.0))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _share_y(panels, low: float | None = None) -> None:
    bottom = min(ax.get_ylim()[0] for ax in panels) if low is None else low
    top = max(ax.get_ylim()[1] for ax in panels)
    for ax in panels:
        ax.set_ylim(bottom, top)


def _follower_down(ax, run: Run) -> None:
    if run.follower_down_s is not None:
        ax.axvspan(*run.follower_down_s, color="0.85", label="follower stopped")


def _latency_panel(ax, run: Run) -> None:
    _follower_down(ax, run)
    ax.scatter(run.sent_at_s, [x * 1000 for x in run.latencies_s], s=2, alpha=0.3,
               color="tab:blue", rasterized=True, label="each put")
    mids, p99s = p99_by_bin(run)
    ax.plot(mids, [x * 1000 for x in p99s], color="black", linewidth=1.0, label="p99 per 0.5 s")
    if run.snapshots_at_s:
        ax.vlines(run.snapshots_at_s, 0, 1, transform=ax.get_xaxis_transform(),
                  color="tab:red", alpha=0.4, linewidth=0.6, label="snapshot")
    ax.set_yscale("log")
    ax.set_title(f"{run.system} --snapshot-count {run.snapshot_count:,}", fontsize="medium")
    ax.set_ylabel("put latency (ms)")


def _memory_panel(ax, run: Run) -> None:
    _follower_down(ax, run)
    for member in sorted({m.member for m in run.memory}):
        times, pss, rss = _with_gaps([m for m in run.memory if m.member == member])
        line, = ax.plot(times, pss, label=f"m{member} PSS")
        ax.plot(times, rss, linestyle="--", color=line.get_color(), label=f"m{member} RSS")
    ax.set_ylabel("memory (MiB)")
    ax.set_xlabel("seconds into the load")


def _with_gaps(samples: list[MemorySample]) -> tuple[list[float], list[float], list[float]]:
    """Times, PSS and RSS in MiB, with a NaN where the member was down: a break in the
    line rather than a straight one across the time it had no memory."""
    times: list[float] = []
    pss: list[float] = []
    rss: list[float] = []
    for m in samples:
        if times and m.at_s - times[-1] > GAP_S:
            times.append(m.at_s)
            pss.append(float("nan"))
            rss.append(float("nan"))
        times.append(m.at_s)
        pss.append(m.pss_bytes / MIB)
        rss.append(m.rss_bytes / MIB)
    return times, pss, rss
