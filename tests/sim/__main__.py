"""python -m tests.sim --seeds N [--members M] [--seed S] [--jobs J]

Runs N seeds (or the one seed S) of the Raft cluster simulation and ends with
`sim: seeds=N failures=F steps=T`; exits 0 only when F is 0. Every failure prints the
one command that replays it.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time

from .runner import SeedResult, run_seed


def _run(args: tuple[int, int | None]) -> SeedResult:
    return run_seed(*args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sim", description=__doc__.split("\n")[2])
    parser.add_argument("--seeds", type=int, default=100, help="number of seeds to run")
    parser.add_argument("--seed", type=int, help="run only this seed (replay)")
    parser.add_argument("--first-seed", type=int, default=0, help="first seed of the range")
    parser.add_argument("--members", type=int, choices=(1, 3, 5, 7),
                        help="cluster size (default: cycle 1, 3, 5, 7 by seed)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    args = parser.parse_args(argv)
    seeds = [args.seed] if args.seed is not None else range(args.first_seed, args.first_seed + args.seeds)
    work = [(s, args.members) for s in seeds]
    started = time.monotonic()
    if args.jobs > 1 and len(work) > 1:
        with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
            results = pool.map(_run, work, chunksize=8)
    else:
        results = [_run(w) for w in work]
    failures = [r for r in results if r.error]
    for r in failures:
        print(f"seed {r.seed} ({r.members} members) failed: {r.error}")
        print(f"  replay: python -m tests.sim --seed {r.seed} --members {r.members}")
    steps = sum(r.steps for r in results)
    acked = sum(r.acked for r in results)
    reads = sum(r.reads for r in results)
    elapsed = time.monotonic() - started
    print(f"sim: {acked} writes acknowledged, {reads} linearizable reads checked, "
          f"{elapsed:.1f}s", file=sys.stderr)
    print(f"sim: seeds={len(results)} failures={len(failures)} steps={steps}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
