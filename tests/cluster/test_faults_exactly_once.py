"""Exactly once through faults (issue 13): idempotent producers (a producer id each, fixed
sequences, every batch resent after any error until acknowledged, as ``replog.Producer``
does) run while the mixed-fault nemesis kills -9, pauses, isolates and splits nodes of a
5-node cluster of ``replog serve`` processes. The checker then allows no duplicate at all:
every acknowledged batch is in the log exactly once, at the offset every acknowledgement of
it named, in each producer's order, and nothing unacknowledged appears twice.

``REPLOG_FAULT_SEEDS=1-50`` runs more seeds (a soak; CI runs one).
"""

from __future__ import annotations

import random
import time

import pytest

from tests.cluster.conftest import ProcCluster
from tests.cluster.proxy import NetProxy
from tests.cluster.test_faults import finish, start_workload
from tests.cluster.test_faults_mixed import Nemesis, _seeds

_STEPS = 6


@pytest.mark.timeout(180)
@pytest.mark.parametrize("seed", _seeds())
def test_idempotent_producers_through_mixed_faults_store_every_batch_exactly_once(
    procs: ProcCluster, net: NetProxy, seed: int
) -> None:
    rng = random.Random(seed)
    procs.bootstrap(5)
    workload = start_workload(
        procs, producers=4, max_ops=100_000, seed=seed, idempotent=True, max_s=150.0
    )
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
    summary = finish(procs, workload, exactly_once=True)
    print(f"seed {seed} ({time.monotonic() - started:.0f} s): {' -> '.join(nemesis.steps)}")
    assert summary.duplicates == 0
    assert summary.acked >= 20 + _STEPS * 5 + 10
