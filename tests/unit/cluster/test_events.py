"""The groups' event lines: node names (never Raft ids), the controller group at once, the
partition groups' leader changes of one window coalesced into one summary line per kind."""

from __future__ import annotations

import asyncio
import json
import logging
from types import SimpleNamespace
from typing import Any

import pytest

from replog.cluster.events import SAMPLE, GroupEvents, group_labels, note_transfer
from replog.raft.ready import Role
from replog.server.logs import JsonFormatter

NAMES = {11: "n1", 22: "n2", 33: "n3"}
ME = 22


class _Node:  # what GroupEvents reads of a RaftNode (weakly referable, as RaftNode is)
    def __init__(self, role: Role, term: int) -> None:
        self.raft = SimpleNamespace(role=role, term=term)


def _node(role: Role = Role.FOLLOWER, term: int = 1) -> Any:
    return _Node(role, term)


def _events(window_s: float = 0.05) -> GroupEvents:
    return GroupEvents("n2", ME, lambda i: NAMES.get(i, str(i)), window_s=window_s)


def _change(node: Any, role: Role, term: int, leader: int | None) -> None:
    node.raft.role, node.raft.term = role, term
    node.on_leader_change(leader)


def _lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    fmt = JsonFormatter()
    return [json.loads(fmt.format(r)) for r in caplog.records if r.name == "replog.cluster.events"]


def test_group_ids_are_labelled_by_topic_and_partition() -> None:
    assert group_labels("") == ("controller", None, None)
    assert group_labels("orders/3@17") == ("orders/3", "orders", 3)
    assert group_labels("a/b/12@5") == ("a/b/12", "a/b", 12)


async def test_the_controller_groups_election_is_one_line_at_once_naming_nodes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "replog")
    events, node = _events(), _node()
    events.watch("", node)
    _change(node, Role.FOLLOWER, 1, 11)
    events.reason("", "n1 was unreachable")
    _change(node, Role.CANDIDATE, 2, None)
    _change(node, Role.LEADER, 2, ME)
    lines = _lines(caplog)
    assert [line["event"] for line in lines] == ["leader_changed", "election_won"]
    won = lines[1]
    assert won["node"] == "n2" and won["group"] == "controller" and won["term"] == 2
    assert won["from"] == "n1" and won["reason"] == "n1 was unreachable"
    assert won["msg"] == (
        "the controller group: this node won the election in term 2 "
        "(the leader before: n1); n1 was unreachable"
    )
    assert "11" not in won["msg"] and "22" not in won["msg"]


async def test_many_partitions_changing_leader_in_one_window_log_one_summary_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "replog")
    events = _events()
    nodes = [_node() for _ in range(20)]
    for p, node in enumerate(nodes):
        events.watch(f"orders/{p}@7", node)
        _change(node, Role.FOLLOWER, 1, 11)
    await asyncio.sleep(0.1)  # the first window closes: 20 leader_changed -> one line
    caplog.clear()
    for p, node in enumerate(nodes):
        _change(node, Role.LEADER if p % 2 else Role.FOLLOWER, 3 + p % 3, ME if p % 2 else 33)
    assert _lines(caplog) == []  # gathered, not yet logged
    events.flush()
    lines = {line["event"]: line for line in _lines(caplog)}
    assert set(lines) == {"election_won", "leader_changed"}
    won = lines["election_won"]
    assert won["count"] == 10 and len(won["partitions"]) == SAMPLE
    assert won["partitions"][:2] == ["orders/1", "orders/3"]
    assert won["term_min"] == 3 and won["term_max"] == 5 and won["from"] == "n1"
    assert won["msg"].startswith("became leader of 10 partitions (orders/1, orders/3, ")
    assert won["msg"].endswith(", ... +2) in terms 3-5")
    changed = lines["leader_changed"]
    assert changed["to"] == {"n3": 10} and changed["count"] == 10


async def test_a_window_with_one_partitions_change_logs_that_partitions_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "replog")
    events, node = _events(window_s=0.02), _node(Role.LEADER, 4)
    events.watch("orders/5@7", node)
    note_transfer(node, "leader balancing: n3 is the preferred leader")
    _change(node, Role.FOLLOWER, 5, 33)
    await asyncio.sleep(0.1)
    (line,) = _lines(caplog)
    assert line["event"] == "stepped_down" and line["topic"] == "orders"
    assert line["partition"] == 5 and line["to"] == "n3" and line["term"] == 5
    assert line["msg"] == (
        "orders/5: this node stepped down as leader in term 5 (leader: n3); "
        "leader balancing: n3 is the preferred leader"
    )


async def test_a_candidate_that_loses_logs_election_lost(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "replog")
    events, node = _events(), _node()
    events.watch("", node)
    _change(node, Role.CANDIDATE, 2, None)
    _change(node, Role.FOLLOWER, 2, 33)
    (line,) = _lines(caplog)
    assert line["event"] == "election_lost" and line["to"] == "n3"
