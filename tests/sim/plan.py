"""The fault and workload plan of one simulated run, derived from its seed.

A plan is a list of :class:`Event` values fixed before the run starts, so a failing run can be
shrunk by replaying subsets of its events (delta debugging) with the same seed.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

TICK_STEPS = 4  # simulation steps per Raft tick


@dataclass(frozen=True, slots=True)
class Event:
    """Something the simulator does at ``step``; ``a``/``b`` are node ids or counts."""

    step: int
    kind: str
    a: int = 0
    b: int = 0

    def __str__(self) -> str:
        args = {
            "propose": f"{self.a} entries",
            "partition": f"split mask {self.a:#x}",
            "one-way": f"{self.a} -/-> {self.b}",
            "heal": "",
            "remove-leader": "",
            "crash-leader": "",
            "isolate-leader": "",
        }.get(self.kind, str(self.a))
        return f"step {self.step:5d}: {self.kind} {args}".rstrip()


@dataclass(frozen=True, slots=True)
class Swarm:
    """Per-seed fault and protocol parameters (TigerBeetle's swarm testing)."""

    drop: float
    duplicate: float
    max_delay_steps: int
    ready_probability: float
    max_msg_bytes: int
    max_inflight_msgs: int
    pre_vote: bool
    check_quorum: bool
    election_ticks: int
    async_ready_steps: int

    @staticmethod
    def draw(rng: random.Random) -> Swarm:
        """Pick a parameter set at random."""
        return Swarm(
            drop=rng.choice([0.0, 0.02, 0.1, 0.3]),
            duplicate=rng.choice([0.0, 0.0, 0.05, 0.2]),
            max_delay_steps=rng.choice([1, 3, 8, 16]),
            ready_probability=rng.choice([1.0, 1.0, 0.5]),
            max_msg_bytes=rng.choice([1 << 20, 1 << 20, 1, 64]),
            max_inflight_msgs=rng.choice([1, 4, 256]),
            pre_vote=rng.random() < 0.8,
            check_quorum=rng.random() < 0.8,
            election_ticks=rng.choice([5, 10]),
            async_ready_steps=rng.choice([0, 0, 3, 8]),
        )


KINDS = [
    "propose",
    "partition",
    "one-way",
    "heal",
    "crash",
    "restart",
    "add-learner",
    "promote",
    "remove",
    "remove-leader",
    "transfer",
    "compact",
    "crash-leader",
    "isolate-leader",
]
WEIGHTS = {
    "default": [30, 4, 3, 6, 4, 6, 2, 2, 1, 1, 3, 4, 4, 4],
    # Leader churn with one entry per message: the histories of the paper's Figure 8.
    "churn": [30, 0, 0, 12, 0, 8, 0, 0, 0, 0, 0, 0, 8, 12],
    # Membership changes overlapping leader changes: a follower holds a configuration entry
    # that the next leader replaces (ConfigTracker.observe_append drops it).
    "membership": [20, 6, 2, 10, 2, 6, 10, 10, 6, 4, 4, 0, 6, 10],
}


def make_plan(
    seed: int, nodes: int, steps: int, profile: str = "default"
) -> tuple[Swarm, list[Event]]:
    """Return the swarm parameters and the event list for ``seed`` under ``profile``."""
    rng = random.Random(f"plan-{seed}-{nodes}-{profile}")
    swarm = Swarm.draw(rng)
    if profile == "churn":
        swarm = dataclasses.replace(swarm, max_msg_bytes=1, drop=0.0, duplicate=0.0)
    spare = [nodes + 1, nodes + 2]
    all_ids = list(range(1, nodes + 1)) + spare
    events: list[Event] = []
    step = rng.randrange(0, 40)
    mean_gap = rng.choice([10, 25, 60] if profile == "default" else [4, 8, 16])
    while step < steps:
        events.append(_draw_event(rng, step, nodes, all_ids, WEIGHTS[profile]))
        step += 1 + int(rng.expovariate(1 / mean_gap))
    return swarm, events


def _draw_event(
    rng: random.Random, step: int, nodes: int, all_ids: list[int], weights: list[int]
) -> Event:
    kind = rng.choices(KINDS, weights=weights)[0]
    if kind == "propose":
        return Event(step, kind, rng.randint(1, 5))
    if kind == "partition":
        return Event(step, kind, rng.randrange(1, (1 << len(all_ids)) - 1))
    if kind == "one-way":
        src, dst = rng.sample(all_ids, 2)
        return Event(step, kind, src, dst)
    if kind in ("heal", "remove-leader", "crash-leader", "isolate-leader"):
        return Event(step, kind)
    if kind in ("add-learner", "promote", "remove"):
        return Event(step, kind, rng.choice(all_ids))
    return Event(step, kind, rng.randint(1, nodes + 2 if kind != "transfer" else nodes))
