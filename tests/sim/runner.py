"""Run one seed (safety phase, then liveness phase), and shrink a failing plan."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from replog.raft import NotLeaderError
from tests.sim.checker import Checker
from tests.sim.cluster import Cluster, InvariantError
from tests.sim.plan import TICK_STEPS, Event, make_plan

SAFETY_STEPS = 800
LIVENESS_TICKS = 200
FULL_CHECK_EVERY = 64


@dataclass
class Result:
    """The outcome of one run."""

    seed: int
    nodes: int
    events: list[Event]
    profile: str = "default"
    violation: str | None = None
    committed: int = 0
    steps: int = 0
    trace: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Return whether every invariant held and the cluster recovered."""
        return self.violation is None


def run_seed(
    seed: int,
    nodes: int = 3,
    events: Sequence[Event] | None = None,
    *,
    safety_steps: int = SAFETY_STEPS,
    profile: str = "default",
    verbose: bool = False,
) -> Result:
    """Run ``seed`` with its own plan (or ``events``, a subset of it, when shrinking)."""
    swarm, planned = make_plan(seed, nodes, safety_steps, profile)
    plan = list(planned if events is None else events)
    result = Result(seed, nodes, plan, profile=profile)
    checker: Checker | None = None

    def on_ready(node: object, rd: object) -> None:
        assert checker is not None
        checker.on_ready(node, rd)  # type: ignore[arg-type]

    cluster = Cluster(seed, nodes, swarm, on_ready)
    checker = Checker(cluster)
    try:
        _safety_phase(cluster, checker, plan, safety_steps, result, verbose)
        _liveness_phase(cluster, checker, result, verbose)
        checker.full_check()
        checker.check_proposals_whole()
    except InvariantError as exc:
        result.violation = f"{exc} (at step {cluster.step_no})"
    result.committed = checker.max_committed
    result.steps = cluster.step_no
    return result


def _step(cluster: Cluster, checker: Checker) -> None:
    cluster.deliver_due()
    step = cluster.step_no
    for node in list(cluster.nodes.values()):
        r = node.raft
        if r is None:
            continue
        if (step + node.id) % TICK_STEPS == 0:
            r.tick()
        if node.pending is not None:
            if node.pending_due <= step:
                cluster.perform_ready(node, node.pending)
        elif r.has_ready() and (
            cluster.ready_probability >= 1.0 or cluster.net_rng.random() < cluster.ready_probability
        ):
            cluster.process_ready(node)
    checker.after_step()
    if step % FULL_CHECK_EVERY == 0:
        checker.full_check()
    cluster.step_no += 1


def _safety_phase(
    cluster: Cluster,
    checker: Checker,
    plan: list[Event],
    steps: int,
    result: Result,
    verbose: bool,
) -> None:
    pending = sorted(plan, key=lambda e: e.step)
    i = 0
    while cluster.step_no < steps:
        while i < len(pending) and pending[i].step <= cluster.step_no:
            if verbose:
                result.trace.append(f"{pending[i]}  [{_describe(cluster)}]")
            cluster.apply_event(pending[i])
            i += 1
        _step(cluster, checker)


def _liveness_phase(cluster: Cluster, checker: Checker, result: Result, verbose: bool) -> None:
    """Heal every fault and calm the network; a leader must then emerge and commit a new
    proposal within ``LIVENESS_TICKS`` ticks (TigerBeetle's liveness mode)."""
    cluster.blocked = set()
    cluster.drop = cluster.duplicate = 0.0
    cluster.max_delay_steps = min(cluster.max_delay_steps, 4)
    cluster.ready_probability = 1.0
    for node_id in list(cluster.nodes):
        cluster.apply_event(Event(cluster.step_no, "restart", node_id))
    if verbose:
        result.trace.append(f"step {cluster.step_no:5d}: liveness phase  [{_describe(cluster)}]")
    marker = b"liveness"
    deadline = cluster.step_no + LIVENESS_TICKS * TICK_STEPS
    proposed_terms: set[int] = set()
    scanned = checker.max_committed
    while cluster.step_no < deadline:
        node = cluster.leader()
        if node is not None and node.raft is not None and node.raft.term not in proposed_terms:
            try:
                node.raft.propose([marker])
                proposed_terms.add(node.raft.term)
            except NotLeaderError:
                pass
        _step(cluster, checker)
        while scanned < checker.max_committed:
            scanned += 1
            entry = checker.committed.get(scanned)
            if entry is not None and entry.data == marker:
                return
    raise InvariantError(
        f"liveness: no proposal committed within {LIVENESS_TICKS} ticks of healing "
        f"[{_describe(cluster)}]"
    )


def _describe(cluster: Cluster) -> str:
    parts = []
    for node in cluster.nodes.values():
        r = node.raft
        if r is None:
            parts.append(f"{node.id}:down")
        else:
            parts.append(f"{node.id}:{r.role.value[0]}{r.term}@{r.log.committed}")
    return " ".join(parts)


def shrink(
    seed: int, nodes: int, events: list[Event], fails: Callable[[list[Event]], bool]
) -> list[Event]:
    """Delta-debug ``events`` (Zeller's ddmin) to a short list that still ``fails``."""
    granularity = 2
    current = list(events)
    while len(current) >= 2:
        size = max(1, len(current) // granularity)
        chunks = [current[i : i + size] for i in range(0, len(current), size)]
        reduced = False
        for k in range(len(chunks)):
            candidate = [e for j, c in enumerate(chunks) if j != k for e in c]
            if fails(candidate):
                current = candidate
                granularity = max(granularity - 1, 2)
                reduced = True
                break
        if not reduced:
            if granularity >= len(current):
                break
            granularity = min(len(current), granularity * 2)
    return current


def shrink_failure(result: Result) -> list[Event]:
    """Return a minimal sub-plan of a failed ``result`` that still breaks an invariant."""
    kind = (result.violation or "").split(":")[0]

    def fails(candidate: list[Event]) -> bool:
        again = run_seed(result.seed, result.nodes, candidate, profile=result.profile)
        return again.violation is not None and again.violation.split(":")[0] == kind

    return shrink(result.seed, result.nodes, result.events, fails)
