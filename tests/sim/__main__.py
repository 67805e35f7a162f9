"""Command line: ``python -m tests.sim --seed N`` / ``--seeds A-B [--nodes 5] [--soak]``."""

from __future__ import annotations

import argparse
import sys
import time

from tests.sim.plan import WEIGHTS
from tests.sim.runner import run_seed, shrink_failure


def _seed_range(text: str) -> range:
    lo, _, hi = text.partition("-")
    return range(int(lo), int(hi or lo) + 1)


def main(argv: list[str] | None = None) -> int:
    """Run seeds; on failure print the seed, the violation and a shrunk event trace."""
    parser = argparse.ArgumentParser(prog="python -m tests.sim", description=__doc__)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--seed", type=int, help="run one seed")
    group.add_argument("--seeds", type=_seed_range, help="run a range A-B (inclusive)")
    parser.add_argument("--nodes", type=int, default=3, help="cluster size (default 3)")
    parser.add_argument("--profile", default="default", choices=sorted(WEIGHTS))
    parser.add_argument("--soak", action="store_true", help="keep going after a failure")
    parser.add_argument("--no-shrink", action="store_true", help="do not shrink failures")
    parser.add_argument("--verbose", action="store_true", help="print the event trace")
    args = parser.parse_args(argv)
    seeds = range(args.seed, args.seed + 1) if args.seed is not None else args.seeds
    seeds = seeds if seeds is not None else range(0, 100)
    failures = 0
    started = time.process_time()
    for seed in seeds:
        result = run_seed(seed, args.nodes, profile=args.profile, verbose=args.verbose)
        if args.verbose:
            print("\n".join(result.trace))
        if result.ok:
            if len(seeds) == 1:
                print(f"seed {seed}: ok ({result.committed} committed, {result.steps} steps)")
            continue
        failures += 1
        print(f"seed {seed} (--nodes {args.nodes}) FAILED: {result.violation}")
        if not args.no_shrink:
            events = shrink_failure(result)
            again = run_seed(seed, args.nodes, events, profile=args.profile, verbose=True)
            print(f"shrunk to {len(events)} of {len(result.events)} events: {again.violation}")
            print("\n".join(again.trace))
        print(
            f"reproduce: python -m tests.sim --seed {seed} --nodes {args.nodes} "
            f"--profile {args.profile}"
        )
        if not args.soak:
            return 1
    elapsed = time.process_time() - started
    print(f"{len(seeds)} seeds, {failures} failed, {elapsed:.1f}s CPU")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
