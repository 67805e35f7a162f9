"""CPU of an idle 3-node in-process Raft group, with and without quiescence.

Three real RaftNodes over real stores in one event loop (an in-memory network, default
timing: 100 ms ticks); one produce commits, then the group idles for ``--idle-s`` seconds.
Reported: process CPU time over the idle period (``time.process_time``), loop turns (every
wakeup of a node's task is one turn) and messages sent.

    PYTHONPATH=src python bench/bench_quiesce.py --idle-s 10
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from replog.cluster.log_store import ReplogLogStore
from replog.cluster.raft_node import NodeOptions, RaftNode
from replog.raft.messages import Membership, Message


async def _idle_group(root: Path, quiesce: bool, idle_s: float) -> tuple[float, int, int]:
    nodes: dict[int, RaftNode] = {}
    sent = 0

    def send(messages: Sequence[Message]) -> None:
        nonlocal sent
        loop = asyncio.get_running_loop()
        for m in messages:
            sent += 1
            if m.dst in nodes:
                loop.call_soon(nodes[m.dst].deliver, [m])

    voters = Membership(frozenset({1, 2, 3}))
    for i in (1, 2, 3):
        store = ReplogLogStore(root / f"n{i}", bootstrap=voters, commit_flush_s=0)
        nodes[i] = RaftNode(store, i, random.Random(i), NodeOptions(quiesce=quiesce))
        nodes[i].send = send
        nodes[i].start()
    try:
        while not any(n.is_leader for n in nodes.values()):
            await asyncio.sleep(0.01)
        leader = next(n for n in nodes.values() if n.is_leader)
        await leader.submit([b"one record"])
        await asyncio.sleep(1.0)  # let the group settle (and quiesce, if on)
        turns0 = sum(n.quiescence.turns for n in nodes.values())
        sent0, cpu0 = sent, time.process_time()
        await asyncio.sleep(idle_s)
        cpu = time.process_time() - cpu0
        return cpu, sum(n.quiescence.turns for n in nodes.values()) - turns0, sent - sent0
    finally:
        for n in nodes.values():
            await n.stop()


def main() -> None:
    """Measure both settings and print one line each."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--idle-s", type=float, default=10.0)
    args = parser.parse_args()
    for quiesce in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            cpu, turns, sent = asyncio.run(_idle_group(Path(tmp), quiesce, args.idle_s))
        print(
            f"quiesce={'on ' if quiesce else 'off'}: {cpu * 1000:7.1f} ms CPU, "
            f"{turns} loop turns, {sent} messages over {args.idle_s:.0f} s idle"
        )


if __name__ == "__main__":
    main()
