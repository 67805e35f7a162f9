"""Producers and the operator: tasks that call the real driver and record what they were told.

A producer sends batches of unique values (``b"c<client>-<batch>-<k>"``) to the node it
believes leads, follows the leader hint of a refusal, and retries a batch after a failed or
unknown outcome with the same values until one attempt is acknowledged. It waits for an answer
at most ``client_timeout_s`` (then: unknown) and learns at once when the node it talks to
crashes (a broken connection: unknown). It never cancels the node's future: the checker wants
to know how that future ended.
"""

from __future__ import annotations

import asyncio
import functools
import random
from typing import Any

from replog.cluster.raft_node import NotLeaderNodeError, RaftNode
from replog.raft.errors import RaftError
from replog.raft.membership import ConfChange
from replog.v1.record_pb2 import Record
from tests.sim.driver.cluster import DriverCluster, SimNode
from tests.sim.driver.history import (
    FAILED,
    LOST,
    OK,
    PENDING,
    UNKNOWN,
    Attempt,
    ChangeAttempt,
    History,
)
from tests.sim.driver.plan import Swarm
from tests.sim.driver.waiters import WaiterWatch

CHANGE_TIMEOUT_S = 10.0  # the default of propose_change


def outcome_of(future: asyncio.Future[Any]) -> tuple[str, Any, str]:
    """``(ok, result, "")``, ``(failed, None, why)`` or ``(unknown, None, why)`` of a future."""
    if future.cancelled():
        return UNKNOWN, None, "cancelled"
    exc = future.exception()
    if exc is None:
        return OK, future.result(), ""
    refused = isinstance(exc, RaftError)  # the core refused before appending anything
    kind = FAILED if refused or getattr(exc, "certainly_not_applied", False) else UNKNOWN
    return kind, None, f"{type(exc).__name__}: {exc}"


async def answer(future: asyncio.Future[Any], sim: SimNode, timeout_s: float) -> str:
    """Wait for ``future`` like a client over a connection to ``sim``: "" once it is done,
    else why the client gave up (the node crashed, or the client's deadline passed)."""
    assert sim.down is not None
    await asyncio.wait([future, sim.down], timeout=timeout_s, return_when="FIRST_COMPLETED")
    if future.done():
        return ""
    return "connection lost" if sim.down.done() else "timed out"


