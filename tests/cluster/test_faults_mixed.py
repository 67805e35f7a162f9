"""Mixed faults (issue #6): a seeded nemesis combines kill -9 and restart, SIGSTOP/SIGCONT,
isolating a node and splitting a minority off, on a 5-node cluster of ``replog serve``
processes under the concurrent workload, then heals everything and runs the checker.

At most two nodes are impaired at any time, so the other three (a majority, connected and
running) must keep acknowledging produces after every step; faults overlap and are healed in
a random order, the leader is picked as a victim half the time. Every step is printed with the
seed, and ``REPLOG_FAULT_SEEDS=1-50`` runs more seeds (a soak; CI runs one).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.cluster.conftest import ProcCluster
from tests.cluster.proxy import NetProxy
from tests.cluster.test_faults import finish, start_workload

_MAX_IMPAIRED = 2
_STEPS = 8


def _seeds() -> list[int]:
    spec = os.environ.get("REPLOG_FAULT_SEEDS", "7")
    lo, _, hi = spec.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


@dataclass
class Fault:
    """One fault in force: what it did, to whom, and how to undo it."""

    what: str
    nodes: tuple[str, ...]
    heal: Callable[[], None]


class Nemesis:
    """Injects and heals faults on ``procs`` with ``rng``; keeps a log of every step."""

    def __init__(self, procs: ProcCluster, net: NetProxy, rng: random.Random) -> None:
        self.procs = procs
        self.net = net
        self.rng = rng
        self.active: list[Fault] = []
        self.steps: list[str] = []

    def impaired(self) -> set[str]:
        return {n for f in self.active for n in f.nodes}

    def _victims(self, count: int) -> list[str] | None:
        """``count`` healthy nodes (the leader first, half the time), or None if that would
        impair more than a minority."""
        healthy = [n for n in self.procs.names if n not in self.impaired()]
        if len(self.impaired()) + count > _MAX_IMPAIRED or len(healthy) < count:
            return None
        self.rng.shuffle(healthy)
        leader = self.procs.leader(timeout=0) if self.rng.random() < 0.5 else None
        if leader in healthy:
            healthy.remove(leader)
            healthy.insert(0, leader)
        return healthy[:count]

    def inject(self) -> None:
        kind = self.rng.choice(["kill", "pause", "isolate", "split", "crash-restart"])
        victims = self._victims(2 if kind == "split" else 1)
        if victims is None:
            self.heal_one()
            return
        node = self.procs.nodes[victims[0]]
        if kind == "kill":
            node.kill()
            self.active.append(Fault("kill -9", (node.name,), node.start))
        elif kind == "crash-restart":
            node.kill()
            node.start()  # same data dir, right away: a crash loop
        elif kind == "pause":
            node.pause()
            self.active.append(Fault("SIGSTOP", (node.name,), node.resume))
        else:
            others = [n for n in self.procs.names if n not in victims]
            self._cut(victims, others)
            self.active.append(Fault(kind, tuple(victims), lambda v=victims: self._mend(v)))
        self.steps.append(f"{kind} {','.join(victims)}")

    def _cut(self, group: list[str], others: list[str]) -> None:
        for a in group:
            for b in others:
                self.net.block(a, b)
                self.net.block(b, a)

    def _mend(self, group: list[str]) -> None:
        others = [n for n in self.procs.names if n not in group]
        for a in group:
            for b in others:
                if not self._still_cut(a, b, group):
                    self.net.unblock(a, b)
                    self.net.unblock(b, a)

    def _still_cut(self, a: str, b: str, healing: list[str]) -> bool:
        """Whether another network fault in force separates ``a`` and ``b``."""
        return any(
            f.what in ("isolate", "split")
            and list(f.nodes) != healing
            and (a in f.nodes) != (b in f.nodes)
            for f in self.active
        )

    def heal_one(self) -> None:
        if not self.active:
            return
        fault = self.active.pop(self.rng.randrange(len(self.active)))
        fault.heal()
        self.steps.append(f"heal {fault.what} {','.join(fault.nodes)}")

    def heal_all(self) -> None:
        while self.active:
            self.heal_one()
        self.net.heal()


@pytest.mark.timeout(180)
@pytest.mark.parametrize("seed", _seeds())
def test_mixed_faults_keep_every_acknowledged_record(
    procs: ProcCluster, net: NetProxy, seed: int
) -> None:
    rng = random.Random(seed)
    procs.bootstrap(5)
    workload = start_workload(procs, producers=4, max_ops=5000, seed=seed)
    workload.max_s = 150.0
    nemesis = Nemesis(procs, net, rng)
    workload.wait_acked(20, 20, "before the faults")
    started = time.monotonic()
    try:
        for step in range(_STEPS):
            nemesis.inject()
            time.sleep(rng.uniform(0.2, 1.5))
            workload.wait_acked(5, 20, f"after step {step} ({nemesis.steps[-1]})")
            if rng.random() < 0.5:
                nemesis.heal_one()
        nemesis.heal_all()
        workload.wait_acked(10, 20, "after healing everything")
    except BaseException:
        print(f"\nseed {seed}: {' -> '.join(nemesis.steps)}\n{procs.describe()}")
        raise
    summary = finish(procs, workload)
    print(f"seed {seed} ({time.monotonic() - started:.0f} s): {' -> '.join(nemesis.steps)}")
    assert summary.acked >= 20 + _STEPS * 5 + 10
