"""Replica placement, decommissioning and leader balancing: every rule, by table and property."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replog.cluster import placement
from replog.cluster.placement import assign_replicas, leader_moves, reassign_without
from replog.errors import InvalidArgumentError


def _nodes(count: int) -> list[str]:
    return [f"n{i}" for i in range(count)]


def _assert_placement_rules(
    nodes: list[str], partitions: int, rf: int, sets: list[tuple[str, ...]]
) -> None:
    assert len(sets) == partitions
    for replicas in sets:
        assert len(replicas) == rf
        assert len(set(replicas)) == rf, f"two replicas on one node: {replicas}"
        assert set(replicas) <= set(nodes)
    held = Counter({node: 0 for node in nodes})
    led = Counter({node: 0 for node in nodes})
    for replicas in sets:
        held.update(replicas)
        led[replicas[0]] += 1
    share = partitions * rf / len(nodes)
    assert {math.floor(share), math.ceil(share)} >= set(held.values()), held
    lead_share = partitions / len(nodes)
    assert {math.floor(lead_share), math.ceil(lead_share)} >= set(led.values()), led
    assert max(led.values()) <= math.ceil(partitions / len(nodes))


@pytest.mark.parametrize(
    ("node_count", "partitions", "rf"),
    [
        (3, 12, 3),
        (5, 12, 3),
        (3, 1000, 2),
        (3, 1000, 3),
        (3, 1, 1),
        (3, 2, 2),
        (4, 3, 3),
        (5, 2, 3),
        (6, 12, 3),
        (7, 10, 4),
        (1, 5, 1),
        (2, 5, 2),
    ],
)
def test_replicas_and_leaders_spread_evenly_over_the_nodes(
    node_count: int, partitions: int, rf: int
) -> None:
    nodes = _nodes(node_count)
    _assert_placement_rules(nodes, partitions, rf, assign_replicas(nodes, partitions, rf))


@pytest.mark.parametrize("node_count", [3, 5])
def test_no_node_leads_more_than_its_share_of_12_partitions(node_count: int) -> None:
    sets = assign_replicas(_nodes(node_count), 12, 3)
    led = Counter(replicas[0] for replicas in sets)
    assert max(led.values()) <= math.ceil(12 / node_count)
    assert len(led) == node_count


def test_1000_partitions_over_3_nodes_are_balanced_within_one() -> None:
    sets = assign_replicas(_nodes(3), 1000, 2, start=2)
    held = Counter(node for replicas in sets for node in replicas)
    led = Counter(replicas[0] for replicas in sets)
    assert max(held.values()) - min(held.values()) <= 1
    assert max(led.values()) - min(led.values()) <= 1


_loads = st.dictionaries(st.sampled_from(_nodes(9)), st.integers(min_value=0, max_value=50))


@given(
    st.integers(min_value=1, max_value=9),
    st.integers(min_value=1, max_value=80),
    st.data(),
    st.integers(min_value=-100, max_value=100),
    st.integers(min_value=0, max_value=200),
    _loads,
    _loads,
)
def test_every_placement_keeps_the_rules(
    node_count: int,
    partitions: int,
    data: st.DataObject,
    start: int,
    first_partition: int,
    load: dict[str, int],
    leader_load: dict[str, int],
) -> None:
    rf = data.draw(st.integers(min_value=1, max_value=node_count))
    nodes = _nodes(node_count)
    sets = assign_replicas(
        nodes,
        partitions,
        rf,
        first_partition=first_partition,
        load=load,
        leader_load=leader_load,
        start=start,
    )
    _assert_placement_rules(nodes, partitions, rf, sets)


@given(
    st.integers(min_value=1, max_value=8),
    st.lists(st.tuples(st.integers(1, 20), st.integers(1, 8), st.integers(0, 99)), max_size=25),
)
def test_many_topics_placed_with_their_load_never_pile_replicas_on_one_node(
    node_count: int, topics: list[tuple[int, int, int]]
) -> None:
    nodes = _nodes(node_count)
    held = Counter({node: 0 for node in nodes})
    for partitions, rf, start in topics:
        for replicas in assign_replicas(
            nodes, partitions, min(rf, node_count), load=held, start=start
        ):
            held.update(replicas)
        assert max(held.values()) - min(held.values()) <= 1, held


@given(st.integers(min_value=1, max_value=8), st.lists(st.integers(0, 99), max_size=40))
def test_many_one_partition_topics_lead_within_two_of_each_other(
    node_count: int, starts: list[int]
) -> None:
    nodes = _nodes(node_count)
    led = Counter({node: 0 for node in nodes})
    held = Counter({node: 0 for node in nodes})
    for start in starts:
        (replicas,) = assign_replicas(
            nodes, 1, min(3, node_count), load=held, leader_load=led, start=start
        )
        held.update(replicas)
        led[replicas[0]] += 1
        # Within 2, not 1: the replicas stay within 1 first, which limits who can lead.
        assert max(led.values()) - min(led.values()) <= 2, led
        assert max(held.values()) - min(held.values()) <= 1, held


def test_the_extra_replicas_go_to_the_least_loaded_nodes() -> None:
    (replicas,) = assign_replicas(["a", "b", "c"], 1, 2, load={"a": 5, "b": 0, "c": 3})
    assert replicas == ("b", "c")


def test_the_leader_of_a_small_topic_is_the_holder_that_leads_least() -> None:
    (replicas,) = assign_replicas(
        ["a", "b", "c"], 1, 3, load={"a": 4, "b": 4, "c": 4}, leader_load={"a": 2, "b": 0, "c": 1}
    )
    assert replicas[0] == "b"
    assert sorted(replicas) == ["a", "b", "c"]


def test_leader_load_defaults_to_load() -> None:
    (replicas,) = assign_replicas(["a", "b", "c"], 1, 3, load={"a": 2, "b": 1, "c": 0})
    assert replicas[0] == "c"


@pytest.mark.parametrize("start", range(-3, 7))
def test_start_rotates_which_node_comes_first(start: int) -> None:
    nodes = _nodes(3)
    (replicas,) = assign_replicas(nodes, 1, 1, start=start)
    assert replicas == (nodes[start % 3],)


def test_partitions_added_later_continue_the_leader_rotation() -> None:
    nodes = _nodes(3)
    whole = assign_replicas(nodes, 5, 2, start=1)
    first = assign_replicas(nodes, 3, 2, start=1)
    added = assign_replicas(nodes, 2, 2, first_partition=3, start=1)
    assert [s[0] for s in first + added] == [s[0] for s in whole]
    assert [s[0] for s in whole] == ["n1", "n2", "n0", "n1", "n2"]


def test_each_leaders_followers_change_from_round_to_round() -> None:
    nodes = _nodes(5)
    sets = assign_replicas(nodes, 20, 2)
    for leader in nodes:
        followers = {replicas[1] for replicas in sets if replicas[0] == leader}
        assert followers == set(nodes) - {leader}


def test_the_same_arguments_give_the_same_placement() -> None:
    args = (_nodes(5), 17, 3)
    assert assign_replicas(*args, start=4, load={"n1": 3}) == assign_replicas(
        *args, start=4, load={"n1": 3}
    )


@pytest.mark.parametrize(
    ("nodes", "partitions", "rf", "message"),
    [
        (["a", "b", "c"], 3, 4, "replication factor 4 is larger than the 3 nodes of the cluster"),
        (["a"], 3, 2, "replication factor 2 is larger than the 1 node of the cluster"),
        (["a", "b", "c"], 3, 0, "replication factor must be at least 1, not 0"),
        (["a", "b", "c"], 0, 1, "a topic has at least 1 partition, not 0"),
        (["a", "b", "a", "b"], 3, 1, "node ids must be unique; listed more than once: a, b"),
        ([], 1, 1, "the cluster has no nodes to place replicas on"),
    ],
)
def test_an_impossible_placement_is_refused_clearly(
    nodes: list[str], partitions: int, rf: int, message: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=f"^{message}$"):
        assign_replicas(nodes, partitions, rf)


def test_a_negative_first_partition_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="numbered from 0, not -1"):
        assign_replicas(_nodes(3), 1, 1, first_partition=-1)


def test_the_proven_fallback_matches_a_leader_to_every_set() -> None:
    # The sets of a partial round laid out as consecutive positions of the cycle.
    sets = [["n0", "n1"], ["n2", "n3"], ["n0", "n1"]]
    leaders = placement._match_leaders(sets, ["n0", "n2", "n3", "n1"])
    assert [leader in members for leader, members in zip(leaders, sets, strict=True)] == [
        True,
        True,
        True,
    ]
    assert len(set(leaders)) == 3
    assert set(leaders) == {"n0", "n2", "n1"}  # n3 only shares n2's set, and n2 comes first


@pytest.mark.parametrize("node_count", [2, 3, 4, 5, 7])
def test_the_fallback_placement_keeps_the_rules_too(
    node_count: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Force the proven fallback the follower filling never needed in an exhaustive check.
    monkeypatch.setattr(placement, "_fill_followers", lambda *args: None)
    nodes = _nodes(node_count)
    for rf in range(1, node_count + 1):
        for partitions in range(1, 2 * node_count + 1):
            sets = assign_replicas(nodes, partitions, rf, load={"n1": 2}, start=partitions)
            _assert_placement_rules(nodes, partitions, rf, sets)


# ---- reassign_without -------------------------------------------------------------------


def test_a_decommissioned_node_is_replaced_in_place_by_the_least_loaded_other() -> None:
    assignments = {0: ("a", "b"), 1: ("b", "c"), 2: ("c", "a"), 3: ("d", "a")}
    out = reassign_without(assignments, "a", ["a", "b", "c", "d"])
    # d holds 1 replica, b and c 2: d takes a's place in partition 0 (not already there)...
    assert out[0] == ("d", "b")
    # ...then partition 2 needs one of b and d (c is there): both hold 2, b leads less.
    assert out[2] == ("c", "b")
    # partition 3 holds d already: b or c; b now holds 3, c holds 2.
    assert out[3] == ("d", "c")
    assert out[1] == ("b", "c")


@given(
    st.integers(min_value=2, max_value=8),
    st.integers(min_value=1, max_value=60),
    st.data(),
)
def test_decommissioning_keeps_the_other_replicas_in_order_and_picks_the_least_loaded(
    node_count: int, partitions: int, data: st.DataObject
) -> None:
    nodes = _nodes(node_count)
    rf = data.draw(st.integers(min_value=1, max_value=node_count - 1))
    before = dict(
        enumerate(assign_replicas(nodes, partitions, rf, start=data.draw(st.integers(0, 9))))
    )
    gone = data.draw(st.sampled_from(nodes))
    after = reassign_without(before, gone, nodes)
    assert after.keys() == before.keys()
    for partition, replicas in after.items():
        old = before[partition]
        assert gone not in replicas
        assert len(set(replicas)) == len(replicas) == len(old)
        assert [n for n in replicas if n in old] == [n for n in old if n != gone]
        if gone in old:
            assert old.index(gone) == [n in old for n in replicas].index(False)
        else:
            assert replicas == old
    # Each replacement was the least loaded eligible node at its turn (partition order).
    held = Counter(n for replicas in before.values() for n in replicas)
    led = Counter(replicas[0] for replicas in before.values())
    remaining = [n for n in nodes if n != gone]
    for partition in sorted(before):
        if gone not in before[partition]:
            continue
        slot = before[partition].index(gone)
        chosen = after[partition][slot]
        eligible = [n for n in remaining if n not in before[partition]]
        best = min((held[n], led[n], remaining.index(n)) for n in eligible)
        assert (held[chosen], led[chosen], remaining.index(chosen)) == best
        held[chosen] += 1
        led[chosen] += slot == 0


@pytest.mark.parametrize(("node_count", "partitions", "rf"), [(3, 12, 2), (4, 12, 3), (5, 12, 3)])
def test_decommissioning_one_node_of_a_balanced_cluster_leaves_it_balanced(
    node_count: int, partitions: int, rf: int
) -> None:
    nodes = _nodes(node_count)
    before = dict(enumerate(assign_replicas(nodes, partitions, rf)))
    after = reassign_without(before, "n0", nodes)
    held = Counter(n for replicas in after.values() for n in replicas)
    assert "n0" not in held
    assert max(held.values()) - min(held.values()) <= 1, held


def test_decommissioning_a_node_the_sets_need_is_refused() -> None:
    assignments = {0: ("a", "b", "c"), 1: ("b", "c", "a")}
    with pytest.raises(
        InvalidArgumentError,
        match="cannot move partition 0 off node a: its 3 replicas need 3 nodes and only 2 "
        "would remain",
    ):
        reassign_without(assignments, "a", ["a", "b", "c"])


def test_decommissioning_refuses_duplicate_node_ids() -> None:
    with pytest.raises(InvalidArgumentError, match="unique"):
        reassign_without({0: ("a",)}, "a", ["a", "b", "b"])


def test_decommissioning_a_node_that_holds_nothing_changes_nothing() -> None:
    assignments = {0: ("a", "b"), 1: ("b", "a")}
    assert reassign_without(assignments, "c", ["a", "b", "c"]) == assignments


# ---- leader_moves -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("leader", "live", "expected"),
    [
        ("b", {"a", "b", "c"}, [(0, "a")]),  # preferred a is live: move back
        ("a", {"a", "b", "c"}, []),  # already on its preferred leader
        ("b", {"b", "c"}, []),  # preferred a is down: stay
        ("", {"a", "b", "c"}, []),  # no leader to hand over from
    ],
)
def test_leadership_moves_back_to_a_live_preferred_leader(
    leader: str, live: set[str], expected: list[tuple[int, str]]
) -> None:
    assert leader_moves({0: ("a", "b", "c")}, {0: leader}, live) == expected


def test_leader_moves_come_in_partition_order_and_skip_partitions_without_a_leader() -> None:
    assignments = {2: ("a", "b"), 0: ("b", "a"), 1: ("c", "a"), 3: ("a", "c")}
    leaders = {2: "b", 0: "a", 1: "a"}  # 3 has no leader now
    assert leader_moves(assignments, leaders, {"a", "b", "c"}) == [(0, "b"), (1, "c"), (2, "a")]


def test_balanced_placement_after_a_restart_moves_every_displaced_leadership_home() -> None:
    nodes = _nodes(3)
    assignments = dict(enumerate(assign_replicas(nodes, 12, 3)))
    # n0 restarted: its partitions failed over to their second replica.
    leaders = {p: (r[1] if r[0] == "n0" else r[0]) for p, r in assignments.items()}
    moves = leader_moves(assignments, leaders, set(nodes))
    assert moves == [(p, "n0") for p, r in sorted(assignments.items()) if r[0] == "n0"]
    assert len(moves) == 4
    assert leader_moves(assignments, leaders, {"n1", "n2"}) == []


def test_follower_filling_never_needs_the_fallback_up_to_8_nodes() -> None:
    # Every shape of partial round, with every node able to be told apart by leader load.
    rng = random.Random(12)
    for node_count in range(1, 9):
        order = _nodes(node_count)
        for rf in range(1, node_count + 1):
            for partitions in range(1, node_count):
                share, extra = divmod(partitions * rf, node_count)
                slots = {node: share + (i < extra) for i, node in enumerate(order)}
                holders = [node for node in order if slots[node]]
                for _ in range(40):
                    leaders = rng.sample(holders, partitions)
                    sets = placement._fill_followers(leaders, slots, rf, order)
                    assert sets is not None, (node_count, rf, partitions, leaders)
                    assert [s[0] for s in sets] == leaders
                    assert all(len(set(s)) == rf for s in sets)
                    assert Counter(n for s in sets for n in s) == +Counter(slots)