class Producers:
    """``swarm.clients`` producer tasks and their history."""

    def __init__(
        self, seed: int, cluster: DriverCluster, swarm: Swarm, history: History, trace: list[str]
    ) -> None:
        self.seed = seed
        self.cluster = cluster
        self.swarm = swarm
        self.history = history
        self.trace = trace
        self.stopping = False
        self.futures: dict[int, asyncio.Future[int]] = {}  # attempt id -> the node's future
        self.watch = WaiterWatch()
        cluster.on_append = self.watch.on_append
        cluster.on_commit = self.watch.on_commit

    def start(self) -> list[asyncio.Task[None]]:
        """Start every producer task."""
        loop = asyncio.get_running_loop()
        return [loop.create_task(self._run(c)) for c in range(1, self.swarm.clients + 1)]

    async def _run(self, client: int) -> None:
        rng = random.Random(f"driver-client-{self.seed}-{client}")
        believed: int | None = None
        batch = 0
        while not self.stopping:
            count = rng.randint(*self.swarm.batch_records)
            values = tuple(b"c%d-%d-%d" % (client, batch, k) for k in range(count))
            while not self.stopping:
                target = believed if believed is not None else rng.choice(self.cluster.ids)
                attempt = await self.attempt(client, batch, values, target)
                if attempt is not None and attempt.outcome == OK:
                    break
                believed = _hint(attempt, self.futures)
                await asyncio.sleep(rng.uniform(0.02, 0.2))
            batch += 1
            await asyncio.sleep(rng.expovariate(1 / self.swarm.think_s))

    async def attempt(
        self, client: int, batch: int, values: tuple[bytes, ...], target: int
    ) -> Attempt | None:
        """Submit ``values`` once to node ``target`` and wait for the answer, as a client
        does; None if the node is down (nothing was sent)."""
        sim = self.cluster.nodes[target]
        node = sim.node
        if node is None:
            return None  # connection refused: nothing was sent
        loop = asyncio.get_running_loop()
        a = Attempt(len(self.history.attempts) + 1, client, batch, values, target,
                    sim.incarnation, loop.time())  # fmt: skip
        self.history.attempts.append(a)
        a.term = node.raft.term if node.is_leader else 0
        future = node.submit([Record(key=a.tag, value=v) for v in values])
        self.futures[a.id] = future
        future.add_done_callback(functools.partial(_node_answered, a, node))
        self.watch.watch(a, node, future)
        gave_up = await answer(future, sim, self.swarm.client_timeout_s)
        if gave_up:
            a.outcome, a.error = UNKNOWN, gave_up
        else:
            a.outcome, a.offset, a.error = outcome_of(future)
        self.trace.append(
            f"{loop.time():8.3f}s {a.describe()}: {a.outcome}"
            + (f" at {a.offset}" if a.offset is not None else f" ({a.error})")
        )
        return a

    def settle(self) -> None:
        """After the run: mark the node futures that never ended (pending, or lost with
        their crashed node) and note what a pending future's node has applied."""
        for a in self.history.attempts:
            sim = self.cluster.nodes[a.node]
            if self.futures[a.id].done():
                continue
            if sim.incarnation != a.incarnation or sim.node is None:
                a.node_outcome = LOST
            else:
                a.node_outcome, a.node_applied = PENDING, sim.node.high_watermark - 1


def _node_answered(a: Attempt, node: RaftNode, future: asyncio.Future[int]) -> None:
    """Record how the node's future ended, and whether the node still led the term then."""
    a.node_outcome, a.node_offset, a.node_error = outcome_of(future)
    a.led_through = a.term > 0 and node.is_leader and node.raft.term == a.term


def _hint(attempt: Attempt | None, futures: dict[int, asyncio.Future[int]]) -> int | None:
    """Where to send next: the leader a refusal named, else somewhere at random."""
    if attempt is None or attempt.outcome != FAILED:
        return None
    exc = futures[attempt.id].exception()
    return exc.leader if isinstance(exc, NotLeaderNodeError) else None


class Operator:
    """Membership changes through ``RaftNode.propose_change``, as an administrator makes them."""

    def __init__(self, cluster: DriverCluster, history: History, trace: list[str]) -> None:
        self.cluster = cluster
        self.history = history
        self.trace = trace
        self.tasks: list[asyncio.Task[None]] = []

    def propose(self, change: ConfChange, node: RaftNode) -> None:
        """Ask ``node`` (in the background) to make ``change``."""
        self.tasks.append(asyncio.get_running_loop().create_task(self._propose(change, node)))

    async def _propose(self, change: ConfChange, node: RaftNode) -> None:
        loop = asyncio.get_running_loop()
        sim = self.cluster.nodes[node.id]
        c = ChangeAttempt(len(self.history.changes) + 1, change, node.id, loop.time())
        self.history.changes.append(c)
        task = loop.create_task(node.propose_change(change, timeout_s=CHANGE_TIMEOUT_S))
        gave_up = await answer(task, sim, 2 * CHANGE_TIMEOUT_S)
        if gave_up:
            task.cancel()
            c.outcome, c.error = UNKNOWN, gave_up
        else:
            c.outcome, c.index, c.error = outcome_of(task)
        self.trace.append(
            f"{loop.time():8.3f}s change {c.id} {change.op.value} {change.node_id} on node "
            f"{node.id}: {c.outcome}" + (f" at {c.index}" if c.index else f" ({c.error})")
        )
