"""The move driver's pure parts: the next step of a move from a group's configuration,
and the progress a Status answer shows."""

from __future__ import annotations

from collections.abc import Iterable

from replog.cluster.controller import apply_reporting, initial_state
from replog.cluster.controller_commands import (
    Command,
    CompleteReassignment,
    CreateTopic,
    DecommissionNode,
)
from replog.cluster.controller_state import ControllerState
from replog.cluster.move_admin import progress
from replog.cluster.moves import Step, plan_step
from replog.v1 import cluster_pb2


def _everyone(node: int) -> bool:
    return True


def _run_move(voters: set[int], leader: int, target: set[int]) -> list[Step]:
    """Take planned steps (every member caught up at once) until done."""
    learners: set[int] = set()
    steps = []
    for _ in range(20):
        step = plan_step(voters, learners, leader, target, _everyone)
        steps.append(step)
        if step.op == "done":
            return steps
        if step.op == "add":
            learners.add(step.node)
        elif step.op == "promote":
            learners.discard(step.node)
            voters.add(step.node)
        elif step.op == "remove":
            voters.discard(step.node)
            learners.discard(step.node)
        elif step.op == "transfer":
            leader = step.node
        assert len(voters) >= 2 or len(target) < 2, "a majority of the old set is kept"
    raise AssertionError(f"no end: {steps}")


def test_a_move_adds_a_learner_promotes_it_and_only_then_removes_an_old_replica() -> None:
    steps = _run_move({1, 2, 3}, 2, {2, 3, 4})
    assert [s.op for s in steps] == ["add", "promote", "remove", "done"]
    assert [s.node for s in steps[:3]] == [4, 4, 1]


def test_a_leader_that_leaves_hands_over_to_a_target_replica_first() -> None:
    steps = _run_move({1, 2, 3}, 1, {2, 3, 4})
    assert [s.op for s in steps] == ["add", "promote", "transfer", "remove", "done"]
    assert steps[2].node in {2, 3, 4} and steps[3].node == 1


def test_a_move_to_a_disjoint_set_keeps_the_group_writable_on_the_way() -> None:
    steps = _run_move({1}, 1, {5})
    assert [s.op for s in steps] == ["add", "promote", "transfer", "remove", "done"]


def test_a_learner_that_lags_is_waited_for_and_extra_learners_leave_first() -> None:
    assert plan_step({1, 2}, {3}, 1, {1, 2, 3}, lambda n: n != 3) == Step("wait", 3)
    assert plan_step({1, 2, 3}, {9}, 1, {1, 2, 3}, _everyone) == Step("remove", 9)
    assert plan_step({1, 2, 3}, (), 1, {1, 2, 3}, _everyone) == Step("done")


def test_a_leaving_leader_with_no_caught_up_successor_waits() -> None:
    step = plan_step({1, 2, 3}, (), 1, {2, 3}, lambda n: n == 1)
    assert step == Step("wait", 1)


def _applied(state: ControllerState, *commands: Command) -> ControllerState:
    for command in commands:
        result = apply_reporting(state, command, state.version + 1)
        assert result.refused is None, result.refused
        state = result.state
    return state


def _complete_all(state: ControllerState) -> ControllerState:
    for name in sorted(state.topics):
        topic = state.topics[name]
        for p, part in enumerate(topic.partitions):
            if part.target is not None:
                command = CompleteReassignment(name, p, topic.topic_id, part.target)
                state = _applied(state, command)
    return state


def _states(answer: cluster_pb2.StatusResponse) -> dict[str, str]:
    return {n.id: n.state for n in answer.nodes}


def _ids(moves: Iterable[cluster_pb2.PartitionMove]) -> set[str]:
    return {f"{m.topic}/{m.partition}" for m in moves}


def test_status_shows_a_decommission_from_its_moves_to_the_node_decommissioned() -> None:
    state = initial_state({f"n{i}": f"h:{i}" for i in range(4)})
    state = _applied(state, CreateTopic("t", 4, 2), DecommissionNode("n1"))
    during = cluster_pb2.StatusResponse()
    progress(during, state)
    assert _states(during)["n1"] == "decommissioning"
    assert "default/0" in _ids(during.moves)
    assert all("n1" not in m.target for m in during.moves)
    done = cluster_pb2.StatusResponse()
    progress(done, _complete_all(state))
    assert _states(done) == {"n0": "active", "n1": "decommissioned", "n2": "active", "n3": "active"}
    assert not done.moves
    assert {n.id: n.partitions for n in done.nodes}["n1"] == 0
