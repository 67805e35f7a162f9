"""Command line: ``python -m tests.sim.driver --seed N`` or ``--seeds A-B [--profile P]``."""

from __future__ import annotations

import argparse
import sys
import time

from tests.sim.driver.plan import PROFILES, Event
from tests.sim.driver.runner import SAFETY_S, Result, run_seed
from tests.sim.runner import shrink


def _seed_range(text: str) -> range:
    lo, _, hi = text.partition("-")
    return range(int(lo), int(hi or lo) + 1)


def reproduce(seed: int, profile: str, voters: int) -> str:
    """The command that replays one run."""
    return f"python -m tests.sim.driver --seed {seed} --profile {profile} --nodes {voters}"


def shrink_failure(result: Result, safety_s: float = SAFETY_S) -> list[Event]:
    """A short sub-plan of a failed ``result`` whose run still breaks the same rule."""
    kind = (result.violation or "").split(":")[0]

    def fails(candidate: list[Event]) -> bool:
        again = run_seed(result.seed, result.profile, result.voters, candidate, safety_s=safety_s)
        return any(v.split(":")[0] == kind for v in again.violations)

    return shrink(result.seed, result.voters, list(result.events), fails)


def main(argv: list[str] | None = None) -> int:
    """Run seeds; on failure print the seed, the violations and (shrunk) the nemesis's plan."""
    parser = argparse.ArgumentParser(prog="python -m tests.sim.driver", description=__doc__)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--seed", type=int, help="run one seed")
    group.add_argument("--seeds", type=_seed_range, help="run a range A-B (inclusive)")
    parser.add_argument("--profile", default="default", choices=sorted(PROFILES))
    parser.add_argument("--nodes", type=int, default=3, help="voters at the start (default 3)")
    parser.add_argument(
        "--safety-s", type=float, default=SAFETY_S, help="virtual seconds of faults"
    )
    parser.add_argument("--soak", action="store_true", help="keep going after a failure")
    parser.add_argument("--no-shrink", action="store_true", help="do not shrink failures")
    parser.add_argument("--verbose", action="store_true", help="print the trace of every run")
    args = parser.parse_args(argv)
    seeds = range(args.seed, args.seed + 1) if args.seed is not None else args.seeds
    seeds = seeds if seeds is not None else range(0, 20)
    failures = 0
    started = time.process_time()
    for seed in seeds:
        result = run_seed(seed, args.profile, args.nodes, safety_s=args.safety_s)
        if args.verbose:
            print("\n".join(result.trace))
        if result.ok:
            if len(seeds) == 1:
                print(f"seed {seed}: ok (commit {result.commit}, attempts {result.counts})")
            continue
        failures += 1
        _report(result, args)
        if not args.soak:
            return 1
    elapsed = time.process_time() - started
    print(f"{len(seeds)} seeds, {failures} failed, {elapsed:.1f}s CPU")
    return 1 if failures else 0


def _report(result: Result, args: argparse.Namespace) -> None:
    print(f"seed {result.seed} (--profile {result.profile}) FAILED:")
    for violation in result.violations[:10]:
        print(f"  {violation}")
    if len(result.violations) > 10:
        print(f"  ... and {len(result.violations) - 10} more")
    if not args.no_shrink:
        events = shrink_failure(result, args.safety_s)
        again = run_seed(result.seed, result.profile, result.voters, events, safety_s=args.safety_s)
        print(f"shrunk to {len(events)} of {len(result.events)} nemesis events: {again.violation}")
        print("\n".join(str(e) for e in events))
    print(f"reproduce: {reproduce(result.seed, result.profile, result.voters)}")


if __name__ == "__main__":
    sys.exit(main())
