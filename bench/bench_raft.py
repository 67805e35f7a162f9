"""Benchmark the Raft core: a fault-free 3-node in-process cluster committing batches.

Measures committed entries per second of CPU time (``time.process_time``) on one core: every
node's work (propose, persist into ``MemoryRaftStorage``, messages, apply) runs in this process.

    PYTHONPATH=src python bench/bench_raft.py --entries 1000000 --batch 1000 --payload 100
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections import deque

from replog.raft import Membership, MemoryRaftStorage, Message, Raft, RaftConfig, Role


def _cluster(nodes: int) -> tuple[dict[int, Raft], dict[int, MemoryRaftStorage]]:
    voters = Membership(frozenset(range(1, nodes + 1)))
    stores = {i: MemoryRaftStorage(voters) for i in voters.voters}
    rafts = {
        i: Raft(RaftConfig(node_id=i, max_msg_bytes=4 << 20), stores[i], random.Random(i))
        for i in voters.voters
    }
    return rafts, stores


def _pump(rafts: dict[int, Raft], stores: dict[int, MemoryRaftStorage]) -> int:
    """Run Readies and deliver messages until quiet; return entries applied on node 1."""
    applied = 0
    inbox: deque[Message] = deque()
    busy = True
    while busy:
        busy = False
        for node_id, r in rafts.items():
            if not r.has_ready():
                continue
            busy = True
            rd = r.ready()
            store = stores[node_id]
            if rd.entries:
                store.append(rd.entries)
            if rd.hard_state is not None:
                store.save_hard_state(rd.hard_state)
            inbox.extend(rd.messages)
            if node_id == 1:
                applied += len(rd.committed_entries)
            r.advance(rd)
        while inbox:
            m = inbox.popleft()
            rafts[m.dst].step(m)
            busy = True
    return applied


def run_once(total: int, batch: int, payload: int, nodes: int) -> float:
    """Return committed entries per CPU second for one run."""
    rafts, stores = _cluster(nodes)
    rafts[1].campaign()
    _pump(rafts, stores)
    assert rafts[1].role is Role.LEADER
    data = [b"x" * payload] * batch
    committed = 0
    started = time.process_time()
    while committed < total:
        rafts[1].propose(data)
        committed += _pump(rafts, stores)
        for store in stores.values():  # retention keeps memory flat, as replog's would
            store.compact(store.last_index() - batch)
    elapsed = time.process_time() - started
    return committed / elapsed


def main() -> None:
    """Parse arguments, run the benchmark ``--runs`` times, print JSON and a markdown row."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--payload", type=int, default=100)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rates = [run_once(args.entries, args.batch, args.payload, args.nodes) for _ in range(args.runs)]
    median = statistics.median(rates)
    print(
        json.dumps(
            {
                "bench": "raft_sim_commit",
                "nodes": args.nodes,
                "batch": args.batch,
                "payload_bytes": args.payload,
                "entries": args.entries,
                "runs": [round(r) for r in rates],
                "median_entries_per_cpu_s": round(median),
            }
        )
    )
    print(
        f"| raft 3-node sim, batch {args.batch} x {args.payload} B | {median:,.0f} entries/s CPU |"
    )


if __name__ == "__main__":
    main()
