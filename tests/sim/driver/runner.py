"""Run one seed of the driver simulation: safety phase, liveness phase, then the checker.

Safety phase: the producers write, the nemesis applies the plan. Liveness phase: the producers
stop (their last attempts end), every fault heals, every node starts, and a leader must commit a
new write within ``LIVENESS_S``; then the cluster rests ``SETTLE_S`` so every node applies what
it can before the history is judged against the committed log.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from replog.raft.messages import Entry
from tests.sim.driver.checker import check
from tests.sim.driver.cluster import DriverCluster, Monitor
from tests.sim.driver.history import OK, History
from tests.sim.driver.loop import VirtualTimeLoop
from tests.sim.driver.nemesis import Nemesis
from tests.sim.driver.plan import Event, Swarm, make_plan
from tests.sim.driver.workload import CHANGE_TIMEOUT_S, Operator, Producers

SAFETY_S = 30.0
LIVENESS_S = 20.0
SETTLE_S = 5.0


@dataclass
class Result:
    """The outcome of one run."""

    seed: int
    profile: str
    voters: int
    events: list[Event]
    violations: list[str] = field(default_factory=list)
    trace: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    commit: int = 0
    digest: str = ""  # of the committed log
    elected: list[tuple[float, int, int]] = field(default_factory=list)  # (time, term, node)
    unquiesced: list[tuple[float, int]] = field(default_factory=list)  # (time, node) by liveness

    @property
    def ok(self) -> bool:
        """Whether every rule held."""
        return not self.violations

    @property
    def violation(self) -> str | None:
        """The first violation, if any."""
        return self.violations[0] if self.violations else None


def run_seed(
    seed: int,
    profile: str = "default",
    voters: int = 3,
    events: Sequence[Event] | None = None,
    *,
    safety_s: float = SAFETY_S,
) -> Result:
    """Run ``seed`` with its own plan (or ``events``, a subset of it, when shrinking)."""
    swarm, planned = make_plan(seed, voters, safety_s, profile)
    result = Result(seed, profile, voters, list(planned if events is None else events))
    loop = VirtualTimeLoop()
    try:
        loop.run_until_complete(_run(seed, swarm, result, safety_s))
    finally:
        loop.close()
    result.violations.extend(f"harness error: {e}" for e in loop.errors)
    return result


async def _run(seed: int, swarm: Swarm, result: Result, safety_s: float) -> None:
    monitor = Monitor()
    history = History()
    cluster = DriverCluster(seed, swarm, result.voters, monitor)
    cluster.promotions = history.promotions
    result.elected, result.unquiesced = monitor.elected, cluster.unquiesced
    trace = result.trace
    operator = Operator(cluster, history, trace)
    producers = Producers(seed, cluster, swarm, history, trace)
    nemesis = Nemesis(seed, cluster, operator, trace)
    for node_id in cluster.ids:
        cluster.start(node_id)
    clients = producers.start()
    try:
        await _safety_phase(nemesis, result.events, safety_s)
        await _liveness_phase(cluster, producers, clients, operator, result)
        producers.settle()
        committed = _final_log(cluster, monitor)
        result.violations += monitor.violations + producers.watch.violations + cluster.unexpected
        result.violations += check(history, committed)
        result.counts = history.counts()
        result.commit = len(committed)
        result.digest = _digest(committed)
        trace.append(f"end: commit {result.commit} ({result.digest}), attempts {result.counts}")
    finally:
        result.violations += await _teardown(cluster, clients + operator.tasks)


async def _safety_phase(nemesis: Nemesis, events: list[Event], safety_s: float) -> None:
    loop = asyncio.get_running_loop()
    for ev in sorted(events, key=lambda e: e.at_s):
        await asyncio.sleep(max(0.0, ev.at_s - loop.time()))
        nemesis.apply(ev)
    await asyncio.sleep(max(0.0, safety_s - loop.time()))


async def _liveness_phase(
    cluster: DriverCluster,
    producers: Producers,
    clients: list[asyncio.Task[None]],
    operator: Operator,
    result: Result,
) -> None:
    loop = asyncio.get_running_loop()
    producers.stopping = True
    cluster.net.heal()
    cluster.net.calm()
    for sim in cluster.nodes.values():
        if sim.node is None:
            cluster.start(sim.id)
    result.trace.append(f"{loop.time():8.3f}s liveness phase  [{cluster.describe()}]")
    await asyncio.wait(clients, timeout=LIVENESS_S)
    if not await _write_marker(cluster, producers):
        result.violations.append(
            f"liveness: no leader committed a write within {LIVENESS_S:.0f} s of healing "
            f"[{cluster.describe()}]"
        )
    if operator.tasks:
        await asyncio.wait(operator.tasks, timeout=2 * CHANGE_TIMEOUT_S)
    await asyncio.sleep(SETTLE_S)
    result.trace.append(f"{loop.time():8.3f}s settled  [{cluster.describe()}]")


async def _write_marker(cluster: DriverCluster, producers: Producers) -> bool:
    """Write one record through whichever node leads (as client 0, so the checker judges
    these attempts too); return whether one was acknowledged."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LIVENESS_S
    tries = 0
    while loop.time() < deadline:
        leader = cluster.leader()
        if leader is not None:
            tries += 1
            attempt = await producers.attempt(0, tries, (b"c0-%d-0" % tries,), leader.id)
            if attempt is not None and attempt.outcome == OK:
                return True
        await asyncio.sleep(0.2)
    return False


def _final_log(cluster: DriverCluster, monitor: Monitor) -> list[Entry]:
    """The committed log of the node that committed most; every live node must agree with it
    up to its own commit index."""
    live = [s.node for s in cluster.nodes.values() if s.node is not None]
    best = max(live, key=lambda n: (n.raft.log.committed, -n.id))
    top = min(best.raft.log.committed, best.store.last_index())
    reference = best.store.entries(1, top + 1, 1 << 62) if top else []
    for node in live:
        mine = min(node.raft.log.committed, node.store.last_index())
        if mine and node.store.entries(1, mine + 1, 1 << 62) != reference[:mine]:
            monitor.violations.append(
                f"committed prefix: node {node.id} disagrees with node {best.id} below {mine}"
            )
    return reference


def _digest(entries: list[Entry]) -> str:
    h = hashlib.sha256()
    for e in entries:
        h.update(b"%d %d %d %d:" % (e.term, e.index, e.kind, len(e.data)) + e.data)
    return h.hexdigest()[:16]


async def _teardown(cluster: DriverCluster, tasks: list[asyncio.Task[None]]) -> list[str]:
    """Stop every node and task; return the errors of tasks that crashed (harness bugs)."""
    loops = [s.node._task for s in cluster.nodes.values() if s.node is not None]
    for node_id in cluster.ids:
        cluster.crash(node_id)
    for task in tasks:
        task.cancel()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.gather(*(t for t in loops if t is not None), return_exceptions=True)
    return [
        f"harness error: {o!r}"
        for o in outcomes
        if isinstance(o, BaseException) and not isinstance(o, asyncio.CancelledError)
    ]
