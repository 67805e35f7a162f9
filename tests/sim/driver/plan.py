"""The fault plan and the parameters of one driver simulation run, derived from its seed.

As in :mod:`tests.sim.plan`, the nemesis's events are fixed before the run starts (so a failing
run shrinks by replaying subsets of them with the same seed); the clients are not part of the
plan: they are driven by their own seeded generators and react to what the cluster tells them.

A *profile* aims the swarm at one family of driver defects; ``default`` mixes everything.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

KINDS = (
    "crash",
    "restart",
    "crash-leader",
    "partition",
    "isolate-leader",
    "heal",
    "transfer",
    "regain",
    "add-learner",
    "remove",
)


@dataclass(frozen=True, slots=True)
class Event:
    """Something the nemesis does at virtual time ``at_s``; ``a``/``b`` are node ids or masks."""

    at_s: float
    kind: str
    a: int = 0
    b: int = 0

    def __str__(self) -> str:
        args = {
            "partition": f"split mask {self.a:#x}" + (f" for {self.b} ms" if self.b else ""),
            "isolate-leader": f"for {self.b} ms" if self.b else "",
            "crash": f"pick {self.a}",
            "restart": f"pick {self.a}",
            "add-learner": f"pick {self.a}",
            "remove": f"pick {self.a}",
            "crash-leader": "",
            "regain": "",
            "heal": "",
        }.get(self.kind, str(self.a))
        return f"{self.at_s:8.3f}s nemesis {self.kind} {args}".rstrip()


@dataclass(frozen=True, slots=True)
class Profile:
    """What a family of runs stresses: the nemesis's mix and the clients' shape."""

    name: str
    mean_gap_s: tuple[float, ...]
    cut_s: tuple[float, float]  # how long a partition lasts (most of them; others until healed)
    batch_records: tuple[int, int]
    clients: tuple[int, int]
    think_s: float
    client_timeout_s: tuple[float, ...]
    max_msg_bytes: tuple[int, ...]
    ghost_learners: float  # probability that an added learner's process never starts
    changes_on_every_leader: bool  # the operator also asks nodes that only think they lead
    quiesce: bool = False  # NodeOptions.quiesce, with the nemesis standing in for liveness


# Per profile, one weight per KINDS entry:
#   crash, restart, crash-leader, partition, isolate-leader, heal, transfer, regain,
#   add-learner, remove
WEIGHTS = {
    "default": (3, 4, 3, 3, 3, 5, 2, 1, 2, 2),
    "churn": (0, 2, 1, 0, 8, 1, 1, 8, 0, 0),
    "conf": (0, 2, 0, 1, 8, 1, 1, 0, 6, 4),
    "ghost": (1, 3, 1, 1, 1, 3, 1, 0, 6, 3),
    "quiesce": (3, 4, 4, 3, 4, 4, 2, 1, 1, 1),
}


PROFILES = {
    p.name: p
    for p in (
        Profile(
            name="default",
            mean_gap_s=(1.0, 2.5),
            cut_s=(0.5, 5.0),
            batch_records=(1, 50),
            clients=(2, 4),
            think_s=0.2,
            client_timeout_s=(3.0, 10.0),
            max_msg_bytes=(1 << 20, 2048, 256),
            ghost_learners=0.2,
            changes_on_every_leader=False,
        ),
        # Leadership lost (an isolated leader) and handed back while big batches are half-way
        # replicated (messages of a few records): batch atomicity and the producer waiters
        # across lost and regained leadership (issue 11 defects 2, 3). Producers wait long
        # (10 s), so most of them are still waiting on the old leader when it leads again.
        Profile(
            name="churn",
            mean_gap_s=(1.0, 2.0),
            cut_s=(0.5, 4.0),
            batch_records=(20, 50),
            clients=(3, 4),
            think_s=0.05,
            client_timeout_s=(10.0,),
            max_msg_bytes=(160, 400),
            ghost_learners=0.0,
            changes_on_every_leader=False,
        ),
        # Competing membership changes: an isolated leader still takes one (and a record or
        # two before it) while the majority's new leader takes another, which can land at
        # the same index (defect 4). One producer of one-record batches keeps the counts small.
        Profile(
            name="conf",
            mean_gap_s=(0.3, 0.6),
            cut_s=(2.0, 6.0),
            batch_records=(1, 1),
            clients=(1, 1),
            think_s=0.2,
            client_timeout_s=(3.0, 10.0),
            max_msg_bytes=(1 << 20,),
            ghost_learners=0.0,
            changes_on_every_leader=True,
        ),
        # Learners whose process never starts (defect 5).
        Profile(
            name="ghost",
            mean_gap_s=(1.0, 2.0),
            cut_s=(0.5, 5.0),
            batch_records=(1, 10),
            clients=(2, 3),
            think_s=0.3,
            client_timeout_s=(3.0, 10.0),
            max_msg_bytes=(1 << 20,),
            ghost_learners=1.0,
            changes_on_every_leader=False,
        ),
        # Idle groups quiesce (NodeOptions.quiesce): producers think long enough for the
        # group to go quiet between batches, and the faults strike quiet groups; the nemesis
        # unquiesces the nodes whose leader it crashed or cut off (node liveness's job).
        Profile(
            name="quiesce",
            mean_gap_s=(1.0, 2.5),
            cut_s=(0.5, 5.0),
            batch_records=(1, 20),
            clients=(1, 3),
            think_s=1.5,
            client_timeout_s=(3.0, 10.0),
            max_msg_bytes=(1 << 20, 2048),
            ghost_learners=0.0,
            changes_on_every_leader=False,
            quiesce=True,
        ),
    )
}


@dataclass(frozen=True, slots=True)
class Swarm:
    """Per-seed network and workload parameters (TigerBeetle's swarm testing)."""

    drop: float
    duplicate: float
    delay_s: tuple[float, float]
    max_msg_bytes: int
    clients: int
    batch_records: tuple[int, int]
    think_s: float
    client_timeout_s: float
    ghost_learners: float
    changes_on_every_leader: bool
    quiesce: bool

    @staticmethod
    def draw(rng: random.Random, profile: Profile) -> Swarm:
        """Pick a parameter set for ``profile`` at random."""
        return Swarm(
            drop=rng.choice([0.0, 0.0, 0.01, 0.05]),
            duplicate=rng.choice([0.0, 0.0, 0.01, 0.05]),
            delay_s=rng.choice([(0.0005, 0.002), (0.001, 0.02), (0.002, 0.08)]),
            max_msg_bytes=rng.choice(profile.max_msg_bytes),
            clients=rng.randint(*profile.clients),
            batch_records=profile.batch_records,
            think_s=profile.think_s,
            client_timeout_s=rng.choice(profile.client_timeout_s),
            ghost_learners=profile.ghost_learners,
            changes_on_every_leader=profile.changes_on_every_leader,
            quiesce=profile.quiesce,
        )


def make_plan(
    seed: int, voters: int, duration_s: float, profile: str = "default"
) -> tuple[Swarm, list[Event]]:
    """Return the swarm parameters and the nemesis's events for ``seed`` under ``profile``."""
    p = PROFILES[profile]
    rng = random.Random(f"driver-plan-{seed}-{voters}-{profile}")
    swarm = Swarm.draw(rng, p)
    events: list[Event] = []
    gap = rng.choice(p.mean_gap_s)
    at = rng.uniform(1.0, 3.0)  # let a first leader emerge
    while at < duration_s:
        kind = rng.choices(KINDS, weights=WEIGHTS[profile])[0]
        events.append(_draw_event(rng, at, kind, voters, p.cut_s))
        at += 0.05 + rng.expovariate(1 / gap)
    return swarm, events


def _draw_event(
    rng: random.Random, at: float, kind: str, voters: int, cut_s: tuple[float, float]
) -> Event:
    if kind in ("partition", "isolate-leader"):
        mask = rng.randrange(1, (1 << (voters + 2)) - 1) if kind == "partition" else 0
        lasts_ms = int(rng.uniform(*cut_s) * 1000) if rng.random() < 0.7 else 0
        return Event(round(at, 3), kind, mask, lasts_ms)
    if kind in ("crash", "restart", "add-learner", "remove"):
        # A pick among the nodes the event can apply to when it happens (up, down, not yet
        # members, members), so that nearly every event does something.
        return Event(round(at, 3), kind, rng.randrange(1 << 16))
    if kind == "transfer":
        return Event(round(at, 3), kind, rng.randint(1, voters))
    return Event(round(at, 3), kind)
