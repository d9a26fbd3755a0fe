"""petcd-bench put --trace: where a write's time went, stage by stage.

Each traced answer is petcd's `petcd-trace` (actors/network/trace.py): the time of each
stage in microseconds after the request reached the member's network actor. The
report gives, for each stage, p50 / p99 of the step from the stage before it and of
the time since arrival, and what the step is made of, so that each can be held
against its floor (`petcd-bench floors`): a ZeroMQ hop, an fdatasync, a gRPC call.
A member that forwarded the write to the leader reports its own view (its `appended`
is when the leader's append reached it). A step whose stage is missing from an
answer (a trace message lost, or a stage this member does not see) is left out of
that answer's figures.
"""

from __future__ import annotations

from petcd.actors.network.trace import STAGES, decode

# (stage, what the step from the previous stage to it is made of)
STEPS = (
    ("arrived", ""),
    ("proposed", "network actor: the request decoded, checked, queued for raft"),
    ("raft_received", "ZeroMQ hop network -> raft"),
    ("appended", "raft: the entry in a Ready, its SAVE and appends sent"),
    ("persisted", "hop to the WAL, fdatasync, hop back (PERSISTED)"),
    ("committed", "a quorum's acks (the followers' own fsyncs), the APPLY sent"),
    ("apply_received", "ZeroMQ hop raft -> apply"),
    ("applied", "apply: the batch in one LMDB transaction, answered before commit"),
    ("responded", "ZeroMQ hop apply -> network"),
    ("returned", "network actor: the answer decoded, handed back to grpc.aio / aiohttp"),
)
assert tuple(stage for stage, _ in STEPS) == STAGES


def _pct(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


def report(traces: list[str], latencies_s: list[float]) -> list[str]:
    """The lines petcd-bench prints after its summary."""
    decoded = [decode(t) for t in traces]
    decoded = [d for d in decoded if "responded" in d]
    if not decoded:
        return ["  trace: no answer carried petcd-trace (not a petcd member?)"]
    lines = [f"  trace of {len(decoded)} writes (ms, p50 / p99): step from the stage "
             "before / since arrival"]
    previous = "arrived"
    for stage, made_of in STEPS[1:]:
        since = [d[stage] for d in decoded if stage in d]
        step = [d[stage] - d[previous] for d in decoded if stage in d and previous in d]
        if since:
            lines.append(f"    {stage:<15} {_pct(step, .5):7.3f} / {_pct(step, .99):7.3f}"
                         f"   {_pct(since, .5):7.3f} / {_pct(since, .99):7.3f}   {made_of}")
            previous = stage
    client = [round(s * 1e6) for s in latencies_s]
    in_member = [d.get("returned", d["responded"]) for d in decoded]
    lines.append(f"    {'client':<15} round trip {_pct(client, .5):.3f} / {_pct(client, .99):.3f}"
                 f", of which from arrival to return {_pct(in_member, .5):.3f} / "
                 f"{_pct(in_member, .99):.3f} (the rest: the gRPC or HTTP call itself, "
                 "the front door, the client)")
    return lines
