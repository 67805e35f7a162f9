"""The mixed-fault nemesis (test_faults_mixed.py) on a multi-partition topic: a topic of 3
partitions with replication factor 5 on 5 ``replog serve`` processes (the nemesis impairs
up to two nodes at once, as many as a 5-replica group survives), one workload per
partition (retrying producers, batches), kill -9, SIGSTOP, crash loops, isolation and
minority splits overlapping; after healing, every partition's replicas are checked on disk
by the checker: nothing acknowledged lost, duplicated or reordered on any partition.

CI runs one seed; ``REPLOG_FAULT_SEEDS=1-20`` runs more (a soak).
"""

from __future__ import annotations

import random
import time

import pytest

from replog.client import Client
from tests.cluster.conftest import ProcCluster
from tests.cluster.proxy import NetProxy
from tests.cluster.test_faults_mixed import Nemesis, _seeds
from tests.cluster.test_partitions_faults import (
    finish,
    start_workloads,
    wait_every_partition_acked,
)

TOPIC = "mixed"
PARTITIONS = 3
_STEPS = 6


@pytest.mark.timeout(240)
@pytest.mark.parametrize("seed", _seeds())
def test_mixed_faults_keep_every_acknowledged_record_of_every_partition(
    procs: ProcCluster, net: NetProxy, seed: int
) -> None:
    rng = random.Random(seed)
    procs.bootstrap(5)
    with Client(procs.addresses(), timeout=10) as client:
        created = client.create_topic(TOPIC, PARTITIONS, replication_factor=5)
    assert len({p.replicas[0] for p in created.partitions}) == PARTITIONS  # leaders apart
    workloads = start_workloads(procs, TOPIC, PARTITIONS, max_s=220.0)
    nemesis = Nemesis(procs, net, rng)
    started = time.monotonic()
    try:
        wait_every_partition_acked(workloads, 5, "before the faults")
        for step in range(_STEPS):
            nemesis.inject()
            time.sleep(rng.uniform(0.2, 1.5))
            wait_every_partition_acked(workloads, 2, f"after step {step} ({nemesis.steps[-1]})")
            if rng.random() < 0.5:
                nemesis.heal_one()
        nemesis.heal_all()
        wait_every_partition_acked(workloads, 3, "after healing everything")
    except BaseException:
        print(f"\nseed {seed}: {' -> '.join(nemesis.steps)}\n{procs.describe()}")
        for w in workloads:
            w.stop()
        raise
    summaries = finish(procs, TOPIC, workloads)
    took = time.monotonic() - started
    print(f"seed {seed} ({took:.0f} s): {' -> '.join(nemesis.steps)}")
    assert all(s.acked >= 10 for s in summaries)
