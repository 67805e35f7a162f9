"""Big batches across leader kills: a batch is committed whole or not at all.

A batch larger than one AppendEntries (1 MiB: here 40-50 records of 30 kB) reaches the
followers in parts. When the leader is killed between the parts, a follower holding only the
first ones may be elected and commit them with its first entry: half a batch in the log, which
no outcome the client was given can explain. The checker reports it as a PARTIAL batch.

It happened before issue 11 defect 2 was fixed (3 runs in 3 reported a PARTIAL batch): a
proposal now commits whole or not at all, and a new leader drops an incomplete one.
"""

from __future__ import annotations

import time

import pytest

from tests.cluster.conftest import ProcCluster
from tests.cluster.test_faults import finish, start_workload

pytestmark = pytest.mark.timeout(120)

_KILLS = 3


def test_a_batch_spanning_several_appends_is_never_half_committed_across_leader_kills(
    procs: ProcCluster,
) -> None:
    procs.bootstrap(3, "--max-record-bytes", "65536")
    workload = start_workload(
        procs, producers=2, min_batch=40, max_batch=50, value_bytes=30_000, timeout_s=3.0
    )
    workload.wait_acked(3, 20, "before the kills")
    for kill in range(_KILLS):
        old = procs.leader()
        assert old is not None
        time.sleep(0.3)  # not synchronisation: lets the leader get parts of a batch out
        procs.nodes[old].kill()
        procs.leader([n for n in procs.names if n != old], timeout=15)
        procs.nodes[old].start()
        workload.wait_acked(2, 20, f"after kill {kill} of {old}")
    finish(procs, workload)
